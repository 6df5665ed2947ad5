"""Execution: one bounded step per tick, never a wait; lost replies and lagging books never make a
second order or lose a fill; the SELL guard makes a net short impossible."""
from dataclasses import replace
from datetime import date

import pytest

from rustro import order_machine as om
from rustro.app import run_day
from rustro.broker.base import BUY, SELL, AmbiguousOrder, BrokerError, OrderRequest
from rustro.broker.paper import ContractSpec, PaperBroker
from rustro.config import Config, OrdersConfig
from rustro.credentials import Secrets
from rustro.desk import build_desk
from rustro.execution import Execution
from rustro.journal import Journal

from conftest import DAY
from fakes import ScriptedBroker, SetMarket, assert_never_short

TOKEN = "50001"


@pytest.fixture
def market(vclock):
    return SetMarket(vclock, {TOKEN: (99.0, 100.0)})


def make_paper(tmp_path, vclock, market, name="paper.sqlite", **kw):
    return PaperBroker(tmp_path / name, vclock, market, lambda t: ContractSpec(65, 0.05, 1800),
                       capital=1_000_000, latency_ms=200, **kw)


@pytest.fixture
def paper(tmp_path, vclock, market):
    b = make_paper(tmp_path, vclock, market)
    yield b
    b.close()


def req(tag, side=BUY, price=100.0, qty=65):
    return OrderRequest(tag=tag, exchange="NFO", symbol="NIFTY01DEC2624000CE", token=TOKEN, side=side,
                        qty=qty, price=price)


def ex_for(journal, broker, vclock, held=None, bid=None, **cfg):
    holdings = held if held is not None else {}
    return Execution(journal, broker, vclock, OrdersConfig(**cfg), DAY, lambda t: holdings.get(t, 0),
                     bid_for=bid)


def ticks(ex, vclock, n, every=5):
    """n monitor ticks, `every` seconds apart; the clock moves only here, never inside a step."""
    out = []
    for _ in range(n):
        vclock.advance(every)
        before = vclock.now()
        out += ex.step()
        assert vclock.now() == before, "a step waited on the clock"
    return out


def kinds(journal, kind):
    return [e.payload for e in journal.events(DAY, kinds=(kind,))]


def test_decision_and_intent_commit_before_the_broker_is_called(journal, paper, vclock):
    seen = {}
    sb = ScriptedBroker(paper)
    sb.on_place = lambda r: seen.update(
        row=[tuple(x) for x in journal.query("SELECT status FROM orders WHERE tag = ?", (r.tag,))],
        decision=len(kinds(journal, "entry_decision")))
    ex = ex_for(journal, sb, vclock)
    before = vclock.now()
    o = ex.submit(req("t-intent"), "entry", "t-intent", "NIFTY", 0.05,
                  decision=("entry_decision", {"tag": "t-intent", "allowed": True}))
    assert seen == {"row": [("sent",)], "decision": 1}
    assert o.state == om.OPEN and vclock.now() == before  # acked, and nothing waited


def test_fill_is_seen_on_a_later_tick_and_journaled_once(journal, paper, vclock):
    ex = ex_for(journal, paper, vclock)
    o = ex.submit(req("t-fill"), "entry", "t-fill", "NIFTY", 0.05)
    out = ticks(ex, vclock, 1)
    assert o.state == om.COMPLETE and o.filled_qty == 65 and o.avg_price == 100.0
    assert [x.became_terminal for x in out] == [True] and out[0].new_fill_qty == 65
    ticks(ex, vclock, 3)  # later ticks neither poll a final order nor journal the fill again
    assert len(kinds(journal, "fill")) == 1
    assert journal.query("SELECT status, filled_qty FROM orders")[0][:] == ("complete", 65)


def test_entry_ladder_is_a_schedule_one_step_per_tick(journal, paper, vclock, market):
    market.quotes[TOKEN] = (100.2, 100.6)  # the ask moved above our first price
    ex = ex_for(journal, paper, vclock)
    o = ex.submit(req("t-ladder"), "entry", "t-ladder", "NIFTY", 0.05)
    ticks(ex, vclock, 6)
    mods = kinds(journal, "order_modify")
    assert [m["price"] for m in mods] == [100.25, 100.5, 100.75]  # stopped at the first step >= ask
    assert o.state == om.COMPLETE and o.avg_price == 100.6
    times = [e.ts for e in journal.events(DAY, kinds=("order_modify",))]
    assert len(set(times)) == len(times)  # never two ladder actions in one tick


