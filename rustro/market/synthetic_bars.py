"""Candles of the synthetic market: minute, session-aligned hourly and daily bars built from its
day series, as of its clock (no look-ahead). Mixed into `rustro.market.synthetic.SyntheticMarket`,
whose series, caches, calendar and clock it reads."""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from datetime import date, datetime, time, timedelta

import numpy as np

from ..calendar import at
from ..clock import ist
from .base import ONE_DAY, ONE_HOUR, ONE_MINUTE, Bar
from .synthetic_cache import SHARED_SERIES, key_of
from .synthetic_paths import ANCHOR_YEAR, N_MIN, SESSION_OPEN

INTERVALS = (ONE_MINUTE, ONE_HOUR, ONE_DAY)
_MINUTES = tuple(timedelta(minutes=i) for i in range(N_MIN + 1))
_HOUR_FIRST = np.arange(0, N_MIN, 60)                       # session-aligned hours: first minute
_HOUR_END = np.minimum(_HOUR_FIRST + 60, N_MIN)             # and end minute (exclusive)


class CandlesMixin:
    """`candles` and its bar builders for SyntheticMarket."""

    def candles(self, exchange: str, token: str, interval: str,
                start: datetime, end: datetime) -> list[Bar]:
        if interval not in INTERVALS:
            raise ValueError(f"candles: interval {interval!r} not one of {INTERVALS}")
        start, end, now = ist(start), ist(end), ist(self.clock.now())
        if start >= end:
            raise ValueError(f"candles: start {start.isoformat()} must be before end {end.isoformat()}")
        kind, ref = self._resolve(exchange, token)
        first = max(start.date(), date(ANCHOR_YEAR, 1, 1))
        last = min(end.date(), now.date())
        if (cap := self._last_day(kind, ref)) is not None:
            last = min(last, cap)
        if interval == ONE_DAY and kind in ("spot", "vix"):
            return self._index_daily_bars(ref, first, last, start, end, now)
        out: list[Bar] = []
        whole_after, whole_before = start.date(), min(end.date(), now.date())
        for d in self._trading_days(first, last):
            if interval == ONE_DAY:
                bar = self._daily_bar(kind, ref, d)
                if start <= bar.start < end and now >= at(d, time(15, 30)):
                    out.append(bar)
            elif interval == ONE_HOUR and whole_after < d < whole_before:  # all the day's bars
                out.extend([bar for _, _, bar in self._day_bars(kind, ref, d, interval)])
            else:
                out.extend(self._intraday_bars(kind, ref, d, interval, start, end, now))
        return out

    def _index_daily_bars(self, name: str, first: date, last: date, start: datetime,
                          end: datetime, now: datetime) -> list[Bar]:
        """The loop above for an index's daily bars: a slice of its year's bars, by bisection."""
        out: list[Bar] = []
        for y in range(first.year, last.year + 1):
            days = self._days_of(y)
            bars, starts = self._year_daily_bars(name, y)
            out.extend(bars[max(bisect_left(days, first), bisect_left(starts, start)):
                            min(bisect_right(days, last), bisect_left(starts, end))])
        if out and out[-1].start.date() == now.date() and now < at(now.date(), time(15, 30)):
            out.pop()  # today's bar: the session has not closed yet
        return out

    def _year_daily_bars(self, name: str, year: int) -> tuple[list[Bar], list[datetime]]:
        """`_daily_bar` of each trading day of a year for an index (from its year path), and
        their start instants."""
        def make():
            p = self._path(name, year)
            bars = [Bar(at(d, time(0, 0)), *p.ohlc(d), 0.0) for d in self._days_of(year)]
            return bars, [b.start for b in bars]
        return self._cached(self._series, SHARED_SERIES, ("1d-year", name, year), date(year, 1, 1), make)

    def _daily_bar(self, kind: str, ref, d: date) -> Bar:
        def make():
            midnight = at(d, time(0, 0))
            if kind in ("spot", "vix"):  # from the year path: no minute data needed
                return Bar(midnight, *self._path(ref, d.year).ohlc(d), 0.0)
            s = self._day_series(kind, ref, d)
            return Bar(midnight, float(s.points[0]), float(s.high.max()), float(s.low.min()),
                       float(s.points[-1]), float(s.volume.sum()))
        return self._cached(self._series, SHARED_SERIES, ("1d", key_of(ref), d), d, make)

    def _minute_bars(self, kind: str, ref, d: date, upto: int) -> list[Bar]:
        """The day's minute bars, at least its first `upto` (Bars are immutable, so a day's are
        made once, and only as far as the clock has asked: today's future for the VWAP)."""
        def make():
            s = self._day_series(kind, ref, d)
            return [a.tolist() for a in (s.open, s.high, s.low, s.close, s.volume)], []
        (o, h, l, c, v), bars = self._bars.get_or((key_of(ref), d), make)
        if len(bars) < upto:
            t0 = at(d, SESSION_OPEN)
            bars.extend([Bar(t0 + _MINUTES[i], o[i], h[i], l[i], c[i], v[i])
                         for i in range(len(bars), upto)])
        return bars

    def _day_bars(self, kind: str, ref, d: date, interval: str) -> list:
        """(first minute, end minute, Bar) of each session-aligned hourly bar of the day."""
        def make():
            s = self._day_series(kind, ref, d)
            t0 = at(d, SESSION_OPEN)
            # max, min and a sum of whole lots (integers far below 2**53) are exact in any order
            o, c = s.open[_HOUR_FIRST].tolist(), s.close[_HOUR_END - 1].tolist()
            h, l, v = (f.reduceat(x, _HOUR_FIRST).tolist() for f, x in
                       ((np.maximum, s.high), (np.minimum, s.low), (np.add, s.volume)))
            return [(a, b, Bar(t0 + _MINUTES[a], o[i], h[i], l[i], c[i], v[i]))
                    for i, (a, b) in enumerate(zip(_HOUR_FIRST.tolist(), _HOUR_END.tolist()))]
        return self._cached(self._series, SHARED_SERIES, ("1h", key_of(ref), d), d, make)

    def _intraday_bars(self, kind, ref, d, interval, start, end, now) -> list[Bar]:
        t0 = at(d, SESSION_OPEN)
        if now <= t0 or end <= t0 or start >= t0 + timedelta(minutes=N_MIN):
            return []
        lo = max(0, math.ceil((start - t0).total_seconds() / 60.0))
        hi = min(N_MIN, math.ceil((end - t0).total_seconds() / 60.0))
        done = min(N_MIN, math.floor((now - t0).total_seconds() / 60.0))
        if interval == ONE_MINUTE:  # today's future for the VWAP: this market's own small cache
            return self._minute_bars(kind, ref, d, min(hi, done))[lo:min(hi, done)]
        return [bar for a, b, bar in self._day_bars(kind, ref, d, interval)
                if not (a < lo or a >= hi or b > done)]
