import pytest

from rustro.broker.base import BUY, SELL, OrderRequest
from rustro.broker.paper import ContractSpec, PaperBroker
from rustro.config import OrdersConfig
from rustro.orders import OrderManager, ladder_prices, order_tag

from conftest import DAY
from fakes import ScriptedBroker, SetMarket

TOKEN = "50001"


@pytest.fixture
def market(vclock):
    return SetMarket(vclock, {TOKEN: (99.0, 100.0)})


@pytest.fixture
def paper(tmp_path, vclock, market):
    b = PaperBroker(tmp_path / "paper.sqlite", vclock, market, lambda t: ContractSpec(65, 0.05, 1800),
                    capital=1_000_000, latency_ms=200)
    yield b
    b.close()


def req(tag, side=BUY, price=100.0, qty=65):
    return OrderRequest(tag=tag, exchange="NFO", symbol="NIFTY01DEC2624000CE", token=TOKEN, side=side,
                        qty=qty, price=price)


def om(journal, broker, vclock, **cfg):
    return OrderManager(journal, broker, vclock, OrdersConfig(**cfg), DAY)


def test_tag_is_deterministic_short_and_distinct():
    a = order_tag(DAY, "NIFTY", BUY, "2026-11-20T10:15", "entry", 0)
    assert a == order_tag(DAY, "NIFTY", BUY, "2026-11-20T10:15", "entry", 0)
    assert len(a) == 20 and all(c in "0123456789abcdef" for c in a)
    assert a != order_tag(DAY, "NIFTY", BUY, "2026-11-20T10:15", "entry", 1)
    assert a != order_tag(DAY, "NIFTY", BUY, "2026-11-20T11:15", "entry", 0)
    assert len(order_tag(DAY, "NIFTY", BUY, "x", "entry", 0, length=15)) == 15


def test_ladder_prices_round_the_safe_way():
    assert ladder_prices(100.0, [0.25, 0.5, 0.75, 1.0], BUY, 0.05) == [100.25, 100.5, 100.75, 101.0]
    assert ladder_prices(100.0, [0.25, 0.5, 0.75, 1.0], SELL, 0.05) == [99.75, 99.5, 99.25, 99.0]
    assert ladder_prices(10.03, [0.25], BUY, 0.05) == [10.1]   # 10.055 rounds UP for a buy
    assert ladder_prices(10.03, [0.25], SELL, 0.05) == [10.0]  # 10.005 rounds DOWN for a sell


def test_intent_is_committed_before_the_broker_is_called(journal, paper, vclock):
    seen = {}
    sb = ScriptedBroker(paper)
    sb.on_place = lambda r: seen.update(row=journal.query("SELECT status FROM orders WHERE tag=?",
                                                          (r.tag,)))
    m = om(journal, sb, vclock)
    order = m.submit(req("t-intent"), "entry", None, "NIFTY")
    assert [tuple(r) for r in seen["row"]] == [("sent",)]
    assert order is not None and journal.query("SELECT status FROM orders")[0][0] in ("acked", "put order req received", "open")


def test_filled_entry_journals_fill_once(journal, paper, vclock):
    m = om(journal, paper, vclock)
    r = req("t-fill")
    order = m.submit(r, "entry", None, "NIFTY")
    res = m.work_entry(r, order, 0.05)
    assert res.status == "complete" and res.filled_qty == 65 and res.avg_price == 100.0
    m.sync("t-fill", paper.order_details(order.unique_order_id))  # repeated syncs add nothing
    assert journal.query("SELECT COUNT(*) FROM fills")[0][0] == 1
    assert journal.query("SELECT status, filled_qty FROM orders")[0][:] == ("complete", 65)


def test_ambiguous_place_is_resolved_by_tag_never_sent_twice(journal, paper, vclock):
    sb = ScriptedBroker(paper, fail_place=True)
    m = om(journal, sb, vclock)
    order = m.submit(req("t-amb"), "entry", None, "NIFTY")
    assert sb.place_calls == 1
    assert order is not None and order.tag == "t-amb"
    assert len(paper.order_book()) == 1
    ack = journal.events(DAY, kinds=("order_ack",))
    assert ack[-1].payload["resolved_by"] == "tag"


def test_ambiguous_and_absent_is_unknown_not_resent(journal, paper, vclock):
    sb = ScriptedBroker(paper, lose_order=True)
    m = om(journal, sb, vclock)
    assert m.submit(req("t-lost"), "entry", None, "NIFTY") is None
    assert sb.place_calls == 1 and paper.order_book() == []
    assert journal.query("SELECT status FROM orders")[0][0] == "unknown"


