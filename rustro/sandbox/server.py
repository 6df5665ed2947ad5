"""The gateway in front of the routes, and the stdlib HTTP server that carries it.

`SandboxApp.handle` is the whole request path, free of sockets: route lookup, X-PrivateKey,
Bearer token (gateway dialect AG800x), rate limit (403 text/plain), fault injection, the handler,
the envelope. The HTTP layer only reads bytes in and writes a `Reply` out (or, for the timeout
and lost faults, hangs up without a word).
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ..credentials import Secrets
from .auth import AuthFailure, TokenStore, check_login
from .faults import FaultPlan, strikes_after
from .limits import DENIED_TEXT, RateGate
from .routes import CATCH_ALL, ApiError, Exchange, RouteDef, match_route

log = logging.getLogger(__name__)

HTML_503 = (b"<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
            b"<center><h1>503 Service Temporarily Unavailable</h1></center></body></html>")
HTML_WAF = (b"<html><head><title>Request Rejected</title></head><body>The requested URL was "
            b"rejected. Please consult with your administrator.<br><br>Your support ID is: "
            b"%d<br><br><a href='javascript:history.back();'>[Go Back]</a></body></html>")


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    drop: bool = False   # hang up without answering (the timeout and lost faults)


def ok(data) -> Reply:
    return _json({"status": True, "message": "SUCCESS", "errorcode": "", "data": data})


def fail(code: str, message: str) -> Reply:
    return _json({"status": False, "message": message, "errorcode": code, "data": None})


def gateway(code: str, message: str) -> Reply:
    """Angel's gateway dialect: no `status` key, camelCase errorCode, HTTP 200."""
    return _json({"success": False, "message": message, "errorCode": code, "data": ""})


def _json(payload: dict, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload).encode())


class SandboxApp:
    def __init__(self, creds: Secrets, exchange: Exchange, tokens: TokenStore, gate: RateGate,
                 faults: FaultPlan):
        self.creds, self.exchange, self.tokens, self.gate, self.faults = (
            creds, exchange, tokens, gate, faults)
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()   # one request at a time inside the exchange

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """`headers` keys are lower case. JSON in the query string (the SDK's GETs) is ignored."""
        route, suffix = match_route(urlsplit(raw_path).path)
        if route is None:
            return _json({"status": False, "message": "Resource not found", "errorcode": "AB2000",
                          "data": None}, 404)
        if method != route.method:
            return _json({"status": False, "message": f"Method {method} not allowed",
                          "errorcode": "AB2000", "data": None}, 405)
        with self._lock:
            self.calls[route.name] = self.calls.get(route.name, 0) + 1
        if route.auth == "none":
            kind = self.faults.decide(route.name)
            return self._fault(kind, route) if kind else Reply(200, self.exchange.master_bytes())
        if headers.get("x-privatekey", "") != self.creds.api_key:
            return gateway("AG8004", "Invalid API Key")
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return Reply(400)   # Angel answers some malformed requests with an empty 400
        if not isinstance(body, dict):
            return Reply(400)
        try:
            client = self._client(route, body, headers)
        except AuthFailure as exc:
            return gateway(exc.code, exc.message) if exc.gateway else fail(exc.code, exc.message)
        if route.group and not self.gate.allow(client, route.group):
            return Reply(403, DENIED_TEXT.encode(), "text/plain")
        kind = self.faults.decide(route.name)
        if kind and not strikes_after(kind, route.name):
            return self._fault(kind, route)
        reply = self._run(route, body, suffix, client)
        return self._fault(kind, route) if kind else reply

    def _client(self, route: RouteDef, body: dict, headers: dict[str, str]) -> str:
        if route.auth == "jwt":
            return self.tokens.authenticate(headers.get("authorization", ""))
        if route.auth == "login":
            return str(body.get("clientcode") or "")
        return self.creds.client_code   # generateTokens: the one account this sandbox has

    def _run(self, route: RouteDef, body: dict, suffix: str, client: str) -> Reply:
        x = self.exchange
        try:
            with self._lock:
                if route.name == "loginByPassword":
                    check_login(self.creds, body)
                    return ok(self.tokens.issue(client))
                if route.name == "generateTokens":
                    return ok(self.tokens.refresh(str(body.get("refreshToken") or "")))
                if route.name == "logout":
                    self.tokens.logout(client)
                    return ok(None)
                handlers = {
                    "getProfile": lambda: x.profile(client), "getRMS": x.rms,
                    "placeOrder": lambda: x.place(body), "modifyOrder": lambda: x.modify(body),
                    "cancelOrder": lambda: x.cancel(body), "getOrderBook": x.order_book,
                    "getTradeBook": x.trade_book, "orderDetails": lambda: x.order_details(suffix),
                    "getLtpData": lambda: x.ltp(body), "getPosition": x.positions,
                    "quote": lambda: x.quote(body), "getCandleData": lambda: x.candles(body)}
                return ok(handlers[route.name]())
        except ApiError as exc:
            return fail(exc.code, exc.message)
        except AuthFailure as exc:
            return gateway(exc.code, exc.message) if exc.gateway else fail(exc.code, exc.message)

    def _fault(self, kind: str, route: RouteDef) -> Reply:
        log.info("sandbox fault: %s on %s", kind, route.name)
        if kind in ("timeout", "lost"):   # `lost` only reaches here after the action committed
            return Reply(drop=True)
        if kind == "5xx":
            return Reply(503, HTML_503, "text/html")
        if kind == "html":
            support = 10**18 + sum(self.faults.calls.values())
            return Reply(200, HTML_WAF % support, "text/html")
        if kind == "empty":
            return Reply(200, b"")
        return fail(*CATCH_ALL)   # "reject": the catch-all business failure


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rustro-sandbox"
    disable_nagle_algorithm = True   # headers and body go out in two writes: no 40 ms stall

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            reply = self.server.app.handle(method, self.path, headers, raw)
        except Exception:   # a sandbox bug must look like a gateway error, not kill the thread
            log.exception("sandbox: %s %s failed", method, urlsplit(self.path).path)
            reply = Reply(500, b"<html><body>500 Internal Server Error</body></html>", "text/html")
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, fmt: str, *args) -> None:
        log.debug("sandbox: " + fmt, *args)


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: SandboxApp, port: int = 0, host: str = "127.0.0.1"):
        super().__init__((host, port), _Handler)
        self.app = app

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, poll_interval: float = 0.05) -> threading.Thread:
        """Serve in a daemon thread (tests, and the CLI's main loop waiting for a signal)."""
        t = threading.Thread(target=self.serve_forever, args=(poll_interval,),
                             name="sandbox-http", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
