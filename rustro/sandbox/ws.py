"""The sandbox's two WebSockets, on the `websockets` sync server: SmartWebSocketV2 market data at
/smart-stream and order updates at /smart-order-update, in Angel's exact frames (`ws_codec`).

Both are driven by the same exchange the REST routes serve: a tick carries what getLtpData / quote
FULL would answer at that sandbox instant, an order update is an order-book row pushed when the
row changes. The handshake checks the headers (401 with `x-error-message` like Angel), the market
socket answers `ping` with `pong`, refuses a bad subscription with E1001 and more than 1000 tokens
with E1002, and at most 3 connections per socket are served. Faults (`ws_drop`, `ws_silence`,
`ws_garbage`, `ws_delay`) come from the same --faults spec as the REST ones.
"""
from __future__ import annotations

import logging
import random
import threading
from collections import deque
from http import HTTPStatus

from ..broker import ws_codec as wc
from . import rows
from .auth import AuthFailure

log = logging.getLogger(__name__)
MARKET_PATH, ORDER_PATH = "/smart-stream", "/smart-order-update"
PUSH_WALL_SEC = 0.01   # one pass over the subscriptions at most this often (wall)
PUSH_CLOCK_SEC = 1.0   # and at least this far apart on the sandbox clock


class SocketServer:
    """Serves both sockets for one `SandboxApp` (same exchange, credentials, tokens, faults)."""

    def __init__(self, app, clock, port: int = 0, host: str = "127.0.0.1"):
        from websockets.sync.server import serve
        self.app, self.clock, self.faults = app, clock, app.faults.spec
        self.counts = {"ticks": 0, "orders": 0, "connections": 0, "refused": 0, "garbage": 0,
                       "drops": 0}
        self.open: dict[str, int] = {MARKET_PATH: 0, ORDER_PATH: 0}
        self._lock = threading.Lock()
        self._rng = random.Random(f"{app.faults.seed}|ws")
        self._server = serve(self._handle, host, port, process_request=self._check)
        self.port = self._server.socket.getsockname()[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-ws",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()

    # --- handshake -------------------------------------------------------------------------------
    def _check(self, connection, request):
        path = request.path.split("?")[0]
        if path not in self.open:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        h = request.headers
        creds = self.app.creds
        why = ""
        if h.get("x-api-key", "") != creds.api_key:
            why = "Invalid API Key"
        elif h.get("x-client-code", "") != creds.client_code:
            why = "Invalid Client Code"
        elif not h.get("x-feed-token", ""):
            why = "Invalid Feed Token"
        else:
            try:
                self.app.tokens.check(h.get("authorization", ""))
            except AuthFailure:
                why = "Invalid Auth token"
        with self._lock:
            if not why and self.open[path] >= wc.MAX_CONNECTIONS:
                why = "Connection limit exceeded"
            if why:
                self.counts["refused"] += 1
        if why:
            resp = connection.respond(HTTPStatus.UNAUTHORIZED, why + "\n")
            resp.headers["x-error-message"] = why
            return resp
        return None

    def _handle(self, connection) -> None:
        path = connection.request.path.split("?")[0]
        with self._lock:
            self.open[path] += 1
            self.counts["connections"] += 1
        try:
            if path == MARKET_PATH:
                self._market(connection)
            else:
                self._orders(connection)
        except Exception as exc:   # a closed connection ends its thread; nothing to keep
            log.debug("sandbox ws %s ended: %s", path, exc)
        finally:
            with self._lock:
                self.open[path] -= 1

    # --- faults ----------------------------------------------------------------------------------
    def _dropped(self, connected_at: float) -> bool:
        n = self.faults.ws_drop_sec
        if n and self.clock.now().timestamp() - connected_at >= n:
            with self._lock:
                self.counts["drops"] += 1
            log.info("sandbox fault: ws_drop on %s", "socket")
            return True
        return False

    def _silent(self) -> bool:
        n = self.faults.ws_silence_sec
        return bool(n) and int(self.clock.now().timestamp() // n) % 2 == 1

    def _garbled(self, frame):
        p = self.faults.ws_garbage_prob
        if not p:
            return frame
        with self._lock:
            hit = self._rng.random() < p
            if hit:
                self.counts["garbage"] += 1
        if not hit:
            return frame
        log.info("sandbox fault: ws_garbage on frame")
        if isinstance(frame, bytes):
            return frame[:len(frame) - 7] if len(frame) % 2 else b"\x09" + frame[1:]
        return "{garbage" + frame[:20]

    def _listen(self, ws, born: float, on_message) -> bool:
        """Hand the client's next frame (waiting at most PUSH_WALL_SEC) to `on_message`; False
        once a `ws_drop` fault closes the socket, so the serving loop ends."""
        try:
            on_message(ws.recv(timeout=PUSH_WALL_SEC))
        except TimeoutError:
            pass
        if self._dropped(born):
            ws.close()
            return False
        return True

    @staticmethod
    def _pong(ws, msg) -> None:
        if isinstance(msg, str) and msg.strip() == wc.PING:
            ws.send(wc.PONG)

    # --- market data -----------------------------------------------------------------------------
    def _market(self, ws) -> None:
        subs: dict[tuple[int, str], int] = {}   # (exchangeType, token) -> mode
        born, last_push = self.clock.now().timestamp(), 0.0
        while self._listen(ws, born, lambda msg: self._market_text(ws, msg, subs)):
            now = self.clock.now().timestamp()
            if now - last_push < PUSH_CLOCK_SEC or self._silent():
                continue
            last_push = now
            for (ex, token), mode in list(subs.items()):
                frame = self._tick_frame(ex, token, mode)
                if frame is not None:
                    ws.send(self._garbled(frame))
                    with self._lock:
                        self.counts["ticks"] += 1

    def _market_text(self, ws, msg, subs: dict) -> None:
        if isinstance(msg, bytes):
            ws.send(wc.error_message("E1001", "Invalid Request Payload"))
            return
        if msg.strip() == wc.PING:
            ws.send(wc.PONG)
            return
        try:
            sub = wc.parse_subscription(msg)
        except ValueError:
            ws.send(wc.error_message("E1001", "Invalid Request Payload"))
            return
        keys = [(ex, t) for ex, toks in sub.tokens.items() for t in toks]
        if sub.action == wc.UNSUBSCRIBE:
            for k in keys:
                subs.pop(k, None)
            return
        if len(set(subs) | set(keys)) > wc.MAX_TOKENS_PER_CONNECTION:
            ws.send(wc.error_message("E1002", "Invalid Request. Subscription Limit Exceeded",
                                     sub.correlation_id))
            return
        for k in keys:
            subs[k] = sub.mode   # a duplicate subscription is harmless (the mode is the latest)

    def _tick_frame(self, ex: int, token: str, mode: int) -> bytes | None:
        exchange = wc.EXCHANGE_TYPES.get(ex, "")
        x = self.app.exchange
        inst = x.instrument(token, exchange)
        if inst is None:
            return None
        with self.app._lock:
            q = x._market_quote(exchange, token)
            if mode == wc.LTP:
                return wc.encode_tick(wc.Tick(wc.LTP, ex, token, 0, self.clock.now(), q.ltp))
            row = rows.quote_row("FULL", exchange, inst["symbol"], q, x.ohlc(exchange, token, q),
                                 int(inst["lotsize"]), float(inst["tick_size"]) / 100)
        return wc.encode_tick(tick_from_row(row, ex, mode, self.clock.now()))

    # --- order updates ---------------------------------------------------------------------------
    def _orders(self, ws) -> None:
        ws.send(wc.encode_order_update("AB00", self.app.creds.client_code, {}))
        state = {"calls": -1}
        seen = {o["order_id"]: _signature(o) for o in self._order_rows(state)}
        delayed: deque = deque()
        born = self.clock.now().timestamp()
        while self._listen(ws, born, lambda msg: self._pong(ws, msg)):
            now = self.clock.now().timestamp()
            for o in self._order_rows(state, skip_idle=True):
                sig = _signature(o)
                if seen.get(o["order_id"]) != sig:
                    seen[o["order_id"]] = sig
                    row = self.app.exchange._order_row(o)
                    text = wc.encode_order_update(wc.status_code_for(row["orderstatus"]),
                                                  self.app.creds.client_code, row)
                    delayed.append((now + self.faults.ws_delay_sec, text))
            while delayed and delayed[0][0] <= now:
                ws.send(self._garbled(delayed.popleft()[1]))
                with self._lock:
                    self.counts["orders"] += 1

    def _order_rows(self, state: dict, skip_idle: bool = False) -> list[dict]:
        """The books' order rows; skipped (nothing can have changed) while no order is working,
        no order call came in and every order the books show was already seen."""
        x = self.app.exchange
        with self.app._lock:
            calls = sum(self.app.calls.get(r, 0) for r in ("placeOrder", "modifyOrder",
                                                           "cancelOrder"))
            if skip_idle and calls == state["calls"] and not self.faults.book_lag_sec \
                    and not x.store.has_working_orders():
                return []
            state["calls"] = calls
            return list(x.paper.book_rows()[0])


def _signature(o: dict) -> tuple:
    return (o["status"], o["filled_qty"], o["price"], o["updated"])


def tick_from_row(row: dict, ex: int, mode: int, now) -> wc.Tick:
    """The tick a quote FULL row stands for, in the subscription's mode."""
    base = dict(mode=mode, exchange_type=ex, token=str(row["symbolToken"]), sequence=0,
                exchange_ts=now, ltp=row["ltp"])
    if mode == wc.LTP:
        return wc.Tick(**base)
    base.update(last_qty=int(row["lastTradeQty"]), avg_price=row["avgPrice"],
                volume=int(row["tradeVolume"]), total_buy_qty=float(row["totBuyQuan"]),
                total_sell_qty=float(row["totSellQuan"]), open=row["open"], high=row["high"],
                low=row["low"], close=row["close"])
    if mode == wc.QUOTE:
        return wc.Tick(**base)
    depth = row.get("depth") or {}
    levels = [wc.Level("bid", int(d["quantity"]), d["price"], int(d["orders"]))
              for d in depth.get("buy", [])[:5]]
    levels += [wc.Level("ask", int(d["quantity"]), d["price"], int(d["orders"]))
               for d in depth.get("sell", [])[:5]]
    return wc.Tick(**base, last_trade_ts=now, open_interest=int(row["opnInterest"]),
                   oi_change_pct=0.0, best_five=tuple(levels),
                   upper_circuit=row["upperCircuit"], lower_circuit=row["lowerCircuit"],
                   high_52w=row["52WeekHigh"], low_52w=row["52WeekLow"])


__all__ = ["MARKET_PATH", "ORDER_PATH", "SocketServer", "tick_from_row"]
