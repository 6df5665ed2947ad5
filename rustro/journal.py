"""The SQLite journal: the append-only truth for audit and crash recovery.

Every event is one row in `events`; the derived tables (day_state, transitions, orders, fills,
positions, risk_state, bars ...) are updated from the event by `projection.apply` inside the same
transaction, so the file never holds an event without its effect or an effect without its event.
WAL + synchronous=FULL: a committed event survives a power cut. One writer at a time (a lock file).
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

from . import projection
from .clock import Clock
from .credentials import secret_pattern

SCHEMA_VERSION = 1


class JournalError(RuntimeError):
    pass


class JournalLocked(JournalError):
    pass


class JournalCorrupt(JournalError):
    pass


@dataclass(frozen=True)
class Event:
    seq: int
    ts: datetime
    trading_day: date
    kind: str
    payload: dict


def _default(o: Any) -> Any:
    if isinstance(o, (datetime, date, time)):
        return o.isoformat()
    if isinstance(o, Enum):
        return o.value
    if hasattr(o, "__dataclass_fields__"):
        return {k: getattr(o, k) for k in o.__dataclass_fields__}
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(f"journal payload value of type {type(o).__name__} is not serializable: {o!r}")


def dumps(payload: dict) -> str:
    return json.dumps(payload, default=_default, sort_keys=True, allow_nan=False)


class Journal:
    """Open with `Journal.open(path, clock)` to write, `Journal.open_readonly(path)` to read."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock | None,
                 lock_fd: int | None, forbidden: tuple[str, ...] = ()):
        self.conn = conn
        self.path = path
        self.clock = clock
        self._lock_fd = lock_fd
        self._forbidden = tuple(secret_pattern(s) for s in forbidden if s)
        self._depth = 0
        self.crash_after: int | None = None  # test seam: SIGKILL ourselves after this many commits
        self.crash_after_kind: str | None = None
        self._commits = 0
        self._kinds: list[str] = []

    # --- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, clock: Clock, forbidden: tuple[str, ...] = ()) -> "Journal":
        """Open for writing: take the single-writer lock, check integrity, migrate."""
        path = Path(path)
        lock_fd = _acquire_lock(path)
        try:
            conn = _connect(path, readonly=False)
            _check_integrity(conn, path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            _migrate(conn, path)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(conn, path, clock, lock_fd, forbidden)

    @classmethod
    def open_readonly(cls, path: str | os.PathLike) -> "Journal":
        path = Path(path)
        if not path.is_file():
            raise JournalError(f"no journal at {path}: run `python rustro.py run` to create one")
        conn = _connect(path, readonly=True)
        _check_integrity(conn, path)
        version = _schema_version(conn)
        if version != SCHEMA_VERSION:
            raise JournalError(f"journal {path}: schema version {version}, this rustro reads "
                               f"{SCHEMA_VERSION}; run `rustro run` once to migrate")
        return cls(conn, path, None, None)

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator["Journal"]:
        """Group several events into one atomic commit (nested use joins the outer one)."""
        if self._depth == 0:
            self.conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.conn.execute("ROLLBACK")
                self._kinds = []
            raise
        else:
            self._depth -= 1
            if self._depth == 0:
                self.conn.execute("COMMIT")
                self._commits += 1
                kinds, self._kinds = self._kinds, []
                if self.crash_after is not None and self._commits >= self.crash_after:
                    os.kill(os.getpid(), signal.SIGKILL)  # crash injection: after the Nth commit
                if self.crash_after_kind and self.crash_after_kind in kinds:
                    os.kill(os.getpid(), signal.SIGKILL)  # ... or after the commit holding a kind

    def record(self, kind: str, payload: dict | None = None, *, day: date | None = None,
               ts: datetime | None = None) -> int:
        """Append one event and apply its projection, atomically. Returns the event's seq."""
        if self.clock is None:
            raise JournalError("journal opened read-only")
        ts = ts or self.clock.now()
        day = day or ts.date()
        text = dumps(payload or {})
        if self._forbidden:
            data = json.loads(text)
            if any(p.search(s) for s in _strings(data) for p in self._forbidden):
                raise JournalError(f"refusing to journal a secret in a '{kind}' event")
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO events(ts, trading_day, kind, payload) VALUES (?,?,?,?)",
                (ts.isoformat(), day.isoformat(), kind, text))
            seq = cur.lastrowid
            self._kinds.append(kind)
            projection.apply(self.conn, Event(seq, ts, day, kind, json.loads(text)))
        return seq

    # --- reading -----------------------------------------------------------------------------
    def events(self, day: date | None = None, kinds: tuple[str, ...] | None = None,
               after_seq: int = 0) -> list[Event]:
        sql, args = "SELECT seq, ts, trading_day, kind, payload FROM events WHERE seq > ?", [after_seq]
        if day is not None:
            sql += " AND trading_day = ?"
            args.append(day.isoformat())
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args.extend(kinds)
        rows = self.conn.execute(sql + " ORDER BY seq", args).fetchall()
        return [_event(r) for r in rows]

    def last_event(self, day: date) -> Event | None:
        row = self.conn.execute(
            "SELECT seq, ts, trading_day, kind, payload FROM events WHERE trading_day = ? "
            "ORDER BY seq DESC LIMIT 1", (day.isoformat(),)).fetchone()
        return _event(row) if row else None

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def day_state(self, day: date) -> str | None:
        row = self.conn.execute("SELECT state FROM day_state WHERE trading_day = ?",
                                (day.isoformat(),)).fetchone()
        return row[0] if row else None


def _strings(obj):
    """Every string in a JSON value, keys included: a secret is text, never a number."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _event(row) -> Event:
    return Event(row[0], datetime.fromisoformat(row[1]), date.fromisoformat(row[2]), row[3],
                 json.loads(row[4]))


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            conn = sqlite3.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=5000")
        return conn
    except sqlite3.DatabaseError as exc:
        raise JournalCorrupt(f"journal {path} cannot be opened: {exc}") from None


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise JournalCorrupt(f"journal {path} is not a readable SQLite database ({exc}); "
                             f"refusing to trade: restore it from a backup or move it aside") from None
    if result != ["ok"]:
        raise JournalCorrupt(f"journal {path} failed its integrity check ({'; '.join(result[:3])}); "
                             f"refusing to trade: restore it from a backup or move it aside")


def _acquire_lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise JournalLocked(f"journal {path} is in use by another rustro process (pid {holder}); "
                            f"only one bot may write a journal") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _schema_version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = _schema_version(conn)
    if version > SCHEMA_VERSION:
        raise JournalError(f"journal {path} has schema version {version}, newer than this rustro "
                           f"({SCHEMA_VERSION}); upgrade rustro")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for target, statements in projection.MIGRATIONS:
            if version < target:
                for statement in statements:
                    conn.execute(statement)
        conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
