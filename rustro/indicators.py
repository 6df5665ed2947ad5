"""Technical indicators that equal TA-Lib (default settings, unstable period 0) after its lookback.

Array functions take float arrays and return float arrays of the same length, NaN during the
lookback; agreement with TA-Lib is within 1e-9 relative (1e-9 absolute below 1), ~1e-14 in
practice. Every EMA/Wilder smoothing is the recursion y[t] = a*y[t-1] + c[t]; a Python loop over
it is ~100x slower than TA-Lib, so `_recur` solves it block-wise with numpy. The `*State`
classes (rustro/indicators_live.py, re-exported here) are the O(1) live updaters: TA-Lib's own loop one bar at a time, which also makes them
an independent check of the arrays.

Zero tests (a zero true-range sum, a zero gain+loss sum) are exact, as in the TA-Lib build the
reference vectors came from (TA-Lib 0.4 used a 1e-8 band that prices on a 0.05 tick never fall
into). After thousands of identical bars Wilder sums decay toward subnormals; RSI/DI/ADX then
switch to the exact loop (`_decayed`). Deep in subnormals (RSI(14) after ~10,000 identical bars)
the installed TA-Lib itself departs from its source's operation order, so no match is claimed.
"""
from __future__ import annotations

import math

import numpy as np

from .indicators_live import AdxState, AtrState, EmaState, RsiState, VwapState, _period

__all__ = ["sma", "ema", "rsi", "true_range", "atr", "adx", "vwap", "EmaState", "RsiState",
           "AtrState", "AdxState", "VwapState"]

NAN = math.nan
_BLOCK = 4          # bars per block in `_recur` (fastest measured: short strided columns)
_LOOP_MAX = 32      # recursions this short run as a plain loop
_TINY = 1e-250      # see _decayed


# ----------------------------------------------------------------------------- validation
def _series(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        i = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ValueError(f"{name} has a non-finite value at index {i}: {a[i]!r}")
    return a


def _hlc(high, low, close) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, l, c = _series(high, "high"), _series(low, "low"), _series(close, "close")
    if not (h.size == l.size == c.size):
        raise ValueError(f"high, low, close lengths differ: {h.size}, {l.size}, {c.size}")
    bad = np.flatnonzero(h < l)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"high < low at index {i}: {h[i]!r} < {l[i]!r}")
    return h, l, c


# ----------------------------------------------------------------------------- the recursion
def _recur(f: float, c: np.ndarray, y0: float) -> np.ndarray:
    """y[t] = f*y[t-1] + c[t] with y[-1] = y0, for 0 <= f <= 1; overwrites `c` with y.

    Cut the series into blocks of _BLOCK bars, one row each; a loop over the few columns runs
    the recursion in every block at once from a zero start. Block ends obey the same recursion
    with factor f**_BLOCK, solved by recursing on those _BLOCK-times-fewer values; then each
    block adds its true start value times f**(k+1). No division and no negative powers: a
    factor that underflows only drops a contribution that is itself below ~1e-300.
    """
    n = c.size
    if n <= _LOOP_MAX:
        c[:] = _recur_loop(f, c, y0)
        return c
    L = _BLOCK
    m = n - n % L
    x = c[:m].reshape(-1, L)
    tmp = np.empty(x.shape[0])
    for k in range(1, L):
        x[:, k] += np.multiply(x[:, k - 1], f, out=tmp)
    ends = _recur(f ** L, x[:, -1].copy(), y0)
    for k in range(L - 1):                 # block b starts from ends[b-1] (block 0 from y0)
        x[0, k] += y0 * f ** (k + 1)
        x[1:, k] += np.multiply(ends[:-1], f ** (k + 1), out=tmp[1:])
    x[:, -1] = ends
    if m < n:
        c[m:] = _recur_loop(f, c[m:], ends[-1])
    return c


def _recur_loop(f: float, c: np.ndarray, y0: float) -> np.ndarray:
    out = np.empty(c.size)
    y = float(y0)
    for i, v in enumerate(c.tolist()):
        y = f * y + v
        out[i] = y
    return out


