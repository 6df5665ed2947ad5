"""Validation that runs after a config is parsed: rules spanning several keys (session order,
threshold pairs, order ladders) and checks that a value is one of a fixed set of choices.

`rustro.config.parse_config` calls `cross_checks`; this module imports from `rustro.config`,
which imports this one only inside `parse_config`, so there is no import cycle."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from .config import (LADDER_MAX_BACKOFF_SEC, LADDER_MAX_PCT, LADDER_MAX_STEPS, LOG_LEVELS, MODES,
                     SIM_MIN_SPEED, STRIKE_STEPS, UNDERLYING_NAMES, UNKNOWN_POSITION_POLICIES, Config,
                     ConfigError)
from .config import LOG_FORMATS, NOTIFY_HEARTBEAT_METHODS


def _check_session(cfg: Config) -> None:
    s = cfg.session
    order = ["pre_open", "market_open", "entry_start", "entry_end", "eod_exit", "market_close"]
    for a, b in zip(order, order[1:]):
        if not getattr(s, a) < getattr(s, b):
            raise ConfigError(f"session.{b}: must be later than session.{a} "
                              f"({getattr(s, a):%H:%M}), got {getattr(s, b):%H:%M}")
    # The strategy trades on session-aligned hourly bars: the first one (market_open + 1 h, used
    # bar_ready_grace_sec after its close) must be ready before entries end, else no bar closes in
    # the entry window (and a session under an hour has no hourly bar at all).
    day = date(2000, 1, 3)
    grace = timedelta(seconds=s.bar_ready_grace_sec)
    first_bar = datetime.combine(day, s.market_open) + timedelta(hours=1) + grace
    if not first_bar < datetime.combine(day, s.entry_end):
        raise ConfigError(f"session.entry_end: must be later than the first hourly bar's close "
                          f"(session.market_open {s.market_open:%H:%M} + 1 h + session.bar_ready_grace_sec "
                          f"{s.bar_ready_grace_sec} s), got {s.entry_end:%H:%M}")
    if datetime.combine(day, s.market_close) + grace >= datetime.combine(day + timedelta(days=1), time(0)):
        raise ConfigError(f"session.market_close: plus session.bar_ready_grace_sec "
                          f"({s.bar_ready_grace_sec} s) must fall before midnight, "
                          f"got {s.market_close:%H:%M}")


def _check_files_and_urls(cfg: Config) -> None:
    if not cfg.bot.journal.strip():
        raise ConfigError(f"bot.journal: must name a file, got {cfg.bot.journal!r}")
    if not cfg.broker.token_cache.strip():
        raise ConfigError(f"broker.token_cache: must name a file, got {cfg.broker.token_cache!r}")
    for key in ("base_url", "instrument_master_url"):
        url = getattr(cfg.broker, key)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"broker.{key}: must start with http:// or https://, got {url!r}")


def _check_choices(cfg: Config) -> None:
    if cfg.sim.speed and cfg.sim.speed < SIM_MIN_SPEED:
        raise ConfigError(f"sim.speed: must be 0 (as fast as possible) or at least {SIM_MIN_SPEED:g}, "
                          f"got {cfg.sim.speed}")
    if cfg.bot.mode not in MODES:
        raise ConfigError(f"bot.mode: must be one of {', '.join(MODES)}, got {cfg.bot.mode!r}")
    level = cfg.bot.log_level
    if not (level.isascii() and level.upper() in LOG_LEVELS):
        raise ConfigError(f"bot.log_level: must be one of {', '.join(LOG_LEVELS)} (any case), got {level!r}")
    if cfg.reconcile.unknown_positions not in UNKNOWN_POSITION_POLICIES:
        raise ConfigError(f"reconcile.unknown_positions: must be one of "
                          f"{', '.join(UNKNOWN_POSITION_POLICIES)}, got {cfg.reconcile.unknown_positions!r}")


def _check_underlyings(cfg: Config) -> None:
    seen = set()
    for i, u in enumerate(cfg.underlyings):
        if u.name not in UNDERLYING_NAMES:
            raise ConfigError(f"underlyings[{i}].name: must be one of {', '.join(UNDERLYING_NAMES)}, "
                              f"got {u.name!r}")
        if u.name in seen:
            raise ConfigError(f"underlyings[{i}].name: {u.name} is listed twice")
        seen.add(u.name)
        listed = STRIKE_STEPS[u.name]
        if u.strike_step % listed:
            raise ConfigError(f"underlyings[{i}].strike_step: must be a multiple of {u.name}'s listed "
                              f"strike interval {listed}, got {u.strike_step}")


def _check_threshold_pairs(cfg: Config) -> None:
    f = cfg.filters
    if not f.rsi_oversold < f.rsi_overbought:
        raise ConfigError(f"filters.rsi_oversold: must be below filters.rsi_overbought "
                          f"({f.rsi_overbought}), got {f.rsi_oversold}")
    r = cfg.risk
    if not r.vix_resume < r.vix_spike:
        raise ConfigError(f"risk.vix_resume: must be below risk.vix_spike ({r.vix_spike}), "
                          f"got {r.vix_resume}")
    z = cfg.sizing
    if not z.vix_low < z.vix_mid < z.vix_high:
        raise ConfigError(f"sizing.vix_mid: must lie between sizing.vix_low and sizing.vix_high, "
                          f"got {z.vix_low}, {z.vix_mid}, {z.vix_high}")
    if not z.dte_mid < z.dte_full:
        raise ConfigError(f"sizing.dte_mid: must be below sizing.dte_full ({z.dte_full}), got {z.dte_mid}")


def _check_order_ladder(cfg: Config) -> None:
    o = cfg.orders
    if not 1 <= len(o.ladder_pct) <= LADDER_MAX_STEPS:
        raise ConfigError(f"orders.ladder_pct: must have 1 to {LADDER_MAX_STEPS} steps, "
                          f"got {len(o.ladder_pct)}")
    if len(o.ladder_pct) != len(o.ladder_backoff_sec):
        raise ConfigError(f"orders.ladder_backoff_sec: must have one entry per orders.ladder_pct step "
                          f"({len(o.ladder_pct)}), got {len(o.ladder_backoff_sec)}")
    if any(p <= 0 for p in o.ladder_pct) or list(o.ladder_pct) != sorted(o.ladder_pct):
        raise ConfigError(f"orders.ladder_pct: must be positive and increasing, got {list(o.ladder_pct)}")
    if any(p > LADDER_MAX_PCT for p in o.ladder_pct):
        raise ConfigError(f"orders.ladder_pct: each step must be <= {LADDER_MAX_PCT:g}, "
                          f"got {list(o.ladder_pct)}")
    if any(b < 0 for b in o.ladder_backoff_sec):
        raise ConfigError(f"orders.ladder_backoff_sec: must be >= 0, got {list(o.ladder_backoff_sec)}")
    if any(b > LADDER_MAX_BACKOFF_SEC for b in o.ladder_backoff_sec):
        raise ConfigError(f"orders.ladder_backoff_sec: each wait must be <= {LADDER_MAX_BACKOFF_SEC:g}, "
                          f"got {list(o.ladder_backoff_sec)}")


def _check_operations(cfg: Config) -> None:
    """[broker] static_ip, [journal] backups and [doctor]."""
    import ipaddress
    ip = cfg.broker.static_ip
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ConfigError(f"broker.static_ip: must be an IPv4 or IPv6 address or \"\", got {ip!r}") from None
    if cfg.journal.backup_dir and not cfg.journal.backup_dir.strip():
        raise ConfigError(f"journal.backup_dir: must name a directory or be \"\", got {cfg.journal.backup_dir!r}")
    d = cfg.doctor
    if not d.public_ip_url.startswith(("http://", "https://")):
        raise ConfigError(f"doctor.public_ip_url: must start with http:// or https://, got {d.public_ip_url!r}")
    if not d.clock_warn_sec < d.clock_fail_sec:
        raise ConfigError(f"doctor.clock_warn_sec: must be below doctor.clock_fail_sec "
                          f"({d.clock_fail_sec}), got {d.clock_warn_sec}")


def _check_notify_and_log(cfg: Config) -> None:
    """[notify] and [log]. A notify URL is never echoed back: it may hold a token."""
    n = cfg.notify
    if n.heartbeat_method.upper() not in NOTIFY_HEARTBEAT_METHODS:
        raise ConfigError(f"notify.heartbeat_method: must be one of {', '.join(NOTIFY_HEARTBEAT_METHODS)}, "
                          f"got {n.heartbeat_method!r}")
    if n.heartbeat_url and not n.heartbeat_url.startswith(("http://", "https://")):
        raise ConfigError("notify.heartbeat_url: must start with http:// or https:// (or be \"\" for none)")
    if n.urls:
        from .notify_targets import check_urls  # imports apprise only when URLs are configured
        check_urls(n.urls)
    if cfg.log.format not in LOG_FORMATS:
        raise ConfigError(f"log.format: must be one of {', '.join(LOG_FORMATS)}, got {cfg.log.format!r}")
    level = cfg.log.level
    if level and not (level.isascii() and level.upper() in LOG_LEVELS):
        raise ConfigError(f"log.level: must be \"\" (= bot.log_level) or one of {', '.join(LOG_LEVELS)} "
                          f"(any case), got {level!r}")


# In this order: the first rule a config breaks is the one its error names.
_CHECKS = (_check_session, _check_files_and_urls, _check_choices, _check_underlyings,
           _check_threshold_pairs, _check_order_ladder, _check_operations,
           _check_notify_and_log)


def _check_store(cfg: Config) -> None:
    """[store] path: a file name (relative: beside the journal), never the journal itself."""
    path = cfg.store.path
    if path and (not path.strip() or "\0" in path or path.rstrip("/\\") != path
                 or path.split("/")[-1] in (".", "..")):
        raise ConfigError(f"store.path: must name a file (or be \"\" for beside the journal), "
                          f"got {path!r}")
    if path and path.split("/")[-1] == cfg.bot.journal.split("/")[-1]:
        raise ConfigError(f"store.path: must not be the journal ({cfg.bot.journal!r}), got {path!r}")


_CHECKS = _CHECKS + (_check_store,)


def _check_ws(cfg: Config) -> None:
    for key in ("market_url", "order_url"):
        url = getattr(cfg.ws, key)
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"ws.{key}: must start with ws:// or wss://, got {url!r}")
    if cfg.ws.max_tick_age_sec > cfg.data.stale_exit_sec:
        raise ConfigError(f"ws.max_tick_age_sec: must be at most data.stale_exit_sec "
                          f"({cfg.data.stale_exit_sec}), got {cfg.ws.max_tick_age_sec:g}")


_CHECKS = _CHECKS + (_check_ws,)


def cross_checks(cfg: Config) -> None:
    """Raise ConfigError for the first rule `cfg` breaks; return None if it breaks none."""
    for check in _CHECKS:
        check(cfg)
