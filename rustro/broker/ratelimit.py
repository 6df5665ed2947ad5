"""Client-side rate limiter for SmartAPI: sliding windows per endpoint group, on the bot's clock.

Angel counts requests per client code in per-second / per-minute / per-hour windows (spec 4.3) and
answers a breach with a plain-text HTTP 403. Waiting here is cheaper than being refused there, and
the windows are pure bookkeeping over `clock.now()`, so a VirtualClock tests them without sleeping.
"""
from __future__ import annotations

import threading
from bisect import bisect_right
from typing import Mapping

from rustro.clock import Clock

SEC, MIN, HOUR = 1.0, 60.0, 3600.0

# Endpoint groups: one per rate-limited route (names follow the SDK / spec table 4.3).
LOGIN, GENERATE_TOKENS, PROFILE, LOGOUT, RMS = (
    "login", "generateTokens", "getProfile", "logout", "getRMS")
PLACE, MODIFY, CANCEL, ORDERS = "placeOrder", "modifyOrder", "cancelOrder", "orders"
ORDER_BOOK, LTP, POSITION, TRADE_BOOK, ORDER_DETAILS, QUOTE, CANDLES = (
    "getOrderBook", "getLtpData", "getPosition", "getTradeBook", "orderDetails", "quote",
    "getCandleData")

Windows = tuple[tuple[float, int], ...]  # (window length in seconds, max requests in it)


def _w(per_sec: int = 0, per_min: int = 0, per_hour: int = 0) -> Windows:
    return tuple((span, n) for span, n in ((SEC, per_sec), (MIN, per_min), (HOUR, per_hour)) if n)


def default_limits(quote_per_sec: int = 1) -> dict[str, Windows]:
    """The spec's table 4.3. Quote defaults to the strict 1/s announcement (thread 4056)."""
    if quote_per_sec < 1:
        raise ValueError(f"quote_per_sec must be >= 1, got {quote_per_sec}")
    order = _w(20, 500, 1000)
    return {
        LOGIN: _w(1), GENERATE_TOKENS: _w(1, 0, 1000), PROFILE: _w(3, 0, 1000), LOGOUT: _w(1),
        RMS: _w(2), PLACE: order, MODIFY: order, CANCEL: order,
        ORDERS: _w(10),  # SEBI retail-algo cap since Apr 2026: all order actions together
        ORDER_BOOK: _w(1), LTP: _w(10, 500, 5000), POSITION: _w(1), TRADE_BOOK: _w(1),
        ORDER_DETAILS: _w(10, 500, 5000), QUOTE: _w(quote_per_sec, 500, 5000),
        CANDLES: _w(3, 500, 5000),
    }


DEFAULT_LIMITS: Mapping[str, Windows] = default_limits()
# A request in a group also counts against its parents (every order action against `orders`).
DEFAULT_PARENTS: Mapping[str, tuple[str, ...]] = {PLACE: (ORDERS,), MODIFY: (ORDERS,),
                                                  CANCEL: (ORDERS,)}


class RateLimiter:
    """`acquire(group)` blocks on the clock until every window of the group (and parents) has room.

    `margin` seconds are added to each computed wait, to absorb network jitter between our send
    time and the gateway's arrival time.
    """

    def __init__(self, clock: Clock, limits: Mapping[str, Windows] = DEFAULT_LIMITS,
                 parents: Mapping[str, tuple[str, ...]] = DEFAULT_PARENTS, margin: float = 0.0):
        for group, windows in limits.items():
            for span, n in windows:
                if span <= 0 or n < 1:
                    raise ValueError(f"rate limit {group!r}: bad window ({span}s, {n})")
        for group, ps in parents.items():
            for p in ps:
                if p not in limits:
                    raise ValueError(f"rate limit parent {p!r} of {group!r} has no limits")
        self.clock = clock
        self.limits = dict(limits)
        self.parents = dict(parents)
        self.margin = margin
        self._hits: dict[str, list[float]] = {g: [] for g in self.limits}
        self._blocked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _chain(self, group: str) -> tuple[str, ...]:
        if group not in self.limits:
            raise KeyError(f"unknown rate-limit group {group!r}")
        return (group, *self.parents.get(group, ()))

    def _wait_needed(self, chain: tuple[str, ...], now: float) -> float:
        wait = 0.0
        for g in chain:
            wait = max(wait, self._blocked_until.get(g, 0.0) - now)
            hits = self._hits[g]  # ascending send times
            del hits[:bisect_right(hits, now - max(span for span, _ in self.limits[g]))]
            for span, n in self.limits[g]:
                if len(hits) - bisect_right(hits, now - span) >= n:
                    wait = max(wait, hits[-n] + span - now)  # the n-th latest must age out
        return wait

    def acquire(self, group: str) -> float:
        """Take a slot in `group`, sleeping on the clock as needed; returns the seconds waited."""
        chain = self._chain(group)
        waited = 0.0
        while True:
            with self._lock:
                now = self._now()
                wait = self._wait_needed(chain, now)
                if wait <= 0:
                    for g in chain:
                        self._hits[g].append(now)
                    return waited
            wait += self.margin
            self.clock.sleep(wait)
            waited += wait

    def backoff(self, group: str, seconds: float) -> None:
        """Refuse `group` for `seconds` from now (after the gateway's 403 said we were too fast)."""
        self._chain(group)
        with self._lock:
            until = self._now() + seconds
            self._blocked_until[group] = max(self._blocked_until.get(group, 0.0), until)