def _decayed(s: np.ndarray) -> bool:
    """Did a non-negative Wilder sum, once positive, decay below 1e-250 (toward subnormals)?

    There the closed form and TA-Lib's loop round differently and ratios of such sums (RSI, DI,
    DX) become noise, so callers switch to the exact loop. It takes 800+ (n=2) to 7,000+ (n=14)
    identical bars in a row.
    """
    if not s.size or s.min() >= _TINY:
        return False
    positive = np.flatnonzero(s > 0)
    return positive.size > 0 and s[positive[0]:].min() < _TINY


def _by_state(state, *columns: np.ndarray) -> list:
    return [state.update(*row) for row in zip(*(col.tolist() for col in columns))]


# ----------------------------------------------------------------------------- array functions
# Written with out= and in-place operations: at 1M bars each fresh temporary costs about as much
# as the arithmetic itself.

def sma(x, n: int) -> np.ndarray:
    """Simple moving average; lookback n-1. Run as mean[t] = mean[t-1] + (x[t] - x[t-n])/n."""
    n, x = _period(n), _series(x, "x")
    out = np.full(x.size, NAN)
    if x.size < n:
        return out
    seed = float(np.sum(x[:n])) / n
    out[n - 1] = seed
    step = np.subtract(x[n:], x[:-n], out=out[n:])
    step /= n
    _recur(1.0, step, seed)
    return out


def ema(x, n: int) -> np.ndarray:
    """EMA seeded by the SMA of the first n values, alpha = 2/(n+1); lookback n-1."""
    n, x = _period(n), _series(x, "x")
    out = np.full(x.size, NAN)
    if x.size < n:
        return out
    k = 2.0 / (n + 1)
    seed = float(np.sum(x[:n])) / n
    out[n - 1] = seed
    _recur(1.0 - k, np.multiply(x[n:], k, out=out[n:]), seed)
    return out


def rsi(close, n: int) -> np.ndarray:
    """Wilder RSI; averages seeded by the mean gain/loss of the first n changes; lookback n.

    100*G/(G+L); 0 when G+L is zero (flat prices), as TA-Lib answers.
    """
    n, x = _period(n, low=2), _series(close, "close")
    out = np.full(x.size, NAN)
    if x.size <= n:
        return out
    move = np.subtract(x[1:], x[:-1])      # index i: the change into bar i+1
    gain = np.maximum(move, 0.0, out=out[1:])
    both = np.abs(move, out=move)          # gain + loss, which follows the same recursion
    a = (n - 1) / n
    for v in (gain, both):
        seed = float(np.sum(v[:n])) / n
        v[n:] /= n
        _recur(a, v[n:], seed)
        v[n - 1] = seed
    both = both[n - 1:]                    # bar n onward, aligned with out[n:]
    if _decayed(both):
        return np.array(_by_state(RsiState(n), x))
    r = out[n:]
    with np.errstate(invalid="ignore"):
        r /= both
    r *= 100.0
    r[both == 0.0] = 0.0
    out[:n] = NAN
    return out


def true_range(high, low, close) -> np.ndarray:
    """max(h-l, |h-prev c|, |l-prev c|); NaN at index 0 (no previous close), as TA-Lib."""
    h, l, c = _hlc(high, low, close)
    out = np.full(h.size, NAN)
    _tr(h, l, c, out[1:])
    return out


def _tr(h, l, c, out: np.ndarray | None = None) -> np.ndarray:
    # With high >= low this picks the same single subtraction TA-Lib's three-way max picks.
    out = np.maximum(h[1:], c[:-1], out=out)
    out -= np.minimum(l[1:], c[:-1])
    return out


def atr(high, low, close, n: int) -> np.ndarray:
    """Wilder ATR: mean of the first n true ranges (from index 1), then (prev*(n-1)+TR)/n."""
    n = _period(n)
    h, l, c = _hlc(high, low, close)
    out = np.full(h.size, NAN)
    if h.size <= n:
        return out
    tr = _tr(h, l, c, out[1:])
    seed = float(np.sum(tr[:n])) / n
    rest = out[n + 1:]
    rest /= n
    _recur((n - 1) / n, rest, seed)
    out[n] = seed
    out[:n] = NAN
    return out


def _wilder_sum(x: np.ndarray, n: int) -> np.ndarray:
    """TA-Lib's DM/TR sums in place: the first n-1 values summed, then S - S/n + x.

    `x[i]` belongs to bar i+1; the returned view starts at bar n.
    """
    seed = float(np.sum(x[:n - 1]))
    return _recur((n - 1) / n, x[n - 1:], seed)


