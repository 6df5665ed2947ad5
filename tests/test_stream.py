"""The sockets' data on the trading thread, without sockets: events are put on the hub's queue as
the socket threads would put them. Order updates go through the same machine as a poll (and
duplicates or late ones change nothing), fresh ticks answer reads while stale ones fall back to
REST, a silent socket is journaled once and redialled, subscriptions follow the positions, and
the driver wakes for socket data on a wall or accelerated clock only."""
import re
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace

import pytest

from rustro import order_machine as om
from rustro.broker import ws_codec as wc
from rustro.broker.ws_client import MARKET, ORDERS, SocketEvent
from rustro.clock import IST, AcceleratedClock, VirtualClock
from rustro.config import Config, WsConfig
from rustro.order_inbox import OrderInbox, is_stale
from rustro.scheduler import DayDriver, day_plan
from rustro.stream import StreamHub, StreamingMarketData

from conftest import DAY
from test_execution import ex_for, market, paper, req  # noqa: F401 (market, paper: fixtures)

OPTION = "50001"


class CountingBroker:
    """The paper broker, counting every call the execution makes to it."""

    def __init__(self, inner):
        self.inner, self.calls = inner, {}

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*a, **kw):
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*a, **kw)
        return counted


def at_day(h, m, s=0):
    return datetime(DAY.year, DAY.month, DAY.day, h, m, s, tzinfo=IST)


# --- order updates ------------------------------------------------------------------------------
def test_a_pushed_update_moves_the_order_like_a_poll_and_spares_the_polls(journal, vclock, paper):
    broker = CountingBroker(paper)
    ex = ex_for(journal, broker, vclock)
    ex.push_live, ex.poll_every_sec = (lambda: True), 60.0
    o = ex.submit(req("T1", price=100.0), "entry", "T1", "NIFTY", 0.05)
    assert o.state == om.OPEN
    for _ in range(5):                    # the socket is up and said nothing: no REST poll
        vclock.advance(5)
        ex.step()
    assert broker.calls.get("order_details", 0) == 0
    assert not o.terminal                 # filled at the broker, unseen so far (ladder went on)
    seen = paper.order_details(o.unique_id)
    assert seen.status == "complete"
    assert ex.push(seen)
    out = ex.step()
    assert o.state == om.COMPLETE and o.filled_qty == 65
    assert out[0].new_fill_qty == 65 and out[0].became_terminal
    fills = journal.events(DAY, kinds=("fill",))
    assert len(fills) == 1 and fills[0].payload["fill_id"]
    # the same update again, and an older one, change nothing and journal nothing
    n = len(journal.events(DAY))
    assert not ex.push(seen)
    assert not ex.push(replace(seen, status="open", filled_qty=0))
    ex.step()
    assert len(journal.events(DAY)) == n and o.state == om.COMPLETE


def test_the_safety_poll_still_runs_every_poll_every_sec(journal, vclock, paper):
    broker = CountingBroker(paper)
    ex = ex_for(journal, broker, vclock)
    ex.push_live, ex.poll_every_sec = (lambda: True), 30.0
    o = ex.submit(req("T2", price=50.0), "entry", "T2", "NIFTY", 0.05)   # far below: rests
    for _ in range(12):
        vclock.advance(5)
        ex.step()
    assert broker.calls.get("order_details", 0) == 2     # at 30 s and 60 s, not every 5 s
    ex.push_live = lambda: False                          # socket down: poll every step
    for _ in range(3):
        vclock.advance(5)
        ex.step()
    assert broker.calls["order_details"] == 5
    assert o.polled_at == vclock.now()


def test_out_of_order_updates_keep_the_newest():
    base = SimpleNamespace(tag="A", filled_qty=0, terminal=False, updated=at_day(10, 0, 5))
    later = SimpleNamespace(tag="A", filled_qty=65, terminal=False, updated=at_day(10, 0, 9))
    done = SimpleNamespace(tag="A", filled_qty=130, terminal=True, updated=at_day(10, 0, 9))
    inbox = OrderInbox()
    assert inbox.offer(later) and not inbox.offer(base)   # fewer fills: older
    assert inbox.offer(done) and not inbox.offer(later)   # final stays final
    assert inbox.peek("A") is done and inbox.dropped == 2
    assert is_stale(base, None, observed_at=at_day(10, 0, 6))
    assert is_stale(base, None, observed_fills=65)
    inbox.absorbed("A", 65)
    assert inbox.peek("A") is done                         # fills still to journal: kept
    inbox.absorbed("A", 130)
    assert len(inbox) == 0


# --- market data ----------------------------------------------------------------------------------
class RestStub:
    def __init__(self):
        self.calls = []

    def ltp(self, exchange, token):
        self.calls.append(("ltp", token))
        return 111.0

    def vix(self):
        self.calls.append(("vix", ""))
        return 14.0

    def quote(self, exchange, token):
        self.calls.append(("quote", token))
        return SimpleNamespace(ltp=1.0)

    def candles(self, *a):
        return ["rest candles"]


