"""O(1) live updaters: one new bar in, the new indicator value out.

TA-Lib's own recursions one bar at a time; they agree with the array functions in
`rustro.indicators` to 1e-9 (tested), which makes each an independent check of the other.
"""
from __future__ import annotations

import math

from numbers import Integral


NAN = math.nan


def _period(n, name: str = "n", low: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, Integral) or n < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {n!r}")
    return int(n)


def _finite(**values: float) -> None:
    for name, v in values.items():
        if not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")


class EmaState:
    """O(1) EMA(n), seeded by the SMA of the first n values."""

    def __init__(self, n: int):
        self.n = _period(n)
        self._count = 0
        self._sum = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        _finite(x=x)
        self._count += 1
        if self._count < self.n:
            self._sum += x
        elif self._count == self.n:
            self.value = (self._sum + x) / self.n
        else:
            self.value = (x - self.value) * (2.0 / (self.n + 1)) + self.value
        return self.value


class _WilderMean:
    """Mean of the first n inputs, then (prev*(n-1) + x)/n, in TA-Lib's operation order."""

    def __init__(self, n: int):
        self.n, self.count, self._sum, self.value = n, 0, 0.0, NAN

    def update(self, x: float) -> float:
        self.count += 1
        if self.count < self.n:
            self._sum += x
        elif self.count == self.n:
            self.value = (self._sum + x) / self.n
        else:
            self.value = (self.value * (self.n - 1) + x) / self.n
        return self.value


class RsiState:
    """O(1) Wilder RSI(n)."""

    def __init__(self, n: int):
        self.n = _period(n, low=2)
        self._prev: float | None = None
        self._gain, self._loss = _WilderMean(self.n), _WilderMean(self.n)
        self.value = NAN

    def update(self, close: float) -> float:
        _finite(close=close)
        prev, self._prev = self._prev, float(close)
        if prev is None:
            return self.value
        d = close - prev
        gain, loss = self._gain.update(max(d, 0.0)), self._loss.update(max(-d, 0.0))
        if self._gain.count >= self.n:
            tot = gain + loss
            self.value = 100.0 * (gain / tot) if tot != 0.0 else 0.0
        return self.value


def _true_range(high: float, low: float, prev_close: float) -> float:
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


class AtrState:
    """O(1) Wilder ATR(n)."""

    def __init__(self, n: int):
        self.n = _period(n)
        self._prev_close: float | None = None
        self._atr = _WilderMean(self.n)
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        _finite(high=high, low=low, close=close)
        prev, self._prev_close = self._prev_close, float(close)
        if prev is not None:
            self.value = self._atr.update(_true_range(high, low, prev))
        return self.value


class AdxState:
    """O(1) Wilder ADX(n) with +DI/-DI; `update` returns (adx, plus_di, minus_di)."""

    def __init__(self, n: int):
        self.n = _period(n, low=2)
        self._prev: tuple[float, float, float] | None = None
        self._count = 0                     # bars after the first
        self._pdm = self._mdm = self._tr = 0.0
        self._adx = _WilderMean(self.n)
        self.value = (NAN, NAN, NAN)

    def update(self, high: float, low: float, close: float) -> tuple[float, float, float]:
        _finite(high=high, low=low, close=close)
        prev, self._prev = self._prev, (float(high), float(low), float(close))
        if prev is None:
            return self.value
        n = self.n
        up, dn = high - prev[0], prev[1] - low
        pdm = up if (up > 0 and up > dn) else 0.0
        mdm = dn if (dn > 0 and dn > up) else 0.0
        tr = _true_range(high, low, prev[2])
        self._count += 1
        if self._count < n:                 # seed: plain sums of the first n-1 values
            self._pdm, self._mdm, self._tr = self._pdm + pdm, self._mdm + mdm, self._tr + tr
            return self.value
        self._pdm = self._pdm - self._pdm / n + pdm
        self._mdm = self._mdm - self._mdm / n + mdm
        self._tr = self._tr - self._tr / n + tr
        pdi = mdi = 0.0
        dx = None                           # undefined: zero TR sum or zero DI sum
        if self._tr != 0.0:
            pdi = 100.0 * (self._pdm / self._tr)
            mdi = 100.0 * (self._mdm / self._tr)
            if mdi + pdi != 0.0:
                dx = 100.0 * (abs(mdi - pdi) / (mdi + pdi))
        if dx is not None or self._adx.count < n:   # counts as 0 in the seed, else holds ADX
            self._adx.update(dx or 0.0)
        self.value = (self._adx.value, pdi, mdi)
        return self.value


class VwapState:
    """O(1) session-anchored VWAP; a new session id starts a new session."""

    def __init__(self):
        self._session = None
        self._pv = self._v = 0.0
        self.value = NAN

    def update(self, high: float, low: float, close: float, volume: float,
               session_id: int) -> float:
        _finite(high=high, low=low, close=close, volume=volume)
        if volume < 0:
            raise ValueError(f"volume must be >= 0, got {volume!r}")
        if session_id != self._session:
            self._session, self._pv, self._v = session_id, 0.0, 0.0
        self._pv += (high + low + close) / 3.0 * volume
        self._v += volume
        self.value = self._pv / self._v if self._v > 0 else NAN
        return self.value
