"""The sandbox on a recorded or imported day: `rustro sandbox --store PATH --date D` serves the
market-data store's prices for D (as of the sandbox's clock, rustro/market/stored.py) behind the
same SmartAPI routes and paper exchange, so a rehearsal runs on a real day's prices."""
from __future__ import annotations

import threading
from datetime import date, time
from pathlib import Path

from ..calendar import at
from ..market.base import ONE_MINUTE
from ..market.store import MarketStore, StoreError
from ..market.stored import StoredMarket


class _Locked:
    """One caller at a time: the HTTP server answers on several threads, SQLite wants one."""

    def __init__(self, inner):
        self._inner, self._lock = inner, threading.RLock()

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with self._lock:
                return attr(*args, **kwargs)
        return call


def recorded_market(path: str | Path, clock):
    return _Locked(StoredMarket(MarketStore(path, readonly=True), clock))


def check_day(path: str | Path, day: date) -> None:
    """ValueError unless the store has the day's instrument master and minute bars."""
    try:
        store = MarketStore(path, readonly=True)
    except StoreError as exc:
        raise ValueError(f"--store: {exc}") from None
    try:
        lo = int(at(day, time(0)).timestamp())
        has_bars = store.conn.execute("SELECT 1 FROM bars WHERE interval = ? AND ts >= ? AND "
                                      "ts < ? LIMIT 1", (ONE_MINUTE, lo, lo + 86_400)).fetchone()
        if store.master(day) is None or has_bars is None:
            raise ValueError(f"--store {path}: no instrument master or no minute bars for {day}; "
                             f"days with a master: {', '.join(map(str, store.master_days()[-5:])) or 'none'}")
    finally:
        store.close()
