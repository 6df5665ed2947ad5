"""Where notifications go: apprise services (one per configured URL) and the heartbeat URL.

apprise is optional (`pip install 'rustro[notify]'`): it is imported only when `[notify] urls` is
not empty, and a config that lists URLs without it installed is refused by name. A URL may carry a
token (a Telegram bot token, a webhook secret), so it is never shown: a target is labelled by its
scheme and host only, and `url_secrets` names the parts the log filter masks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
import re

from .config import ConfigError

log = logging.getLogger(__name__)
EXTRA = "pip install 'rustro[notify]'"


def _apprise(key: str):
    try:
        import apprise
    except ImportError:
        raise ConfigError(f"{key}: sending notifications needs apprise, which is not installed: "
                          f"{EXTRA} (or set {key} = [])") from None
    return apprise


def _host(url: str) -> str:
    """The host of a URL when it looks like one (a dotted name, an IP, localhost), else ''."""
    netloc = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    host = netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc
    return host if ("." in host or host == "localhost") else ""


def label(url: str) -> str:
    """scheme://host of a URL, without user, password, port, path or query: they may hold a token
    (a Telegram URL's 'host' is the bot's token, so a host that is no host name is not shown)."""
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"{scheme}://{_host(url) or '...'}"


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials: every piece between its separators of 6
    characters or more, except its host name (a Telegram token, a webhook key, a healthchecks
    UUID, a password)."""
    host = _host(url)
    rest = url.split("://", 1)[-1]
    pieces = re.split(r"[/@:?&=#]", rest)
    return [p for p in pieces if len(p) >= 6 and p != host]


def hide_urls(config: dict) -> dict:
    """The config as a dict (check-config prints it) with every notify URL shown as its label."""
    n = dict(config.get("notify") or {})
    if n:
        n["urls"] = [f"{label(u)} (rest hidden)" for u in n.get("urls", ())]
        if n.get("heartbeat_url"):
            n["heartbeat_url"] = f"{label(n['heartbeat_url'])} (rest hidden)"
        config = {**config, "notify": n}
    return config


def check_urls(urls: tuple[str, ...]) -> None:
    """Every URL must be one apprise understands (the error names its index and scheme only)."""
    apprise = _apprise("notify.urls")
    for i, url in enumerate(urls):
        if not url.strip():
            raise ConfigError(f"notify.urls[{i}]: must not be empty")
        if apprise.Apprise.instantiate(url) is None:
            raise ConfigError(f"notify.urls[{i}]: not a URL apprise understands ({label(url)}; "
                              f"see apprise's list of services)")


@dataclass
class SendResult:
    ok: bool
    error: str = ""


class AppriseTarget:
    """One apprise service, with the configured timeout for connecting and for each read."""

    def __init__(self, url: str, timeout_sec: float):
        apprise = _apprise("notify.urls")
        self.label = label(url)
        self.plugin = apprise.Apprise.instantiate(url)
        if self.plugin is None:
            raise ConfigError(f"notify.urls: not a URL apprise understands ({self.label})")
        self.plugin.socket_connect_timeout = timeout_sec  # the URL's cto= / rto= parameters
        self.plugin.socket_read_timeout = timeout_sec

    def send(self, title: str, body: str, level: str = "info") -> SendResult:
        try:
            ok = bool(self.plugin.notify(body=body, title=title, notify_type=level))
        except Exception as exc:  # a plugin bug must not kill the sender thread
            return SendResult(False, type(exc).__name__)
        return SendResult(ok, "" if ok else "the service refused it or did not answer in time")


class HeartbeatTarget:
    """A healthchecks-style URL: a plain GET or POST whose 2xx answer says 'still alive'."""

    def __init__(self, url: str, method: str, timeout_sec: float):
        import requests
        self.url, self.method, self.timeout = url, method.upper(), timeout_sec
        self.label = label(url)
        self._session = requests.Session()

    def send(self, title: str = "", body: str = "") -> SendResult:
        import requests
        try:
            r = self._session.request(self.method, self.url, timeout=(self.timeout, self.timeout),
                                      data=body.encode() if self.method == "POST" else None)
        except requests.RequestException as exc:
            return SendResult(False, type(exc).__name__)
        return SendResult(r.ok, "" if r.ok else f"HTTP {r.status_code}")
