"""The market-data store: every bar, quote, tick instant and instrument master the bot saw or was
given, in one SQLite file beside the journal (`<journal>.market.sqlite`), never in its write path.

Why SQLite: pyarrow and DuckDB are not core dependencies, and `scripts/bench_store.py` measures
that WITHOUT ROWID tables clustered on (token, interval, ts) load one day of a token in a single
index range scan, well under the 20 ms a backtest day may spend on the option chain it reads.

Tables (all upserts are idempotent: the same datum written twice is one row):
- `bars(token, interval, ts, open, high, low, close, volume, oi, seen)`: candles; `ts` is the
  bar's start (epoch seconds); `seen` is when the bot first received it (epoch microseconds,
  NULL for imported or downloaded history, which is available once the bar is complete).
- `quotes(token, asked, channel, kind, arrived, ltp, bid, ask, ts)`: an answer to `quote`,
  `ltp` or `vix` (kind), the instant it was asked and the instant it arrived (microseconds);
  `channel` is who asked: the desk or the paper broker.
- `ticks(day, seq, at, job)`: the instants at which the recorded bot ran each job (replay drives
  its virtual clock through them).
- `masters(day, rows, data)`: the day's instrument master, zlib-compressed JSON.
- `contracts(exchange, token, symbol, ...)`: every instrument any master held (the directory
  that maps a trading symbol to its token for import and download).
- `fetched(token, interval, day)`: days a download already holds (resumable downloads).
"""
from __future__ import annotations

import json
import sqlite3
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Iterable

from ..clock import IST

SCHEMA = """
CREATE TABLE IF NOT EXISTS bars(token TEXT NOT NULL, interval TEXT NOT NULL, ts INTEGER NOT NULL,
  open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
  volume REAL NOT NULL, oi REAL, seen INTEGER, PRIMARY KEY(token, interval, ts)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quotes(token TEXT NOT NULL, asked INTEGER NOT NULL,
  channel TEXT NOT NULL, kind TEXT NOT NULL, arrived INTEGER NOT NULL, ltp REAL NOT NULL,
  bid REAL NOT NULL, ask REAL NOT NULL, ts INTEGER NOT NULL,
  PRIMARY KEY(token, asked, channel, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ticks(day TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,
  job TEXT NOT NULL, PRIMARY KEY(day, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS masters(day TEXT PRIMARY KEY, rows INTEGER NOT NULL,
  data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contracts(exchange TEXT NOT NULL, token TEXT NOT NULL,
  symbol TEXT NOT NULL, name TEXT, instrumenttype TEXT, expiry TEXT, strike TEXT,
  row TEXT NOT NULL, PRIMARY KEY(exchange, token)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS contracts_symbol ON contracts(symbol);
CREATE TABLE IF NOT EXISTS fetched(token TEXT NOT NULL, interval TEXT NOT NULL, day TEXT NOT NULL,
  PRIMARY KEY(token, interval, day)) WITHOUT ROWID;
"""


class StoreError(RuntimeError):
    """The market-data store cannot be opened or read."""


def us(dt: datetime) -> int:
    """Epoch microseconds of an aware datetime (exact: no float rounding)."""
    return (dt - EPOCH) // ONE_US


EPOCH = datetime.fromtimestamp(0, tz=IST)
ONE_US = datetime.fromtimestamp(0.000001, tz=IST) - EPOCH


def from_us(value: int) -> datetime:
    return EPOCH + value * ONE_US


def from_s(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=IST)


@dataclass(frozen=True)
class QuoteRow:
    token: str
    asked: int
    channel: str
    kind: str
    arrived: int
    ltp: float
    bid: float
    ask: float
    ts: int


def default_store_path(journal_path: str | Path, configured: str = "") -> Path:
    """`configured` (relative: beside the journal), else `<journal stem>.market.sqlite`."""
    journal_path = Path(journal_path)
    if configured:
        p = Path(configured)
        return p if p.is_absolute() else journal_path.parent / p
    return journal_path.with_name(journal_path.stem + ".market.sqlite")


