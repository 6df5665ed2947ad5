"""Broker credentials: only from the environment or `.env`, never shown, never journaled.

`redact` and `secret_pattern` are how text is cleaned of them before it reaches a log, an exception
or the journal.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

SECRET_VARS = ("SMARTAPI_API_KEY", "SMARTAPI_CLIENT_CODE", "SMARTAPI_MPIN", "SMARTAPI_TOTP_SECRET")


def secret_pattern(secret: str) -> re.Pattern:
    """Where `secret` occurs in text. A short one (a 4-digit MPIN) only as a whole token, so the
    digits inside a price such as 64.96932214 are not mistaken for it; a long one anywhere."""
    if len(secret) >= 8:
        return re.compile(re.escape(secret))
    return re.compile(rf"(?<![0-9A-Za-z.]){re.escape(secret)}(?![0-9A-Za-z.])")


@dataclass(frozen=True)
class Secrets:
    """Broker credentials: only ever from the environment or `.env`. repr() never shows them."""
    api_key: str = field(default="", repr=False)
    client_code: str = field(default="", repr=False)
    mpin: str = field(default="", repr=False)
    totp_secret: str = field(default="", repr=False)

    @property
    def complete(self) -> bool:
        return all((self.api_key, self.client_code, self.mpin, self.totp_secret))

    def missing(self) -> list[str]:
        vals = (self.api_key, self.client_code, self.mpin, self.totp_secret)
        return [name for name, v in zip(SECRET_VARS, vals) if not v]

    def redact(self, text: str) -> str:
        for v in (self.api_key, self.client_code, self.mpin, self.totp_secret):
            if v:
                text = secret_pattern(v).sub("***", text)
        return text

    @classmethod
    def from_env(cls, env_file: str | os.PathLike | None = ".env",
                 environ: dict | None = None) -> "Secrets":
        env = dict(os.environ if environ is None else environ)
        if env_file and Path(env_file).is_file():
            from dotenv import dotenv_values
            for k, v in dotenv_values(env_file).items():
                env.setdefault(k, v or "")
        return cls(*(env.get(name, "").strip() for name in SECRET_VARS))
