"""Indicators against TA-Lib reference vectors, the live updaters, look-ahead and edge cases.

Agreement standard: |ours - talib| <= 1e-9 * max(1, |talib|) (relative above 1, absolute below),
with NaN exactly where TA-Lib has NaN.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rustro import indicators as ind

REF = json.loads((Path(__file__).parent / "data" / "talib_reference.json").read_text())
TOL = 1e-9


def arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def series(name: str) -> dict[str, np.ndarray]:
    return {k: arr(v) for k, v in REF["series"][name]["inputs"].items()}


def assert_close(ours, ref, what=""):
    ours, ref = np.asarray(ours, float), np.asarray(ref, float)
    assert ours.shape == ref.shape, what
    nan_o, nan_r = np.isnan(ours), np.isnan(ref)
    assert np.array_equal(nan_o, nan_r), (
        f"{what}: NaN positions differ at {np.flatnonzero(nan_o != nan_r)[:10]}")
    m = ~nan_r
    dev = np.abs(ours[m] - ref[m]) / np.maximum(1.0, np.abs(ref[m]))
    assert not dev.size or dev.max() <= TOL, f"{what}: max deviation {dev.max():.3e}"


def ours(kind: str, s: dict, n: int) -> np.ndarray:
    h, l, c = s["high"], s["low"], s["close"]
    if kind in ("ADX", "PLUS_DI", "MINUS_DI"):
        return ind.adx(h, l, c, n)[("ADX", "PLUS_DI", "MINUS_DI").index(kind)]
    if kind == "ATR":
        return ind.atr(h, l, c, n)
    return {"SMA": ind.sma, "EMA": ind.ema, "RSI": ind.rsi}[kind](c, n)


KINDS = ("SMA", "EMA", "RSI", "ATR", "ADX", "PLUS_DI", "MINUS_DI")
CASES = [(name, kind, n) for name, entry in REF["series"].items() for kind in KINDS
         for n in entry["periods"]]
LOOKBACK = {"SMA": lambda n: n - 1, "EMA": lambda n: n - 1, "RSI": lambda n: n,
            "ATR": lambda n: n, "ADX": lambda n: 2 * n - 1, "PLUS_DI": lambda n: n,
            "MINUS_DI": lambda n: n}


# ----------------------------------------------------------------------------- TA-Lib vectors
def test_reference_file_records_its_talib_version():
    assert REF["talib_python"] and REF["talib_c"]
    assert len(REF["series"]["walk"]["inputs"]["close"]) == 400


@pytest.mark.parametrize("name,kind,n", CASES)
def test_equals_talib(name, kind, n):
    s = series(name)
    ref = arr(REF["series"][name]["outputs"][f"{kind}_{n}"])
    got = ours(kind, s, n)
    assert_close(got, ref, f"{kind}({n}) on {name}")
    first = int(np.flatnonzero(~np.isnan(got))[0])
    assert first == LOOKBACK[kind](n)               # NaN exactly during TA-Lib's lookback


def test_reference_exercises_the_zero_branches():
    """flat_start has undefined DX and zero gain+loss (RSI 0) before the walk; in long_flat the
    Wilder sums decay to exactly zero mid-series (where the exact-loop fallback takes over)."""
    out = REF["series"]["flat_start"]["outputs"]
    adx14 = arr(out["ADX_14"])
    assert adx14[27] == 0.0 and adx14[35] == pytest.approx(100 / 14)
    assert arr(out["RSI_14"])[14] == 0.0
    s = series("long_flat")
    h, l, c = s["high"], s["low"], s["close"]
    tr_sum = ind._wilder_sum(ind.true_range(h, l, c)[1:].copy(), 2)
    assert tr_sum[50] > 0 and tr_sum[1200] == 0.0 and ind._decayed(tr_sum)
    assert not ind._decayed(ind._wilder_sum(ind.true_range(h, l, c)[1:61].copy(), 2))


# ----------------------------------------------------------------------------- live updaters
def run_states(s: dict, n: int, sessions: np.ndarray):
    states = {"EMA": ind.EmaState(n), "RSI": ind.RsiState(n),
              "ATR": ind.AtrState(n), "ADX": ind.AdxState(n), "VWAP": ind.VwapState()}
    got = {k: [] for k in ("EMA", "RSI", "ATR", "ADX", "PLUS_DI", "MINUS_DI", "VWAP")}
    for i, (h, l, c, v) in enumerate(zip(s["high"], s["low"], s["close"], s["volume"])):
        got["EMA"].append(states["EMA"].update(c))
        got["RSI"].append(states["RSI"].update(c))
        got["ATR"].append(states["ATR"].update(h, l, c))
        a, p, m = states["ADX"].update(h, l, c)
        got["ADX"].append(a)
        got["PLUS_DI"].append(p)
        got["MINUS_DI"].append(m)
        got["VWAP"].append(states["VWAP"].update(h, l, c, v, int(sessions[i])))
    return got


@pytest.mark.parametrize("name,n", [("walk", 5), ("walk", 14), ("flat_start", 5),
                                    ("flat_start", 14), ("flat", 14), ("long_flat", 2)])
def test_states_equal_arrays_and_talib(name, n):
    s = series(name)
    sessions = np.arange(s["close"].size) // 75
    got = run_states(s, n, sessions)
    for kind in KINDS[1:]:                          # every kind but SMA has a live updater
        assert_close(got[kind], ours(kind, s, n), f"{kind}State({n}) vs array on {name}")
        ref = arr(REF["series"][name]["outputs"][f"{kind}_{n}"])
        assert_close(got[kind], ref, f"{kind}State({n}) vs TA-Lib on {name}")
    assert_close(got["VWAP"], ind.vwap(s["high"], s["low"], s["close"], s["volume"], sessions))


def test_states_equal_arrays_on_a_long_series():
    """Long enough for several levels of the blocked recursion and an uneven tail."""
    rng = np.random.default_rng(11)
    size = 4099
    c = 24000 + np.cumsum(rng.normal(0, 10, size))
    s = {"close": c, "high": c + rng.random(size) * 8, "low": c - rng.random(size) * 8,
         "volume": rng.integers(0, 1000, size).astype(float)}
    got = run_states(s, 14, np.arange(size) // 375)
    for kind in KINDS[1:]:
        assert_close(got[kind], ours(kind, s, 14), f"{kind}State(14), {size} bars")


def test_state_value_attribute_tracks_last_update():
    st = ind.EmaState(3)
    assert math.isnan(st.update(1.0)) and math.isnan(st.value)
    st.update(2.0)
    assert st.update(3.0) == st.value == pytest.approx(2.0)
    assert st.update(4.0) == pytest.approx(3.0)              # (4 - 2) * 0.5 + 2


# ----------------------------------------------------------------------------- the recursion
@pytest.mark.parametrize("size", [1, 31, 33, 1000, 65539])
def test_blocked_recursion_equals_a_plain_loop(size):
    rng = np.random.default_rng(size)
    c = rng.normal(100, 30, size)
    for f in (0.93, 0.5, 1.0, 0.0, 199 / 201):
        want = ind._recur_loop(f, c, 7.5)
        got = ind._recur(f, c.copy(), 7.5)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- look-ahead
def all_outputs(h, l, c, v, sid):
    out = {f"{k}": ours(k, {"high": h, "low": l, "close": c}, 14) for k in KINDS}
    out["EMA5"] = ind.ema(c, 5)
    out["VWAP"] = ind.vwap(h, l, c, v, sid)
    return out


@pytest.mark.parametrize("seed,size", [(1, 29), (2, 60), (3, 250), (4, 1001), (5, 3000)])
def test_no_look_ahead(seed, size):
    """Appending a bar, or changing the newest bar wildly, never changes an earlier output."""
    rng = np.random.default_rng(seed)
    c = 24000 + np.cumsum(rng.normal(0, 10, size + 1))
    h, l = c + rng.random(size + 1) * 8, c - rng.random(size + 1) * 8
    v = rng.integers(1, 1000, size + 1).astype(float)
    sid = np.arange(size + 1) // 50
    short = all_outputs(h[:size], l[:size], c[:size], v[:size], sid[:size])
    longer = all_outputs(h, l, c, v, sid)
    h2, l2, c2 = h.copy(), l.copy(), c.copy()
    c2[-1] += 500.0
    h2[-1] += 900.0
    l2[-1] -= 100.0
    bumped = all_outputs(h2, l2, c2, v, sid)
    for k in short:
        np.testing.assert_allclose(longer[k][:size], short[k], rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=k)
        np.testing.assert_allclose(bumped[k][:size], short[k], rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=k)
    if size > 28:                                  # and the new bar itself does move
        assert bumped["ADX"][-1] != longer["ADX"][-1]
        assert bumped["RSI"][-1] != longer["RSI"][-1]


# ----------------------------------------------------------------------------- VWAP
def test_vwap_equals_a_direct_computation():
    s = series("walk")
    sid = np.repeat(np.arange(8), 50)
    got = ind.vwap(s["high"], s["low"], s["close"], s["volume"], sid)
    want = []
    for i in range(sid.size):
        j = i
        while j > 0 and sid[j - 1] == sid[i]:
            j -= 1
        tp = (s["high"][j:i + 1] + s["low"][j:i + 1] + s["close"][j:i + 1]) / 3
        want.append(float(np.sum(tp * s["volume"][j:i + 1]) / np.sum(s["volume"][j:i + 1])))
    assert_close(got, want, "vwap")
    assert got[50] == pytest.approx((s["high"][50] + s["low"][50] + s["close"][50]) / 3)


def test_vwap_resets_on_session_change_and_is_nan_without_volume():
    h = np.array([11.0, 12, 13, 14, 15])
    l = h - 2
    c = h - 1
    v = np.array([0.0, 10, 30, 0, 10])
    got = ind.vwap(h, l, c, v, np.array([1, 1, 1, 2, 2]))
    assert math.isnan(got[0]) and math.isnan(got[3])
    assert got[1] == pytest.approx(11.0)
    assert got[2] == pytest.approx((11 * 10 + 12 * 30) / 40)
    assert got[4] == pytest.approx(14.0)
    # an id that comes back later is a new session: the change is what resets
    again = ind.vwap(h, l, c, np.full(5, 1.0), np.array([1, 1, 2, 1, 1]))
    assert again[3] == pytest.approx(13.0)


def test_vwap_rejects_bad_input():
    one = np.ones(3)
    with pytest.raises(ValueError, match="volume is negative at index 1"):
        ind.vwap(one, one, one, np.array([1.0, -1, 1]), np.zeros(3, int))
    with pytest.raises(ValueError, match="session_ids must be integers"):
        ind.vwap(one, one, one, one, np.zeros(3))
    with pytest.raises(ValueError, match="session_ids must have length 3"):
        ind.vwap(one, one, one, one, np.zeros(2, int))
    with pytest.raises(ValueError, match="volume must be >= 0"):
        ind.VwapState().update(1, 1, 1, -5, 0)


# ----------------------------------------------------------------------------- edge cases
def hlc(size=10):
    c = np.linspace(100, 110, size)
    return c + 1, c - 1, c


@pytest.mark.parametrize("fn,args,n", [
    (ind.sma, (np.ones(19),), 20), (ind.ema, (np.ones(19),), 20), (ind.rsi, (np.ones(14),), 14),
    (ind.atr, hlc(14), 14), (ind.rsi, (np.ones(3),), 14), (ind.sma, (np.ones(0),), 3)])
def test_period_longer_than_input_gives_all_nan(fn, args, n):
    out = fn(*args, n)
    assert out.shape == args[0].shape and np.isnan(out).all()


def test_adx_shorter_than_its_lookbacks():
    h, l, c = hlc(27)
    a, p, m = ind.adx(h, l, c, 14)
    assert np.isnan(a).all() and not np.isnan(p[14:]).any() and np.isnan(p[:14]).all()
    a, p, m = ind.adx(*hlc(14), 14)
    assert np.isnan(a).all() and np.isnan(p).all() and np.isnan(m).all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, 14.0, True, "14", None])
@pytest.mark.parametrize("call", [
    lambda n: ind.sma(np.ones(5), n), lambda n: ind.ema(np.ones(5), n),
    lambda n: ind.rsi(np.ones(5), n), lambda n: ind.atr(*hlc(), n),
    lambda n: ind.adx(*hlc(), n), lambda n: ind.EmaState(n), lambda n: ind.RsiState(n),
    lambda n: ind.AtrState(n), lambda n: ind.AdxState(n)])
def test_bad_period_raises_naming_n(call, bad):
    with pytest.raises(ValueError, match=r"^n must be an integer >= \d"):
        call(bad)


def test_rsi_and_adx_need_period_two_like_talib():
    with pytest.raises(ValueError, match="n must be an integer >= 2, got 1"):
        ind.rsi(np.ones(5), 1)
    with pytest.raises(ValueError, match="n must be an integer >= 2, got 1"):
        ind.adx(*hlc(), 1)


def test_period_one():
    h, l, c = hlc()
    np.testing.assert_array_equal(ind.sma(c, 1), c)
    np.testing.assert_array_equal(ind.ema(c, 1), c)
    np.testing.assert_allclose(ind.atr(h, l, c, 1), ind.true_range(h, l, c), equal_nan=True)


def test_flat_prices():
    c = np.full(60, 24000.0)
    np.testing.assert_array_equal(ind.rsi(c, 14)[14:], 0.0)       # TA-Lib's answer for 0/0
    a, p, m = ind.adx(c, c, c, 14)
    np.testing.assert_array_equal(a[27:], 0.0)
    np.testing.assert_array_equal(p[14:], 0.0)
    np.testing.assert_array_equal(m[14:], 0.0)
    np.testing.assert_array_equal(ind.atr(c, c, c, 14)[14:], 0.0)
    np.testing.assert_array_equal(ind.ema(c, 20)[19:], 24000.0)


@pytest.mark.parametrize("fn", [lambda x: ind.sma(x, 3), lambda x: ind.rsi(x, 3),
                                lambda x: ind.atr(x + 1, x - 1, x, 3)])
def test_non_finite_input_raises_naming_the_array(fn):
    x = np.linspace(1, 2, 10)
    x[6] = np.nan
    with pytest.raises(ValueError, match=r"(x|close|high) has a non-finite value at index 6"):
        fn(x)


def test_bad_bar_arrays_raise():
    h, l, c = hlc()
    with pytest.raises(ValueError, match="high < low at index 4"):
        l2 = l.copy()
        l2[4] = h[4] + 1
        ind.atr(h, l2, c, 3)
    with pytest.raises(ValueError, match="lengths differ: 10, 9, 10"):
        ind.adx(h, l[:-1], c, 3)
    with pytest.raises(ValueError, match="close must be a 1-D array"):
        ind.rsi(np.ones((3, 3)), 2)


def test_outputs_are_new_float_arrays_and_inputs_untouched():
    h, l, c = (a.copy() for a in hlc(80))
    keep = c.copy()
    out = ind.ema(c, 5)
    ind.adx(h, l, c, 5)
    ind.rsi(c, 5)
    assert out.dtype == np.float64 and out is not c
    np.testing.assert_array_equal(c, keep)
    np.testing.assert_array_equal(ind.sma([1, 2, 3, 4], 2), [np.nan, 1.5, 2.5, 3.5])


def test_states_reject_non_finite_values():
    with pytest.raises(ValueError, match="close must be a finite number, got nan"):
        ind.RsiState(3).update(math.nan)
    with pytest.raises(ValueError, match="high must be a finite number, got inf"):
        ind.AdxState(3).update(math.inf, 1.0, 1.0)
    with pytest.raises(ValueError, match="volume must be a finite number"):
        ind.VwapState().update(1.0, 1.0, 1.0, math.nan, 1)