class FakeSocket:
    def __init__(self):
        self.dropped, self.wanted = [], None

    def drop(self, reason):
        self.dropped.append(reason)

    def want(self, wanted):
        self.wanted = wanted

    def has_wanted(self):
        return self.wanted is not None


def hub_for(journal, clock, **ws):
    cfg = replace(Config(), ws=WsConfig(enabled=True, **ws))
    hub = StreamHub(cfg, clock, journal, DAY)
    hub.threads[MARKET] = FakeSocket()
    hub.up[MARKET] = False
    hub.started = True
    return hub


def put(hub, kind, payload, socket=MARKET):
    hub.queue.put(SocketEvent(kind, socket, payload, hub.clock.now(), 0.0))


def tick(clock, token=OPTION, ltp=101.5, ex=2, mode=wc.SNAP_QUOTE):
    levels = (wc.Level("bid", 650, ltp - 0.5, 2), wc.Level("ask", 650, ltp + 0.5, 3))
    return wc.Tick(mode, ex, token, 1, clock.now(), ltp,
                   best_five=levels if mode == wc.SNAP_QUOTE else ())


def test_fresh_ticks_answer_and_stale_ones_fall_back_to_rest(journal):
    clock = VirtualClock(at_day(10, 0))
    hub = hub_for(journal, clock, max_tick_age_sec=5.0)
    rest = RestStub()
    md = StreamingMarketData(rest, hub)
    put(hub, "up", {})
    put(hub, "tick", tick(clock))
    put(hub, "tick", tick(clock, "99926017", 13.45, ex=1, mode=wc.LTP))
    q = md.quote("NFO", OPTION)
    assert (q.ltp, q.bid, q.ask) == (101.5, 101.0, 102.0) and md.vix() == 13.45
    assert rest.calls == [] and md.served == {"socket": 2, "rest": 0}
    clock.advance(6)                                     # older than max_tick_age_sec
    assert md.quote("NFO", OPTION).ltp == 1.0 and md.vix() == 14.0
    assert rest.calls == [("quote", OPTION), ("vix", "")]
    assert md.candles() == ["rest candles"]              # everything else is REST's own
    put(hub, "tick", tick(clock, mode=wc.LTP))           # an LTP tick has no bid/ask: REST quotes
    assert md.quote("NFO", OPTION).ltp == 1.0 and md.ltp("NFO", OPTION) == 101.5


def test_silence_in_market_hours_is_one_ws_down_then_ws_up_when_ticks_return(journal):
    clock = VirtualClock(at_day(10, 0))
    hub = hub_for(journal, clock, silence_sec=20.0)
    put(hub, "up", {})
    put(hub, "tick", tick(clock))
    hub.drain()
    assert journal.events(DAY, kinds=("ws_down",)) == []
    clock.advance(19)
    hub.drain()
    assert hub.threads[MARKET].dropped == []
    clock.advance(2)
    hub.drain()
    clock.advance(30)
    hub.drain()
    downs = journal.events(DAY, kinds=("ws_down",))
    assert len(downs) == 1 and downs[0].payload["reason"] == "no tick for 21 s"
    assert downs[0].payload["fallback"] == "REST polling"
    assert hub.threads[MARKET].dropped == ["silent for 21 s"]   # redialled
    put(hub, "down", {"reason": "silent for 21 s", "requested": True})  # our redial: no row
    put(hub, "down", {"reason": "ConnectionRefused"})          # same outage: no new row
    put(hub, "up", {})
    put(hub, "tick", tick(clock))
    hub.drain()
    assert len(journal.events(DAY, kinds=("ws_down",))) == 1
    ups = journal.events(DAY, kinds=("ws_up",))
    assert len(ups) == 1 and ups[0].payload["down_sec"] == 30.0


def test_a_socket_that_never_connects_is_journaled_once_and_a_late_redial_after_healing_is_not(
        journal):
    clock = VirtualClock(at_day(10, 0))
    hub = hub_for(journal, clock)
    hub.down_since[MARKET] = clock.now()
    for _ in range(3):
        put(hub, "down", {"reason": "InvalidStatus: 401"})
    hub.drain()
    downs = [e.payload for e in journal.events(DAY, kinds=("ws_down",))]
    assert downs == [{"socket": MARKET, "reason": "InvalidStatus: 401",
                      "fallback": "REST polling", "was_connected": False}]
    put(hub, "up", {})
    put(hub, "tick", tick(clock))
    put(hub, "down", {"reason": "silent for 60 s", "requested": True})   # asked before it healed
    hub.drain()
    assert len(journal.events(DAY, kinds=("ws_down",))) == 1
    assert len(journal.events(DAY, kinds=("ws_up",))) == 1 and hub.up[MARKET] is False


