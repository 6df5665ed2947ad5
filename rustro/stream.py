"""The sockets' data on the trading thread: drain, cache, journal, react. REST stays the fallback.

The socket threads (`broker/ws_client.py`) only decode and enqueue. Everything that decides or
journals happens here, on the one trading thread, when it drains the queue: at every market-data
read, before every execution step, and when the driver is woken between jobs by an urgent event
(a changed tick of a held option, an order update). So every decision stays single-threaded and
journaled in order, exactly as with polling.

* Ticks feed a quote cache; `StreamingMarketData` answers ltp / quote / vix from it while the tick
  is at most `[ws] max_tick_age_sec` old, else asks REST (the wrapped MarketData) at once.
* Order updates go to `Execution.push`, the same state machine a polled row feeds; duplicates and
  older updates are dropped there.
* A socket that drops, or sends no tick for `[ws] silence_sec` in market hours, is journaled as
  `ws_down` (REST serves meanwhile: stale ticks are never served) and reconnected with backoff;
  `ws_up` when data flows again. Garbage frames are counted and journaled once per streak.
* Subscriptions follow the positions: the index and VIX in LTP mode, every held option in
  SNAP_QUOTE mode (its best bid is the exit ladder's last resort).
"""
from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime

from . import exits
from . import machine as m
from .broker import ws_codec as wc
from .broker.ws_client import MARKET, ORDERS, SocketEvent, SocketThread
from .calendar import at
from .market.base import Quote, check_price

log = logging.getLogger(__name__)
VIX_TOKEN = "99926017"
FRAME_ERROR_EVERY_SEC = 60.0


