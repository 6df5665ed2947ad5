"""Who may talk to the sandbox: credentials, TOTP login, JWT-like session tokens, their death.

Tokens are opaque to the client but shaped like Angel's (three base64url parts, HS512-signed);
the sandbox keeps every live token in memory, so a restarted sandbox forgets them and the client
meets AG8001 and logs in again, as it would after Angel's nightly expiry.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as _secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import pyotp

from ..clock import IST, Clock
from ..credentials import SECRET_VARS, Secrets

# Fixed credentials used when the environment has none: safe to print, useless anywhere else.
SANDBOX_SECRETS = Secrets(api_key="sandbox-api-key", client_code="S1234567", mpin="sbx1",
                          totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
EXPIRY_TIME = time(5, 0)  # a token dies at the next 05:00 IST (Angel's old nightly expiry)


class AuthFailure(Exception):
    """A refused login or token; `code` is Angel's, `gateway` says which dialect carries it."""

    def __init__(self, code: str, message: str, gateway: bool):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.gateway = code, message, gateway


def choose_credentials(env: Secrets) -> tuple[Secrets, bool]:
    """(the credentials to accept, True if they came from the environment)."""
    return (env, True) if env.complete else (SANDBOX_SECRETS, False)


def export_lines(s: Secrets) -> list[str]:
    """Shell lines that make a bot use `s` (only ever called with the sandbox defaults)."""
    vals = (s.api_key, s.client_code, s.mpin, s.totp_secret)
    return [f"export {name}={value}" for name, value in zip(SECRET_VARS, vals)]


def check_login(creds: Secrets, body: dict, totp_window: int = 1) -> None:
    """Raise AuthFailure unless `body` carries the right client code, MPIN and a current TOTP."""
    client, mpin, code = (str(body.get(k) or "") for k in ("clientcode", "password", "totp"))
    if not hmac.compare_digest(client, creds.client_code) or not hmac.compare_digest(mpin, creds.mpin):
        raise AuthFailure("AB1007", "Login Id or password is invalid", gateway=False)
    if not (code.isdigit() and len(code) == 6
            and pyotp.TOTP(creds.totp_secret).verify(code, valid_window=totp_window)):
        raise AuthFailure("AB1050", "Invalid totp", gateway=False)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class _Token:
    client: str
    expires: datetime
    calls: int = 0
    alive: bool = True


@dataclass
class TokenStore:
    """Issues and checks session tokens on the sandbox clock.

    `die_after` > 0 makes each JWT invalid after that many authenticated calls (the ag8001_after
    fault); the refresh token stays good, so the client can recover with generateTokens.
    """
    clock: Clock
    die_after: int = 0
    _key: bytes = field(default_factory=lambda: _secrets.token_bytes(32), repr=False)
    _jwts: dict[str, _Token] = field(default_factory=dict, repr=False)
    _refresh: dict[str, _Token] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    expired_by_fault: int = 0

    def _expiry(self) -> datetime:
        now = self.clock.now().astimezone(IST)
        day = now.date() + timedelta(days=1 if now.time() >= EXPIRY_TIME else 0)
        return datetime.combine(day, EXPIRY_TIME, tzinfo=IST)

    def _mint(self, client: str, kind: str, expires: datetime) -> str:
        header = _b64(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
        payload = _b64(json.dumps({"username": client, "token": kind, "jti": _secrets.token_hex(8),
                                   "iat": int(self.clock.now().timestamp()),
                                   "exp": int(expires.timestamp())}).encode())
        sig = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha512).digest()
        return f"{header}.{payload}.{_b64(sig)}"

    def issue(self, client: str, refresh_token: str | None = None) -> dict[str, str]:
        """A new jwt and feed token (and a refresh token unless one is being reused)."""
        with self._lock:
            expires = self._expiry()
            jwt = self._mint(client, "access", expires)
            self._jwts[jwt] = _Token(client, expires)
            if refresh_token is None:
                refresh_token = self._mint(client, "refresh", expires)
                self._refresh[refresh_token] = _Token(client, expires)
            return {"jwtToken": jwt, "refreshToken": refresh_token,
                    "feedToken": self._mint(client, "feed", expires)}

    def refresh(self, refresh_token: str) -> dict[str, str]:
        with self._lock:
            tok = self._refresh.get(refresh_token)
            ok = tok is not None and tok.alive and self.clock.now() < tok.expires
        if not ok:
            raise AuthFailure("AB8050", "Invalid refresh token", gateway=False)
        return self.issue(tok.client, refresh_token)

    def authenticate(self, authorization: str) -> str:
        """The client code behind an `Authorization: Bearer ...` header; counts the call."""
        if not authorization.strip():
            raise AuthFailure("AG8003", "Token missing", gateway=True)
        jwt = authorization.strip().removeprefix("Bearer").strip()
        with self._lock:
            tok = self._jwts.get(jwt)
            if tok is None or not tok.alive or self.clock.now() >= tok.expires:
                raise AuthFailure("AG8001", "Invalid Token", gateway=True)
            if self.die_after and tok.calls >= self.die_after:
                tok.alive = False
                self.expired_by_fault += 1
                raise AuthFailure("AG8001", "Invalid Token", gateway=True)
            tok.calls += 1
            return tok.client

    def check(self, authorization: str) -> str:
        """The client code behind a live JWT, without counting a call (the WebSocket handshake)."""
        jwt = authorization.strip().removeprefix("Bearer").strip()
        with self._lock:
            tok = self._jwts.get(jwt)
            if tok is None or not tok.alive or self.clock.now() >= tok.expires:
                raise AuthFailure("AG8001", "Invalid Token", gateway=True)
            return tok.client

    def logout(self, client: str) -> None:
        with self._lock:
            for tok in (*self._jwts.values(), *self._refresh.values()):
                if tok.client == client:
                    tok.alive = False
