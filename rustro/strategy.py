"""Signal and entry rules (spec sections 4 and 5) as pure functions of values the engine gathered.

Nothing here reads a clock, the network or the journal. Every decision carries the values it saw
and the thresholds it used, so the engine can journal it as-is (`dataclasses.asdict`).
ADX is Wilder's average of DX (rustro.indicators.adx), never a single bar's DX.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

import numpy as np

from .clock import ist
from .risk import in_cooldown

CE, PE, NO_TRADE = "CE", "PE", "NO_TRADE"
BIASES = (CE, PE, NO_TRADE)
REL_EPS = 1e-9  # tolerance for ratios computed in floats (spread %), so 2.0000000000000018 == 2.0

FILTER_NAMES = (
    "entry_window", "signal", "rsi", "trend_ema", "vwap", "vix", "position_limits", "daily_loss",
    "consecutive_losses", "reentry_cooldown", "quote_sane", "funds", "health",
)


def _defined(*xs) -> bool:
    return all(x is not None and not (isinstance(x, float) and math.isnan(x)) for x in xs)


# --- daily bias ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BiasDecision:
    bias: str  # CE | PE | NO_TRADE
    reason: str
    adx: float | None
    plus_di: float | None
    minus_di: float | None
    bars: int
    threshold: float | None = None
    min_bars: int | None = None


def min_daily_bars(cfg) -> int:
    return 2 * cfg.signal.daily_adx_period + 1


def daily_bias_from_values(adx, plus_di, minus_di, bars: int, cfg) -> BiasDecision:
    """The spec's rule on already-computed last values of Wilder ADX/+DI/-DI."""
    thr, need = cfg.signal.daily_adx_threshold, min_daily_bars(cfg)

    def out(bias, reason):
        return BiasDecision(bias, reason, adx, plus_di, minus_di, bars, thr, need)

    if bars < need:
        return out(NO_TRADE, "insufficient history")
    if not _defined(adx, plus_di, minus_di):
        return out(NO_TRADE, "indicator undefined")
    if adx < thr:
        return out(NO_TRADE, "adx below threshold")
    if plus_di > minus_di:
        return out(CE, "+di above -di")
    if minus_di > plus_di:
        return out(PE, "-di above +di")
    return out(NO_TRADE, "di tie")


def _last_adx(high, low, close, period: int, adx_fn: Callable | None):
    if adx_fn is None:
        from rustro import indicators  # lazy: written concurrently, and tests may stub it
        adx_fn = indicators.adx
    h, lo, c = (np.asarray(a, dtype=float) for a in (high, low, close))
    if not len(h) == len(lo) == len(c):
        raise ValueError(f"high/low/close lengths differ: {len(h)}, {len(lo)}, {len(c)}")
    a, p, m = adx_fn(h, lo, c, period)
    return float(a[-1]), float(p[-1]), float(m[-1])


def daily_bias(high: Sequence[float], low: Sequence[float], close: Sequence[float], cfg,
               adx_fn: Callable | None = None) -> BiasDecision:
    """Bias from COMPLETED daily bars (the caller excludes today's forming bar)."""
    n = len(close)
    if not len(high) == len(low) == n:
        raise ValueError(f"high/low/close lengths differ: {len(high)}, {len(low)}, {n}")
    if n < min_daily_bars(cfg):
        return daily_bias_from_values(None, None, None, n, cfg)
    a, p, m = _last_adx(high, low, close, cfg.signal.daily_adx_period, adx_fn)
    return daily_bias_from_values(a, p, m, n, cfg)


# --- hourly alignment ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Alignment:
    aligned: bool
    adx: float | None
    plus_di: float | None
    minus_di: float | None
    reason: str
    bias: str = NO_TRADE
    threshold: float | None = None


def hourly_alignment_from_values(bias: str, adx, plus_di, minus_di, cfg) -> Alignment:
    if bias not in BIASES:
        raise ValueError(f"bias: must be one of {', '.join(BIASES)}, got {bias!r}")
    thr = cfg.signal.hourly_adx_threshold

    def out(ok, reason):
        return Alignment(ok, adx, plus_di, minus_di, reason, bias, thr)

    if bias == NO_TRADE:
        return out(False, "no bias")
    if not _defined(adx, plus_di, minus_di):
        return out(False, "indicator undefined")
    if adx < thr:
        return out(False, "adx below threshold")
    if bias == CE and not plus_di > minus_di:
        return out(False, "+di not above -di")
    if bias == PE and not minus_di > plus_di:
        return out(False, "-di not above +di")
    return out(True, "aligned")