class StreamHub:
    """Owns the queue, the socket threads and what they told us; lives on the trading thread."""

    def __init__(self, cfg, clock, journal, day):
        self.cfg, self.ws, self.clock, self.journal, self.day = cfg, cfg.ws, clock, journal, day
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.wake = threading.Event()
        self.threads: dict[str, SocketThread] = {}
        self.ticks: dict[tuple[int, str], wc.Tick] = {}
        self.urgent_tokens: frozenset[str] = frozenset()
        self.up: dict[str, bool] = {}
        self.down_since: dict[str, datetime] = {}   # until data flows (first connect included)
        self.down_journaled: set[str] = set()
        self.last_data: dict[str, datetime] = {}
        self.frame_errors: dict[str, int] = {}      # refused since the last one journaled
        self.frame_error_at: dict[str, datetime] = {}
        self.desk = None
        self.started = False
        self.counts = {"ticks": 0, "orders": 0, "frame_errors": 0, "drops": 0}
        self.trigger_mono: float | None = None   # earliest urgent event behind the current react
        self.reacting = False                    # inside react (benchmarks time its orders)
        self._last_px: dict[str, tuple] = {}     # socket thread only: last prices per token

    # --- wiring ----------------------------------------------------------------------------------
    def add(self, name: str, url: str, headers, decode) -> None:
        """A socket to run once the session has logged in (its tokens are the handshake's)."""
        t = SocketThread(name, url, headers, self.clock, self.queue, decode, wake=self.wake,
                         urgent=self._urgent, ping_sec=self.ws.ping_sec,
                         reconnect_max_sec=self.ws.reconnect_max_sec)
        self.threads[name] = t
        self.up[name] = False

    def _start_once_logged_in(self) -> None:
        if self.started or self.desk is None or not self.desk.pre_open_done:
            return
        self.started = True
        for name, t in self.threads.items():
            self.down_since[name] = self.clock.now()
            t.start()

    def bind(self, desk) -> None:
        """The desk whose execution receives order updates and whose positions pick the
        subscriptions."""
        self.desk = desk
        desk.ex.before_step = self.drain
        desk.ex.push_live = lambda: self.up.get(ORDERS, False)
        desk.ex.poll_every_sec = self.ws.order_poll_sec

    def close(self) -> None:
        for t in self.threads.values():
            t.stop()
        for t in self.threads.values():
            if t.is_alive():
                t.join(timeout=2)

    def _urgent(self, ev: SocketEvent) -> bool:
        """Socket thread: does this event warrant waking the trading loop now?"""
        if ev.kind == "order":
            return True
        if ev.kind != "tick" or ev.payload.token not in self.urgent_tokens:
            return False
        t = ev.payload
        px = (t.ltp, t.bid, t.ask)
        if self._last_px.get(t.token) == px:
            return False
        self._last_px[t.token] = px
        return True

    # --- the trading thread ----------------------------------------------------------------------
    def drain(self) -> int:
        """Take everything queued, in arrival order; then health and subscriptions."""
        self._start_once_logged_in()
        n = 0
        while True:
            try:
                ev = self.queue.get_nowait()
            except queue.Empty:
                break
            n += 1
            self._take(ev)
        self._check_silence()
        self._follow_positions()
        return n

    def _take(self, ev: SocketEvent) -> None:
        if ev.kind == "tick":
            t = ev.payload
            self.ticks[(t.exchange_type, t.token)] = t
            self.counts["ticks"] += 1
            self.last_data[ev.socket] = ev.at
            self._healed(ev.socket, ev.at)
            if t.token in self.urgent_tokens and self.trigger_mono is None:
                self.trigger_mono = ev.mono
        elif ev.kind == "order":
            self.counts["orders"] += 1
            self.last_data[ev.socket] = ev.at
            if self.desk is not None:
                self.desk.ex.push(ev.payload.order)
            if self.trigger_mono is None:
                self.trigger_mono = ev.mono
        elif ev.kind == "up":
            self.up[ev.socket] = True
            self.last_data[ev.socket] = ev.at
            if ev.socket == ORDERS:
                self._healed(ev.socket, ev.at)
        elif ev.kind == "down" and ev.payload.get("requested"):
            self.up[ev.socket] = False   # our own redial: journaled when it was asked for
        elif ev.kind == "down":
            self._down(ev.socket, ev.payload.get("reason", ""), ev.at)
        elif ev.kind == "frame_error":
            self._frame_error(ev)
        elif ev.kind == "error_frame":
            e = ev.payload
            self._rec("ws_error", {"socket": ev.socket, "code": e.code, "message": e.message})

    def _frame_error(self, ev: SocketEvent) -> None:
        """A refused frame is dropped, never half-believed; journaled at most once a minute per
        socket, with how many were refused since the last one journaled."""
        self.counts["frame_errors"] += 1
        self.frame_errors[ev.socket] = self.frame_errors.get(ev.socket, 0) + 1
        last = self.frame_error_at.get(ev.socket)
        if last is None or (ev.at - last).total_seconds() >= FRAME_ERROR_EVERY_SEC:
            self.frame_error_at[ev.socket] = ev.at
            self._rec("ws_frame_error", {"socket": ev.socket, **ev.payload,
                                         "refused": self.frame_errors.pop(ev.socket)})

    def _rec(self, kind: str, payload: dict) -> None:
        self.journal.record(kind, payload, day=self.day)

    def _down(self, socket: str, reason: str, when: datetime) -> None:
        """Journaled once per outage (a socket that never connected included)."""
        was_up = self.up.get(socket, False)
        self.up[socket] = False
        self.down_since.setdefault(socket, when)
        if socket not in self.down_journaled:
            self.down_journaled.add(socket)
            self.counts["drops"] += 1
            self._rec("ws_down", {"socket": socket, "reason": reason,
                                  "fallback": "REST polling", "was_connected": was_up})

    def _healed(self, socket: str, when: datetime) -> None:
        since = self.down_since.pop(socket, None)
        if since is not None:
            self.up[socket] = True
            self.down_journaled.discard(socket)
            self._rec("ws_up", {"socket": socket,
                                "down_sec": round((when - since).total_seconds(), 3)})

    def _market_hours(self, now: datetime) -> bool:
        s = self.cfg.session
        return at(self.day, s.market_open) <= now < at(self.day, s.market_close)

    def _check_silence(self) -> None:
        """No tick for silence_sec in market hours: down now (REST serves), and reconnect."""
        now = self.clock.now()
        if MARKET not in self.threads or not self.up.get(MARKET) or not self._market_hours(now):
            return
        last = self.last_data.get(MARKET)
        if last is not None and (now - last).total_seconds() >= self.ws.silence_sec:
            quiet = (now - last).total_seconds()
            self._down(MARKET, f"no tick for {quiet:.0f} s", now)
            self.threads[MARKET].drop(f"silent for {quiet:.0f} s")

    def _follow_positions(self) -> None:
        """The subscriptions the desk needs now: index + VIX (LTP), held options (SNAP_QUOTE)."""
        t = self.threads.get(MARKET)
        desk = self.desk
        if t is None or desk is None or desk.feed is None:
            return
        index = {f.spot.token for f in desk.feed.underlyings.values()} | {VIX_TOKEN}
        held: dict[int, set[str]] = {}
        for h in desk.book.holdings.values():
            code = wc.EXCHANGE_CODES.get(h.pos.exchange)
            if code is not None and h.open_qty > 0:
                held.setdefault(code, set()).add(h.pos.token)
        urgent = frozenset(tok for toks in held.values() for tok in toks)
        if urgent != self.urgent_tokens or not t.has_wanted():
            self.urgent_tokens = urgent
            t.want({wc.LTP: {1: index}, wc.SNAP_QUOTE: held})

    # --- reads -----------------------------------------------------------------------------------
    def fresh(self, exchange: str, token: str) -> wc.Tick | None:
        """The cached tick for a token if at most max_tick_age_sec old, else None (ask REST)."""
        self.drain()
        code = wc.EXCHANGE_CODES.get(exchange)
        t = self.ticks.get((code, str(token)))
        if t is None:
            return None
        age = (self.clock.now() - t.exchange_ts).total_seconds()
        return t if age <= self.ws.max_tick_age_sec else None

    # --- the driver's side -----------------------------------------------------------------------
    def wait(self, wall_sec: float) -> bool:
        """Sleep up to `wall_sec`, waking early (True) when an urgent event arrived."""
        woke = self.wake.wait(max(0.0, wall_sec))
        self.wake.clear()
        return woke

    def react(self, tday) -> None:
        """An urgent event woke the loop: settle orders and evaluate exits now, not at the next
        monitor tick. Runs as the driver's `stream` job, on the trading thread."""
        desk = self.desk
        self.trigger_mono = None
        self.drain()
        if desk is None:
            return
        desk.bind(tday)
        if not desk.pre_open_done or tday.machine.state in (m.PRE_OPEN, m.WARMUP, m.CLOSED):
            return
        if not len(desk.book) and not desk.ex.live():
            return
        self.reacting = True
        try:
            desk.settle_orders()
            if len(desk.book):
                exits.check_positions(desk, hourly=False)
        finally:
            self.reacting = False