def adx(high, low, close, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder (ADX, +DI, -DI). DI lookback n; ADX = Wilder average of DX, lookback 2n-1.

    A bar whose DX is undefined (zero true-range sum or zero DI sum) leaves ADX unchanged, and
    counts as 0 in the seed average, as TA-Lib does. Intermediates live in the output arrays,
    each aligned with its bar.
    """
    n = _period(n, low=2)
    h, l, c = _hlc(high, low, close)
    size = h.size
    adx_out, pdi_out, mdi_out = (np.empty(size) for _ in range(3))
    if size <= n:
        return np.full(size, NAN), np.full(size, NAN), np.full(size, NAN)
    up = np.subtract(h[1:], h[:-1], out=pdi_out[1:])     # the move into bar i+1
    dn = np.subtract(l[:-1], l[1:], out=mdi_out[1:])
    keep_up = (up > 0) & (up > dn)
    dn *= (dn > 0) & (dn > up)                           # now -DM
    up *= keep_up                                        # now +DM
    sp, sm, st = (_wilder_sum(v, n) for v in (up, dn, _tr(h, l, c, adx_out[1:])))
    if _decayed(st) or (_decayed(sp) and _decayed(sm)):
        rows = np.array(_by_state(AdxState(n), h, l, c))
        return rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy()
    zero_tr = st == 0.0
    pdi, mdi = sp, sm                                    # = pdi_out[n:], mdi_out[n:]
    for di in (pdi, mdi):
        with np.errstate(invalid="ignore"):
            di /= st
        di *= 100.0
        di[zero_tr] = 0.0
    pdi_out[:n] = mdi_out[:n] = NAN
    if size < 2 * n:
        adx_out.fill(NAN)
        return adx_out, pdi_out, mdi_out
    dx = np.add(pdi, mdi, out=st)                        # = adx_out[n:]; DI sum for now
    undefined = zero_tr
    undefined |= dx == 0.0
    with np.errstate(invalid="ignore"):
        np.divide(np.abs(mdi - pdi), dx, out=dx)
    dx *= 100.0
    dx[undefined] = 0.0
    seed = float(np.sum(dx[:n])) / n
    rest = dx[n:]                                        # = adx_out[2n:]
    rest /= n
    # TA-Lib holds ADX on an undefined DX. Short of _decayed sums, DX is undefined only before
    # the first true range or first directional move, where ADX is 0, so adding 0 holds it.
    _recur((n - 1) / n, rest, seed)
    adx_out[:2 * n - 1] = NAN
    adx_out[2 * n - 1] = seed
    return adx_out, pdi_out, mdi_out


def vwap(high, low, close, volume, session_ids) -> np.ndarray:
    """Session-anchored VWAP of the typical price (h+l+c)/3; resets whenever the session id
    changes from one bar to the next. NaN while the session has traded no volume.

    Session sums are differences of whole-series cumsums: relative error ~1e-16 x (bars in the
    series / bars so far in the session), far below 1e-9 on any window the bot holds.
    """
    h, l, c = _hlc(high, low, close)
    v = _series(volume, "volume")
    sid = np.asarray(session_ids)
    if v.size != h.size or sid.shape != h.shape:
        raise ValueError(f"volume and session_ids must have length {h.size}, "
                         f"got {v.size} and {sid.shape}")
    if sid.size and not np.issubdtype(sid.dtype, np.integer):
        raise ValueError(f"session_ids must be integers, got dtype {sid.dtype}")
    neg = np.flatnonzero(v < 0)
    if neg.size:
        raise ValueError(f"volume is negative at index {neg[0]}: {v[neg[0]]!r}")
    if not h.size:
        return np.empty(0)
    pv = np.add(h, l)
    pv += c
    pv *= v
    pv /= 3.0
    _recur(1.0, pv, 0.0)                   # running sums; faster than np.cumsum
    cv = _recur(1.0, v.copy(), 0.0)
    start = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])      # first bar of each session
    length = np.diff(np.r_[start, h.size])
    for cum in (pv, cv):                   # subtract the running total before each session
        before = np.r_[0.0, cum[start[1:] - 1]]
        cum -= np.repeat(before, length)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.divide(pv, cv, out=pv)
    out[cv <= 0] = NAN
    return out