def test_no_silence_outside_market_hours_and_garbage_journaled_once_a_minute(journal):
    clock = VirtualClock(at_day(8, 0))
    hub = hub_for(journal, clock, silence_sec=20.0)
    put(hub, "up", {})
    clock.advance(600)
    hub.drain()
    assert journal.events(DAY, kinds=("ws_down",)) == []
    for _ in range(5):
        put(hub, "frame_error", {"error": "a LTP packet is 51 bytes, got 44", "bytes": 44})
    hub.drain()
    clock.advance(61)
    put(hub, "frame_error", {"error": "x", "bytes": 3})
    hub.drain()
    rows = [e.payload for e in journal.events(DAY, kinds=("ws_frame_error",))]
    assert [r["refused"] for r in rows] == [1, 5] and hub.counts["frame_errors"] == 6


def test_subscriptions_follow_the_positions(journal):
    clock = VirtualClock(at_day(10, 0))
    hub = hub_for(journal, clock)
    held = {}
    desk = SimpleNamespace(
        feed=SimpleNamespace(underlyings={"NIFTY": SimpleNamespace(spot=SimpleNamespace(
            token="99926000"))}),
        book=SimpleNamespace(holdings=held), ex=SimpleNamespace(push=lambda o: None),
        pre_open_done=True)
    hub.desk = desk
    hub.drain()
    sock = hub.threads[MARKET]
    assert sock.wanted == {wc.LTP: {1: {"99926000", "99926017"}}, wc.SNAP_QUOTE: {}}
    held["P1"] = SimpleNamespace(pos=SimpleNamespace(exchange="NFO", token=OPTION), open_qty=65)
    hub.drain()
    assert sock.wanted[wc.SNAP_QUOTE] == {2: {OPTION}} and hub.urgent_tokens == {OPTION}
    held.clear()
    hub.drain()
    assert sock.wanted[wc.SNAP_QUOTE] == {} and hub.urgent_tokens == frozenset()


def test_only_a_changed_tick_of_a_held_option_or_an_order_update_is_urgent(journal):
    clock = VirtualClock(at_day(10, 0))
    hub = hub_for(journal, clock)
    hub.urgent_tokens = frozenset({OPTION})

    def ev(kind, payload):
        return SocketEvent(kind, MARKET, payload, clock.now(), 0.0)
    assert hub._urgent(ev("tick", tick(clock)))
    assert not hub._urgent(ev("tick", tick(clock)))               # same prices: no wake
    assert hub._urgent(ev("tick", tick(clock, ltp=99.0)))
    assert not hub._urgent(ev("tick", tick(clock, token="99926000", ex=1, mode=wc.LTP)))
    assert hub._urgent(SocketEvent("order", ORDERS, None, clock.now(), 0.0))


# --- the driver -----------------------------------------------------------------------------------
class WakeOnce:
    def __init__(self):
        self.waits = 0

    def wait(self, wall_sec):
        self.waits += 1
        return self.waits == 1


@pytest.mark.parametrize("virtual", [False, True])
def test_driver_runs_the_stream_job_when_woken_but_never_on_a_virtual_clock(virtual):
    start = at_day(15, 29, 55)
    clock = VirtualClock(start) if virtual else AcceleratedClock(start, 50.0)
    plan = [e for e in day_plan(DAY, Config().session) if e.job == "market_close"]
    ran = []
    stream = WakeOnce()
    d = DayDriver(clock, plan, ran.append, lambda: False, phases_run={"pre_open"}, stream=stream)
    d.run()
    if virtual:
        assert ran == ["market_close"] and stream.waits == 0 and d.wakes == 0
    else:
        assert ran == ["stream", "market_close"] and d.wakes == 1


def test_subscriptions_beyond_angels_limit_go_out_in_messages_of_1000():
    from rustro.broker.ws_client import _chunks
    got = _chunks({1: ["99926000"], 2: [str(i) for i in range(1500)]})
    assert [sum(len(v) for v in c.values()) for c in got] == [1000, 501]
    assert got[0][1] == ["99926000"] and got[1][2][-1] == "1499"


@pytest.mark.parametrize("raw, words", [
    ({"ws": {"market_url": "http://x"}}, "ws.market_url: must start with ws:// or wss://"),
    ({"ws": {"order_url": "tns.angelone.in"}}, "ws.order_url: must start with ws://"),
    ({"ws": {"max_tick_age_sec": 200.0}}, "ws.max_tick_age_sec: must be at most "
                                          "data.stale_exit_sec (180)"),
    ({"ws": {"silence_sec": 0}}, "ws.silence_sec: must be > 0"),
    ({"ws": {"enabld": True}}, "ws.enabld: unknown key; did you mean 'enabled'?"),
])
def test_ws_config_errors_name_the_key(raw, words):
    from rustro.config import ConfigError, parse_config
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_config(raw)
