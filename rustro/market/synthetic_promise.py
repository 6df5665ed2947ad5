"""When the synthetic market's answers can next change: `next_change`, for the virtual driver's
skipping of idle monitor ticks (rustro/idle.py). Mixed into `rustro.market.synthetic.SyntheticMarket`,
whose day series, calendar and caches it reads."""
from __future__ import annotations

import bisect
import math
from datetime import date, datetime, timedelta

import numpy as np

from ..clock import ist
from .synthetic_paths import INDICES, N_MIN, VIX_NAME, VIX_TOKEN

_INDEX_BY_TOKEN = {s.token: s.name for s in INDICES.values()}
_INDEX_BY_TOKEN[VIX_TOKEN] = VIX_NAME


class PromiseMixin:
    """`next_change` and the watched price paths for SyntheticMarket."""

    def next_change(self, now: datetime, watch: dict[str, tuple[float, float]] | None = None
                    ) -> datetime | None:
        """The earliest instant after `now` at which a read of this market may answer otherwise
        than at `now` (for the virtual driver's skipping of idle ticks; see rustro/idle.py).

        Every price steps at 09:15 + k minutes (k = 0 .. 375, the last step at 15:30 when the
        daily bar appears too) and stays put between sessions; no read of a listed token fails.
        `watch` {token: (lo, hi)}: the caller reads nothing but the ltp of these tokens (index,
        VIX or a listed derivative) and cares only about a value leaving [lo, hi) (NaN leaves
        every band): the answer is then the first step at which one does. None when a read method was replaced on this
        instance (a test's fault injection): no promise at all then."""
        if any(callable(v) for v in vars(self).values()):
            return None
        now = ist(now)
        d = now.date()
        t0, _, next_open = self._day_info(d)
        if t0 is None:
            return next_open
        k = -1 if now < t0 else min(N_MIN, math.floor((now - t0).total_seconds() / 60.0))
        if k >= N_MIN:
            return next_open
        if watch is None:
            return t0 + timedelta(minutes=k + 1)
        first = N_MIN + 1
        for token, (lo, hi) in watch.items():
            exits = self._steps.get((token, lo, hi, d))
            if exits is None:  # the points of the day outside [lo, hi), in order
                pts = self._watched_points(token, d)
                if pts is None:  # no band promise: its next step
                    return t0 + timedelta(minutes=k + 1)
                exits = self._steps.put((token, lo, hi, d),
                                        np.flatnonzero(~((pts >= lo) & (pts < hi))).tolist())
            i = bisect.bisect_right(exits, k)  # the first point after the one seen at `now`
            if i < len(exits):
                first = min(first, exits[i])
        if first <= N_MIN:
            return t0 + timedelta(minutes=first)
        return next_open

    # ------------------------------------------------------------ instrument master
    def _watched_points(self, token: str, d: date):
        """The day's ltp path of an index, the VIX or a listed derivative (None: unknown or
        expired, so nothing to promise)."""
        name = _INDEX_BY_TOKEN.get(token)
        if name is not None:
            return (self._vix_day(d) if name == VIX_NAME else self._spot_day(name, d)).points
        try:
            kind, ref = self._resolve("NFO", token)
        except LookupError:
            return None
        last = self._last_day(kind, ref)
        if last is not None and d > last:
            return None
        return self._day_points(kind, ref, d)