def test_unfilled_entry_is_cancelled_when_its_schedule_ends(journal, paper, vclock, market):
    market.quotes[TOKEN] = (104.0, 105.0)
    ex = ex_for(journal, paper, vclock)
    t0 = vclock.now()
    o = ex.submit(req("t-gone"), "entry", "t-gone", "NIFTY", 0.05)
    out = ticks(ex, vclock, 12)
    assert [m["price"] for m in kinds(journal, "order_modify")] == [100.25, 100.5, 100.75, 101.0]
    cancel = journal.events(DAY, kinds=("order_cancel",))[0]
    assert (cancel.ts - t0).total_seconds() >= 5 + 2 + 4 + 8 + 5  # timeout, backoffs, final timeout
    assert o.state == om.CANCELLED and o.filled_qty == 0 and any(x.became_terminal for x in out)


def test_partial_entry_keeps_its_fills_and_cancels_the_rest(tmp_path, journal, vclock, market):
    b = make_paper(tmp_path, vclock, market, "p2.sqlite", partial_fill_prob=1.0, seed=3)
    ex = ex_for(journal, b, vclock)
    o = ex.submit(req("t-part", qty=650), "entry", "t-part", "NIFTY", 0.05)
    ticks(ex, vclock, 1)
    market.quotes[TOKEN] = (104.0, 105.0)  # then the market runs away
    ticks(ex, vclock, 10)
    assert o.state == om.CANCELLED and 0 < o.filled_qty < 650 and o.filled_qty % 65 == 0
    assert sum(f["qty"] for f in kinds(journal, "fill")) == o.filled_qty


def test_exit_ladders_down_then_reprices_below_the_bid(journal, paper, vclock, market):
    held = {TOKEN: 65}
    ex = ex_for(journal, paper, vclock, held, bid=lambda o: market.quotes[TOKEN][0])
    ex.submit(req("t-buy"), "entry", "t-buy", "NIFTY", 0.05)
    ticks(ex, vclock, 1)
    market.quotes[TOKEN] = (90.0, 91.0)  # the bid far below our first exit price
    o = ex.submit(req("t-sell", side=SELL, price=99.0), "exit", "p1", "NIFTY", 0.05)
    ticks(ex, vclock, 8)
    prices = [m["price"] for m in kinds(journal, "order_modify")]
    assert prices[:4] == [98.75, 98.5, 98.25, 98.0] and prices[4] == 85.5  # 5 % below the bid
    assert o.state == om.COMPLETE and o.avg_price == 90.0


def test_lost_reply_is_unknown_then_resolved_by_tag_never_resent(journal, paper, vclock):
    sb = ScriptedBroker(paper, fail_place=True)
    ex = ex_for(journal, sb, vclock)
    o = ex.submit(req("t-amb"), "entry", "t-amb", "NIFTY", 0.05)
    assert o.state == om.UNKNOWN and sb.place_calls == 1
    ticks(ex, vclock, 2)
    assert kinds(journal, "order_ack")[-1]["resolved_by"] == "tag"
    assert o.state == om.COMPLETE and sb.place_calls == 1 and len(paper.order_book()) == 1


def test_absence_proves_nothing_until_both_books_answer_for_the_grace(journal, paper, vclock):
    sb = ScriptedBroker(paper, lose_order=True)  # the request never reached the broker
    ex = ex_for(journal, sb, vclock)
    o = ex.submit(req("t-ghost"), "entry", "t-ghost", "NIFTY", 0.05)
    real = paper.trade_book

    def failing():
        raise BrokerError("trade book: 502 Bad Gateway")
    paper.trade_book = failing
    ticks(ex, vclock, 30)   # 150 s: far past the grace, but one book never answered
    assert o.state == om.UNKNOWN
    assert len([e for e in kinds(journal, "broker_error") if e["call"] == "trade_book"]) == 1
    paper.trade_book = real
    ticks(ex, vclock, 1)
    assert o.state == om.NEVER_PLACED and sb.place_calls == 1
    assert "both lookups succeeded" in journal.query("SELECT text FROM orders")[0][0]


def test_acked_order_hidden_by_a_lagging_book_is_followed_until_it_fills(tmp_path, journal, vclock,
                                                                         market):
    lag = make_paper(tmp_path, vclock, market, "lag.sqlite", book_lag_sec=30)
    ex = ex_for(journal, lag, vclock)
    o = ex.submit(req("t-lag"), "entry", "t-lag", "NIFTY", 0.05)
    assert o.state == om.OPEN
    ticks(ex, vclock, 4)    # "order not found" for 20 s: not visible yet, never abandoned
    assert o.state == om.OPEN and not kinds(journal, "order_cancel")
    ticks(ex, vclock, 3)
    assert o.state == om.COMPLETE and o.filled_qty == 65 and len(kinds(journal, "fill")) == 1


