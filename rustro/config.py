"""Configuration: config.toml into frozen dataclasses, validated, every error naming its key.

The dataclass defaults below are the spec's numbers; config.toml repeats them with comments and a
test keeps the two equal. Secrets never live here: see `rustro.credentials`.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the key path."""


def _rng(lo=None, hi=None, lo_open=False, hi_open=False):
    return {"lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open}


def pos(**kw):
    """A field that must be > 0."""
    return field(metadata=_rng(0, lo_open=True), **kw)


def nonneg(**kw):
    return field(metadata=_rng(0), **kw)


def pct(**kw):
    """A percentage in (0, 100]."""
    return field(metadata=_rng(0, 100, lo_open=True), **kw)


def frac(**kw):
    """A fraction in [0, 1)."""
    return field(metadata=_rng(0, 1, hi_open=True), **kw)


@dataclass(frozen=True)
class BotConfig:
    mode: str = "auto"  # auto | sim | paper | live
    capital: float = pos(default=1_000_000.0)
    journal: str = "journal.sqlite"
    log_level: str = "INFO"


@dataclass(frozen=True)
class SessionConfig:
    pre_open: time = time(9, 0)
    market_open: time = time(9, 15)
    entry_start: time = time(10, 0)
    entry_end: time = time(15, 0)
    eod_exit: time = time(15, 20)
    market_close: time = time(15, 30)
    monitor_interval_sec: int = pos(default=5)
    bar_ready_grace_sec: int = nonneg(default=5)
    misfire_grace_sec: int = pos(default=30)


@dataclass(frozen=True)
class CalendarConfig:
    extra_holidays: tuple[date, ...] = ()
    extra_trading_days: tuple[date, ...] = ()


@dataclass(frozen=True)
class UnderlyingConfig:
    name: str = "NIFTY"
    spot_name: str = "Nifty 50"
    strike_step: int = pos(default=50)
    freeze_qty: int = pos(default=1800)


@dataclass(frozen=True)
class DataConfig:
    indicator_history_bars: int = pos(default=200)
    daily_history_days: int = pos(default=365)
    data_gap_threshold_sec: int = pos(default=60)
    stale_exit_sec: int = pos(default=180)


@dataclass(frozen=True)
class SignalConfig:
    daily_adx_period: int = pos(default=14)
    daily_adx_threshold: float = field(default=20.0, metadata=_rng(0, 100))
    hourly_adx_period: int = pos(default=14)
    hourly_adx_threshold: float = field(default=25.0, metadata=_rng(0, 100))


@dataclass(frozen=True)
class FiltersConfig:
    rsi_period: int = pos(default=14)
    rsi_overbought: float = field(default=70.0, metadata=_rng(0, 100))
    rsi_oversold: float = field(default=30.0, metadata=_rng(0, 100))
    ema_period: int = pos(default=20)
    use_vwap_filter: bool = True
    vix_entry_max: float = pos(default=25.0)
    max_spread_pct: float = pct(default=2.0)
    funds_buffer: float = field(default=1.2, metadata=_rng(1))


@dataclass(frozen=True)
class OptionsConfig:
    min_dte: int = nonneg(default=1)
    strike_offset_steps: int = nonneg(default=0)


@dataclass(frozen=True)
class SizingConfig:
    base_position_size_pct: float = pct(default=10.0)
    max_lots_per_trade: int = pos(default=10)
    vix_low: float = pos(default=12.0)
    vix_low_mult: float = pos(default=1.25)
    vix_mid: float = pos(default=20.0)
    vix_mid_mult: float = pos(default=1.00)
    vix_high: float = pos(default=30.0)
    vix_high_mult: float = pos(default=0.75)
    vix_extreme_mult: float = pos(default=0.50)
    dte_full: int = pos(default=5)
    dte_mid: int = pos(default=2)
    dte_full_mult: float = pos(default=1.00)
    dte_mid_mult: float = pos(default=0.75)
    dte_low_mult: float = pos(default=0.50)


@dataclass(frozen=True)
class RiskConfig:
    max_positions: int = pos(default=3)
    max_trades_per_day: int = pos(default=4)
    daily_loss_limit_pct: float = pct(default=2.0)
    consecutive_loss_limit: int = pos(default=3)
    reentry_cooldown_min: int = nonneg(default=30)
    vix_spike: float = pos(default=30.0)
    vix_resume: float = pos(default=22.0)


@dataclass(frozen=True)
class ExitsConfig:
    stop_loss_pct: float = frac(default=0.20)
    trail_activate_pct: float = frac(default=0.02)
    trail_gap_pct: float = frac(default=0.015)
    target_pct: float = nonneg(default=0.0)
    flatten_on_shutdown: bool = True
    shutdown_flatten_sec: float = field(default=60.0, metadata=_rng(0, 110))


@dataclass(frozen=True)
class OrdersConfig:
    fill_timeout_sec: float = pos(default=5.0)
    ladder_pct: tuple[float, ...] = (0.25, 0.50, 0.75, 1.00)
    ladder_backoff_sec: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0)
    exit_last_resort_pct: float = pct(default=5.0)
    order_tag_len: int = field(default=20, metadata=_rng(8, 20))
    unknown_grace_sec: float = field(default=60.0, metadata=_rng(5, 3600))
    reconcile_interval_sec: float = field(default=300.0, metadata=_rng(30, 3600))


