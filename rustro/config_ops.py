"""Config sections for operating the bot: journal backups, `doctor`, notifications and logs
(rustro/backup.py, rustro/doctor*.py, rustro/notify*.py, rustro/logs.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .config_fields import nonneg, pos, rng


@dataclass(frozen=True)
class JournalConfig:
    backup_dir: str = ""  # "" = no backup at the close; relative = beside the journal
    backup_keep: int = nonneg(100_000, default=10)  # newest close backups kept; 0 = keep all


@dataclass(frozen=True)
class DoctorConfig:
    public_ip_url: str = "https://api.ipify.org"  # answers the caller's public IP as plain text
    timeout_sec: float = pos(60, default=5.0)
    min_free_mb: float = nonneg(1_000_000, default=200.0)  # free disk wanted beyond the journal reserve
    clock_warn_sec: float = pos(3600, default=1.5)
    clock_fail_sec: float = pos(3600, default=5.0)


# --- notifications and logs (rustro/notify*.py, rustro/logs.py) ----------------------------------
NOTIFY_HEARTBEAT_METHODS = ("GET", "POST")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class NotifyConfig:
    urls: tuple[str, ...] = ()          # apprise URLs; needs the notify extra when not empty
    day_start: bool = True              # per-kind switches (docs/notifications.md)
    fills: bool = True
    breakers: bool = True
    job_errors: bool = True
    reconciliation: bool = True
    restarts: bool = True
    stops: bool = True
    day_summary: bool = True
    max_per_minute: int = rng(1, 600, default=20)     # rate limit over every kind
    timeout_sec: float = rng(0.5, 60, default=5.0)    # connect and read timeout of one send
    queue_size: int = rng(1, 10_000, default=100)     # messages waiting for the sender thread
    heartbeat_url: str = ""             # "" = no heartbeat; else http(s) URL pinged while running
    heartbeat_minutes: float = rng(0.1, 60, default=5.0)
    heartbeat_method: str = "GET"       # GET | POST


@dataclass(frozen=True)
class LogConfig:
    format: str = "text"  # text | json (one JSON object a line)
    level: str = ""       # "" = bot.log_level; else DEBUG | INFO | WARNING | ERROR, any case
