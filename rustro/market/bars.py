"""Bars as the strategy sees them: session-aligned aggregation, expected starts and gaps, and a
rolling window per (token, interval).

Pure: no I/O and no clock; callers pass `now`. Hourly bars are aligned to the session open
(09:15, 10:15, ..., 15:15), the last one short (15:15-15:30), like Angel One's ONE_HOUR candles.
Daily bars start at midnight IST, like Angel One's ONE_DAY candles. All datetimes are aware IST.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from itertools import chain
from typing import Iterable

import numpy as np

from ..calendar import at
from ..clock import IST, ist
from .base import ONE_DAY, ONE_HOUR, ONE_MINUTE, Bar, check_bar

SESSION_OPEN = time(9, 15)
SESSION_CLOSE = time(15, 30)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def _session(day: date, session_open: time, session_close: time) -> tuple[datetime, datetime]:
    if session_open >= session_close:
        raise ValueError(f"session_open {session_open} must be before session_close "
                         f"{session_close}")
    return at(day, session_open), at(day, session_close)


# ----------------------------------------------------------------------------- hourly slots
def hour_bar_start(dt: datetime, session_open: time = SESSION_OPEN,
                   session_close: time = SESSION_CLOSE) -> datetime:
    """Start of the session hourly bar containing `dt` (09:15 <= dt < 15:30)."""
    dt = ist(dt)
    open_, close = _session(dt.date(), session_open, session_close)
    if not open_ <= dt < close:
        raise ValueError(f"{dt.isoformat()} is outside the session "
                         f"{session_open:%H:%M}-{session_close:%H:%M}")
    return open_ + HOUR * ((dt - open_) // HOUR)


def hour_bar_close(start: datetime, session_open: time = SESSION_OPEN,
                   session_close: time = SESSION_CLOSE) -> datetime:
    """When the hourly bar starting at `start` closes: an hour later, or at the session close."""
    start = ist(start)
    if hour_bar_start(start, session_open, session_close) != start:
        raise ValueError(f"{start.isoformat()} is not a session hourly bar start")
    return min(start + HOUR, at(start.date(), session_close))


def bar_close(start: datetime, interval: str, session_open: time = SESSION_OPEN,
              session_close: time = SESSION_CLOSE) -> datetime:
    """The instant a bar of `interval` starting at `start` is complete."""
    start = ist(start)
    if interval == ONE_MINUTE:
        return start + MINUTE
    if interval == ONE_HOUR:
        return hour_bar_close(start, session_open, session_close)
    if interval == ONE_DAY:
        return at(start.date(), session_close)
    raise ValueError(f"interval must be {ONE_MINUTE}, {ONE_HOUR} or {ONE_DAY}, got {interval!r}")


# ----------------------------------------------------------------------------- starts and gaps
def expected_minute_starts(day: date, session_open: time = SESSION_OPEN,
                           session_close: time = SESSION_CLOSE) -> list[datetime]:
    """Every minute-bar start of the session: 09:15 .. 15:29."""
    open_, close = _session(day, session_open, session_close)
    return [open_ + MINUTE * i for i in range((close - open_) // MINUTE)]


def expected_hour_starts(day: date, session_open: time = SESSION_OPEN,
                         session_close: time = SESSION_CLOSE) -> list[datetime]:
    """Every hourly-bar start of the session: 09:15, 10:15, .., 15:15."""
    open_, close = _session(day, session_open, session_close)
    return [open_ + HOUR * i for i in range(-(-(close - open_) // HOUR))]


def expected_starts(day: date, interval: str, session_open: time = SESSION_OPEN,
                    session_close: time = SESSION_CLOSE) -> list[datetime]:
    if interval == ONE_MINUTE:
        return expected_minute_starts(day, session_open, session_close)
    if interval == ONE_HOUR:
        return expected_hour_starts(day, session_open, session_close)
    if interval == ONE_DAY:
        _session(day, session_open, session_close)
        return [at(day, time(0))]
    raise ValueError(f"interval must be {ONE_MINUTE}, {ONE_HOUR} or {ONE_DAY}, got {interval!r}")


def find_gaps(bars: Iterable[Bar], day: date, now: datetime, interval: str = ONE_MINUTE,
              session_open: time = SESSION_OPEN, session_close: time = SESSION_CLOSE,
              grace_sec: float = 0.0) -> list[datetime]:
    """Starts of the bars of `day` that should be complete by `now` (close + grace <= now) but
    are missing from `bars`. `day` must be a trading day: ask the calendar first."""
    now = ist(now)
    if grace_sec < 0:
        raise ValueError(f"grace_sec must be >= 0, got {grace_sec!r}")
    have = {ist(b.start) for b in bars}
    grace = timedelta(seconds=grace_sec)
    return [s for s in expected_starts(day, interval, session_open, session_close)
            if bar_close(s, interval, session_open, session_close) + grace <= now
            and s not in have]


# ----------------------------------------------------------------------------- aggregation
def _clean(minute_bars: Iterable[Bar]) -> list[Bar]:
    """Sorted by start, one bar per start (a repeated start replaces the earlier one)."""
    by_start: dict[datetime, Bar] = {}
    for b in minute_bars:
        start = ist(b.start)
        if start.second or start.microsecond:
            raise ValueError(f"minute bar start {start.isoformat()} is not on a whole minute")
        by_start[start] = b if b.start.tzinfo == start.tzinfo else replace(b, start=start)
    return [by_start[k] for k in sorted(by_start)]


def _merge(start: datetime, group: list[Bar]) -> Bar:
    return Bar(start=start, open=group[0].open, high=max(b.high for b in group),
               low=min(b.low for b in group), close=group[-1].close,
               volume=sum(b.volume for b in group))


def hourly_bars(minute_bars: Iterable[Bar], session_open: time = SESSION_OPEN,
                session_close: time = SESSION_CLOSE, include_partial: bool = False) -> list[Bar]:
    """Session-aligned hourly bars from minute bars; volume summed.

    An hour is complete when its last minute bar (10:14 for the 09:15 bar, 15:29 for 15:15) is
    present; a missing interior minute is a gap (see `find_gaps`), not a reason to drop the hour.
    Minute bars outside the session (pre-open, after close) are ignored.
    """
    groups: dict[datetime, list[Bar]] = {}
    for b in _clean(minute_bars):
        open_, close = _session(b.start.date(), session_open, session_close)
        if open_ <= b.start < close:
            groups.setdefault(hour_bar_start(b.start, session_open, session_close), []).append(b)
    out = []
    for start, group in groups.items():
        complete = group[-1].start == hour_bar_close(start, session_open, session_close) - MINUTE
        if complete or include_partial:
            out.append(_merge(start, group))
    return out


def daily_bars(minute_bars: Iterable[Bar], session_open: time = SESSION_OPEN,
               session_close: time = SESSION_CLOSE) -> list[Bar]:
    """One bar per IST date from that date's in-session minute bars, starting at midnight.

    Today's forming day is included if given: drop it before computing a daily bias.
    """
    groups: dict[date, list[Bar]] = {}
    for b in _clean(minute_bars):
        open_, close = _session(b.start.date(), session_open, session_close)
        if open_ <= b.start < close:
            groups.setdefault(b.start.date(), []).append(b)
    return [_merge(at(d, time(0)), group) for d, group in groups.items()]


# ----------------------------------------------------------------------------- rolling window
class BarWindow:
    """The latest `maxlen` bars of one (token, interval), ordered by start and keyed by it."""

    def __init__(self, token: str, interval: str, maxlen: int = 500):
        if interval not in (ONE_MINUTE, ONE_HOUR, ONE_DAY):
            raise ValueError(f"interval must be {ONE_MINUTE}, {ONE_HOUR} or {ONE_DAY}, "
                             f"got {interval!r}")
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"maxlen must be an integer >= 1, got {maxlen!r}")
        self.token, self.interval, self.maxlen = token, interval, maxlen
        self._starts: list[datetime] = []
        self._bars: list[Bar] = []
        self._rows: list[tuple] = []   # (open, high, low, close, volume, session ordinal) per bar

    def upsert(self, bar: Bar) -> bool:
        """Insert `bar`, or replace the bar with the same start; True if the window changed.

        A bar older than everything in a full window is not kept (False). An impossible bar
        (non-finite, a price <= 0, high < low, open/close outside [low, high], volume < 0) raises
        ValueError (DataError for the last three kinds): the feed drops such bars before this.
        """
        start = bar.start if bar.start.tzinfo is IST else ist(bar.start)
        o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
        if not (type(o) is float and type(h) is float and type(lo) is float and type(c) is float
                and (type(v) is float or type(v) is int) and 0 < lo <= o <= h and lo <= c <= h
                and math.isfinite(h) and 0 <= v and math.isfinite(v)):
            self._refuse(bar, start)  # raises, unless an unusual but good bar (an int price)
        if bar.start.tzinfo is not start.tzinfo:
            bar = replace(bar, start=start)
        starts = self._starts
        row = (o, h, lo, c, v, start.date().toordinal())
        if not starts or start > starts[-1]:  # the usual case: a newer bar
            i = len(starts)
        else:
            i = bisect_left(starts, start)
        if i < len(starts) and starts[i] == start:
            if self._bars[i] == bar:
                return False
            self._bars[i], self._rows[i] = bar, row
            return True
        if len(self._bars) >= self.maxlen and i == 0:
            return False
        self._starts.insert(i, start)
        self._bars.insert(i, bar)
        self._rows.insert(i, row)
        if len(self._bars) > self.maxlen:
            del self._starts[0], self._bars[0], self._rows[0]
        return True

    def _refuse(self, bar: Bar, start: datetime) -> None:
        """The checks a good bar passes at a glance, one by one, naming what is wrong."""
        values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{self.token} {self.interval} bar at {start.isoformat()} has a "
                             f"non-finite value: {values}")
        if bar.high < bar.low:
            raise ValueError(f"{self.token} {self.interval} bar at {start.isoformat()}: "
                             f"high {bar.high} < low {bar.low}")
        # zero/negative prices, open or close outside [low, high], negative volume: DataError
        check_bar(bar, f"{self.token} {self.interval} bar at {start.isoformat()}")

    def extend(self, bars: Iterable[Bar]) -> int:
        """Upsert each bar; how many changed the window."""
        return sum(self.upsert(b) for b in bars)

    @property
    def last(self) -> Bar | None:
        return self._bars[-1] if self._bars else None

    def bars(self) -> list[Bar]:
        return list(self._bars)

    def on(self, day: date) -> list[Bar]:
        """The bars that start on `day` (IST), by bisection on the ordered starts."""
        first = at(day, time(0, 0))
        return self._bars[bisect_left(self._starts, first):
                          bisect_left(self._starts, first + timedelta(days=1))]

    def __len__(self) -> int:
        return len(self._bars)

    def arrays(self) -> dict[str, np.ndarray]:
        """Columns for the indicators: open, high, low, close, volume (float), start (aware
        datetimes) and session (IST date ordinal per bar, for `indicators.vwap`)."""
        n = len(self._rows)  # fromiter: half the time of np.array on a list of tuples, same values
        m = np.fromiter(chain.from_iterable(self._rows), dtype=np.float64, count=n * 6).reshape(n, 6)
        cols = {name: m[:, k].copy() for k, name in enumerate(("open", "high", "low", "close",
                                                                 "volume"))}
        cols["start"] = np.array(self._starts, dtype=object)
        cols["session"] = m[:, 5].astype(np.int64)
        return cols
