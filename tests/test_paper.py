"""The paper broker: crossing, latency, partials, rejections, modify/cancel, P&L, durability."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rustro.broker.base import OrderRejected, OrderRequest, find_by_tag
from rustro.broker.paper import ContractSpec, PaperBroker
from rustro.broker.paper_rules import PENDING
from rustro.clock import IST, VirtualClock
from rustro.market.base import Quote

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 1, 6, 10, 0, tzinfo=IST)  # a Monday
TOKEN, LOT = "48223", 65
SPEC = ContractSpec(lot_size=LOT, tick_size=0.05, freeze_qty=1800)


class FakeMarket:
    """Quotes set by the test; a token with no quote raises like a data source would."""

    def __init__(self, clock):
        self.clock = clock
        self.quotes: dict[str, tuple[float, float, float]] = {}

    def set(self, token: str, bid: float, ask: float, ltp: float | None = None) -> None:
        self.quotes[token] = (ltp if ltp is not None else round((bid + ask) / 2, 2), bid, ask)

    def quote(self, exchange: str, token: str) -> Quote:
        ltp, bid, ask = self.quotes[token]
        return Quote(token=token, ltp=ltp, bid=bid, ask=ask, ts=self.clock.now())


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def market(clock):
    m = FakeMarket(clock)
    m.set(TOKEN, 99.95, 100.05, 100.0)
    return m


def contracts(token: str) -> ContractSpec:
    if token != TOKEN:
        raise KeyError(token)
    return SPEC


@pytest.fixture
def make(tmp_path, clock, market):
    def _make(**kw) -> PaperBroker:
        args = dict(capital=100_000.0)
        args.update(kw)
        return PaperBroker(tmp_path / "paper.sqlite", clock, market, contracts, **args)
    return _make


def req(tag="t1", side="BUY", qty=LOT, price=100.05, **kw) -> OrderRequest:
    return OrderRequest(tag=tag, exchange="NFO", symbol="NIFTY25JAN2524000CE", token=TOKEN,
                        side=side, qty=qty, price=price, **kw)


def status(broker, ack):
    return broker.order_details(ack.unique_order_id)


def buy_filled(broker, clock, tag="b", qty=LOT, price=100.05):
    ack = broker.place_order(req(tag, "BUY", qty, price))
    clock.advance(0.2)
    assert status(broker, ack).status == "complete"
    return ack


# crossing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("limit, fills", [(100.05, True), (100.10, True), (100.00, False)])
def test_buy_limit_crosses_only_at_or_above_the_ask_and_pays_the_ask(make, clock, limit, fills):
    b = make()
    ack = b.place_order(req(price=limit))
    clock.advance(0.2)
    o = status(b, ack)
    if fills:
        assert (o.status, o.filled_qty, o.avg_price) == ("complete", LOT, 100.05)
        assert [f.price for f in b.trade_book()] == [100.05]
    else:
        assert (o.status, o.filled_qty) == ("open", 0)
        assert b.trade_book() == []


@pytest.mark.parametrize("limit, fills", [(99.95, True), (99.90, True), (100.00, False)])
def test_sell_limit_crosses_only_at_or_below_the_bid_and_gets_the_bid(make, clock, limit, fills):
    b = make()
    buy_filled(b, clock)
    ack = b.place_order(req("s", "SELL", LOT, limit))
    clock.advance(0.2)
    o = status(b, ack)
    if fills:
        assert (o.status, o.avg_price) == ("complete", 99.95)
        assert b.trade_book()[-1].price == 99.95
    else:
        assert (o.status, o.filled_qty) == ("open", 0)


def test_market_orders_fill_at_the_touch(make, clock):
    b = make()
    ack = b.place_order(req("mb", price=0, order_type="MARKET"))
    clock.advance(0.2)
    assert status(b, ack).avg_price == 100.05
    ack = b.place_order(req("ms", "SELL", price=0, order_type="MARKET"))
    clock.advance(0.2)
    assert status(b, ack).avg_price == 99.95


def test_no_fill_without_a_touch_then_fill_when_it_appears(make, clock, market):
    b = make()
    market.set(TOKEN, 99.95, 0.0, 100.0)  # no ask
    ack = b.place_order(req(price=100.05))
    clock.advance(1)
    assert status(b, ack).status == "open"
    market.set(TOKEN, 99.95, 100.05, 100.0)
    assert status(b, ack).status == "complete"


# latency -------------------------------------------------------------------------------------
def test_nothing_happens_before_the_latency_has_elapsed(make, clock):
    b = make(latency_ms=500)
    ack = b.place_order(req())
    assert status(b, ack).status == PENDING == "put order req received"
    clock.advance(0.499)
    assert (status(b, ack).status, b.trade_book()) == (PENDING, [])
    clock.advance(0.001)
    o = status(b, ack)
    assert (o.status, o.filled_qty) == ("complete", LOT)
    assert b.trade_book()[0].time == T0 + timedelta(milliseconds=500)


# partial fills -------------------------------------------------------------------------------
def test_partial_fill_then_the_rest_after_latency_again(make, clock, market):
    b = make(partial_fill_prob=1.0, seed=7)
    ack = b.place_order(req(qty=4 * LOT, price=101.00))
    clock.advance(0.2)
    first = status(b, ack)
    assert first.status == "open"
    assert 0 < first.filled_qty < 4 * LOT and first.filled_qty % LOT == 0
    market.set(TOKEN, 100.00, 100.50, 100.2)
    clock.advance(0.1)  # latency not elapsed since the partial
    assert status(b, ack).filled_qty == first.filled_qty
    clock.advance(0.1)
    done = status(b, ack)
    fills = b.trade_book()
    assert done.status == "complete" and done.filled_qty == 4 * LOT
    assert [f.qty for f in fills] == [first.filled_qty, 4 * LOT - first.filled_qty]
    assert [f.price for f in fills] == [100.05, 100.50]
    assert len({f.fill_id for f in fills}) == 2
    vwap = (first.filled_qty * 100.05 + (4 * LOT - first.filled_qty) * 100.50) / (4 * LOT)
    assert done.avg_price == pytest.approx(vwap, abs=1e-6)


def test_partial_sizes_are_repeatable_from_the_seed(tmp_path, clock, market):
    sizes = []
    for i in range(2):
        b = PaperBroker(tmp_path / f"p{i}.sqlite", clock, market, contracts, 1e6,
                        partial_fill_prob=1.0, seed=3)
        acks = [b.place_order(req(f"t{k}", qty=10 * LOT, price=101.0)) for k in range(5)]
        clock.advance(0.2)
        sizes.append([status(b, a).filled_qty for a in acks])
    assert sizes[0] == sizes[1]
    assert len(set(sizes[0])) > 1  # really random, not a constant split


def test_single_lot_never_splits_and_zero_probability_never_splits(make, clock):
    b = make(partial_fill_prob=1.0)
    ack = b.place_order(req())
    clock.advance(0.2)
    assert status(b, ack).status == "complete"
    b2 = make(partial_fill_prob=0.0)
    ack = b2.place_order(req("big", qty=10 * LOT, price=101.0))
    clock.advance(0.2)
    assert status(b2, ack).filled_qty == 10 * LOT


# rejections ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, text", [
    (dict(qty=70), "Order quantity 70 is not a multiple of the lot size 65."),
    (dict(price=100.03), "Order price 100.03 is not a multiple of the tick size 0.05."),
    (dict(qty=28 * LOT), "Order quantity 1820 exceeds the exchange freeze quantity 1800."),
    (dict(price=150.05), "Order price is beyond the Limit Price Protection range defined by the "
                         "exchange: price 150.05, LTP 100.00, allowed +-50%."),
    (dict(price=49.95), "Order price is beyond the Limit Price Protection range defined by the "
                        "exchange: price 49.95, LTP 100.00, allowed +-50%."),
])
def test_exchange_rejections_arrive_after_latency_with_text(make, clock, kw, text):
    b = make(capital=1e7)
    ack = b.place_order(req(**kw))  # accepted for processing, like Angel's status:true
    assert status(b, ack).status == PENDING
    clock.advance(0.2)
    o = status(b, ack)
    assert (o.status, o.text, o.filled_qty) == ("rejected", text, 0)
    assert b.trade_book() == []


def test_band_edge_is_allowed(make, clock):
    b = make(capital=1e7)
    ack = b.place_order(req(price=150.0))
    clock.advance(0.2)
    assert status(b, ack).status == "complete"  # limit 150 >= ask: fills at the ask


def test_insufficient_funds_uses_angels_words(make, clock):
    b = make(capital=937.0)
    ack = b.place_order(req(qty=LOT, price=100.05))
    clock.advance(0.2)
    o = status(b, ack)
    assert o.status == "rejected"
    assert o.text == ("Your order has been rejected due to Insufficient Funds. Available funds - "
                      "Rs. 937.00 . You require Rs. 6503.25 funds to execute this order.")


def test_working_buys_block_cash_for_later_buys(make, clock):
    b = make(capital=10_000.0)
    first = b.place_order(req("a", price=100.00))  # below the ask: stays open, blocks 6500
    clock.advance(0.2)
    assert b.funds().utilised == 6500.0 and b.funds().available_cash == 3500.0
    second = b.place_order(req("b", price=100.00))
    clock.advance(0.2)
    assert status(b, first).status == "open"
    assert "Available funds - Rs. 3500.00 . You require Rs. 6500.00" in status(b, second).text


# shorts: accepted like Angel when the margin is there --------------------------------------
MARGIN = 65 * 2000.0  # one lot short at the default 2000 rupees a unit


def test_sell_beyond_holdings_is_accepted_when_margin_allows_and_goes_negative(make, clock):
    b = make(capital=200_000.0)
    ack = b.place_order(req("s", "SELL", LOT, 99.95))
    clock.advance(0.2)
    o = status(b, ack)
    assert (o.status, o.filled_qty, o.avg_price) == ("complete", LOT, 99.95)
    [pos] = b.positions()
    assert (pos.net_qty, pos.buy_qty, pos.sell_qty, pos.sell_avg) == (-LOT, 0, LOT, 99.95)
    f = b.funds()  # premium credited, margin blocked for the open short
    assert (f.net, f.utilised, f.available_cash) == (206_496.75, MARGIN, 76_496.75)


def test_short_without_the_margin_is_refused_with_angels_funds_text(make, clock):
    b = make()
    ack = b.place_order(req("s", "SELL", LOT, 99.95))
    clock.advance(0.2)
    o = status(b, ack)
    assert (o.status, o.text) == ("rejected", (
        "Your order has been rejected due to Insufficient Funds. Available funds - Rs. "
        "100000.00 . You require Rs. 130000.00 funds to execute this order."))
    assert (b.positions(), b.funds().utilised) == ([], 0.0)


def test_only_the_part_beyond_the_long_needs_margin(make, clock):
    short = make(capital=135_000.0)  # after the buy 128496.75 is left: short of 130000
    buy_filled(short, clock)
    ack = short.place_order(req("s", "SELL", 2 * LOT, 99.95))
    clock.advance(0.2)
    assert "Rs. 128496.75 . You require Rs. 130000.00 funds" in status(short, ack).text
    clock.set(T0 + timedelta(days=1))
    enough = make(capital=140_000.0)
    buy_filled(enough, clock, "b2")
    ack = enough.place_order(req("s2", "SELL", 2 * LOT, 99.95))
    clock.advance(0.2)
    assert status(enough, ack).status == "complete"
    assert [p.net_qty for p in enough.positions()] == [-LOT]


def test_working_sells_count_before_the_short_part_is_priced(make, clock):
    b = make(capital=300_000.0)
    buy_filled(b, clock)
    first = b.place_order(req("s1", "SELL", LOT, 100.50))  # above the bid: rests, covered
    clock.advance(0.2)
    assert b.funds().utilised == 0.0
    second = b.place_order(req("s2", "SELL", LOT, 100.50))  # rests too: all of it is short
    clock.advance(0.2)
    assert (status(b, first).status, status(b, second).status) == ("open", "open")
    f = b.funds()
    assert (f.utilised, f.available_cash) == (MARGIN, 300_000 - 6503.25 - MARGIN)
    b.cancel_order(second.order_id)
    assert b.funds().utilised == 0.0
    poor = make(capital=100_000.0, seed=1)  # same file, same day: the same long and s1
    third = poor.place_order(req("s3", "SELL", LOT, 100.50))
    clock.advance(0.2)
    assert "Rs. 93496.75 . You require Rs. 130000.00 funds" in status(poor, third).text


def test_a_short_can_be_squared_off_without_fresh_cash(make, clock):
    b = make(capital=MARGIN)  # exactly one lot's margin
    short = b.place_order(req("s", "SELL", LOT, 99.95))
    clock.advance(0.2)
    assert status(b, short).status == "complete"
    assert b.funds().available_cash == 6496.75  # the premium; a 100.05 buy costs 6503.25
    rest = b.place_order(req("c1", "BUY", LOT, 100.00))  # covering: needs no cash, blocks none
    clock.advance(0.2)
    assert status(b, rest).status == "open" and b.funds().utilised == MARGIN
    b.cancel_order(rest.order_id)
    cover = b.place_order(req("c2", "BUY", LOT, 100.05))
    clock.advance(0.2)
    assert status(b, cover).status == "complete"
    assert b.positions()[0].net_qty == 0
    f = b.funds()
    assert (f.net, f.utilised, f.available_cash) == (MARGIN - 6.50, 0.0, MARGIN - 6.50)
    more = b.place_order(req("b", "BUY", 2 * LOT, 100.05))  # a new long needs cash again
    clock.advance(0.2)
    assert status(b, more).status == "complete"
    ack = b.place_order(req("b2", "BUY", 20 * LOT, 100.05))
    clock.advance(0.2)
    assert "Insufficient Funds" in status(b, ack).text


def test_zero_margin_per_unit_needs_no_cash(make, clock):
    b = make(capital=0.0, short_margin_per_unit=0.0)
    ack = b.place_order(req("s", "SELL", 2 * LOT, 99.95))
    clock.advance(0.2)
    assert status(b, ack).status == "complete"
    assert (b.positions()[0].net_qty, b.funds().utilised) == (-2 * LOT, 0.0)


def test_allow_short_false_refuses_with_the_old_text(make, clock):
    b = make(capital=1e7, allow_short=False)
    ack = b.place_order(req("s", "SELL", LOT, 99.95))
    clock.advance(0.2)
    o = status(b, ack)
    assert (o.status, o.text) == ("rejected", "Short selling is not allowed: sell quantity 65 "
                                              "exceeds the sellable net position 0.")
    buy_filled(b, clock)
    first = b.place_order(req("s1", "SELL", LOT, 100.50))  # above the bid: rests
    clock.advance(0.2)
    second = b.place_order(req("s2", "SELL", LOT, 100.50))
    clock.advance(0.2)
    assert status(b, first).status == "open"
    assert status(b, second).status == "rejected"
    assert "sellable net position 0" in status(b, second).text


def test_short_round_trip_pnl_and_funds_exact_to_the_paisa(make, clock, market):
    b = make(capital=300_000.0)
    market.set(TOKEN, 123.40, 123.45, 123.45)
    s1 = b.place_order(req("s1", "SELL", LOT, 123.40))
    clock.advance(0.2)
    assert status(b, s1).status == "complete"
    market.set(TOKEN, 123.35, 123.40, 123.40)
    s2 = b.place_order(req("s2", "SELL", LOT, 123.35))
    clock.advance(0.2)
    assert [status(b, a).avg_price for a in (s1, s2)] == [123.40, 123.35]
    market.set(TOKEN, 122.10, 122.15, 122.13)
    [pos] = b.positions()
    assert (pos.net_qty, pos.sell_avg) == (-2 * LOT, 123.375)
    assert pos.unrealised == 161.85  # 130 x (123.375 - 122.13)
    assert b.funds().utilised == 2 * MARGIN
    buy_filled(b, clock, "c1", LOT, 122.15)
    [pos] = b.positions()
    assert (pos.net_qty, pos.realised, pos.unrealised) == (-LOT, 79.63, 80.93)  # .625, .925
    assert b.funds().utilised == MARGIN
    market.set(TOKEN, 122.15, 122.20, 122.20)
    buy_filled(b, clock, "c2", LOT, 122.20)
    [pos] = b.positions()
    assert (pos.net_qty, pos.buy_avg) == (0, 122.175)
    assert (pos.realised, pos.unrealised) == (156.00, 0.0)  # 130 x 123.375 - 65 x (122.15 + 122.20)
    f = b.funds()
    assert (f.available_cash, f.net, f.utilised) == (300_156.0, 300_156.0, 0.0)


def test_synchronous_refusals_store_nothing(make):
    b = make()
    with pytest.raises(OrderRejected) as e:
        b.place_order(req(tag="x" * 21))
    assert e.value.code == "AB4008"
    with pytest.raises(OrderRejected) as e:
        b.place_order(OrderRequest("t", "NFO", "X", "999", "BUY", LOT, 1.0))
    assert e.value.code == "AB1009" and "999" in str(e.value)
    with pytest.raises(OrderRejected, match="transactiontype 'HOLD'"):
        b.place_order(req(side="HOLD"))
    with pytest.raises(OrderRejected, match="quantity 0"):
        b.place_order(req(qty=0))
    assert b.order_book() == []
    b.place_order(req(tag="x" * 20))  # 20 is allowed


def test_duplicate_tag_is_not_blocked(make, clock):
    b = make()
    a1, a2 = b.place_order(req("same")), b.place_order(req("same"))
    assert a1.order_id != a2.order_id
    assert [o.tag for o in b.order_book()] == ["same", "same"]


# modify and cancel ---------------------------------------------------------------------------
def test_modify_up_the_ladder_then_fill(make, clock, market):
    market.set(TOKEN, 100.00, 101.00, 100.50)
    b = make()
    ack = b.place_order(req(price=100.50))
    clock.advance(0.2)
    assert status(b, ack).status == "open"
    for price in (100.75, 100.95):
        b.modify_order(ack.order_id, req(price=price))
        clock.advance(5)
        o = status(b, ack)
        assert (o.status, o.price, o.filled_qty) == ("open", price, 0)
    b.modify_order(ack.order_id, req(price=101.25))
    clock.advance(0.1)
    assert status(b, ack).filled_qty == 0  # the modification travels: latency again
    clock.advance(0.1)
    o = status(b, ack)
    assert (o.status, o.price, o.avg_price) == ("complete", 101.25, 101.00)


def test_modify_refusals_name_the_order_and_leave_it_unchanged(make, clock):
    b = make()
    pending = b.place_order(req("p", price=100.00))
    with pytest.raises(OrderRejected, match=f"order {pending.order_id} is put order req received"):
        b.modify_order(pending.order_id, req(price=100.05))
    clock.advance(0.2)
    with pytest.raises(OrderRejected, match="tick size"):
        b.modify_order(pending.order_id, req(price=100.07))
    assert status(b, pending).price == 100.00
    done = buy_filled(b, clock, "d")
    with pytest.raises(OrderRejected, match=f"order {done.order_id} is complete"):
        b.modify_order(done.order_id, req(price=100.10))
    with pytest.raises(OrderRejected) as e:
        b.modify_order("250106999999999", req())
    assert e.value.code == "AB1013"


def test_cancel_open_order_and_refuse_terminal(make, clock, market):
    b = make()
    ack = b.place_order(req(price=100.00))
    clock.advance(0.2)
    b.cancel_order(ack.order_id)
    assert status(b, ack).status == "cancelled"
    market.set(TOKEN, 99.00, 99.50)  # now it would cross, but it is gone
    clock.advance(1)
    assert (status(b, ack).status, b.trade_book()) == ("cancelled", [])
    with pytest.raises(OrderRejected, match=f"order {ack.order_id} is cancelled"):
        b.cancel_order(ack.order_id)


def test_cancel_after_partial_keeps_the_filled_part(make, clock, market):
    b = make(partial_fill_prob=1.0, seed=1)
    ack = b.place_order(req(qty=3 * LOT, price=100.05))
    clock.advance(0.2)
    part = status(b, ack).filled_qty
    b.cancel_order(ack.order_id)
    o = status(b, ack)
    assert (o.status, o.filled_qty, o.unfilled_qty) == ("cancelled", part, 3 * LOT - part)
    assert b.positions()[0].net_qty == part


def test_find_by_tag(make, clock):
    b = make()
    b.place_order(req("alpha"))
    ack = b.place_order(req("beta"))
    found = find_by_tag(b, "beta")
    assert found is not None and found.order_id == ack.order_id
    assert find_by_tag(b, "gamma") is None


def test_order_details_unknown_is_angel_not_found(make):
    b = make()
    with pytest.raises(OrderRejected) as e:
        b.order_details("05ebf91b-bea4-4a1d-b0f2-4259606570e3")
    assert e.value.code == "AB1007"


# positions and funds -------------------------------------------------------------------------
def test_round_trip_positions_and_funds_exact_to_the_paisa(make, clock, market):
    b = make(capital=50_000.0)
    market.set(TOKEN, 123.40, 123.45, 123.45)
    buy_filled(b, clock, "b1", LOT, 123.45)
    market.set(TOKEN, 123.45, 123.50, 123.50)
    buy_filled(b, clock, "b2", LOT, 123.50)
    market.set(TOKEN, 124.30, 124.40, 124.35)
    [pos] = b.positions()
    assert (pos.net_qty, pos.buy_qty, pos.ltp) == (2 * LOT, 2 * LOT, 124.35)
    assert pos.buy_avg == pytest.approx(123.475)
    assert pos.unrealised == 113.75  # 130 x (124.35 - 123.475)
    assert b.funds().available_cash == 33_948.25  # 50000 - 65 x 123.45 - 65 x 123.50
    half = b.place_order(req("s1", "SELL", LOT, 124.30))
    clock.advance(0.2)
    assert status(b, half).avg_price == 124.30
    [pos] = b.positions()
    assert (pos.net_qty, pos.realised, pos.unrealised) == (LOT, 53.63, 56.88)  # 53.625, 56.875
    ack = b.place_order(req("s2", "SELL", LOT, 124.30))
    clock.advance(0.2)
    [pos] = b.positions()
    assert (pos.net_qty, pos.sell_qty, pos.sell_avg) == (0, 2 * LOT, 124.30)
    assert pos.realised == 107.25  # 130 x 124.30 - 65 x 123.45 - 65 x 123.50
    assert pos.unrealised == 0.0
    f = b.funds()
    assert (f.available_cash, f.net, f.utilised) == (50_107.25, 50_107.25, 0.0)


def test_orders_fills_and_cash_are_per_trading_day(make, clock):
    b = make(capital=20_000.0)
    buy_filled(b, clock)
    stale = b.place_order(req("rest", price=100.00))
    clock.advance(0.2)
    clock.set(datetime(2025, 1, 7, 9, 20, tzinfo=IST))
    assert (b.order_book(), b.trade_book(), b.positions()) == ([], [], [])
    assert b.funds().available_cash == 20_000.0
    o = status(b, stale)
    assert o.status == "cancelled" and "DAY validity" in o.text
    ack = b.place_order(req("next"))
    assert ack.order_id.startswith("250107")


# ids -----------------------------------------------------------------------------------------
def test_order_ids_are_angel_shaped_unique_increasing_and_repeatable(tmp_path, clock, market):
    ids = []
    for i in range(2):
        b = PaperBroker(tmp_path / f"{i}.sqlite", clock, market, contracts, 1e6, seed=11)
        ids.append([b.place_order(req(f"t{k}")) for k in range(5)])
        clock.advance(0.3)
    order_ids = [a.order_id for a in ids[0]]
    assert all(re.fullmatch(r"250106\d{9}", x) for x in order_ids)
    assert order_ids == sorted(order_ids) and len(set(order_ids)) == 5
    uids = [a.unique_order_id for a in ids[0]]
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u)
               for u in uids)
    assert ids[0] == ids[1]  # same seed, same sequence -> same ids
    other = PaperBroker(tmp_path / "o.sqlite", clock, market, contracts, 1e6, seed=12)
    assert other.place_order(req()).unique_order_id != uids[0]


def test_on_event_sees_the_walk(make, clock):
    seen = []
    b = make(on_event=lambda kind, payload: seen.append((kind, payload["order_id"])))
    ack = b.place_order(req())
    clock.advance(0.2)
    b.order_book()
    assert seen == [("order_placed", ack.order_id), ("order_open", ack.order_id),
                    ("order_fill", ack.order_id)]


# lagging books -------------------------------------------------------------------------------
def test_lagging_book_hides_an_order_for_exactly_the_lag_while_positions_see_the_fill(make,
                                                                                     clock):
    b = make(book_lag_sec=3.0)
    assert (b.book_lag_sec, make().book_lag_sec) == (3.0, 0.0)  # stated: the bot waits this long
    ack = b.place_order(req())
    clock.advance(0.2)  # the exchange has filled it
    assert [(p.net_qty, p.buy_avg) for p in b.positions()] == [(LOT, 100.05)]
    assert b.funds().available_cash == 100_000 - 6503.25
    for at in (0.2, 2.999):
        clock.set(T0 + timedelta(seconds=at))
        assert (b.order_book(), b.trade_book()) == ([], [])
        with pytest.raises(OrderRejected) as e:
            b.order_details(ack.unique_order_id)
        assert (e.value.code, e.value.text) == ("AB1007", f"Order not found: {ack.unique_order_id}")
    clock.set(T0 + timedelta(seconds=3))
    assert [(o.order_id, o.status) for o in b.order_book()] == [(ack.order_id, "complete")]
    assert [(f.order_id, f.qty, f.price) for f in b.trade_book()] == [(ack.order_id, LOT, 100.05)]
    assert status(b, ack).filled_qty == LOT


def test_lag_is_per_order_and_hidden_orders_can_be_modified_and_cancelled(make, clock):
    b = make(book_lag_sec=5.0)
    rest = b.place_order(req("r", price=100.00))  # below the ask: rests
    clock.advance(0.2)
    b.modify_order(rest.order_id, req("r", price=99.95))
    clock.advance(0.2)
    b.cancel_order(rest.order_id)
    clock.set(T0 + timedelta(seconds=4))
    later = b.place_order(req("l"))
    clock.set(T0 + timedelta(seconds=5))
    assert [(o.tag, o.status, o.price) for o in b.order_book()] == [("r", "cancelled", 99.95)]
    assert b.trade_book() == [] and b.positions()[0].net_qty == LOT
    clock.set(T0 + timedelta(seconds=9))
    assert [o.tag for o in b.order_book()] == ["r", "l"]
    assert [f.order_id for f in b.trade_book()] == [later.order_id]


@pytest.mark.parametrize("kw", [dict(short_margin_per_unit=-1.0), dict(book_lag_sec=-0.5),
                                dict(book_lag_sec=float("nan"))])
def test_bad_new_knobs_are_refused(make, kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        make(**kw)


# durability ----------------------------------------------------------------------------------
def test_reopen_sees_the_same_state_and_continues_the_sequence(tmp_path, clock, market):
    path = tmp_path / "paper.sqlite"
    b = PaperBroker(path, clock, market, contracts, 100_000.0)
    buy_filled(b, clock, "a")
    rest = b.place_order(req("r", price=100.00))
    clock.advance(0.2)
    before = (b.order_book(), b.trade_book(), b.positions(), b.funds())
    b.close()
    again = PaperBroker(path, clock, market, contracts, 100_000.0)
    assert (again.order_book(), again.trade_book(), again.positions(), again.funds()) == before
    nxt = again.place_order(req("n"))
    assert nxt.order_id > rest.order_id


CHILD = textwrap.dedent("""
    import sys, time
    from datetime import datetime
    from rustro.broker.base import OrderRequest
    from rustro.broker.paper import ContractSpec, PaperBroker
    from rustro.clock import IST, VirtualClock
    from rustro.market.base import Quote

    class Market:
        def quote(self, exchange, token):
            return Quote(token, 100.0, 99.95, 100.05, None)

    clock = VirtualClock(datetime(2025, 1, 6, 10, 0, tzinfo=IST))
    b = PaperBroker(sys.argv[1], clock, Market(), lambda t: ContractSpec(65, 0.05, 1800), 100000.0)
    acks = []
    for i, price in enumerate((100.05, 100.10, 99.00)):
        acks.append(b.place_order(OrderRequest(f"c{i}", "NFO", "SYM", "48223", "BUY", 65, price)))
    clock.advance(0.2)
    b.order_book()  # matches: two fill, one rests
    print(" ".join(a.order_id for a in acks), flush=True)
    time.sleep(60)