def hourly_alignment(bias: str, high, low, close, cfg, adx_fn: Callable | None = None) -> Alignment:
    """Alignment from closed hourly bars: Wilder ADX(hourly_adx_period), last values."""
    if len(close) == 0:
        return hourly_alignment_from_values(bias, None, None, None, cfg)
    a, p, m = _last_adx(high, low, close, cfg.signal.hourly_adx_period, adx_fn)
    return hourly_alignment_from_values(bias, a, p, m, cfg)


def technical_exit(option_type: str, plus_di, minus_di) -> str | None:
    """'technical' when the DI order no longer favours the held side; undefined DIs never exit."""
    if option_type not in (CE, PE):
        raise ValueError(f"option_type: must be CE or PE, got {option_type!r}")
    if not _defined(plus_di, minus_di):
        return None
    lost = plus_di <= minus_di if option_type == CE else minus_di <= plus_di
    return "technical" if lost else None


# --- entry filters ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FilterResult:
    name: str
    passed: bool
    value: Any
    threshold: Any


@dataclass(frozen=True)
class EntryContext:
    now: datetime
    bias: str
    aligned: bool
    rsi: float | None
    close: float | None
    ema: float | None
    future_price: float | None
    vwap: float | None
    vix: float | None
    vix_breaker_tripped: bool
    open_positions: int
    has_position_in_underlying: bool
    trades_today: int
    day_pnl_net: float
    capital: float
    consecutive_losses: int
    last_stopout_at: datetime | None
    bid: float | None
    ask: float | None
    available_cash: float
    premium: float
    quantity: int
    data_gap_open: bool
    broker_healthy: bool
    halted: bool


def _directional(bias, ce_ok, pe_ok) -> bool:
    return bool(ce_ok()) if bias == CE else bool(pe_ok()) if bias == PE else False


def _entry_window(ctx, cfg) -> FilterResult:
    s = cfg.session
    t = ist(ctx.now).time()
    return FilterResult("entry_window", s.entry_start <= t < s.entry_end, t.isoformat(),
                        f"[{s.entry_start:%H:%M}, {s.entry_end:%H:%M})")


def _signal(ctx, cfg) -> FilterResult:
    ok = ctx.bias in (CE, PE) and bool(ctx.aligned)
    return FilterResult("signal", ok, {"bias": ctx.bias, "aligned": bool(ctx.aligned)},
                        "bias CE or PE and hourly aligned")


def _rsi(ctx, cfg) -> FilterResult:
    f, r = cfg.filters, ctx.rsi
    ok = _defined(r) and _directional(ctx.bias, lambda: r < f.rsi_overbought,
                                      lambda: r > f.rsi_oversold)
    thr = {CE: f"< {f.rsi_overbought}", PE: f"> {f.rsi_oversold}"}.get(ctx.bias, "needs a bias")
    return FilterResult("rsi", ok, r, thr)


def _trend(ctx, cfg) -> FilterResult:
    c, e = ctx.close, ctx.ema
    ok = _defined(c, e) and _directional(ctx.bias, lambda: c > e, lambda: c < e)
    thr = {CE: "close > ema", PE: "close < ema"}.get(ctx.bias, "needs a bias")
    return FilterResult("trend_ema", ok, {"close": c, "ema": e, "period": cfg.filters.ema_period},
                        thr)


def _vwap(ctx, cfg) -> FilterResult:
    fp, vw = ctx.future_price, ctx.vwap
    value = {"future_price": fp, "vwap": vw}
    if not cfg.filters.use_vwap_filter:
        return FilterResult("vwap", True, value, "disabled (use_vwap_filter=false)")
    ok = _defined(fp, vw) and _directional(ctx.bias, lambda: fp > vw, lambda: fp < vw)
    thr = {CE: "future > vwap", PE: "future < vwap"}.get(ctx.bias, "needs a bias")
    return FilterResult("vwap", ok, value, thr)


