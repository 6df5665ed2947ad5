"""Configuration: config.toml into frozen dataclasses, validated, every error naming its key.

The dataclass defaults below are the spec's numbers; config.toml repeats them with comments and a
test keeps the two equal. Secrets never live here: see `rustro.credentials`.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from .config_fields import MAX_INT64, ConfigError, frac, nonneg, pct, pos, rng  # noqa: F401
from .config_ops import (LOG_FORMATS, NOTIFY_HEARTBEAT_METHODS, DoctorConfig,  # noqa: F401
                         JournalConfig, LogConfig, NotifyConfig)

UNKNOWN_POSITION_POLICIES = ("halt", "adopt", "flatten")


@dataclass(frozen=True)
class BotConfig:
    mode: str = "auto"  # auto | sim | paper | live
    capital: float = pos(1e10, default=1_000_000.0)  # up to Rs 1000 crore
    journal: str = "journal.sqlite"
    log_level: str = "INFO"  # DEBUG | INFO | WARNING | ERROR, any case; stored upper case
    journal_reserve_mb: float = rng(0, 1024, default=16.0)  # freed when the disk fills mid-day


@dataclass(frozen=True)
class SessionConfig:
    pre_open: time = time(9, 0)
    market_open: time = time(9, 15)
    entry_start: time = time(10, 0)
    entry_end: time = time(15, 0)
    eod_exit: time = time(15, 20)
    market_close: time = time(15, 30)
    monitor_interval_sec: int = pos(300, default=5)
    bar_ready_grace_sec: int = nonneg(300, default=5)
    misfire_grace_sec: int = pos(3600, default=30)


@dataclass(frozen=True)
class CalendarConfig:
    extra_holidays: tuple[date, ...] = ()
    extra_trading_days: tuple[date, ...] = ()
    allow_unknown_year: bool = False  # run --live on a day of a year without holiday data


@dataclass(frozen=True)
class UnderlyingConfig:
    name: str = "NIFTY"
    spot_name: str = "Nifty 50"
    strike_step: int = pos(1000, default=50)  # and a multiple of the index's listed step (STRIKE_STEPS)
    freeze_qty: int = pos(100_000, default=1800)


@dataclass(frozen=True)
class DataConfig:
    indicator_history_bars: int = pos(1000, default=200)
    daily_history_days: int = pos(2000, default=365)  # Angel: at most 2000 days of daily candles
    data_gap_threshold_sec: int = pos(3600, default=60)
    stale_exit_sec: int = pos(3600, default=180)


@dataclass(frozen=True)
class SignalConfig:
    daily_adx_period: int = pos(100, default=14)
    daily_adx_threshold: float = rng(0, 100, default=20.0)
    hourly_adx_period: int = pos(100, default=14)
    hourly_adx_threshold: float = rng(0, 100, default=25.0)


@dataclass(frozen=True)
class FiltersConfig:
    rsi_period: int = pos(100, default=14)
    rsi_overbought: float = rng(0, 100, default=70.0)
    rsi_oversold: float = rng(0, 100, default=30.0)
    ema_period: int = pos(500, default=20)
    use_vwap_filter: bool = True
    vix_entry_max: float = pos(100, default=25.0)
    max_spread_pct: float = pct(default=2.0)
    funds_buffer: float = rng(1, 10, default=1.2)


@dataclass(frozen=True)
class OptionsConfig:
    min_dte: int = nonneg(30, default=1)
    strike_offset_steps: int = nonneg(10, default=0)


@dataclass(frozen=True)
class SizingConfig:
    base_position_size_pct: float = pct(default=10.0)
    max_lots_per_trade: int = pos(1000, default=10)
    vix_low: float = pos(100, default=12.0)
    vix_low_mult: float = pos(5, default=1.25)
    vix_mid: float = pos(100, default=20.0)
    vix_mid_mult: float = pos(5, default=1.00)
    vix_high: float = pos(100, default=30.0)
    vix_high_mult: float = pos(5, default=0.75)
    vix_extreme_mult: float = pos(5, default=0.50)
    dte_full: int = pos(30, default=5)
    dte_mid: int = pos(30, default=2)
    dte_full_mult: float = pos(5, default=1.00)
    dte_mid_mult: float = pos(5, default=0.75)
    dte_low_mult: float = pos(5, default=0.50)


@dataclass(frozen=True)
class RiskConfig:
    max_positions: int = pos(10, default=3)
    max_trades_per_day: int = pos(100, default=4)
    daily_loss_limit_pct: float = pct(default=2.0)
    consecutive_loss_limit: int = pos(100, default=3)
    reentry_cooldown_min: int = nonneg(1440, default=30)
    vix_spike: float = pos(100, default=30.0)
    vix_resume: float = pos(100, default=22.0)


@dataclass(frozen=True)
class ExitsConfig:
    stop_loss_pct: float = frac(default=0.20)
    trail_activate_pct: float = frac(default=0.02)
    trail_gap_pct: float = frac(default=0.015)
    target_pct: float = nonneg(10, default=0.0)
    flatten_on_shutdown: bool = True
    shutdown_flatten_sec: float = rng(0, 110, default=60.0)


LADDER_MAX_STEPS, LADDER_MAX_PCT, LADDER_MAX_BACKOFF_SEC = 10, 50.0, 300.0


@dataclass(frozen=True)
class OrdersConfig:
    fill_timeout_sec: float = pos(300, default=5.0)
    ladder_pct: tuple[float, ...] = (0.25, 0.50, 0.75, 1.00)  # 1..10 steps, each in (0, 50]
    ladder_backoff_sec: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0)  # each in [0, 300]
    exit_last_resort_pct: float = pct(default=5.0)
    order_tag_len: int = rng(8, 20, default=20)
    unknown_grace_sec: float = rng(5, 3600, default=60.0)
    reconcile_interval_sec: float = rng(30, 3600, default=300.0)


@dataclass(frozen=True)
class CostsConfig:
    brokerage_per_order: float = nonneg(1000, default=20.0)
    stt_sell_pct: float = nonneg(5, default=0.1)
    exchange_txn_pct: float = nonneg(5, default=0.03503)
    sebi_per_crore: float = nonneg(10_000, default=10.0)
    stamp_duty_buy_pct: float = nonneg(5, default=0.003)
    gst_pct: float = nonneg(100, default=18.0)


@dataclass(frozen=True)
class BrokerConfig:
    base_url: str = "https://apiconnect.angelone.in"
    instrument_master_url: str = (
        "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json")
    timeout_sec: float = pos(120, default=10.0)
    quote_per_sec: int = pos(50, default=1)
    token_cache: str = ".token_cache.json"
    static_ip: str = ""  # the public IP registered with Angel One for API orders (SEBI); "" = not set


@dataclass(frozen=True)
class ReconcileConfig:
    unknown_positions: str = "adopt"  # halt | adopt | flatten: a broker position the journal lacks


@dataclass(frozen=True)
class PaperConfig:
    db: str = ""  # "" = beside the journal, <journal>.paper.sqlite
    latency_ms: int = nonneg(60_000, default=200)
    partial_fill_prob: float = frac(default=0.0)
    allow_short: bool = True  # like Angel: a SELL beyond the long is accepted if margin allows
    short_margin_per_unit: float = nonneg(1_000_000, default=2000.0)  # rupees per unit short; 0 = none
    book_lag_sec: float = nonneg(600, default=0.0)  # books show an order this long after placement


SIM_MIN_SPEED = 1.0


@dataclass(frozen=True)
class StoreConfig:
    """The market-data store (rustro/market/store.py): what paper and live days record."""
    record: bool = True   # paper and live store every quote, candle, VIX and master they receive
    path: str = ""        # "" = beside the journal, <journal>.market.sqlite


@dataclass(frozen=True)
class SimConfig:
    seed: int = rng(0, MAX_INT64, default=42)
    speed: float = nonneg(100_000, default=0.0)  # 0 = as fast as the CPU allows; N (>= 1) = N x wall time


@dataclass(frozen=True)
class WsConfig:
    """[ws]: ticks and order updates over Angel's WebSockets (the optional `ws` extra). REST
    polling stays the fallback whenever a socket is off, silent or down."""
    enabled: bool = False
    market_url: str = "wss://smartapisocket.angelone.in/smart-stream"
    order_url: str = "wss://tns.angelone.in/smart-order-update"
    silence_sec: float = pos(600, default=20.0)        # no tick this long in market hours: socket down
    max_tick_age_sec: float = pos(600, default=5.0)    # an older tick is not served: REST instead
    order_poll_sec: float = pos(3600, default=30.0)    # safety REST poll of a working order anyway
    ping_sec: float = pos(60, default=10.0)            # heartbeat, wall seconds
    reconnect_max_sec: float = pos(300, default=30.0)  # longest backoff between reconnects, wall
    wake: bool = True                                  # react to a tick or order update at once


@dataclass(frozen=True)
class Config:
    bot: BotConfig = BotConfig()
    session: SessionConfig = SessionConfig()
    calendar: CalendarConfig = CalendarConfig()
    underlyings: tuple[UnderlyingConfig, ...] = (UnderlyingConfig(),)
    data: DataConfig = DataConfig()
    signal: SignalConfig = SignalConfig()
    filters: FiltersConfig = FiltersConfig()
    options: OptionsConfig = OptionsConfig()
    sizing: SizingConfig = SizingConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    risk: RiskConfig = RiskConfig()
    exits: ExitsConfig = ExitsConfig()
    orders: OrdersConfig = OrdersConfig()
    costs: CostsConfig = CostsConfig()
    broker: BrokerConfig = BrokerConfig()
    paper: PaperConfig = PaperConfig()
    sim: SimConfig = SimConfig()
    journal: JournalConfig = JournalConfig()
    doctor: DoctorConfig = DoctorConfig()
    notify: NotifyConfig = NotifyConfig()
    log: LogConfig = LogConfig()
    store: StoreConfig = StoreConfig()
    ws: WsConfig = WsConfig()

    def underlying(self, name: str) -> UnderlyingConfig:
        for u in self.underlyings:
            if u.name == name:
                return u
        raise KeyError(name)


MODES = ("auto", "sim", "paper", "live")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The exchange's strike interval per index; [[underlyings]] strike_step must be a multiple of it.
STRIKE_STEPS = {"NIFTY": 50, "BANKNIFTY": 100, "FINNIFTY": 50}
UNDERLYING_NAMES = tuple(STRIKE_STEPS)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_HH_MM = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_YYYY_MM_DD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _key(name: str) -> str:
    """A key as TOML spells it: bare if it can be, else quoted (so a message stays one line)."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _convert(path: str, value: Any, typ: Any) -> Any:
    origin = get_origin(typ)
    if origin is tuple:
        item = get_args(typ)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: must be a list, got {value!r}")
        return tuple(_convert(f"{path}[{i}]", v, item) for i, v in enumerate(value))
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: must be a table, got {value!r}")
        return _build(path, typ, value)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: must be true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: must be a whole number, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            number = math.inf
        if not math.isfinite(number):  # TOML allows nan/inf; NaN passes every range check
            raise ConfigError(f"{path}: must be a finite number, got {value!r}")
        return number
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: must be a string, got {value!r}")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigError(f"{path}: must not contain control characters, got {value!r}")
        return value
    if typ is time:
        if isinstance(value, time):
            return value
        m = _HH_MM.fullmatch(value) if isinstance(value, str) else None
        try:
            return time(int(m.group(1)), int(m.group(2)))
        except (AttributeError, ValueError):
            raise ConfigError(f"{path}: must be a time HH:MM, got {value!r}") from None
    if typ is date:
        if isinstance(value, date) and not isinstance(value, datetime):  # a datetime never == a date
            return value
        try:
            if not (isinstance(value, str) and _YYYY_MM_DD.fullmatch(value)):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{path}: must be a date YYYY-MM-DD, got {value!r}") from None
    raise ConfigError(f"{path}: unsupported type {typ}")  # pragma: no cover