@dataclass(frozen=True)
class CostsConfig:
    brokerage_per_order: float = nonneg(default=20.0)
    stt_sell_pct: float = nonneg(default=0.1)
    exchange_txn_pct: float = nonneg(default=0.03503)
    sebi_per_crore: float = nonneg(default=10.0)
    stamp_duty_buy_pct: float = nonneg(default=0.003)
    gst_pct: float = nonneg(default=18.0)


@dataclass(frozen=True)
class BrokerConfig:
    base_url: str = "https://apiconnect.angelone.in"
    instrument_master_url: str = (
        "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json")
    timeout_sec: float = pos(default=10.0)
    quote_per_sec: int = pos(default=1)
    token_cache: str = ".token_cache.json"


@dataclass(frozen=True)
class PaperConfig:
    db: str = ""  # "" = beside the journal, <journal>.paper.sqlite
    latency_ms: int = nonneg(default=200)
    partial_fill_prob: float = frac(default=0.0)
    allow_short: bool = True  # like Angel: a SELL beyond the long is accepted if margin allows
    short_margin_per_unit: float = nonneg(default=2000.0)  # rupees blocked per unit short; 0 = none
    book_lag_sec: float = nonneg(default=0.0)  # books show an order this long after placement


@dataclass(frozen=True)
class SimConfig:
    seed: int = 42
    speed: float = nonneg(default=0.0)  # 0 = as fast as the CPU allows; N = N x wall time


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
    risk: RiskConfig = RiskConfig()
    exits: ExitsConfig = ExitsConfig()
    orders: OrdersConfig = OrdersConfig()
    costs: CostsConfig = CostsConfig()
    broker: BrokerConfig = BrokerConfig()
    paper: PaperConfig = PaperConfig()
    sim: SimConfig = SimConfig()

    def underlying(self, name: str) -> UnderlyingConfig:
        for u in self.underlyings:
            if u.name == name:
                return u
        raise KeyError(name)


MODES = ("auto", "sim", "paper", "live")
UNDERLYING_NAMES = ("NIFTY", "BANKNIFTY", "FINNIFTY")


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
        if not math.isfinite(value):  # TOML allows nan/inf; NaN passes every range check
            raise ConfigError(f"{path}: must be a finite number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: must be a string, got {value!r}")
        return value
    if typ is time:
        if isinstance(value, time):
            return value
        try:
            hh, mm = str(value).split(":")
            return time(int(hh), int(mm))
        except (ValueError, TypeError):
            raise ConfigError(f"{path}: must be a time HH:MM, got {value!r}") from None
    if typ is date:
        if isinstance(value, date) and not isinstance(value, datetime):  # a datetime never == a date
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(f"{path}: must be a date YYYY-MM-DD, got {value!r}") from None
    raise ConfigError(f"{path}: unsupported type {typ}")  # pragma: no cover


def _check_range(path: str, value: Any, meta: dict) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value <= lo if meta["lo_open"] else value < lo):
        raise ConfigError(f"{path}: must be {'>' if meta['lo_open'] else '>='} {lo}, got {value}")
    if hi is not None and (value >= hi if meta["hi_open"] else value > hi):
        raise ConfigError(f"{path}: must be {'<' if meta['hi_open'] else '<='} {hi}, got {value}")


def _build(prefix: str, cls: type, raw: dict) -> Any:
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"{prefix + '.' if prefix else ''}{key}: unknown key{hint}")
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


def _cross_checks(cfg: Config) -> None:
    s = cfg.session
    order = ["pre_open", "market_open", "entry_start", "entry_end", "eod_exit", "market_close"]
    for a, b in zip(order, order[1:]):
        if not getattr(s, a) < getattr(s, b):
            raise ConfigError(f"session.{b}: must be later than session.{a} "
                              f"({getattr(s, a):%H:%M}), got {getattr(s, b):%H:%M}")
    if cfg.bot.mode not in MODES:
        raise ConfigError(f"bot.mode: must be one of {', '.join(MODES)}, got {cfg.bot.mode!r}")
    seen = set()
    for i, u in enumerate(cfg.underlyings):
        if u.name not in UNDERLYING_NAMES:
            raise ConfigError(f"underlyings[{i}].name: must be one of {', '.join(UNDERLYING_NAMES)}, "
                              f"got {u.name!r}")
        if u.name in seen:
            raise ConfigError(f"underlyings[{i}].name: {u.name} is listed twice")
        seen.add(u.name)
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
    o = cfg.orders
    if len(o.ladder_pct) != len(o.ladder_backoff_sec):
        raise ConfigError(f"orders.ladder_backoff_sec: must have one entry per orders.ladder_pct step "
                          f"({len(o.ladder_pct)}), got {len(o.ladder_backoff_sec)}")
    if any(p <= 0 for p in o.ladder_pct) or list(o.ladder_pct) != sorted(o.ladder_pct):
        raise ConfigError(f"orders.ladder_pct: must be positive and increasing, got {list(o.ladder_pct)}")
    if any(b < 0 for b in o.ladder_backoff_sec):
        raise ConfigError(f"orders.ladder_backoff_sec: must be >= 0, got {list(o.ladder_backoff_sec)}")


def parse_config(raw: dict) -> Config:
    cfg = _build("", Config, raw)
    _cross_checks(cfg)
    return cfg


def load_config(path: str | os.PathLike) -> Config:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p}: not found (pass --config PATH, or copy config.toml)")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p}: not valid TOML: {exc}") from None
    return parse_config(raw)
