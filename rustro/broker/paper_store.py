"""The paper broker's own SQLite file: the durable memory of a separate party.

WAL + synchronous=FULL, and every write inside BEGIN IMMEDIATE, so an acknowledged order has been
committed and two processes sharing the file never hand out the same sequence number. Order and
fill sequences are max(seq)+1 over rows that are never deleted, so a reopened file continues them.

With `memo=True` (the paper broker's own connection) the frequent reads are remembered until the
state may have changed: any write of this connection, any transaction's begin, commit or rollback,
and any commit of another connection, seen by `sync()` (PRAGMA data_version) which the owner calls
at the start of every request. A memoized read is therefore never older than the last commit.
"""
from __future__ import annotations

import os
import signal
import sqlite3
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from ..clock import ist
from .base import TERMINAL_STATUSES, BrokerOrder, Fill

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    unique_order_id TEXT NOT NULL UNIQUE,
    trading_day TEXT NOT NULL,
    tag TEXT NOT NULL,
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, token TEXT NOT NULL,
    side TEXT NOT NULL, order_type TEXT NOT NULL, product TEXT NOT NULL,
    variety TEXT NOT NULL, duration TEXT NOT NULL,
    qty INTEGER NOT NULL, price REAL NOT NULL,
    lot_size INTEGER NOT NULL, tick_size REAL NOT NULL, freeze_qty INTEGER NOT NULL,
    status TEXT NOT NULL,
    filled_qty INTEGER NOT NULL DEFAULT 0,
    filled_paise INTEGER NOT NULL DEFAULT 0,   -- sum(fill qty x fill price in paise)
    fills INTEGER NOT NULL DEFAULT 0,
    ref_price REAL NOT NULL DEFAULT 0,         -- price that blocks cash while a BUY works
    text TEXT NOT NULL DEFAULT '',
    placed_at TEXT NOT NULL,
    eligible_at TEXT NOT NULL,                 -- nothing happens to the order before this
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_day ON orders (trading_day);
CREATE INDEX IF NOT EXISTS orders_status ON orders (status);
CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    trading_day TEXT NOT NULL,
    exchange TEXT NOT NULL, symbol TEXT NOT NULL, token TEXT NOT NULL, product TEXT NOT NULL,
    side TEXT NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL,
    time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fills_day ON fills (trading_day);
