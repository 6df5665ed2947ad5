"""One background thread per Angel WebSocket that only connects, decodes and enqueues.

Nothing here decides or journals: every frame becomes a `SocketEvent` on a thread-safe queue that
the single trading thread drains (`rustro/stream.py`). The thread keeps its socket up: it sends
the wanted subscriptions on every (re)connect (Angel forgets them), heartbeats with a text `ping`
and protocol pings, and reconnects with exponential backoff after any drop. Built on the
`websockets` library's sync client (the optional `ws` extra), imported only when a socket starts.
"""
from __future__ import annotations

import logging
import queue
import threading
import time as _time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from . import ws_codec as wc

log = logging.getLogger(__name__)
MARKET, ORDERS = "market", "orders"
RECV_SLICE_SEC = 0.05   # longest wait in recv before looking at commands and the heartbeat


@dataclass(frozen=True)
class SocketEvent:
    """What a socket thread saw. kind: tick | order | up | down | frame_error | error_frame."""
    kind: str
    socket: str
    payload: Any
    at: datetime          # the bot's clock when received
    mono: float           # time.monotonic() when received (latency measurements only)


def require_websockets():
    """The `websockets` sync client, or a clear error saying how to install it."""
    try:
        from websockets.sync.client import connect
    except ImportError:
        raise RuntimeError("[ws] enabled needs the 'websockets' package: pip install "
                           "'rustro[ws]' (or set [ws] enabled = false for REST polling)") from None
    return connect


class SocketThread(threading.Thread):
    """Keeps one socket connected and turns its frames into events on `out`.

    `headers()` is called at each connect (tokens change with a refresh). `decode(frame)` turns
    one frame into a list of (kind, payload) or raises FrameError. `urgent(event)` says whether an
    event should wake the trading loop (`wake` is then set).
    """

    def __init__(self, name: str, url: str, headers: Callable[[], dict], clock,
                 out: queue.SimpleQueue, decode: Callable[[Any], list], *,
                 wake: threading.Event | None = None,
                 urgent: Callable[[SocketEvent], bool] = lambda e: False,
                 ping_sec: float = 10.0, reconnect_max_sec: float = 30.0):
        super().__init__(name=f"ws-{name}", daemon=True)
        self.socket, self.url, self.headers, self.clock = name, url, headers, clock
        self.out, self.decode, self.wake, self.urgent = out, decode, wake, urgent
        self.ping_sec, self.reconnect_max_sec = ping_sec, reconnect_max_sec
        self._stop_event = threading.Event()
        self._drop_reason = ""
        self._requested = False
        self._lock = threading.Lock()
        self._wanted: dict[int, dict[int, set[str]]] = {}   # mode -> exchangeType -> tokens
        self._sent: dict[int, dict[int, set[str]]] = {}
        self._version = self._synced = 0
        self._seq = 0
        self.connects = 0

    # --- called from the trading thread ----------------------------------------------------------
    def want(self, wanted: dict[int, dict[int, set[str]]]) -> None:
        """The subscriptions this socket should hold ({mode: {exchangeType: tokens}})."""
        with self._lock:
            self._wanted = {m: {ex: set(t) for ex, t in d.items() if t} for m, d in wanted.items()}
            self._version += 1

    def has_wanted(self) -> bool:
        return bool(self._wanted)

    def drop(self, reason: str) -> None:
        """Close the connection and reconnect (a silent socket)."""
        self._drop_reason = reason or "dropped"

    def stop(self) -> None:
        self._stop_event.set()

    # --- the thread ------------------------------------------------------------------------------
    def _emit(self, kind: str, payload: Any) -> None:
        ev = SocketEvent(kind, self.socket, payload, self.clock.now(), _time.monotonic())
        self.out.put(ev)
        if self.wake is not None and (kind in ("down", "up") or self.urgent(ev)):
            self.wake.set()

    def run(self) -> None:
        connect = require_websockets()
        backoff = 0.5
        while not self._stop_event.is_set():
            reason, self._requested = "", False
            try:
                with connect(self.url, additional_headers=self.headers(), open_timeout=10,
                             ping_interval=self.ping_sec, ping_timeout=self.ping_sec * 2,
                             close_timeout=1, max_size=2 ** 20) as ws:
                    self.connects += 1
                    backoff = 0.5
                    with self._lock:
                        self._sent, self._synced = {}, -1   # Angel forgets them: send all again
                    self._emit("up", {"url_connects": self.connects})
                    reason = self._serve(ws)
            except Exception as exc:   # handshake refused, reset, closed: all mean reconnect
                reason = f"{type(exc).__name__}: {exc}"
            if self._stop_event.is_set():
                break
            self._emit("down", {"reason": reason[:200], "requested": self._requested})
            self._stop_event.wait(backoff)
            backoff = min(backoff * 2, self.reconnect_max_sec)

    def _serve(self, ws) -> str:
        """Receive until stopped, dropped or closed; returns why it ended."""
        last_ping = _time.monotonic()
        while not self._stop_event.is_set():
            if self._drop_reason:
                reason, self._drop_reason = self._drop_reason, ""
                self._requested = True   # the hub asked (and journaled why)
                return reason
            self._sync_subscriptions(ws)
            if _time.monotonic() - last_ping >= self.ping_sec:
                ws.send(wc.PING)
                last_ping = _time.monotonic()
            try:
                frame = ws.recv(timeout=RECV_SLICE_SEC)
            except TimeoutError:
                continue
            try:
                items = self.decode(frame)
            except wc.FrameError as exc:
                self._emit("frame_error", {"error": str(exc)[:200], "bytes": len(frame)})
                continue
            for kind, payload in items:
                self._emit(kind, payload)
        return "stopped"

    def _sync_subscriptions(self, ws) -> None:
        if self._synced == self._version:
            return
        with self._lock:
            self._synced = self._version
            wanted = {m: {ex: set(t) for ex, t in d.items()} for m, d in self._wanted.items()}
            sent = self._sent
        for action, a, b in ((wc.UNSUBSCRIBE, sent, wanted), (wc.SUBSCRIBE, wanted, sent)):
            for mode, by_ex in a.items():
                diff = {ex: sorted(t - b.get(mode, {}).get(ex, set())) for ex, t in by_ex.items()}
                for chunk in _chunks({ex: t for ex, t in diff.items() if t}):
                    self._seq += 1
                    ws.send(wc.subscription_message(f"rs{self._seq:08d}"[-10:], mode, chunk,
                                                    action))
        with self._lock:
            self._sent = wanted


