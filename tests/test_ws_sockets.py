"""The two sockets for real, over localhost: the bot's socket threads against the sandbox's
WebSocket server, both on one VirtualClock that the test moves (so pushes are exact)."""
import contextlib
import queue
import time

import pytest

pytest.importorskip("websockets")

from websockets.exceptions import InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from rustro.broker import ws_codec as wc  # noqa: E402
from rustro.broker.ws_client import (MARKET, ORDERS, SocketThread, angel_headers,  # noqa: E402
                                     decode_market, decode_orders)
from rustro.sandbox.ws import MARKET_PATH, ORDER_PATH, SocketServer  # noqa: E402

from test_sandbox import envs  # noqa: E402,F401 (fixture)

NIFTY = "99926000"


@pytest.fixture
def wsenv(envs):
    def make(faults=""):
        env = envs(faults, sub=f"s{len(faults)}")
        env.broker.login()
        server = SocketServer(env.sandbox.app, env.clock)
        server.start()
        env.ws = server
        made.append(server)
        return env
    made = []
    yield make
    for s in made:
        s.stop()


def headers(env):
    return angel_headers(env.broker.session)()


def events_until(q, clock, pred, timeout=5.0, step=1.1):
    """Move the clock and collect events until `pred(events)` or the timeout."""
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        clock.advance(step)
        try:
            while True:
                got.append(q.get(timeout=0.02))
        except queue.Empty:
            pass
        if pred(got):
            return got
    raise AssertionError(f"timed out; got {[(e.kind, e.payload) for e in got][:20]}")


def start_thread(env, name, path, decode, q):
    t = SocketThread(name, env.ws.url + path, lambda: headers(env), env.clock, q, decode,
                     ping_sec=0.2, reconnect_max_sec=0.2)
    t.start()
    return t


def test_handshake_refuses_bad_headers_with_401_and_the_reason(wsenv):
    env = wsenv()
    good = headers(env)
    for key, value, why in (("x-api-key", "nope", "Invalid API Key"),
                            ("x-client-code", "X1", "Invalid Client Code"),
                            ("Authorization", "Bearer junk", "Invalid Auth token"),
                            ("x-feed-token", "", "Invalid Feed Token")):
        with pytest.raises(InvalidStatus) as err:
            connect(env.ws.url + MARKET_PATH, additional_headers={**good, key: value},
                    open_timeout=2)
        assert err.value.response.status_code == 401
        assert err.value.response.headers["x-error-message"] == why


def test_market_socket_ticks_equal_the_rest_quote_byte_layout_and_all(wsenv):
    env = wsenv()
    opt = env.option()
    q = queue.SimpleQueue()
    t = start_thread(env, MARKET, MARKET_PATH, decode_market, q)
    try:
        t.want({wc.LTP: {1: {NIFTY}}, wc.SNAP_QUOTE: {2: {opt["token"]}}})
        got = events_until(q, env.clock, lambda ev: {e.payload.token for e in ev
                                                     if e.kind == "tick"} >= {NIFTY, opt["token"]})
        assert got[0].kind == "up"
        ticks = {e.payload.token: e.payload for e in got if e.kind == "tick"}
        idx, o = ticks[NIFTY], ticks[opt["token"]]
        assert idx.mode == wc.LTP and idx.exchange == "NSE"
        assert o.mode == wc.SNAP_QUOTE and len(o.best_five) == 10
        # what the REST quote says in the same market minute (prices step once a minute)
        rest = env.md.quote("NFO", opt["token"])
        assert o.exchange_ts.replace(second=0, microsecond=0) == rest.ts
        assert (o.ltp, o.bid, o.ask) == (rest.ltp, rest.bid, rest.ask)
        assert idx.ltp == env.md.ltp("NSE", NIFTY)
        t.want({wc.LTP: {1: {NIFTY}}})              # unsubscribed: its ticks stop
        events_until(q, env.clock, lambda ev: len(ev) >= 3)
        after = events_until(q, env.clock, lambda ev: len(ev) >= 3)
        assert {e.payload.token for e in after if e.kind == "tick"} == {NIFTY}
    finally:
        t.stop()


def test_ping_pong_bad_payload_and_the_subscription_limit(wsenv):
    env = wsenv()
    with connect(env.ws.url + MARKET_PATH, additional_headers=headers(env)) as ws:
        ws.send("ping")
        assert ws.recv(timeout=2) == "pong"
        ws.send('{"action": 1}')
        assert wc.decode_text(ws.recv(timeout=2)).code == "E1001"
        ws.send(wc.subscription_message("big", wc.LTP, {2: [str(i) for i in range(600)]}))
        ws.send(wc.subscription_message("big2", wc.LTP, {2: [str(i) for i in range(600, 1200)]}))
        err = wc.decode_text(ws.recv(timeout=2))
        assert (err.code, err.correlation_id) == ("E1002", "big2")


def test_at_most_three_connections_per_socket(wsenv):
    env = wsenv()
    with contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(connect(env.ws.url + ORDER_PATH, additional_headers=headers(env)))
        with pytest.raises(InvalidStatus) as err:
            connect(env.ws.url + ORDER_PATH, additional_headers=headers(env), open_timeout=2)
        assert err.value.response.headers["x-error-message"] == "Connection limit exceeded"


def test_order_socket_greets_with_ab00_then_pushes_each_transition(wsenv):
    env = wsenv()
    with connect(env.ws.url + ORDER_PATH, additional_headers=headers(env)) as ws:
        hello = wc.decode_order_update(ws.recv(timeout=2))
        assert hello.status_code == "AB00" and hello.order is None
    q = queue.SimpleQueue()
    t = start_thread(env, ORDERS, ORDER_PATH, decode_orders, q)
    try:
        events_until(q, env.clock, lambda ev: any(e.kind == "up" for e in ev))
        ack = env.broker.place_order(env.request("WS1", env.option()))
        got = events_until(q, env.clock, lambda ev: any(
            e.kind == "order" and e.payload.order.status == "complete" for e in ev))
        updates = [e.payload for e in got if e.kind == "order"]
        assert all(u.order.tag == "WS1" and u.order.order_id == ack.order_id for u in updates)
        assert updates[-1].status_code == "AB05" and updates[-1].order.filled_qty > 0
    finally:
        t.stop()


def test_garbage_frames_are_refused_and_dropped_sockets_come_back(wsenv):
    env = wsenv("ws_garbage:1.0,ws_drop:5")
    q = queue.SimpleQueue()
    t = start_thread(env, MARKET, MARKET_PATH, decode_market, q)
    try:
        t.want({wc.LTP: {1: {NIFTY}}})
        got = events_until(q, env.clock, lambda ev: sum(e.kind == "up" for e in ev) >= 2
                           and any(e.kind == "frame_error" for e in ev), timeout=10)
        assert not any(e.kind == "tick" for e in got)      # every frame was garbage
        assert any(e.kind == "down" for e in got)
        assert env.ws.counts["drops"] >= 1 and env.ws.counts["garbage"] >= 1
    finally:
        t.stop()