"""

_TERMINAL = tuple(sorted(TERMINAL_STATUSES))
_TERMINAL_MARKS = ", ".join("?" for _ in _TERMINAL)


class PaperStoreError(RuntimeError):
    pass


class PaperStore:
    def __init__(self, path: str | Path, memo: bool = False):
        self.path = Path(path)
        self.commits, self.crash_after = 0, None
        self._memo: dict | None = {} if memo else None
        self._data_version: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                   timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        if not self._schema_current():
            self._create_schema()

    def _schema_current(self) -> bool:
        """Whether the version row already says this code's version. The row is written only
        after the whole DDL has run, so a file that has it needs no DDL again (a backtest opens
        the store once a day); a fresh, half-created or other-version file takes the slow path."""
        try:
            rows = self._db.execute("SELECT version FROM schema_version").fetchall()
        except sqlite3.OperationalError:
            return False  # no schema_version table yet: a fresh file
        return bool(rows) and rows[0][0] == SCHEMA_VERSION

    def _create_schema(self) -> None:
        self._db.executescript(_SCHEMA)  # idempotent; executescript commits on its own
        with self.transaction():
            rows = self._db.execute("SELECT version FROM schema_version").fetchall()
            if not rows:
                self._db.execute("INSERT INTO schema_version (version) VALUES (?)",
                                 (SCHEMA_VERSION,))
            elif rows[0][0] != SCHEMA_VERSION:
                raise PaperStoreError(f"{self.path}: paper schema version {rows[0][0]}, "
                                      f"this code reads version {SCHEMA_VERSION}")

    def close(self) -> None:
        self._forget()  # a closed store answers nothing, not even from memory
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        self._forget()  # the write lock is ours: read the newest state, not a remembered one
        try:
            yield
        except BaseException:
            self._forget()
            self._db.execute("ROLLBACK")
            raise
        self._forget()
        self._db.execute("COMMIT")
        self.commits += 1
        if self.crash_after is not None and self.commits >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)  # crash injection (scripts/crashtest.py)

    # the read memo ---------------------------------------------------------------------------
    def sync(self) -> None:
        """Forget remembered reads if another connection has committed since the last call."""
        if self._memo is None:
            return
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._memo.clear()

    def memoized(self, key: tuple, fetch: Callable[[], Any]) -> Any:
        """`fetch()`, remembered under `key` until the state may change (always fetched without
        memo). The caller hands out copies of anything mutable."""
        memo = self._memo
        if memo is None:
            return fetch()
        if key not in memo:
            memo[key] = fetch()
        return memo[key]

    def _forget(self) -> None:
        if self._memo:
            self._memo.clear()

    # sequences -------------------------------------------------------------------------------
    def next_order_seq(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM orders").fetchone()[0]

    def next_fill_seq(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM fills").fetchone()[0]

    # orders ----------------------------------------------------------------------------------
    def insert_order(self, row: dict) -> None:
        self._forget()
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self._db.execute(f"INSERT INTO orders ({cols}) VALUES ({marks})",
                         [_db_value(v) for v in row.values()])

    def update_order(self, order_id: str, **fields) -> None:
        self._forget()
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._db.execute(f"UPDATE orders SET {sets} WHERE order_id = ?",
                         [_db_value(v) for v in fields.values()] + [order_id])

    def order(self, order_id: str) -> dict | None:
        row = self._db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
        return dict(row) if row else None

    def order_by_unique_id(self, unique_order_id: str) -> dict | None:
        row = self._db.execute("SELECT * FROM orders WHERE unique_order_id = ?",
                               (unique_order_id,)).fetchone()
        return dict(row) if row else None

    def working_orders(self) -> list[dict]:
        """Every order not yet terminal, on any day, oldest first."""
        return _copies(self.memoized(("working_orders",), lambda: _rows(self._db.execute(
            f"SELECT * FROM orders WHERE status NOT IN ({_TERMINAL_MARKS}) ORDER BY seq",
            _TERMINAL))))

    def has_working_orders(self) -> bool:
        return self.memoized(("has_working_orders",), lambda: self._db.execute(
            f"SELECT 1 FROM orders WHERE status NOT IN ({_TERMINAL_MARKS}) LIMIT 1",
            _TERMINAL).fetchone() is not None)

    def orders_on(self, day: date) -> list[dict]:
        return _copies(self.memoized(("orders_on", day), lambda: _rows(self._db.execute(
            "SELECT * FROM orders WHERE trading_day = ? ORDER BY seq", (day.isoformat(),)))))

    # fills -----------------------------------------------------------------------------------
    def insert_fill(self, row: dict) -> None:
        self._forget()
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self._db.execute(f"INSERT INTO fills ({cols}) VALUES ({marks})",
                         [_db_value(v) for v in row.values()])

    def fills_on(self, day: date) -> list[dict]:
        return _copies(self.memoized(("fills_on", day), lambda: _rows(self._db.execute(
            "SELECT * FROM fills WHERE trading_day = ? ORDER BY seq", (day.isoformat(),)))))

    def cash_flows(self, day: date) -> tuple[int, int]:
        """(bought, sold) in paise over the day's fills."""
        return self.memoized(("cash_flows", day), lambda: self._cash_flows(day))

    def _cash_flows(self, day: date) -> tuple[int, int]:
        row = self._db.execute(
            "SELECT COALESCE(SUM(CASE WHEN side = 'BUY' THEN qty * CAST(ROUND(price * 100) AS INTEGER) END), 0),"
            "       COALESCE(SUM(CASE WHEN side = 'SELL' THEN qty * CAST(ROUND(price * 100) AS INTEGER) END), 0) "
            "FROM fills WHERE trading_day = ?", (day.isoformat(),)).fetchone()
        return int(row[0]), int(row[1])

    def net_qty(self, day: date, exchange: str, token: str, product: str) -> int:
        row = self._db.execute(
            "SELECT COALESCE(SUM(CASE WHEN side = 'BUY' THEN qty ELSE -qty END), 0) FROM fills "
            "WHERE trading_day = ? AND exchange = ? AND token = ? AND product = ?",
            (day.isoformat(), exchange, token, product)).fetchone()
        return int(row[0])

    def net_by_key(self, day: date) -> dict[tuple[str, str, str], int]:
        """{(exchange, token, product): net filled qty} over the day's fills (negative = short)."""
        return dict(self.memoized(("net_by_key", day), lambda: self._net_by_key(day)))

    def _net_by_key(self, day: date) -> dict[tuple[str, str, str], int]:
        rows = self._db.execute(
            "SELECT exchange, token, product, SUM(CASE WHEN side = 'BUY' THEN qty ELSE -qty END) "
            "FROM fills WHERE trading_day = ? GROUP BY exchange, token, product",
            (day.isoformat(),))
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


class StorePool:
    """Paper stores kept open across the days of one backtest in one process: each day's broker
    borrows the connection instead of opening the file again (connect, PRAGMAs, the schema read,
    the WAL checkpoint at close: about 0.7 ms of CPU a day). Commits are the same commits; the
    pool's owner closes the stores at the end."""

    def __init__(self):
        self._stores: dict[Path, PaperStore] = {}

    def get(self, path: str | Path) -> PaperStore:
        key = Path(path).resolve()
        if key not in self._stores:
            self._stores[key] = PaperStore(path, memo=True)
        return self._stores[key]

    def close(self) -> None:
        stores, self._stores = self._stores, {}
        for store in stores.values():
            store.close()


def _rows(cursor) -> tuple[dict, ...]:
    return tuple(dict(r) for r in cursor)


def _copies(rows: tuple[dict, ...]) -> list[dict]:
    """Fresh dicts of remembered rows: a caller may change what it was given."""
    return [r.copy() for r in rows]


def _db_value(v):
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return v


def parse_time(text: str) -> datetime:
    return ist(datetime.fromisoformat(text))


def to_broker_order(row: dict) -> BrokerOrder:
    filled = row["filled_qty"]
    avg = round(row["filled_paise"] / filled / 100, 6) if filled else 0.0
    return BrokerOrder(
        order_id=row["order_id"], unique_order_id=row["unique_order_id"], tag=row["tag"],
        exchange=row["exchange"], symbol=row["symbol"], token=row["token"], side=row["side"],
        qty=row["qty"], price=row["price"], status=row["status"], filled_qty=filled,
        avg_price=avg, text=row["text"], updated=parse_time(row["updated"]))


def to_fill(row: dict) -> Fill:
    return Fill(fill_id=row["fill_id"], order_id=row["order_id"], exchange=row["exchange"],
                symbol=row["symbol"], token=row["token"], side=row["side"], qty=row["qty"],
                price=row["price"], time=parse_time(row["time"]))
