"""Process-wide caches of the synthetic market (see `rustro.market.synthetic`).

A backtest builds a new `SyntheticMarket` each day, and each day's warmup reads some 40 earlier
days: what depends only on (seed, calendar, rate) is generated once per process and shared here.
Cached values are read-only; callers copy what they hand out.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from datetime import date
from itertools import count

from .synthetic_contracts import Contract, contract_row


class LRU(OrderedDict):
    """A dict that keeps the `size` most recently used keys."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        try:
            value = self[key]  # one lookup on a hit (was `in`, then `[]`)
        except KeyError:
            return self.put(key, make())
        self.move_to_end(key)
        return value

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
SHARED_SPIKES = LRU(64)  # VIX spike schedules of override-free years per (seed, calendar, year)
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


# ------------------------------------------------------------------ trading days of a calendar
# Markets of one process mostly share one calendar; each is known by a small id so that shared
# cache keys hash cheaply, and its trading days are listed once per year (not once per market, nor
# scanned day by day for every candles call).
_CALENDAR_IDS: dict = {}     # (frozenset(holidays), frozenset(special sessions)) -> id
_NEXT_CALENDAR_ID = count()
_YEAR_DAYS: dict = {}        # (calendar id, year) -> that year's trading days, ascending (read-only)


def calendar_id(cal_key: tuple) -> int:
    """A process-unique id for a calendar's key (ids are never reused)."""
    cid = _CALENDAR_IDS.get(cal_key)
    if cid is None:
        if len(_CALENDAR_IDS) >= 256:
            _CALENDAR_IDS.clear()
        cid = _CALENDAR_IDS[cal_key] = next(_NEXT_CALENDAR_ID)
    return cid


def year_days(cal, cal_id: int, year: int) -> list[date]:
    """`cal.trading_days` of a whole year, listed once per (calendar, year) in this process."""
    key = (cal_id, year)
    days = _YEAR_DAYS.get(key)
    if days is None:
        if len(_YEAR_DAYS) >= 4096:
            _YEAR_DAYS.clear()
        days = _YEAR_DAYS[key] = cal.trading_days(date(year, 1, 1), date(year, 12, 31))
    return days


def days_between(cal, cal_id: int, first: date, last: date) -> list[date]:
    """`cal.trading_days(first, last)` from the per-year lists, by bisection."""
    out: list[date] = []
    for y in range(first.year, last.year + 1):
        days = year_days(cal, cal_id, y)
        out.extend(days[bisect_left(days, first):bisect_right(days, last)])
    return out
