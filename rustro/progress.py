"""A one-line progress bar on stderr: items done, elapsed, ETA. Drawn only on a terminal, and only
once the run has taken `delay` seconds (a short run prints nothing); silent when stderr is a pipe
or a file, so logs and CI output stay clean."""
from __future__ import annotations

import sys
import time


def _clock(sec: float) -> str:
    s = int(sec)
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


class Progress:
    WIDTH = 24
    DELAY = 2.0  # seconds before the bar first shows

    def __init__(self, total: int, unit: str = "days", stream=None, delay: float | None = None,
                 clock=time.monotonic):
        self.total, self.unit, self.clock = total, unit, clock
        self.delay = self.DELAY if delay is None else delay
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = total > 0 and bool(isatty and isatty())
        self.start = clock()
        self.done = 0
        self.shown = False
        self._width = 0

    def line(self) -> str:
        elapsed = self.clock() - self.start
        frac = self.done / self.total if self.total else 1.0
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        eta = _clock(elapsed / self.done * (self.total - self.done)) if self.done else "?"
        return (f"backtest {self.done}/{self.total} {self.unit} [{bar}] {int(frac * 100):3d}%  "
                f"{_clock(elapsed)} elapsed, ETA {eta}")

    def update(self, done: int | None = None) -> None:
        self.done = self.done + 1 if done is None else done
        if not self.enabled or (not self.shown and self.clock() - self.start < self.delay):
            return
        text = self.line()
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = max(self._width, len(text))
        self.shown = True

    def close(self) -> None:
        """End the bar's line (a run that never showed it writes nothing)."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False