def test_unknown_order_found_late_in_a_lagging_book_is_followed_not_resent(tmp_path, journal, vclock,
                                                                         market):
    lag = make_paper(tmp_path, vclock, market, "lag2.sqlite", book_lag_sec=30)
    sb = ScriptedBroker(lag, fail_place=True)
    ex = ex_for(journal, sb, vclock, unknown_grace_sec=60)
    o = ex.submit(req("t-late"), "entry", "t-late", "NIFTY", 0.05)
    ticks(ex, vclock, 5)
    assert o.state == om.UNKNOWN       # 25 s: invisible, and not concluded absent
    ticks(ex, vclock, 3)
    assert o.state == om.COMPLETE and sb.place_calls == 1


def test_a_second_sell_while_one_is_unknown_is_refused(journal, paper, vclock):
    held = {TOKEN: 65}
    ex = ex_for(journal, ScriptedBroker(paper), vclock, held)
    ex.submit(req("t-b"), "entry", "t-b", "NIFTY", 0.05)
    ticks(ex, vclock, 1)
    lost = ScriptedBroker(paper, fail_place=True)
    ex.broker = lost
    first = ex.submit(req("t-s1", side=SELL, price=99.0), "exit", "p", "NIFTY", 0.05)
    assert first.state == om.UNKNOWN and ex.sellable(TOKEN) == 0
    assert ex.submit(req("t-s2", side=SELL, price=99.0), "exit", "p", "NIFTY", 0.05) is None
    assert kinds(journal, "sell_refused")[0]["in_flight"] == 65 and lost.place_calls == 1
    ticks(ex, vclock, 2)
    assert first.state == om.COMPLETE
    assert min(p.net_qty for p in paper.positions()) == 0


def test_an_ack_after_a_fill_is_refused_and_journaled(journal, paper, vclock):
    ex = ex_for(journal, paper, vclock)
    o = ex.submit(req("t-done"), "entry", "t-done", "NIFTY", 0.05)
    ticks(ex, vclock, 1)
    seen = paper.order_book()[0]
    ex.revive(o, seen, "a late duplicate update")
    assert o.state == om.COMPLETE
    bad = kinds(journal, "order_transition_rejected")
    assert bad == [{"tag": "t-done", "src": "complete", "dst": "open", "event": "order_ack",
                    "reason": "complete -> open is not a legal order move"}]
    assert journal.query("SELECT status FROM orders")[0][0] == "complete"


class Counting:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        fn = getattr(self.inner, name)

        def counted(*a, **k):
            self.calls.append(name)
            return fn(*a, **k)
        return counted


def test_one_step_makes_a_bounded_number_of_broker_calls(journal, paper, vclock, market):
    market.quotes[TOKEN] = (104.0, 105.0)  # nothing fills: every order keeps working
    held = {TOKEN: 0}
    counting = Counting(paper)
    ex = ex_for(journal, counting, vclock, held)
    for i in range(5):
        ex.submit(req(f"t-{i}"), "entry", f"t-{i}", "NIFTY", 0.05)
    counting.calls.clear()
    for _ in range(12):
        vclock.advance(5)
        counting.calls.clear()
        ex.step()
        assert len(counting.calls) <= 2 + 2 * 5  # two books, then a poll and one action per order


# --- through a whole day --------------------------------------------------------------------
class LostSells(ScriptedBroker):
    """Every SELL is stored by the broker and its reply lost; the book lags 30 s behind."""

    def place_order(self, r):
        self.fail_place = r.side == SELL
        return super().place_order(r)


def test_day_with_lost_sell_replies_and_a_lagging_book_never_sells_twice(tmp_path):
    def build(svc, day, secrets):
        build_desk(svc, day, secrets)
        svc.desk.broker = svc.desk.ex.broker = LostSells(svc.desk.broker)
    cfg = Config(paper=replace(Config().paper, book_lag_sec=30.0))
    j = tmp_path / "journal.sqlite"
    res = run_day(cfg, "sim", j, date(2026, 10, 14), 42, Secrets(), build_desk=build)
    assert res.state == "closed"
    from datetime import datetime
    from rustro.clock import IST, VirtualClock
    from rustro.market.synthetic import SyntheticMarket
    clock = VirtualClock(datetime(2026, 10, 14, 15, 35, tzinfo=IST))
    with PaperBroker(tmp_path / "journal.paper.sqlite", clock, SyntheticMarket(clock, 42),
                     lambda t: ContractSpec(65, 0.05, 1800), 1_000_000) as b:
        trades, book, held = b.trade_book(), b.order_book(), b.positions()
    assert_never_short(tmp_path / "journal.paper.sqlite")
    assert all(p.net_qty == 0 for p in held)                    # flat at the close
    sells = [o for o in book if o.side == SELL]
    assert len(sells) == 2                                      # one exit per position
    with Journal.open_readonly(j) as jj:
        assert {r[0] for r in jj.query("SELECT fill_id FROM fills")} == {f.fill_id for f in trades}
        assert jj.query("SELECT COUNT(*) FROM positions WHERE status = 'closed'")[0][0] == 2
        assert len(jj.events(kinds=("order_unknown",))) == 2
        assert not jj.events(kinds=("short_position",))