def _chunks(tokens: dict[int, list[str]]) -> list[dict[int, list[str]]]:
    """Messages of at most MAX_TOKENS_PER_CONNECTION tokens each (past that on one connection
    Angel answers E1002, which is journaled as ws_error)."""
    flat = [(ex, t) for ex, toks in sorted(tokens.items()) for t in toks]
    out = []
    for i in range(0, len(flat), wc.MAX_TOKENS_PER_CONNECTION):
        chunk: dict[int, list[str]] = {}
        for ex, t in flat[i:i + wc.MAX_TOKENS_PER_CONNECTION]:
            chunk.setdefault(ex, []).append(t)
        out.append(chunk)
    return out


def decode_market(frame) -> list:
    if isinstance(frame, str):
        msg = wc.decode_text(frame)
        return [] if isinstance(msg, wc.Pong) else [("error_frame", msg)]
    return [("tick", wc.decode_tick(frame))]


def decode_orders(frame) -> list:
    if isinstance(frame, bytes):
        frame = frame.decode("utf-8", errors="replace")
    if frame.strip() == wc.PONG:
        return []
    update = wc.decode_order_update(frame)
    return [] if update.order is None else [("order", update)]


def angel_headers(session) -> Callable[[], dict]:
    """The handshake headers of both sockets (spec: Authorization, x-api-key, x-client-code,
    x-feed-token), read from the session at each connect."""
    def headers() -> dict:
        return {"Authorization": f"Bearer {session.jwt}", "x-api-key": session.secrets.api_key,
                "x-client-code": session.secrets.client_code, "x-feed-token": session.feed_token}
    return headers
