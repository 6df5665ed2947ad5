"""The SQLite journal: the append-only truth for audit and crash recovery.

Every event is one row in `events`; the derived tables (day_state, transitions, orders, fills,
positions, risk_state, bars ...) are updated from the event by `projection.apply` inside the same
transaction, so the file never holds an event without its effect or an effect without its event.
WAL + synchronous=FULL: a committed event survives a power cut. One writer at a time (a lock file
beside the real file, symlinks resolved).

A journal is marked as rustro's: PRAGMA application_id = APPLICATION_ID and user_version = the schema
version. Any other non-empty file (another program's SQLite database, the paper broker's, a text
file) is refused before anything is written to it. Opening for writing also proves that every event
not yet checked (seq > meta 'verified_seq') and every event of the clock's day decodes, so a
corrupted payload stops the bot at open instead of crashing it mid-day.

A full disk surfaces as `JournalFull` from `record`, the transaction rolled back; `reserve_mb` keeps a
`<journal>.reserve` file of that size that `release_reserve()` deletes to make room for the last
events (breakers, exits).

Two commit modes, chosen by whoever opens the journal. `durable=True` (the default, and what `run`
uses in every mode): every `transaction()` group is one commit with synchronous=FULL, so a crash
loses nothing that was acted on. `durable=False` is for a disposable journal (a backtest):
synchronous=OFF, and groups are savepoints inside one long transaction that is committed by
`flush()` (the backtest calls it after each simulated day, so a killed backtest keeps whole days),
by `close()`, or every `batch_groups` groups. A group still rolls back alone (its savepoint), so the
desk's all-or-nothing decisions behave the same; only the durability of the last batch differs,
and a power cut may damage such a journal. `PRAGMA integrity_check` runs at every durable open;
a disposable journal that this process closed and finds unchanged is not checked again, for
writing or reading (a backtest run in chunks opens its journal once per chunk and reads each
chunk's days back).
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Iterator

from . import projection
from .clock import Clock
from .credentials import secret_pattern
from .journal_errors import (_SQLITE_CANTOPEN, _SQLITE_CORRUPT,  # noqa: F401 (re-exported)
                             _SQLITE_FULL, _SQLITE_NOTADB, _SQLITE_READONLY, JournalCorrupt,
                             JournalError, JournalFull, JournalLocked, NotAJournal, _is_full)
from .journal_events import Event, _default, _event, _strings, dumps  # noqa: F401 (re-exported)
from .journal_open import (_CHECK_SQL, _EVENT_COLUMNS, _VERIFIED,  # noqa: F401 (re-exported)
                           APPLICATION_ID, RESERVE_SUFFIX, SCHEMA_VERSION, _acquire_lock,
                           _check_events_at_open, _check_integrity, _classify, _connect, _create,
                           _has_table, _inspect, _loads, _migrate, _open_error, _real, _stamp,
                           _unchanged_since_verified, _unreadable, _uri, _write_zeros,
                           release_reserve, reserve, reserve_path)


class Journal:
    """Open with `Journal.open(path, clock)` to write, `Journal.open_readonly(path)` to read."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock | None,
                 lock_fd: int | None, forbidden: tuple[str, ...] = (), real_path: Path | None = None):
        self.conn = conn
        self.path = path
        self.real_path = real_path or _real(path)  # symlinks resolved: what the lock protects
        self.clock = clock
        self._lock_fd = lock_fd
        self._forbidden = tuple(secret_pattern(s) for s in forbidden if s)
        self._depth = 0
        self._aborted: str | None = None  # why the open transaction was rolled back under us
        self.crash_after: int | None = None  # test seam: SIGKILL ourselves after this many commits
        self.crash_after_kind: str | None = None
        self._commits = 0
        self._kinds: list[str] = []
        self.records = 0      # events recorded by this process (committed or pending in a batch)
        self.durable = True   # False: groups are savepoints of a batch committed by flush()
        self.batch_groups = 50_000
        self._pending = 0     # groups released into the open batch since its last commit

    # --- opening -----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, clock: Clock, forbidden: tuple[str, ...] = (),
             reserve_mb: float = 0, durable: bool = True) -> "Journal":
        """Open for writing: refuse a file that is not a rustro journal, take the single-writer lock,
        check integrity and that the events decode, migrate; keep a `reserve_mb` reserve file.
        `durable=False`: a disposable journal committed in batches (see the module docstring)."""
        path = Path(path)
        real = _real(path)
        _inspect(path, real)  # before the lock file exists: a foreign file stays untouched
        lock_fd = _acquire_lock(path, real)
        conn = None
        try:
            if _inspect(path, real)[0] == "new":  # again, under the lock
                _create(real, _migrate)
            conn = _connect(real, readonly=False)
            if durable or not _unchanged_since_verified(real):
                _check_integrity(conn, path)
            _, version = _classify(conn, path)
            if version > SCHEMA_VERSION:
                raise JournalError(_newer(path, version))
            conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
            conn.execute("PRAGMA foreign_keys=ON")
            verified = _check_events_at_open(conn, path, clock.now().date())
            _migrate(conn, version, verified, schema=SCHEMA_VERSION)
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise JournalError(f"journal {path}: cannot switch to WAL mode")
            if reserve_mb:
                reserve(real, reserve_mb)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            os.close(lock_fd)
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise _open_error(path, exc, writing=True) from None
            raise
        journal = cls(conn, path, clock, lock_fd, forbidden, real_path=real)
        journal.durable = durable
        return journal

    @classmethod
    def open_readonly(cls, path: str | os.PathLike) -> "Journal":
        path = Path(path)
        real = _real(path)
        kind, version = _inspect(path, real)
        if kind == "new":
            empty = " (the file is empty)" if real.exists() else ""
            raise JournalError(f"no journal at {path}{empty}: run `python rustro.py run` to create one")
        if version > SCHEMA_VERSION:
            raise JournalError(_newer(path, version))
        if version < SCHEMA_VERSION:
            raise JournalError(f"journal {path} has an older schema ({version} < {SCHEMA_VERSION}): "
                               f"run `rustro run` once to migrate it")
        try:
            conn = _connect(real, readonly=True)
            if not _unchanged_since_verified(real):  # a backtest reading back what it just wrote
                _check_integrity(conn, path)
        except (sqlite3.Error, OSError) as exc:
            raise _open_error(path, exc, writing=False) from None
        return cls(conn, path, None, None, real_path=real)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.conn.close()
        if self._lock_fd is not None:
            if not self.durable:  # still ours (locked): its next disposable open needs no check
                _VERIFIED[self.real_path] = _stamp(self.real_path)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the disk-full reserve ---------------------------------------------------------------
    @property
    def reserve_path(self) -> Path:
        return reserve_path(self.real_path)

    def release_reserve(self) -> int:
        """Delete the reserve file so the last events still fit on a full disk. Returns the bytes
        freed (0 if there was none)."""
        return release_reserve(self.real_path)

    # --- writing -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator["Journal"]:
        """Group several events into one atomic commit (nested use joins the outer one).

        A full disk inside the group rolls the whole group back and raises `JournalFull`; a caller
        that swallows it cannot commit the rest: the group's end raises `JournalFull` again.
        Not durable: the group is a savepoint of the open batch, released (not committed) at its end."""
        if self._depth == 0:
            self._begin()
            self._aborted = None
        elif self._aborted:
            raise JournalFull(self._aborted)
        self._depth += 1
        try:
            yield self
        except BaseException as exc:
            self._depth -= 1
            if self._depth == 0:
                self._rollback()
                self._end_group()
                self._kinds = []
                self._aborted = None
                if _is_full(exc) and not isinstance(exc, JournalFull):
                    raise JournalFull(_full_message(self.path, exc)) from exc
            raise
        else:
            self._depth -= 1
            if self._depth == 0:
                aborted, self._aborted = self._aborted, None
                if aborted:
                    self._rollback()
                    self._end_group()
                    self._kinds = []
                    raise JournalFull(aborted)
                try:
                    self._commit_group()
                except BaseException as exc:
                    self._rollback()
                    self._end_group()
                    self._kinds = []
                    if _is_full(exc):
                        raise JournalFull(_full_message(self.path, exc)) from exc
                    raise
                self._commits += 1
                kinds, self._kinds = self._kinds, []
                if self.crash_after is not None and self._commits >= self.crash_after:
                    os.kill(os.getpid(), signal.SIGKILL)  # crash injection: after the Nth commit
                if self.crash_after_kind and self.crash_after_kind in kinds:
                    os.kill(os.getpid(), signal.SIGKILL)  # ... or after the commit holding a kind

    _GROUP = "rustro_group"  # the savepoint of one group in a batch (durable=False)

    def _begin(self) -> None:
        if self.durable:
            self.conn.execute("BEGIN IMMEDIATE")
            return
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")  # a new batch
            self._pending = 0
        self.conn.execute(f"SAVEPOINT {self._GROUP}")

    def _commit_group(self) -> None:
        if self.durable:
            self.conn.execute("COMMIT")
            return
        self.conn.execute(f"RELEASE {self._GROUP}")
        self._pending += 1
        if self._pending >= self.batch_groups:
            self.flush()

    def _end_group(self) -> None:
        """After a rolled-back group of a batch: drop its (rolled-back) savepoint, keep the batch."""
        if not self.durable and self.conn.in_transaction:
            try:
                self.conn.execute(f"RELEASE {self._GROUP}")
            except sqlite3.Error:
                pass  # SQLite already undid it with its transaction

    def flush(self) -> None:
        """Commit the open batch (durable=False); nothing to do for a durable journal or inside a
        group. The backtest calls it after each simulated day."""
        if self.durable or self._depth or not self.conn.in_transaction:
            return
        try:
            self.conn.execute("COMMIT")
        except BaseException as exc:
            self._rollback_batch()
            if _is_full(exc):
                raise JournalFull(_full_message(self.path, exc)) from exc
            raise
        self._pending = 0

    def _rollback_batch(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self._pending = 0

    def _rollback(self) -> None:
        """Undo the open group: the transaction (durable) or back to the group's savepoint."""
        if self.conn.in_transaction:  # SQLite may already have rolled back (a full disk does)
            try:
                self.conn.execute("ROLLBACK" if self.durable else f"ROLLBACK TO {self._GROUP}")
            except sqlite3.Error:
                pass  # the original error is the one to report

    def record(self, kind: str, payload: dict | None = None, *, day: date | None = None,
               ts: datetime | None = None) -> int:
        """Append one event and apply its projection, atomically. Returns the event's seq.

        Raises `JournalFull` if the disk is full; nothing of the event (nor of the enclosing
        `transaction()` group) is then stored."""
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
            try:
                cur = self.conn.execute(
                    "INSERT INTO events(ts, trading_day, kind, payload) VALUES (?,?,?,?)",
                    (ts.isoformat(), day.isoformat(), kind, text))
                seq = cur.lastrowid
                self._kinds.append(kind)
                if kind in projection.HANDLERS:  # most kinds derive nothing: no payload to parse
                    projection.apply(self.conn, Event(seq, ts, day, kind, json.loads(text)))
            except (sqlite3.Error, OSError) as exc:
                if not _is_full(exc):
                    raise
                message = _full_message(self.path, exc, kind)
                self._rollback()  # the whole group, now: SQLite may have undone only a statement
                self._kinds = []
                if self._depth > 1:  # inside a caller's group: it must not commit what is left
                    self._aborted = message
                    try:  # stay in a transaction, so stray writes of the group are undone too
                        if self.durable or not self.conn.in_transaction:
                            self._begin()
                    except sqlite3.Error:
                        pass
                raise JournalFull(message) from exc
        self.records += 1
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
        rows = self._fetch(sql + " ORDER BY seq", args)
        return [_event(r) for r in rows]

    def last_event(self, day: date) -> Event | None:
        rows = self._fetch("SELECT seq, ts, trading_day, kind, payload FROM events WHERE trading_day = ? "
                           "ORDER BY seq DESC LIMIT 1", (day.isoformat(),))
        return _event(rows[0]) if rows else None

    def _fetch(self, sql: str, args) -> list:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
            raise JournalCorrupt(f"journal {self.path}: an event is not valid UTF-8 ({exc}); "
                                 f"run `rustro journal verify`") from None

    def unreadable_events(self, day: date | None = None, after_seq: int = 0
                          ) -> list[tuple[int, str, str]]:
        """(seq, kind, why) of every event (of `day`, after `after_seq`) that does not decode: a
        payload that is not a JSON object, text that is not UTF-8, a bad timestamp or day."""
        sql, args = _CHECK_SQL + " WHERE seq > ?", [after_seq]
        if day is not None:
            sql += " AND trading_day = ?"
            args.append(day.isoformat())
        return _unreadable(self.conn.execute(sql + " ORDER BY seq", args))

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def day_state(self, day: date) -> str | None:
        row = self.conn.execute("SELECT state FROM day_state WHERE trading_day = ?",
                                (day.isoformat(),)).fetchone()
        return row[0] if row else None


def _full_message(path: Path, exc: BaseException, kind: str | None = None) -> str:
    what = f"the '{kind}' event" if kind else "the transaction"
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"journal {path}: {why}; {what} was rolled back (nothing half-written)"


def _newer(path: Path, version: int) -> str:
    return (f"journal {path} was written by a newer rustro (schema {version} > {SCHEMA_VERSION}): "
            f"upgrade rustro")