class StreamingMarketData:
    """A MarketData that answers from fresh socket ticks and falls back to REST (`rest`)."""

    def __init__(self, rest, hub: StreamHub):
        self.rest, self.hub = rest, hub
        self.served = {"socket": 0, "rest": 0}

    def __getattr__(self, name):   # candles, instrument_master, drain_rejected...: REST's own
        return getattr(self.rest, name)

    def ltp(self, exchange: str, token: str) -> float:
        t = self.hub.fresh(exchange, token)
        if t is None:
            self.served["rest"] += 1
            return self.rest.ltp(exchange, token)
        self.served["socket"] += 1
        return t.ltp

    def vix(self) -> float:
        t = self.hub.fresh("NSE", VIX_TOKEN)
        if t is None:
            self.served["rest"] += 1
            return self.rest.vix()
        self.served["socket"] += 1
        return check_price(t.ltp, "ws", "ltp", allow_zero=False, token=VIX_TOKEN)

    def quote(self, exchange: str, token: str) -> Quote:
        t = self.hub.fresh(exchange, token)
        if t is None or t.mode != wc.SNAP_QUOTE:
            self.served["rest"] += 1
            return self.rest.quote(exchange, token)
        self.served["socket"] += 1
        return Quote(t.token, t.ltp, t.bid, t.ask, t.exchange_ts)


def attach_stream(svc, day, market, session, orders: bool):
    """Wrap `market` with the sockets when `[ws] enabled` (paper and live). Returns the market
    the desk should read; the hub is kept in svc.extra["stream"] for the driver and the desk."""
    from .broker.ws_client import angel_headers, decode_market, decode_orders, require_websockets
    require_websockets()
    hub = StreamHub(svc.cfg, svc.clock, svc.journal, day)
    headers = angel_headers(session)
    hub.add(MARKET, svc.cfg.ws.market_url, headers, decode_market)
    if orders:
        hub.add(ORDERS, svc.cfg.ws.order_url, headers, decode_orders)
    svc.extra["stream"] = hub
    return StreamingMarketData(market, hub)
