"""Time, owned in one place: every trading decision reads an injected Clock, never the OS.

All datetimes are timezone-aware Asia/Kolkata. `WallClock` is the real clock; `VirtualClock` is
moved by the sim driver (a day in seconds); `AcceleratedClock` runs N x wall time from a start
instant, so a sandbox and a bot in two processes share one fast virtual day.
"""
from __future__ import annotations

import time as _time
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


def ist(dt: datetime) -> datetime:
    """`dt` as an aware IST datetime; a naive one is refused, never guessed."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()} (times must be timezone-aware)")
    return dt.astimezone(IST)


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(IST)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)


class VirtualClock:
    """Moves only when told to. `sleep` advances it, so waiting code runs instantly in sim."""

    def __init__(self, start: datetime):
        self._now = ist(start)

    def now(self) -> datetime:
        return self._now

    def set(self, dt: datetime) -> None:
        dt = ist(dt)
        if dt < self._now:
            raise ValueError(f"virtual clock cannot go back from {self._now} to {dt}")
        self._now = dt

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


class AcceleratedClock:
    """Virtual time = start + (wall elapsed since `wall_epoch`) x factor.

    Two processes given the same (start, wall_epoch, factor) agree on the time, which is how the
    sandbox and a `run --live` rehearsal share a fast day over real HTTP.
    """

    def __init__(self, start: datetime, factor: float, wall_epoch: float | None = None):
        if factor <= 0:
            raise ValueError(f"acceleration factor must be > 0, got {factor}")
        self.start = ist(start)
        self.factor = factor
        self.wall_epoch = _time.time() if wall_epoch is None else wall_epoch

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(_time.time() - self.wall_epoch) * self.factor)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds / self.factor)

    def sleep_until(self, dt: datetime) -> None:
        self.sleep((ist(dt) - self.now()).total_seconds())
