"""Signal and entry-filter rules: each at, just above and just below its threshold."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from rustro.clock import IST
from rustro.config import Config, parse_config
from rustro.strategy import (
    FILTER_NAMES, EntryContext, daily_bias, daily_bias_from_values, entry_allowed, entry_filters,
    hourly_alignment, hourly_alignment_from_values, spread_pct, technical_exit)

CFG = Config()
NEED = 2 * CFG.signal.daily_adx_period + 1  # 29 bars with the default period
T = CFG.signal.daily_adx_threshold
H = CFG.signal.hourly_adx_threshold


# --- daily bias ---------------------------------------------------------------------------------

@pytest.mark.parametrize("adx,plus,minus,bars,bias,reason", [
    (30, 25, 10, NEED, "CE", "+di above -di"),
    (30, 10, 25, NEED, "PE", "-di above +di"),
    (30, 18, 18, NEED, "NO_TRADE", "di tie"),
    (T, 25, 10, NEED, "CE", "+di above -di"),              # at the threshold: trades
    (T + 0.01, 10, 25, NEED, "PE", "-di above +di"),       # just above
    (T - 0.01, 25, 10, NEED, "NO_TRADE", "adx below threshold"),  # just below
    (30, 25, 10, NEED - 1, "NO_TRADE", "insufficient history"),
    (30, 25, 10, 0, "NO_TRADE", "insufficient history"),
    (float("nan"), 25, 10, NEED, "NO_TRADE", "indicator undefined"),
    (30, None, 10, NEED, "NO_TRADE", "indicator undefined"),
])
def test_daily_bias_rule(adx, plus, minus, bars, bias, reason):
    d = daily_bias_from_values(adx, plus, minus, bars, CFG)
    assert (d.bias, d.reason) == (bias, reason)
    assert (d.adx, d.plus_di, d.minus_di, d.bars) == (adx, plus, minus, bars)
    assert (d.threshold, d.min_bars) == (T, NEED)


def test_daily_bias_threshold_and_period_come_from_config():
    cfg = parse_config({"signal": {"daily_adx_threshold": 35.0, "daily_adx_period": 10}})
    assert daily_bias_from_values(30, 25, 10, 21, cfg).reason == "adx below threshold"
    assert daily_bias_from_values(36, 25, 10, 21, cfg).bias == "CE"
    assert daily_bias_from_values(36, 25, 10, 20, cfg).reason == "insufficient history"


def _stub_adx(values, calls):
    def adx(h, lo, c, n):
        calls.append((len(h), len(lo), len(c), n))
        k = len(c)
        a = np.full(k, np.nan)
        out = [a.copy(), a.copy(), a.copy()]
        for arr, v in zip(out, values):
            arr[-1] = v
            arr[-2] = 0.0  # only the LAST value may be used
        return tuple(out)
    return adx


def test_daily_bias_from_arrays_uses_last_values_and_daily_period():
    calls = []
    n = NEED + 5
    d = daily_bias(np.ones(n) * 2, np.ones(n), np.ones(n) * 1.5, CFG,
                   adx_fn=_stub_adx((27.0, 12.0, 30.0), calls))
    assert calls == [(n, n, n, CFG.signal.daily_adx_period)]
    assert (d.bias, d.adx, d.plus_di, d.minus_di, d.bars) == ("PE", 27.0, 12.0, 30.0, n)


def test_daily_bias_from_arrays_short_history_never_computes():
    calls = []
    n = NEED - 1
    d = daily_bias([2.0] * n, [1.0] * n, [1.5] * n, CFG, adx_fn=_stub_adx((50, 40, 1), calls))
    assert (d.bias, d.reason, calls) == ("NO_TRADE", "insufficient history", [])


def test_daily_bias_rejects_mismatched_arrays():
    with pytest.raises(ValueError, match="lengths differ"):
        daily_bias([1.0] * 40, [1.0] * 39, [1.0] * 40, CFG, adx_fn=_stub_adx((1, 1, 1), []))


def test_daily_bias_with_real_indicators_on_a_trend():
    ind = pytest.importorskip("rustro.indicators")
    assert ind.adx
    close = 100 + np.arange(60, dtype=float)  # steady up-trend: +DI dominates, ADX high
    up = daily_bias(close + 1, close - 1, close, CFG)
    down = daily_bias(close[::-1] + 1, close[::-1] - 1, close[::-1], CFG)
    assert up.bias == "CE" and up.adx >= T and up.plus_di > up.minus_di
    assert down.bias == "PE"


# --- hourly alignment ---------------------------------------------------------------------------

@pytest.mark.parametrize("bias,adx,plus,minus,aligned", [
    ("CE", H, 30, 10, True),
    ("CE", H + 0.01, 30, 10, True),
    ("CE", H - 0.01, 30, 10, False),
    ("CE", 40, 10, 30, False),
    ("CE", 40, 20, 20, False),
    ("PE", H, 10, 30, True),
    ("PE", H - 0.01, 10, 30, False),
    ("PE", 40, 30, 10, False),
    ("PE", 40, 20, 20, False),
    ("NO_TRADE", 40, 30, 10, False),
    ("CE", float("nan"), 30, 10, False),
])
def test_hourly_alignment(bias, adx, plus, minus, aligned):
    a = hourly_alignment_from_values(bias, adx, plus, minus, CFG)
    assert a.aligned is aligned
    assert (a.adx, a.plus_di, a.minus_di, a.threshold) == (adx, plus, minus, H)


def test_hourly_alignment_from_arrays_uses_hourly_period():
    calls = []
    cfg = parse_config({"signal": {"hourly_adx_period": 7}})
    a = hourly_alignment("CE", [2.0] * 30, [1.0] * 30, [1.5] * 30, cfg,
                         adx_fn=_stub_adx((30.0, 25.0, 5.0), calls))
    assert a.aligned and calls == [(30, 30, 30, 7)]


def test_alignment_rejects_unknown_bias():
    with pytest.raises(ValueError, match="bias"):
        hourly_alignment_from_values("CALL", 30, 30, 10, CFG)


@pytest.mark.parametrize("opt,plus,minus,out", [
    ("CE", 20, 20, "technical"), ("CE", 19.99, 20, "technical"), ("CE", 20.01, 20, None),
    ("PE", 20, 20, "technical"), ("PE", 20.01, 20, "technical"), ("PE", 19.99, 20, None),
    ("CE", float("nan"), 20, None),
])
def test_technical_exit(opt, plus, minus, out):
    assert technical_exit(opt, plus, minus) == out


# --- entry filters ------------------------------------------------------------------------------

NOW = datetime(2025, 10, 7, 11, 15, 5, tzinfo=IST)


def ctx(**kw) -> EntryContext:
    """A CE context that passes every filter; tests change one input at a time."""
    base = dict(now=NOW, bias="CE", aligned=True, rsi=55.0, close=25100.0, ema=25000.0,
                future_price=25150.0, vwap=25120.0, vix=14.0, vix_breaker_tripped=False,
                open_positions=0, has_position_in_underlying=False, trades_today=0,
                day_pnl_net=0.0, capital=1_000_000.0, consecutive_losses=0, last_stopout_at=None,
                bid=99.0, ask=100.0, available_cash=500_000.0, premium=100.0, quantity=750,
                data_gap_open=False, broker_healthy=True, halted=False)
    base.update(kw)
    return EntryContext(**base)


def pe(**kw) -> EntryContext:
    base = dict(bias="PE", rsi=45.0, close=24900.0, ema=25000.0, future_price=25050.0,
                vwap=25120.0)
    base.update(kw)
    return ctx(**base)


def result(c, name, cfg=CFG):
    rs = entry_filters(c, cfg)
    return next(r for r in rs if r.name == name)


def test_all_thirteen_filters_in_spec_order_and_baseline_passes():
    rs = entry_filters(ctx(), CFG)
    assert [r.name for r in rs] == list(FILTER_NAMES) and len(rs) == 13
    assert all(r.passed for r in rs) and entry_allowed(rs)
    assert all(r.passed for r in entry_filters(pe(), CFG))


def test_one_failure_blocks_entry_and_others_still_evaluated():
    rs = entry_filters(ctx(rsi=80.0, halted=True), CFG)
    failed = [r.name for r in rs if not r.passed]
    assert failed == ["rsi", "health"] and not entry_allowed(rs)
    assert not entry_allowed([])


def at(hh, mm, ss=0, us=0):
    return datetime(2025, 10, 7, hh, mm, ss, us, tzinfo=IST)


@pytest.mark.parametrize("now,ok", [
    (at(9, 59, 59, 999999), False), (at(10, 0), True), (at(10, 0, 0, 1), True),
    (at(14, 59, 59, 999999), True), (at(15, 0), False), (at(15, 0, 1), False),
    (datetime(2025, 10, 7, 4, 30, tzinfo=timezone.utc), True),  # 10:00 IST given in UTC
    (datetime(2025, 10, 7, 4, 29, tzinfo=timezone.utc), False),
])
def test_entry_window(now, ok):
    r = result(ctx(now=now), "entry_window")
    assert r.passed is ok and r.threshold == "[10:00, 15:00)"


@pytest.mark.parametrize("bias,aligned,ok", [
    ("CE", True, True), ("PE", True, True), ("CE", False, False), ("NO_TRADE", True, False),
])
def test_signal_filter(bias, aligned, ok):
    assert result(ctx(bias=bias, aligned=aligned), "signal").passed is ok


OB, OS = CFG.filters.rsi_overbought, CFG.filters.rsi_oversold


@pytest.mark.parametrize("bias,rsi,ok", [
    ("CE", OB - 0.01, True), ("CE", OB, False), ("CE", OB + 0.01, False),
    ("PE", OS + 0.01, True), ("PE", OS, False), ("PE", OS - 0.01, False),
    ("CE", float("nan"), False), ("CE", None, False), ("NO_TRADE", 50.0, False),
])
def test_rsi_filter(bias, rsi, ok):
    r = result(ctx(bias=bias, rsi=rsi), "rsi")
    assert r.passed is ok and r.value is rsi


@pytest.mark.parametrize("bias,close,ema,ok", [
    ("CE", 100.01, 100.0, True), ("CE", 100.0, 100.0, False), ("CE", 99.99, 100.0, False),
    ("PE", 99.99, 100.0, True), ("PE", 100.0, 100.0, False), ("PE", 100.01, 100.0, False),
    ("CE", 100.0, float("nan"), False),
])
def test_trend_filter(bias, close, ema, ok):
    assert result(ctx(bias=bias, close=close, ema=ema), "trend_ema").passed is ok


@pytest.mark.parametrize("bias,fut,vwap,ok", [
    ("CE", 100.05, 100.0, True), ("CE", 100.0, 100.0, False), ("CE", 99.95, 100.0, False),
    ("PE", 99.95, 100.0, True), ("PE", 100.0, 100.0, False), ("PE", 100.05, 100.0, False),
    ("CE", None, 100.0, False),
])
def test_vwap_filter(bias, fut, vwap, ok):
    assert result(ctx(bias=bias, future_price=fut, vwap=vwap), "vwap").passed is ok


def test_vwap_filter_disabled_passes_and_notes_values():
    cfg = parse_config({"filters": {"use_vwap_filter": False}})
    r = result(ctx(future_price=90.0, vwap=100.0), "vwap", cfg)
    assert r.passed and r.value == {"future_price": 90.0, "vwap": 100.0}
    assert "disabled" in r.threshold


VMAX = CFG.filters.vix_entry_max


@pytest.mark.parametrize("vix,tripped,ok", [
    (VMAX - 0.01, False, True), (VMAX, False, True), (VMAX + 0.01, False, False),
    (15.0, True, False), (None, False, False),
])
def test_vix_filter(vix, tripped, ok):
    assert result(ctx(vix=vix, vix_breaker_tripped=tripped), "vix").passed is ok


MP, MT = CFG.risk.max_positions, CFG.risk.max_trades_per_day


@pytest.mark.parametrize("open_,in_und,trades,ok", [
    (MP - 1, False, MT - 1, True), (MP, False, 0, False), (MP + 1, False, 0, False),
    (0, True, 0, False), (0, False, MT, False), (0, False, MT + 1, False),
])
def test_position_limits(open_, in_und, trades, ok):
    c = ctx(open_positions=open_, has_position_in_underlying=in_und, trades_today=trades)
    assert result(c, "position_limits").passed is ok


LIM = 1_000_000 * CFG.risk.daily_loss_limit_pct / 100  # 20,000


@pytest.mark.parametrize("pnl,ok", [(-LIM + 0.01, True), (-LIM, False), (-LIM - 0.01, False),
                                    (5000.0, True)])
def test_daily_loss_filter(pnl, ok):
    r = result(ctx(day_pnl_net=pnl), "daily_loss")
    assert r.passed is ok and r.value == pnl


CL = CFG.risk.consecutive_loss_limit


@pytest.mark.parametrize("n,ok", [(CL - 1, True), (CL, False), (CL + 1, False)])
def test_consecutive_losses_filter(n, ok):
    assert result(ctx(consecutive_losses=n), "consecutive_losses").passed is ok


CD = timedelta(minutes=CFG.risk.reentry_cooldown_min)


@pytest.mark.parametrize("ago,ok", [
    (None, True), (CD - timedelta(seconds=1), False), (CD, True), (CD + timedelta(seconds=1), True),
])
def test_reentry_cooldown_filter(ago, ok):
    last = None if ago is None else NOW - ago
    assert result(ctx(last_stopout_at=last), "reentry_cooldown").passed is ok


MS = CFG.filters.max_spread_pct


@pytest.mark.parametrize("bid,ask,ok", [
    (99.0, 101.0, True),      # exactly 2.0 %
    (0.99, 1.01, True),       # 2.0 % computed in floats as 2.0000000000000018
    (98.99, 101.0, False),    # just above 2 %
    (99.01, 101.0, True),     # just below
    (0.0, 1.0, False), (-1.0, 1.0, False), (101.0, 100.0, False), (None, 100.0, False),
    (100.0, 100.0, True),
])
def test_quote_sane(bid, ask, ok):
    assert result(ctx(bid=bid, ask=ask), "quote_sane").passed is ok


def test_spread_pct_values():
    assert spread_pct(99.0, 101.0) == pytest.approx(2.0)
    assert spread_pct(0.0, 5.0) == float("inf")


NEEDED = CFG.filters.funds_buffer * 100.0 * 750  # 90,000


@pytest.mark.parametrize("cash,ok", [(NEEDED, True), (NEEDED + 0.01, True), (NEEDED - 0.01, False)])
def test_funds_filter(cash, ok):
    assert result(ctx(available_cash=cash, premium=100.0, quantity=750), "funds").passed is ok


def test_funds_float_edge_uses_paisa():
    # 1.2 * 10.3 * 25 is 309.00000000000006 in floats; the requirement is 309.00
    assert 1.2 * 10.3 * 25 > 309.0
    assert result(ctx(available_cash=309.0, premium=10.3, quantity=25), "funds").passed
    assert not result(ctx(available_cash=308.99, premium=10.3, quantity=25), "funds").passed


@pytest.mark.parametrize("gap,healthy,halted,ok", [
    (False, True, False, True), (True, True, False, False), (False, False, False, False),
    (False, True, True, False),
])
def test_health_filter(gap, healthy, halted, ok):
    c = ctx(data_gap_open=gap, broker_healthy=healthy, halted=halted)
    assert result(c, "health").passed is ok


def test_pe_direction_filters_fail_on_ce_shape():
    c = replace(pe(), rsi=25.0, close=25100.0, future_price=25200.0)
    failed = {r.name for r in entry_filters(c, CFG) if not r.passed}
    assert failed == {"rsi", "trend_ema", "vwap"}


def test_filters_reject_unknown_bias():
    with pytest.raises(ValueError, match="bias"):
        entry_filters(ctx(bias="LONG"), CFG)


def test_thresholds_follow_config():
    cfg = parse_config({"filters": {"rsi_overbought": 60.0, "max_spread_pct": 1.0},
                        "session": {"entry_start": "11:30"}})
    assert not result(ctx(rsi=65.0), "rsi", cfg).passed
    assert not result(ctx(bid=99.0, ask=101.0), "quote_sane", cfg).passed
    assert not result(ctx(now=at(11, 15)), "entry_window", cfg).passed