def test_a_slow_broker_cannot_stretch_one_step_past_its_budget(journal, paper, vclock, market,
                                                               monkeypatch):
    import time
    import rustro.execution as execution
    monkeypatch.setattr(execution, "STEP_BUDGET_SEC", 0.15)
    market.quotes[TOKEN] = (104.0, 105.0)
    polled = []

    class Slow:
        def __getattr__(self, name):
            return getattr(paper, name)

        def order_details(self, uid):
            time.sleep(0.1)  # every poll takes 0.1 s of wall time
            polled.append(uid)
            return paper.order_details(uid)
    ex = ex_for(journal, Slow(), vclock)
    for i in range(6):
        ex.submit(req(f"t-{i}"), "entry", f"t-{i}", "NIFTY", 0.05)
    vclock.advance(5)
    t0 = time.monotonic()
    ex.step()
    first = set(polled)
    assert time.monotonic() - t0 < 0.6 and 1 <= len(first) < 6   # stopped at the budget
    polled.clear()
    ex.step()
    assert polled and first.isdisjoint(polled)  # those left out go first next tick: none starves


def test_a_book_lagging_past_the_grace_is_not_absence_while_positions_show_the_fill(
        tmp_path, journal, vclock, market):
    lag = make_paper(tmp_path, vclock, market, "lag3.sqlite", book_lag_sec=90)
    sb = ScriptedBroker(lag, fail_place=True)
    ex = ex_for(journal, sb, vclock)
    ex.grace_sec = lambda: 60.0          # the configured grace, shorter than this broker's lag
    o = ex.submit(req("t-slow"), "entry", "t-slow", "NIFTY", 0.05)
    ticks(ex, vclock, 14)                # 70 s: both books still blind, but positions show 65 long
    assert o.state == om.UNKNOWN and not kinds(journal, "order_resent")
    ticks(ex, vclock, 5)
    assert o.state == om.COMPLETE and sb.place_calls == 1


def test_a_second_broker_order_under_our_tag_is_journaled_and_cancelled(tmp_path):
    from rustro.broker.paper import PaperBroker as _PB

    def sneak(svc):
        entry = next(iter(svc.desk.ex.orders.values()))
        q = svc.market.quote("NFO", entry.req.token)
        dup = OrderRequest(entry.tag, "NFO", entry.req.symbol, entry.req.token, BUY, 65,
                           round(q.bid * 0.8, 1))  # rests far below the market
        svc.desk.broker.place_order(dup)
    from fakes import on_event
    j = tmp_path / "journal.sqlite"
    res = run_day(Config(), "sim", j, date(2026, 10, 14), 42, Secrets(),
                  build_desk=on_event("position_opened", sneak))
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        dup = jj.events(kinds=("duplicate_order",))
        assert len(dup) == 1 and dup[0].payload["filled_qty"] == 0
    from datetime import datetime
    from rustro.clock import IST, VirtualClock
    from rustro.market.synthetic import SyntheticMarket
    clock = VirtualClock(datetime(2026, 10, 14, 15, 35, tzinfo=IST))
    with _PB(tmp_path / "journal.paper.sqlite", clock, SyntheticMarket(clock, 42),
             lambda t: ContractSpec(65, 0.05, 1800), 1_000_000) as b:
        sneaked = [o for o in b.order_book() if o.order_id == dup[0].payload["order_id"]]
        assert sneaked[0].status == "cancelled"
        assert all(p.net_qty == 0 for p in b.positions())


class LostAfter(ScriptedBroker):
    """modify_order / cancel_order are applied by the broker, then their reply is lost."""

    def modify_order(self, order_id, r):
        self.inner.modify_order(order_id, r)
        raise AmbiguousOrder("read timeout after modifyOrder")

    def cancel_order(self, order_id, variety="NORMAL"):
        self.inner.cancel_order(order_id, variety)
        raise AmbiguousOrder("connection reset after cancelOrder")


def test_lost_modify_and_cancel_replies_are_settled_by_the_next_poll(journal, paper, vclock, market):
    market.quotes[TOKEN] = (104.0, 105.0)  # nothing fills: the whole ladder runs, then a cancel
    ex = ex_for(journal, LostAfter(paper), vclock)
    o = ex.submit(req("t-lostmod"), "entry", "t-lostmod", "NIFTY", 0.05)
    ticks(ex, vclock, 12)
    assert [m["price"] for m in kinds(journal, "order_modify")] == [100.25, 100.5, 100.75, 101.0]
    assert paper.order_book()[0].price == 101.0 and o.req.price == 101.0  # the broker's price stands
    assert o.state == om.CANCELLED and len(kinds(journal, "order_cancel")) == 1
    assert len(paper.order_book()) == 1  # never a second order for a lost reply