def _check_range(path: str, value: Any, meta: dict) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value <= lo if meta["lo_open"] else value < lo):
        raise ConfigError(f"{path}: must be {'>' if meta['lo_open'] else '>='} {lo}, got {value}")
    if hi is not None and (value >= hi if meta["hi_open"] else value > hi):
        bound = f"{hi:g}" if isinstance(hi, float) else hi  # 1e+10, not 10000000000.0
        raise ConfigError(f"{path}: must be {'<' if meta['hi_open'] else '<='} {bound}, got {value}")


def _build(prefix: str, cls: type, raw: dict) -> Any:
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"{prefix + '.' if prefix else ''}{_key(key)}: unknown key{hint}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        path = f"{prefix}.{f.name}" if prefix else f.name
        typ = hints[f.name]
        if prefix == "" and f.name == "underlyings":
            if not isinstance(raw[f.name], list) or not raw[f.name]:
                raise ConfigError("underlyings: must be a non-empty list of [[underlyings]] tables")
            value = tuple(_convert(f"underlyings[{i}]", v, UnderlyingConfig)
                          for i, v in enumerate(raw[f.name]))
        else:
            value = _convert(path, raw[f.name], typ)
        if f.metadata:
            _check_range(path, value, f.metadata)
        kwargs[f.name] = value
    return cls(**kwargs)


def parse_config(raw: dict) -> Config:
    from .config_checks import cross_checks  # here, not at the top: config_checks imports config
    cfg = _build("", Config, raw)
    cross_checks(cfg)
    if cfg.bot.log_level != cfg.bot.log_level.upper():  # "debug" is accepted, stored as "DEBUG"
        cfg = dataclasses.replace(cfg, bot=dataclasses.replace(cfg.bot, log_level=cfg.bot.log_level.upper()))
    return cfg


def load_config(path: str | os.PathLike) -> Config:
    """Read, parse and validate a config file. Every failure is a one-line ConfigError naming the
    file (unreadable, not UTF-8, not TOML) or the key; nothing is written."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p}: is a directory, not a file (pass --config PATH)")
    if not p.is_file():
        raise ConfigError(f"config file {p}: not found (pass --config PATH, or copy config.toml)")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {p}: cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {p}: not valid UTF-8: byte 0x{data[exc.start]:02x} "
                          f"on line {line}") from None
    try:
        raw = tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError, an int of > 4300 digits, deep nesting
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {p}: not valid TOML: {detail}") from None
    return parse_config(raw)