def test_same_tag_never_submitted_twice(journal, paper, vclock):
    m = om(journal, paper, vclock)
    m.submit(req("t-dup"), "entry", None, "NIFTY")
    with pytest.raises(RuntimeError, match="already journaled"):
        m.submit(req("t-dup"), "entry", None, "NIFTY")
    assert len(paper.order_book()) == 1


def test_entry_ladders_up_until_it_crosses(journal, paper, vclock, market):
    market.quotes[TOKEN] = (100.2, 100.6)  # ask moved above our first price
    m = om(journal, paper, vclock)
    r = req("t-ladder", price=100.0)
    res = m.work_entry(r, m.submit(r, "entry", None, "NIFTY"), 0.05)
    assert res.status == "complete" and res.avg_price == 100.6
    mods = [e.payload["price"] for e in journal.events(DAY, kinds=("order_modify",))]
    assert mods == [100.25, 100.5, 100.75]  # stopped at the first step >= ask


def test_entry_unfilled_is_cancelled(journal, paper, vclock, market):
    market.quotes[TOKEN] = (104.0, 105.0)
    m = om(journal, paper, vclock)
    r = req("t-gone", price=100.0)
    t0 = vclock.now()
    res = m.work_entry(r, m.submit(r, "entry", None, "NIFTY"), 0.05)
    assert res.status == "cancelled" and res.filled_qty == 0
    assert [e.payload["price"] for e in journal.events(DAY, kinds=("order_modify",))] == [
        100.25, 100.5, 100.75, 101.0]
    waited = (vclock.now() - t0).total_seconds()
    assert waited >= 5 + 2 + 4 + 8 + 5  # timeout, backoffs, final timeout


def test_partial_entry_keeps_filled_part_and_cancels_rest(tmp_path, journal, vclock, market):
    b = PaperBroker(tmp_path / "p2.sqlite", vclock, market, lambda t: ContractSpec(65, 0.05, 1800),
                    capital=1_000_000, latency_ms=200, partial_fill_prob=1.0, seed=3)
    m = om(journal, b, vclock)
    r = req("t-part", qty=650)
    order = m.submit(r, "entry", None, "NIFTY")
    vclock.advance(1)
    b.order_details(order.unique_order_id)   # first (partial) fill happens
    market.quotes[TOKEN] = (104.0, 105.0)     # then the market runs away
    res = m.work_entry(r, order, 0.05)
    assert res.status == "cancelled" and 0 < res.filled_qty < 650 and res.filled_qty % 65 == 0
    assert sum(f["qty"] for f in res.fills) == res.filled_qty


def test_exit_ladders_down_then_last_resort(journal, paper, vclock, market):
    m = om(journal, paper, vclock)
    buy = req("t-buy")
    m.work_entry(buy, m.submit(buy, "entry", None, "NIFTY"), 0.05)
    market.quotes[TOKEN] = (90.0, 91.0)  # bid far below our first exit price
    sell = req("t-sell", side=SELL, price=99.0)
    res = m.work_exit(sell, m.submit(sell, "exit", None, "NIFTY"), 0.05, lambda: market.quotes[TOKEN][0])
    assert res.status == "complete" and res.filled_qty == 65 and res.avg_price == 90.0
    prices = [e.payload["price"] for e in journal.events(DAY, kinds=("order_modify",))]
    assert prices[:4] == [98.75, 98.5, 98.25, 98.0] and prices[4] == 85.5  # 5 % below the bid


def test_unknown_order_is_concluded_never_placed_after_the_grace(journal, paper, vclock):
    sb = ScriptedBroker(paper, lose_order=True)
    m = om(journal, sb, vclock)
    assert m.submit(req("t-ghost"), "entry", None, "NIFTY") is None
    row = m.pending()[0]
    assert row["status"] == "unknown"
    assert m.refresh(row) is None and m.pending()  # still within the grace: kept open
    vclock.advance(61)
    assert m.refresh(m.pending()[0]) is None
    assert m.pending() == []  # terminal now: no more lookups on every tick
    final = journal.query("SELECT status, text FROM orders WHERE tag = 't-ghost'")[0]
    assert final[0] == "rejected" and "never placed" in final[1]
    assert sb.place_calls == 1 and paper.order_book() == []


def test_unknown_order_found_later_is_followed_not_resent(journal, paper, vclock):
    sb = ScriptedBroker(paper, fail_place=True)
    sb.inner = paper
    m = om(journal, sb, vclock)
    real_book = paper.order_book
    paper.order_book = lambda: []          # the book lags: the order is not visible yet
    assert m.submit(req("t-late"), "entry", None, "NIFTY") is None
    paper.order_book = real_book           # now it shows up
    found = m.refresh(m.pending()[0])
    assert found is not None and found.tag == "t-late" and sb.place_calls == 1