""")


def test_killed_subprocess_leaves_a_consistent_file(tmp_path, clock, market):
    path = tmp_path / "paper.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    child_ids = line.split()
    clock.set(T0 + timedelta(seconds=1))
    b = PaperBroker(path, clock, market, contracts, 100_000.0)
    book = {o.order_id: o for o in b.order_book()}
    assert sorted(book) == sorted(child_ids)
    assert [book[i].status for i in child_ids] == ["complete", "complete", "open"]
    assert [f.order_id for f in b.trade_book()] == child_ids[:2]
    assert b.positions()[0].net_qty == 2 * LOT
    assert b.funds().available_cash == pytest.approx(100_000 - 2 * 65 * 100.05 - 65 * 99.00)
    new = b.place_order(req("after"))
    assert new.order_id > max(child_ids)


def test_remembered_books_follow_every_commit_of_either_connection(make, clock):
    """The broker remembers its books per store state: a fill it makes, or an order another
    connection (a second process sharing paper.db) commits, is in the very next answer."""
    a, b = make(), make()
    assert a.order_book() == [] and a.positions() == [] and a.trade_book() == []
    ack = b.place_order(req("x1"))
    assert [o.status for o in a.order_book()] == [PENDING]
    clock.advance(0.2)
    assert [p.net_qty for p in a.positions()] == [LOT]           # a matched it, and sees the fill
    assert [f.order_id for f in b.trade_book()] == [ack.order_id]
    assert [o.status for o in b.order_book()] == ["complete"]
    book = a.order_book()
    book.clear()
    assert len(a.order_book()) == 1                              # a fresh list every time
    a.close(), b.close()
