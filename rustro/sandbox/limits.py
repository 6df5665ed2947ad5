"""The gateway's side of Angel's rate limits: refuse at once, never wait.

Same table as the client's limiter (rustro.broker.ratelimit, spec 4.3), counted per client code in
sliding windows on the sandbox clock. `slack` seconds are taken off every window (at most half of
it): under an accelerated clock a millisecond of wall-time jitter between the bot's send and our
arrival is a large slice of a virtual second, and a faithful client must not be punished for it.
"""
from __future__ import annotations

import threading
from bisect import bisect_right
from typing import Mapping

from ..broker import ratelimit as rl
from ..clock import Clock

DENIED_TEXT = "Access denied because of exceeding access rate"


class RateGate:
    def __init__(self, clock: Clock, limits: Mapping[str, rl.Windows] | None = None,
                 parents: Mapping[str, tuple[str, ...]] = rl.DEFAULT_PARENTS, slack: float = 0.0):
        if slack < 0:
            raise ValueError(f"rate gate slack must be >= 0, got {slack}")
        self.clock = clock
        self.limits = dict(limits if limits is not None else rl.default_limits())
        self.parents = dict(parents)
        self.slack = slack
        self._hits: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()
        self.denied = 0

    def _span(self, span: float) -> float:
        return span - min(self.slack, span / 2)

    def allow(self, client: str, group: str) -> bool:
        """Count the request if every window of `group` (and its parents) has room; else refuse."""
        if group not in self.limits:
            raise KeyError(f"unknown rate-limit group {group!r}")
        chain = (group, *self.parents.get(group, ()))
        with self._lock:
            now = self.clock.now().timestamp()  # inside the lock: hits stay in time order
            for g in chain:
                hits = self._hits.setdefault((client, g), [])
                del hits[:bisect_right(hits, now - max(s for s, _ in self.limits[g]))]
                for span, n in self.limits[g]:
                    if len(hits) - bisect_right(hits, now - self._span(span)) >= n:
                        self.denied += 1
                        return False
            for g in chain:
                self._hits[(client, g)].append(now)
            return True
