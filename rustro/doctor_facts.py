"""The I/O half of `rustro doctor`: read the config, the environment, file modes, the journal, the
disk, the broker's HTTP `Date` header and this machine's public IP, then hand the facts to the pure
checks of `rustro.doctor`. A network failure is a fact (a WARN line), never an exception.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import sqlite3
import time as _time
from datetime import date, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import requests

from . import doctor as d
from .calendar import COVERAGE_DAYS, TradingCalendar
from .clock import WallClock
from .config import Config, ConfigError, load_config
from .credentials import SECRET_VARS, Secrets
from .journal import Journal, JournalError
from .journal_open import SCHEMA_VERSION, _inspect, _real, reserve_path

MB = 1024 * 1024


def intended_mode(flag: str | None, cfg: Config, secrets: Secrets) -> str:
    """The mode `run` would choose (app.choose_mode), without refusing anything."""
    mode = flag or cfg.bot.mode
    if mode == "auto":
        return "paper" if secrets.complete else "sim"
    return mode


def diagnose(config_path: str, journal_arg: str | None = None, mode_flag: str | None = None,
             env_file: str = ".env", environ: dict | None = None, today: date | None = None
             ) -> list[d.Finding]:
    """Every doctor line, in order. Only the config and credential lines when the config is bad."""
    secrets = Secrets.from_env(env_file, environ)
    try:
        cfg, error = load_config(config_path), None
    except ConfigError as exc:
        cfg, error = Config(), f"config error: {exc}"
    mode = intended_mode(mode_flag, cfg, secrets)
    present = tuple(n for n in SECRET_VARS if n not in secrets.missing())
    findings = [d.check_config(config_path, error, mode),
                d.check_credentials(present, tuple(secrets.missing()), mode),
                d.check_secret_file(secret_file(".env", Path(env_file)))]
    if error:
        return findings
    journal_path = Path(journal_arg or cfg.bot.journal)
    token = Path(cfg.broker.token_cache)
    token = token if token.is_absolute() else journal_path.parent / token  # as build_angel does
    today = today or WallClock().now().date()
    findings += [d.check_secret_file(secret_file("token cache", token)),
                 d.check_journal(journal_facts(journal_path)),
                 d.check_disk(disk_facts(journal_path, cfg, mode)),
                 d.check_holidays(calendar_facts(cfg, today), mode),
                 d.check_clock(clock_facts(cfg), mode),
                 d.check_public_ip(ip_facts(cfg), mode)]
    return findings


def secret_file(label: str, path: Path) -> d.SecretFile:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    return d.SecretFile(label, str(path), mode)


def journal_facts(path: Path) -> d.JournalFacts:
    """Read only, never locked: safe while the bot runs."""
    try:
        kind, version = _inspect(path, _real(path))
        if kind == "new":
            return d.JournalFacts(str(path), "missing")
        if version < SCHEMA_VERSION:
            return d.JournalFacts(str(path), "old", f"schema {version} < {SCHEMA_VERSION}: the next "
                                  f"run migrates it")
        with Journal.open_readonly(path) as j:
            bad = j.unreadable_events()
            count, last_day = j.query("SELECT COUNT(*), MAX(trading_day) FROM events")[0]
            state = j.day_state(date.fromisoformat(last_day)) if last_day else None
    except (JournalError, sqlite3.Error, ValueError) as exc:
        return d.JournalFacts(str(path), "bad", str(exc))
    if bad:
        seq, kind, why = bad[0]
        return d.JournalFacts(str(path), "bad", f"journal {path}: event #{seq} ({kind}) is unreadable: "
                              f"{why}; run `rustro journal verify`, restore a backup or move it aside")
    last = f", last day {last_day} ({state})" if last_day else ""
    return d.JournalFacts(str(path), "ok", f"integrity ok, {count} events{last}")


def disk_facts(journal_path: Path, cfg: Config, mode: str) -> d.DiskFacts:
    where = Path(os.path.abspath(journal_path)).parent
    while not where.is_dir():  # a journal directory still to be made: the disk it would be on
        where = where.parent
    try:
        held = reserve_path(journal_path).stat().st_size / MB
    except OSError:
        held = 0.0
    reserve = 0.0 if mode == "sim" else cfg.bot.journal_reserve_mb  # as app.run_day
    return d.DiskFacts(str(where), shutil.disk_usage(where).free / MB, reserve, round(held, 1),
                       cfg.doctor.min_free_mb)


def calendar_facts(cfg: Config, today: date) -> d.CalendarFacts:
    cal = TradingCalendar.from_config(cfg)
    return d.CalendarFacts(today, cal.covers(today),
                           tuple(cal.unknown_years(today, today + timedelta(days=COVERAGE_DAYS))),
                           COVERAGE_DAYS, cfg.calendar.allow_unknown_year)


def _why(exc: Exception, timeout: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect (offline, DNS failure or refused)"
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def clock_facts(cfg: Config) -> d.ClockFacts:
    """local - broker, from the HTTP `Date` header of the broker's base URL. `Date` is truncated to
    the second, so the broker's time is taken as Date + 0.5 s, compared with the request's midpoint."""
    url, timeout = cfg.broker.base_url, cfg.doctor.timeout_sec
    limits = {"warn_sec": cfg.doctor.clock_warn_sec, "fail_sec": cfg.doctor.clock_fail_sec}
    try:
        sent = _time.time()
        reply = requests.head(url, timeout=timeout, allow_redirects=False)
        received = _time.time()
        header = reply.headers.get("Date")
        if not header:
            return d.ClockFacts(url, None, f"no Date header in its HTTP {reply.status_code} reply", **limits)
        broker = parsedate_to_datetime(header).timestamp() + 0.5
    except requests.RequestException as exc:
        return d.ClockFacts(url, None, _why(exc, timeout), **limits)
    except (TypeError, ValueError, IndexError):
        return d.ClockFacts(url, None, f"unreadable Date header {header!r}", **limits)
    return d.ClockFacts(url, round((sent + received) / 2 - broker, 2), **limits)


def ip_facts(cfg: Config) -> d.IpFacts:
    """The address `doctor.public_ip_url` says this machine comes from, as the broker will see it."""
    url, timeout = cfg.doctor.public_ip_url, cfg.doctor.timeout_sec
    static = str(ipaddress.ip_address(cfg.broker.static_ip)) if cfg.broker.static_ip else ""
    try:
        reply = requests.get(url, timeout=timeout)
        if reply.status_code != 200:
            return d.IpFacts(url, None, static, f"HTTP {reply.status_code}")
        text = reply.text.strip()
        return d.IpFacts(url, str(ipaddress.ip_address(text)), static)
    except requests.RequestException as exc:
        return d.IpFacts(url, None, static, _why(exc, timeout))
    except ValueError:
        return d.IpFacts(url, None, static, f"the reply is not an IP address: {text[:40]!r}")
