"""The SmartAPI HTTP core shared by AngelOneBroker and AngelOneMarketData.

One `requests.Session`, the SDK's headers, TOTP login with a same-day token cache, token refresh,
the rate limiter in front of every call, and one retry policy:

- 403 "exceeding access rate": journal `rate_limited`, block the group for 1 s, 2 s, 4 s, give up
  after 3 tries. This holds for placeOrder too: the denial is the gateway's, given before the
  request reaches the order system, so nothing was placed and a resend with the same tag is safe.
- AG8001/AG8002/AB1010/AB8050/...: refresh (or log in again) once, then retry once. Also safe for
  order routes: an invalid token is refused at the gateway, before the order system.
- Timeout / connection error / 5xx / empty or HTML body / the AB1004-AB2000-AB2001 catch-alls:
  reads are retried once; modify and cancel are not; placeOrder raises AmbiguousOrder (the broker
  resolves it by tag), except after a connect timeout, when no byte left this machine.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pyotp
import requests

from rustro.broker import ratelimit as rl
from rustro.broker.angelone_parse import parse_response, text
from rustro.broker.base import (AmbiguousOrder, AuthExpired, BrokerError, RateLimited,
                                TransientError)
from rustro.clock import IST, Clock
from rustro.credentials import Secrets

AUTH, READ, ORDER, PLACE = "auth", "read", "order", "place"  # route kinds, see module doc
EventSink = Callable[[str, dict], None]


@dataclass(frozen=True)
class Route:
    name: str     # Angel's name for it: in every error message and event
    method: str
    path: str
    group: str    # rate-limit group
    kind: str = READ


_SEC = "/rest/secure/angelbroking"
LOGIN = Route("loginByPassword", "POST", "/rest/auth/angelbroking/user/v1/loginByPassword",
              rl.LOGIN, AUTH)
TOKENS = Route("generateTokens", "POST", "/rest/auth/angelbroking/jwt/v1/generateTokens",
               rl.GENERATE_TOKENS, AUTH)
LOGOUT = Route("logout", "POST", f"{_SEC}/user/v1/logout", rl.LOGOUT)
RMS = Route("getRMS", "GET", f"{_SEC}/user/v1/getRMS", rl.RMS)
PLACE_ORDER = Route("placeOrder", "POST", f"{_SEC}/order/v1/placeOrder", rl.PLACE, PLACE)
MODIFY_ORDER = Route("modifyOrder", "POST", f"{_SEC}/order/v1/modifyOrder", rl.MODIFY, ORDER)
CANCEL_ORDER = Route("cancelOrder", "POST", f"{_SEC}/order/v1/cancelOrder", rl.CANCEL, ORDER)
ORDER_BOOK = Route("getOrderBook", "GET", f"{_SEC}/order/v1/getOrderBook", rl.ORDER_BOOK)
ORDER_DETAILS = Route("orderDetails", "GET", f"{_SEC}/order/v1/details/", rl.ORDER_DETAILS)
TRADE_BOOK = Route("getTradeBook", "GET", f"{_SEC}/order/v1/getTradeBook", rl.TRADE_BOOK)
POSITION = Route("getPosition", "GET", f"{_SEC}/order/v1/getPosition", rl.POSITION)
LTP = Route("getLtpData", "POST", f"{_SEC}/order/v1/getLtpData", rl.LTP)
QUOTE = Route("quote", "POST", f"{_SEC}/market/v1/quote", rl.QUOTE)
CANDLES = Route("getCandleData", "POST", f"{_SEC}/historical/v1/getCandleData", rl.CANDLES)

SDK_LOCAL_IP, SDK_PUBLIC_IP = "127.0.0.1", "106.193.147.98"  # the SDK's fixed header values


def _mac_address() -> str:
    n = uuid.getnode()
    return ":".join(f"{(n >> s) & 0xFF:02x}" for s in range(40, -1, -8))


def _transient(message: str, sent: bool) -> TransientError:
    err = TransientError(message)
    err.sent = sent  # False only when the request provably never left (connect timeout)
    return err


class SmartApiSession:
    def __init__(self, base_url: str, secrets: Secrets, clock: Clock,
                 limiter: rl.RateLimiter | None = None, timeout: float = 10.0,
                 token_cache_path: str | os.PathLike | None = None,
                 on_event: EventSink | None = None, http: requests.Session | None = None,
                 local_ip: str = SDK_LOCAL_IP, public_ip: str = SDK_PUBLIC_IP,
                 mac_address: str | None = None, rate_limit_tries: int = 3,
                 read_retries: int = 1, backoff_sec: float = 1.0):
        self.base_url = base_url.rstrip("/")
        self.secrets = secrets
        self.clock = clock
        self.limiter = limiter or rl.RateLimiter(clock)
        self.timeout = timeout
        self.token_cache_path = Path(token_cache_path) if token_cache_path else None
        self.on_event = on_event
        self.http = http or requests.Session()
        self.rate_limit_tries = rate_limit_tries
        self.read_retries = read_retries
        self.backoff_sec = backoff_sec
        self._fixed_headers = {
            "Content-type": "application/json", "Accept": "application/json",
            "X-UserType": "USER", "X-SourceID": "WEB", "X-ClientLocalIP": local_ip,
            "X-ClientPublicIP": public_ip, "X-MACAddress": mac_address or _mac_address()}
        self.jwt = self.refresh_token = self.feed_token = ""
        self._seen_tokens: set[str] = set()  # every token this process held: all redacted
        self._auth_lock = threading.RLock()  # one login / refresh in flight

    # ---- plumbing -------------------------------------------------------------------------
    def trading_day(self) -> date:
        return self.clock.now().astimezone(IST).date()

    def redact(self, message: str) -> str:
        """Secrets and live tokens out of any text that may reach a log, event or exception."""
        message = self.secrets.redact(message)
        for token in self._seen_tokens:
            message = message.replace(token, "***")
        return message

    def emit(self, kind: str, **payload: Any) -> None:
        if self.on_event:
            self.on_event(kind, {k: self.redact(v) if isinstance(v, str) else v
                                 for k, v in payload.items()})

    def _headers(self, with_jwt: bool) -> dict[str, str]:
        headers = dict(self._fixed_headers, **{"X-PrivateKey": self.secrets.api_key})
        if with_jwt and self.jwt:
            headers["Authorization"] = f"Bearer {self.jwt}"
        return headers

    def _send_once(self, route: Route, body: Any, suffix: str) -> Any:
        if callable(body):
            body = body()  # built at the last moment (the TOTP must be fresh)
        self.limiter.acquire(route.group)
        try:
            resp = self.http.request(
                route.method, self.base_url + route.path + suffix,
                headers=self._headers(route.kind != AUTH),
                data=None if body is None else json.dumps(body), timeout=self.timeout)
        except requests.exceptions.ConnectTimeout:
            raise _transient(f"{route.name}: connect timeout after {self.timeout}s", False) from None
        except requests.exceptions.Timeout:
            raise _transient(f"{route.name}: no answer within {self.timeout}s", True) from None
        except requests.exceptions.RequestException as exc:
            raise _transient(f"{route.name}: connection failed ({type(exc).__name__})",
                             True) from None
        try:
            return parse_response(route.name, resp.status_code, resp.text,
                                  order_route=route.kind in (ORDER, PLACE))
        except BrokerError as err:
            raise self._scrub(err) from None

    def _scrub(self, err: BrokerError) -> BrokerError:
        """`err` with any secret or token in its text masked (same type, code and flags)."""
        clean = self.redact(err.text)
        if clean == err.text:
            return err
        out = type(err)(clean, err.code)
        out.__dict__.update({k: v for k, v in err.__dict__.items() if k not in ("text", "code")})
        return out

    def _report(self, route: Route, err: BrokerError, attempt: int) -> None:
        self.emit("broker_error", route=route.name, error=type(err).__name__, code=err.code,
                   message=err.text, attempt=attempt)

    # ---- the one call path ----------------------------------------------------------------
    def call(self, route: Route, body: Any = None, suffix: str = "",
             parse: Callable[[Any], Any] | None = None) -> Any:
        """`route`'s `data` (through `parse` if given), with the module's retry policy applied.

        A BrokerError from `parse` (a missing or garbage field) is journaled and raised, scrubbed
        of secrets like every other error; it is never retried.
        """
        if route.kind != AUTH and not self.jwt:
            self.login()
        reauthed, rate_tries, transient_tries, attempt = False, 0, 0, 0
        while True:
            attempt += 1
            jwt_used = self.jwt
            try:
                data = self._send_once(route, body, suffix)
            except RateLimited:
                rate_tries += 1
                delay = self.backoff_sec * 2 ** (rate_tries - 1)
                self.limiter.backoff(route.group, delay)
                self.emit("rate_limited", route=route.name, group=route.group,
                          attempt=attempt, backoff_sec=delay)
                if rate_tries >= self.rate_limit_tries:
                    raise
            except AuthExpired as err:
                self._report(route, err, attempt)
                if reauthed or route.kind == AUTH:
                    raise
                reauthed = True
                self.reauth(jwt_used)
            except TransientError as err:
                self._report(route, err, attempt)
                if route.kind == PLACE and getattr(err, "sent", True):
                    raise AmbiguousOrder(f"{err.text}; the order may or may not be placed",
                                         err.code) from None
                if route.kind != READ or transient_tries >= self.read_retries:
                    raise
                transient_tries += 1
                self.clock.sleep(self.backoff_sec * transient_tries)
            except BrokerError as err:
                self._report(route, err, attempt)
                raise
            else:
                if parse is None:
                    return data
                try:
                    return parse(data)
                except BrokerError as err:
                    clean = self._scrub(err)
                    self._report(route, clean, attempt)
                    raise clean from None

    # ---- auth -----------------------------------------------------------------------------
    def login(self, force: bool = False) -> None:
        """Reuse today's cached tokens, else log in with client code + MPIN + a fresh TOTP."""
        with self._auth_lock:
            if not force and self._load_cache():
                self.emit("login", source="cache", trading_day=self.trading_day().isoformat())
                return
            if not self.secrets.complete:
                raise BrokerError(f"{LOGIN.name}: credentials missing: "
                                  f"{', '.join(self.secrets.missing())}")
            s = self.secrets
            data = self.call(LOGIN, lambda: {"clientcode": s.client_code, "password": s.mpin,
                                             "totp": pyotp.TOTP(s.totp_secret).now()})
            self._take_tokens(data, LOGIN)
            self.emit("login", source="totp", trading_day=self.trading_day().isoformat())

    def refresh(self) -> None:
        with self._auth_lock:
            if not self.refresh_token:
                raise AuthExpired(f"{TOKENS.name}: no refresh token; log in first")
            data = self.call(TOKENS, {"refreshToken": self.refresh_token})
            self._take_tokens(data, TOKENS)
            self.emit("token_refreshed", trading_day=self.trading_day().isoformat())

    def reauth(self, failed_jwt: str = "") -> None:
        """Refresh, falling back to a full login; skipped if another thread already did it."""
        with self._auth_lock:
            if failed_jwt and self.jwt and self.jwt != failed_jwt:
                return
            if self.refresh_token:
                try:
                    self.refresh()
                    return
                except BrokerError:
                    pass
            self.login(force=True)

    def logout(self) -> None:
        """End the session at Angel (best effort) and forget the tokens and their cache."""
        with self._auth_lock:
            try:
                if self.jwt:
                    self.call(LOGOUT, {"clientcode": self.secrets.client_code})
            finally:
                self.jwt = self.refresh_token = self.feed_token = ""
                if self.token_cache_path:
                    self.token_cache_path.unlink(missing_ok=True)

    def _take_tokens(self, data: Any, route: Route) -> None:
        if not isinstance(data, dict):
            raise BrokerError(f"{route.name}: expected token data, got {type(data).__name__}")
        jwt = text(data, "jwtToken", route.name)
        self.jwt = jwt.removeprefix("Bearer ").strip()
        self.refresh_token = text(data, "refreshToken", route.name)
        self.feed_token = str(data.get("feedToken") or self.feed_token)
        self._remember_tokens()
        self._save_cache()

    # ---- token cache: JSON, mode 0600, valid for one trading day and one account ----------
    def _account(self) -> str:
        raw = f"{self.secrets.api_key}|{self.secrets.client_code}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def _save_cache(self) -> None:
        if not self.token_cache_path:
            return
        payload = {"jwt": self.jwt, "refresh": self.refresh_token, "feed": self.feed_token,
                   "trading_day": self.trading_day().isoformat(), "account": self._account()}
        tmp = self.token_cache_path.with_name(self.token_cache_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover tmp file may have had looser bits
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
        os.replace(tmp, self.token_cache_path)

    def _load_cache(self) -> bool:
        if not self.token_cache_path:
            return False
        try:
            cached = json.loads(self.token_cache_path.read_text())
        except (OSError, ValueError):
            return False
        if (not isinstance(cached, dict) or not cached.get("jwt")
                or cached.get("trading_day") != self.trading_day().isoformat()
                or cached.get("account") != self._account()):
            return False
        self.jwt, self.refresh_token = str(cached["jwt"]), str(cached.get("refresh") or "")
        self.feed_token = str(cached.get("feed") or "")
        self._remember_tokens()
        return True

    def _remember_tokens(self) -> None:
        self._seen_tokens.update(t for t in (self.jwt, self.refresh_token, self.feed_token) if t)

    # ---- plain downloads (the instrument master: no auth, no rate limit) ------------------
    def download(self, url: str, dest: Path, what: str) -> None:
        """Stream `url` into `dest` atomically (tmp file + rename)."""
        tmp = dest.with_name(dest.name + ".part")
        try:
            with self.http.get(url, stream=True, timeout=self.timeout) as resp:
                if resp.status_code != 200:
                    raise TransientError(f"{what}: HTTP {resp.status_code}")
                with open(tmp, "wb") as f:
                    for chunk in resp.iter_content(chunk_size=1 << 16):
                        f.write(chunk)
        except requests.exceptions.RequestException as exc:
            tmp.unlink(missing_ok=True)
            raise TransientError(f"{what}: download failed ({type(exc).__name__})") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, dest)