def _vix(ctx, cfg) -> FilterResult:
    v, mx = ctx.vix, cfg.filters.vix_entry_max
    ok = _defined(v) and v <= mx and not ctx.vix_breaker_tripped
    return FilterResult("vix", ok, {"vix": v, "breaker_tripped": bool(ctx.vix_breaker_tripped)},
                        {"vix_entry_max": mx, "breaker": "not tripped"})


def _limits(ctx, cfg) -> FilterResult:
    r = cfg.risk
    ok = (ctx.open_positions < r.max_positions and not ctx.has_position_in_underlying
          and ctx.trades_today < r.max_trades_per_day)
    return FilterResult(
        "position_limits", ok,
        {"open_positions": ctx.open_positions, "in_underlying": bool(ctx.has_position_in_underlying),
         "trades_today": ctx.trades_today},
        {"max_positions": r.max_positions, "per_underlying": 1,
         "max_trades_per_day": r.max_trades_per_day})


def daily_loss_limit(capital: float, cfg) -> float:
    """The day's loss limit in rupees (positive), to the paisa."""
    return round(capital * cfg.risk.daily_loss_limit_pct / 100, 2)


def _daily_loss(ctx, cfg) -> FilterResult:
    lim = daily_loss_limit(ctx.capital, cfg)
    ok = _defined(ctx.day_pnl_net) and ctx.day_pnl_net > -lim
    return FilterResult("daily_loss", ok, ctx.day_pnl_net, f"> {-lim}")


def _consecutive(ctx, cfg) -> FilterResult:
    lim = cfg.risk.consecutive_loss_limit
    return FilterResult("consecutive_losses", ctx.consecutive_losses < lim,
                        ctx.consecutive_losses, f"< {lim}")


def _cooldown(ctx, cfg) -> FilterResult:
    mins = cfg.risk.reentry_cooldown_min
    last = ctx.last_stopout_at
    ok = not in_cooldown(last, ctx.now, mins)
    return FilterResult("reentry_cooldown", ok, last.isoformat() if last else None,
                        f"{mins} min since last stop-out")


def spread_pct(bid, ask) -> float:
    """(ask - bid) / mid in percent; inf without a sane two-sided quote."""
    if not _defined(bid, ask) or bid <= 0 or ask < bid:
        return math.inf
    return (ask - bid) / ((ask + bid) / 2) * 100


def _quote(ctx, cfg) -> FilterResult:
    mx = cfg.filters.max_spread_pct
    sp = spread_pct(ctx.bid, ctx.ask)
    ok = sp <= mx * (1 + REL_EPS)
    return FilterResult("quote_sane", ok, {"bid": ctx.bid, "ask": ctx.ask, "spread_pct": sp},
                        {"bid": "> 0", "max_spread_pct": mx})


def _funds(ctx, cfg) -> FilterResult:
    need = round(cfg.filters.funds_buffer * ctx.premium * ctx.quantity, 2)
    ok = _defined(ctx.available_cash) and ctx.available_cash >= need
    return FilterResult("funds", ok, ctx.available_cash, f">= {need}")


def _health(ctx, cfg) -> FilterResult:
    ok = not ctx.data_gap_open and ctx.broker_healthy and not ctx.halted
    return FilterResult("health", bool(ok),
                        {"data_gap_open": bool(ctx.data_gap_open),
                         "broker_healthy": bool(ctx.broker_healthy), "halted": bool(ctx.halted)},
                        "no data gap, broker healthy, not halted")


_FILTERS = (_entry_window, _signal, _rsi, _trend, _vwap, _vix, _limits, _daily_loss, _consecutive,
            _cooldown, _quote, _funds, _health)


def entry_filters(ctx: EntryContext, cfg) -> list[FilterResult]:
    """All 13 filters, in the spec's order, each evaluated (no short-circuit: all are journaled)."""
    if ctx.bias not in BIASES:
        raise ValueError(f"bias: must be one of {', '.join(BIASES)}, got {ctx.bias!r}")
    return [f(ctx, cfg) for f in _FILTERS]


def entry_allowed(results: Sequence[FilterResult]) -> bool:
    return bool(results) and all(r.passed for r in results)
