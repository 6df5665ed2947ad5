"""Log lines for a terminal or journald: levels, one line per event, text or JSON, no secret.

`[log] format = "text"`: `2026-10-14T09:15:00+05:30 INFO rustro.engine: message`; `"json"`: one
object a line (`ts`, `level`, `logger`, `msg`, and `exc` for a traceback). A message that spans
lines (a traceback, a table) is folded into one line, so journald keeps one entry per event.
Under systemd (stderr is the journal: `JOURNAL_STREAM` names it) each line starts with its
syslog priority `<N>`, which journald turns into the entry's level (`journalctl -p warning`) and
strips; journald timestamps the entry itself, so the text line then omits the time.
`SecretMask` replaces every secret value (broker credentials from the environment, the token
parts of notification URLs) with *** in the message, its arguments and its traceback.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime

from .clock import IST
from .credentials import secret_pattern

NOISY = ("transitions", "apscheduler", "apprise", "urllib3")
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class SecretMask(logging.Filter):
    """Masks the given secret values wherever they occur in a record's text (whole token for a
    short value such as a 4-digit MPIN, anywhere for a long one)."""

    def __init__(self, values) -> None:
        super().__init__()
        self.patterns = [secret_pattern(v) for v in sorted({v for v in values if v}, key=len,
                                                           reverse=True)]

    def mask(self, text: str) -> str:
        for p in self.patterns:
            text = p.sub("***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.patterns:
            return True
        try:
            text = record.getMessage()
        except Exception:  # bad %-args: logging reports it at emit; never show them unmasked
            text = f"{record.msg} (log arguments did not format)"
        record.msg, record.args = self.mask(str(text)), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def _one_line(text: str) -> str:
    return " | ".join(part for part in text.splitlines() if part.strip()) if "\n" in text else text


def _extra(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    parts = [p for p in (record.exc_text, record.stack_info) if p]
    return "\n".join(parts)


class LineFormatter(logging.Formatter):
    def __init__(self, fmt: str = "text", journald: bool = False) -> None:
        super().__init__()
        self.fmt, self.journald = fmt, journald

    def format(self, record: logging.LogRecord) -> str:
        msg, extra = record.getMessage(), _extra(record, self)
        ts = datetime.fromtimestamp(record.created, IST).isoformat(timespec="milliseconds")
        if self.fmt == "json":
            obj = {"ts": ts, "level": record.levelname, "logger": record.name, "msg": msg}
            if extra:
                obj["exc"] = extra
            line = json.dumps(obj, ensure_ascii=False, default=str)
        else:
            text = _one_line(f"{msg}\n{extra}" if extra else msg)
            line = f"{record.levelname} {record.name}: {text}"
            if not self.journald:
                line = f"{ts} {line}"
        if self.journald:
            line = f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


def under_journald(stream) -> bool:
    """True when `stream` is the journal systemd connected (JOURNAL_STREAM is 'device:inode')."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def configure(level: str, fmt: str = "text", secrets=(), stream=None) -> logging.Handler:
    """Replace the root logger's handlers with one line-per-event handler on `stream` (stderr)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LineFormatter(fmt, under_journald(stream)))
    handler.addFilter(SecretMask(secrets))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def secret_values(cfg, secrets) -> list[str]:
    """What the log must never show: the broker credentials and notification URLs' tokens."""
    from .notify_targets import url_secrets
    values = [secrets.api_key, secrets.client_code, secrets.mpin, secrets.totp_secret]
    for url in (*cfg.notify.urls, cfg.notify.heartbeat_url):
        if url:
            values += url_secrets(url)
    return [v for v in values if v]


def setup(cfg, secrets) -> logging.Handler:
    """The run's logging from `[log]` (level "" = bot.log_level)."""
    return configure(cfg.log.level or cfg.bot.log_level, cfg.log.format, secret_values(cfg, secrets))