class MarketStore:
    """One connection to the store. Writes join an open transaction committed by `commit()`
    (the recorder commits at most about once a second, so a quote costs no fsync)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise StoreError(f"market-data store {self.path} does not exist")
        try:
            uri = f"file:{self.path}?mode=ro" if readonly else str(self.path)
            self.conn = sqlite3.connect(uri, uri=readonly, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 5000")
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
                self.conn.executescript(SCHEMA)
            else:
                self.conn.execute("SELECT 1 FROM bars LIMIT 1")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"market-data store {self.path}: {exc}") from None
        self.readonly = readonly
        self._open_tx = False

    def close(self) -> None:
        self.commit()
        self.conn.close()

    # --- transactions ----------------------------------------------------------------------
    def _begin(self) -> None:
        if not self._open_tx:
            self.conn.execute("BEGIN")
            self._open_tx = True

    def commit(self) -> None:
        if self._open_tx:
            self._open_tx = False
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self._open_tx:
            self._open_tx = False
            self.conn.execute("ROLLBACK")

    # --- writes ----------------------------------------------------------------------------
    def put_bars(self, token: str, interval: str, rows: Iterable[tuple], seen: int | None = None
                 ) -> None:
        """Upsert bars `(start_epoch_s, open, high, low, close, volume, oi)`. A bar already held
        keeps the earliest `seen` (when the bot first had it); its values become the new ones."""
        self._begin()
        self.conn.executemany(
            "INSERT INTO bars(token, interval, ts, open, high, low, close, volume, oi, seen) "
            "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(token, interval, ts) DO UPDATE SET "
            "open=excluded.open, high=excluded.high, low=excluded.low, close=excluded.close, "
            "volume=excluded.volume, oi=COALESCE(excluded.oi, bars.oi), "
            "seen=CASE WHEN bars.seen IS NULL THEN excluded.seen "
            "WHEN excluded.seen IS NULL THEN bars.seen ELSE MIN(bars.seen, excluded.seen) END",
            [(token, interval, *r, seen) for r in rows])

    def put_quote(self, q: QuoteRow) -> None:
        self._begin()
        self.conn.execute("INSERT OR REPLACE INTO quotes VALUES (?,?,?,?,?,?,?,?,?)",
                          (q.token, q.asked, q.channel, q.kind, q.arrived, q.ltp, q.bid, q.ask,
                           q.ts))

    def put_tick(self, day: date, at: datetime, job: str) -> None:
        """Append a job run to the day's ticks (a restarted bot's runs follow the earlier ones)."""
        self._begin()
        self.conn.execute("INSERT INTO ticks SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ? FROM ticks "
                          "WHERE day = ?", (day.isoformat(), us(at), job, day.isoformat()))

    def put_master(self, day: date, rows: list[dict]) -> None:
        """The day's master, compressed; its rows also join the contract directory."""
        blob = zlib.compress(json.dumps(rows, separators=(",", ":")).encode(), 6)
        self._begin()
        self.conn.execute("INSERT OR REPLACE INTO masters VALUES (?,?,?)",
                          (day.isoformat(), len(rows), blob))
        self.conn.executemany(
            "INSERT OR REPLACE INTO contracts VALUES (?,?,?,?,?,?,?,?)",
            [(str(r.get("exch_seg", "")), str(r.get("token", "")), str(r.get("symbol", "")),
              r.get("name"), r.get("instrumenttype"), r.get("expiry"), r.get("strike"),
              json.dumps(r, separators=(",", ":"))) for r in rows if r.get("token")])

    def mark_fetched(self, token: str, interval: str, days: Iterable[date]) -> None:
        self._begin()
        self.conn.executemany("INSERT OR IGNORE INTO fetched VALUES (?,?,?)",
                              [(token, interval, d.isoformat()) for d in days])

    # --- reads -----------------------------------------------------------------------------
    def bars(self, token: str, interval: str, lo_s: int, hi_s: int) -> list[tuple]:
        """`(ts, open, high, low, close, volume, oi, seen)` with lo_s <= ts < hi_s, ascending."""
        return self.conn.execute(
            "SELECT ts, open, high, low, close, volume, oi, seen FROM bars WHERE token = ? AND "
            "interval = ? AND ts >= ? AND ts < ? ORDER BY ts", (token, interval, lo_s, hi_s)
        ).fetchall()

    def last_bar(self, token: str, interval: str) -> tuple | None:
        return self.conn.execute(
            "SELECT ts, open, high, low, close, volume, oi, seen FROM bars WHERE token = ? AND "
            "interval = ? ORDER BY ts DESC LIMIT 1", (token, interval)).fetchone()

    def has_bars(self, token: str, interval: str) -> bool:
        return self.conn.execute("SELECT 1 FROM bars WHERE token = ? AND interval = ? LIMIT 1",
                                 (token, interval)).fetchone() is not None

    def quotes(self, lo_us: int, hi_us: int, token: str | None = None) -> list[QuoteRow]:
        """Answers asked in [lo_us, hi_us), by asked instant (one token, or all)."""
        sql = ("SELECT token, asked, channel, kind, arrived, ltp, bid, ask, ts FROM quotes "
               "WHERE asked >= ? AND asked < ?")
        args: tuple = (lo_us, hi_us)
        if token is not None:
            sql, args = sql.replace("WHERE", "WHERE token = ? AND"), (token, lo_us, hi_us)
        return [QuoteRow(*r) for r in self.conn.execute(sql + " ORDER BY asked", args)]

    def last_quote_before(self, token: str, kind: str, lo_us: int) -> QuoteRow | None:
        row = self.conn.execute(
            "SELECT token, asked, channel, kind, arrived, ltp, bid, ask, ts FROM quotes "
            "WHERE token = ? AND asked < ? AND kind = ? ORDER BY asked DESC LIMIT 1",
            (token, lo_us, kind)).fetchone()
        return QuoteRow(*row) if row else None

    def ticks(self, day: date) -> list[tuple[datetime, str]]:
        return [(from_us(a), j) for a, j in self.conn.execute(
            "SELECT at, job FROM ticks WHERE day = ? ORDER BY seq", (day.isoformat(),))]

    def master(self, day: date) -> list[dict] | None:
        row = self.conn.execute("SELECT data FROM masters WHERE day = ?",
                                (day.isoformat(),)).fetchone()
        return json.loads(zlib.decompress(row[0])) if row else None

    def master_days(self) -> list[date]:
        return [date.fromisoformat(d) for (d,) in self.conn.execute("SELECT day FROM masters ORDER BY day")]

    def directory(self, listed_on: date | None = None) -> list[dict]:
        """Every contract any master held; with `listed_on`, those not expired by that day."""
        rows = [json.loads(r) for (r,) in self.conn.execute("SELECT row FROM contracts")]
        if listed_on is None:
            return rows
        return [r for r in rows if not _expired(r.get("expiry", ""), listed_on)]

    def contract_by_symbol(self, symbol: str) -> dict | None:
        row = self.conn.execute("SELECT row FROM contracts WHERE symbol = ? LIMIT 1",
                                (symbol,)).fetchone()
        return json.loads(row[0]) if row else None

    def fetched_days(self, token: str, interval: str) -> set[date]:
        return {date.fromisoformat(d) for (d,) in self.conn.execute(
            "SELECT day FROM fetched WHERE token = ? AND interval = ?", (token, interval))}

    def counts(self) -> dict[str, int]:
        return {t: self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("bars", "quotes", "ticks", "masters", "contracts")}


def _expired(expiry: str, day: date) -> bool:
    if not expiry:
        return False
    try:
        return datetime.strptime(expiry.title(), "%d%b%Y").date() < day
    except ValueError:
        return False
