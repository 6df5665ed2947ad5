"""Process-wide caches of the synthetic market (see `rustro.market.synthetic`).

A backtest builds a new `SyntheticMarket` each day, and each day's warmup reads some 40 earlier
days: what depends only on (seed, calendar, rate) is generated once per process and shared here.
Cached values are read-only; callers copy what they hand out.
"""
from __future__ import annotations

from collections import OrderedDict

from .synthetic_contracts import Contract, contract_row


class LRU(OrderedDict):
    """A dict that keeps the `size` most recently used keys."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return self.put(key, make())

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)
        return value


SHARED_YEARS = LRU(512)  # override-free year paths, shared by markets of the same seed+calendar
# Override-free minute series (index and VIX days, futures and options per day) are likewise
# shared by every market of the same seed, calendar and rate in this process: a backtest builds a
# new market each day, and each day's warmup reads some 40 earlier days. Values are read-only.
SHARED_SERIES = LRU(1024)
SHARED_OPTIONS = LRU(512)
SHARED_MASTERS = LRU(16)  # instrument master rows per (calendar, day, underlyings, reference closes)
CONTRACT_ROWS: dict = {}  # (underlying, expiry, kind, strike) -> its master row (listed for weeks)


def key_of(ref) -> str:
    """A cache key for a resolved instrument: the index name, or the contract's token."""
    return ref if isinstance(ref, str) else ref.token


def listed_row(key: tuple) -> dict:
    """`contract_row(Contract(*key))`, kept per contract (the caller copies the rows it hands out)."""
    row = CONTRACT_ROWS.get(key)
    if row is None:
        if len(CONTRACT_ROWS) >= 200_000:
            CONTRACT_ROWS.clear()
        row = CONTRACT_ROWS[key] = contract_row(Contract(*key))
    return row
