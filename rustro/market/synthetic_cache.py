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

from .synthetic_contracts import (FUTURE_MONTHLIES, Contract, contract_row, listed_strikes,
                                  monthly_expiries, option_expiries)
from .synthetic_paths import INDICES


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


CHAIN_PAD_STRIKES = 20  # strikes cached beyond the asked window on each side
_CHAINS: dict = {}  # (underlying, expiry) -> (lowest strike, its rows CE, PE, CE, PE... by strike)


def listed_rows(cal, underlying: str, today: date, spot: float) -> list[dict]:
    """`listed_row` of every key `listed_keys` gives, in its order, each expiry's options cut as
    one slice from that expiry's strike-ordered rows (extended when a wider range is asked), so a
    day's master costs a few slices, not a dictionary lookup per contract."""
    rows = [listed_row((underlying, e, "FUT", 0))
            for e in monthly_expiries(cal, today, FUTURE_MONTHLIES)]
    strikes = listed_strikes(underlying, spot)
    if not strikes:
        return rows
    step, lo, hi = INDICES[underlying].strike_step, strikes[0], strikes[-1]
    for e in option_expiries(cal, underlying, today):
        base, chain = _CHAINS.get((underlying, e), (lo, []))
        top = base + (len(chain) // 2 - 1) * step
        if not chain or lo < base or hi > top:
            # widen by what is missing plus a margin (the window drifts with the index)
            pad = CHAIN_PAD_STRIKES * step
            new_base = max(step, min(lo - pad, base) if chain else lo - pad)
            new_top = max(hi + pad, top) if chain else hi + pad

            def strikes_rows(first: int, last: int) -> list[dict]:
                return [listed_row((underlying, e, kind, k)) for k in range(first, last + step, step)
                        for kind in ("CE", "PE")]
            if not chain:
                chain = strikes_rows(new_base, new_top)
            else:
                chain = strikes_rows(new_base, base - step) + chain + strikes_rows(top + step, new_top)
            base = new_base
            if len(_CHAINS) >= 4096:
                _CHAINS.clear()
            _CHAINS[(underlying, e)] = (base, chain)
        first = 2 * ((lo - base) // step)
        rows += chain[first:first + 2 * len(strikes)]
    return rows


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
