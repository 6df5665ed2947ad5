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
a disposable journal that this process closed and finds unchanged is not checked again (a backtest
run in chunks opens its journal once per chunk).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import sqlite3
import stat
import urllib.parse
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
APPLICATION_ID = 0x52535452  # "RSTR" in PRAGMA application_id: this file is a rustro journal
RESERVE_SUFFIX = ".reserve"

_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_FULL, _SQLITE_NOTADB, _SQLITE_CORRUPT = 8, 14, 13, 26, 11
_EVENT_COLUMNS = {"seq", "ts", "trading_day", "kind", "payload"}


class JournalError(RuntimeError):
    pass


class JournalLocked(JournalError):
    pass


class JournalCorrupt(JournalError):
    pass


class NotAJournal(JournalError):
    """The path holds a file that is not a rustro journal (another program's database): untouched."""


class JournalFull(JournalError):
    """The disk (or SQLite's size limit) is full: the event and its transaction were rolled back."""


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
                _create(real)
            conn = _connect(real, readonly=False)
            if durable or _VERIFIED.get(real) != _stamp(real):
                _check_integrity(conn, path)
            _, version = _classify(conn, path)
            if version > SCHEMA_VERSION:
                raise JournalError(_newer(path, version))
            conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
            conn.execute("PRAGMA foreign_keys=ON")
            verified = _check_events_at_open(conn, path, clock.now().date())
            _migrate(conn, version, verified)
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


# --- the disk-full reserve ---------------------------------------------------------------------
def reserve_path(journal_path: str | os.PathLike) -> Path:
    """`<journal>.reserve`, beside the real journal file (symlinks resolved)."""
    real = _real(Path(journal_path))
    return real.with_name(real.name + RESERVE_SUFFIX)


def reserve(journal_path: str | os.PathLike, mb: float) -> Path:
    """Create the journal's reserve file, or grow it, to `mb` MiB of allocated disk blocks (never a
    sparse file: deleting it must free real space). A larger existing file is kept as it is.
    Raises `JournalFull` if the disk cannot hold it (a partial file is removed again)."""
    path = reserve_path(journal_path)
    size = int(mb * 1024 * 1024)
    if size <= 0:
        return path
    try:
        old = path.stat().st_size
    except FileNotFoundError:
        old = None
    if old is not None and old >= size:
        return path
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise JournalError(f"cannot create the journal reserve file {path}: {exc.strerror}") from None
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            _write_zeros(fd, old or 0, size)  # a filesystem without fallocate
        os.fsync(fd)
    except OSError as exc:
        try:
            if old is None:
                os.unlink(path)
            else:
                os.ftruncate(fd, old)
        except OSError:
            pass
        if exc.errno == errno.ENOSPC:
            raise JournalFull(f"no room for the journal reserve file {path} ({mb:g} MB): "
                              f"{exc.strerror}; free disk space before trading") from None
        raise JournalError(f"cannot create the journal reserve file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return path


def release_reserve(journal_path: str | os.PathLike) -> int:
    """Delete the journal's reserve file; returns the bytes it held (0 if there was none)."""
    path = reserve_path(journal_path)
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def _write_zeros(fd: int, start: int, end: int) -> None:
    chunk = b"\0" * (1024 * 1024)
    pos = start
    while pos < end:
        pos += os.pwrite(fd, chunk[:end - pos], pos)


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, JournalFull):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == _SQLITE_FULL) or "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _full_message(path: Path, exc: BaseException, kind: str | None = None) -> str:
    what = f"the '{kind}' event" if kind else "the transaction"
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"journal {path}: {why}; {what} was rolled back (nothing half-written)"


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
    try:
        payload = json.loads(row[4])
        if not isinstance(payload, dict):
            raise ValueError("payload is not a JSON object")
        return Event(row[0], datetime.fromisoformat(row[1]), date.fromisoformat(row[2]), row[3], payload)
    except (ValueError, TypeError) as exc:
        raise JournalCorrupt(f"journal event #{row[0]} ({row[3]}) is unreadable: {exc}; "
                             f"run `rustro journal verify`") from None


# Text columns as bytes: a corrupted byte that breaks UTF-8 must be reported, not raised by fetch.
_CHECK_SQL = ("SELECT seq, CAST(kind AS BLOB), CAST(ts AS BLOB), CAST(trading_day AS BLOB), "
              "CAST(payload AS BLOB) FROM events")


_loads = json.JSONDecoder().decode  # str in: no encoding detection per row


def _unreadable(rows) -> list[tuple[int, str, str]]:
    """The rows of `_CHECK_SQL` that `_event` could not turn into an Event."""
    bad = []
    for seq, kind, ts, day, payload in rows:
        kind_text = bytes(kind or b"").decode("utf-8", errors="replace")
        try:
            bytes(kind).decode("utf-8")
            datetime.fromisoformat(bytes(ts).decode("utf-8"))
            date.fromisoformat(bytes(day).decode("utf-8"))
            value = _loads(bytes(payload).decode("utf-8"))
            if not isinstance(value, dict):
                raise ValueError("payload is not a JSON object")
        except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError included
            bad.append((seq, kind_text, str(exc)))
    return bad


def _check_events_at_open(conn: sqlite3.Connection, path: Path, today: date) -> int:
    """Every event not checked at an earlier open, and every event of `today` (the day about to be
    run, re-read by recovery), must decode. Returns the highest seq now proven readable."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'verified_seq'").fetchone() \
        if _has_table(conn, "meta") else None
    try:
        verified = int(row[0]) if row else 0
    except (TypeError, ValueError):
        verified = 0  # unreadable mark: check everything
    bad = _unreadable(conn.execute(_CHECK_SQL + " WHERE seq > ? ORDER BY seq", (verified,)))
    seen = {b[0] for b in bad}
    bad += [b for b in _unreadable(conn.execute(_CHECK_SQL + " WHERE trading_day = ? ORDER BY seq",
                                                (today.isoformat(),))) if b[0] not in seen]
    if bad:
        seq, kind, why = min(bad)
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise JournalCorrupt(f"journal {path}: event #{seq} ({kind}) is unreadable: {why}{more}; "
                             f"refusing to trade: run `rustro journal verify`, restore the journal "
                             f"from a backup or move it aside")
    top = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    return int(top or 0)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


# A disposable (durable=False) journal this process wrote and closed, as it left it: reopened
# unchanged by this process (a backtest run in chunks of days), it is not integrity-checked again.
_VERIFIED: dict[Path, tuple | None] = {}


def _stamp(real: Path) -> tuple | None:
    """What tells whether a closed journal was touched since: the file's identity, size and
    modification time, and whether a -wal or -journal file lies beside it."""
    try:
        st = os.stat(real)
    except OSError:
        return None
    side = tuple(os.path.exists(f"{real}{s}") for s in ("-wal", "-journal"))
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) + side


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{urllib.parse.quote(str(path))}?{query}"


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(_uri(path, mode="ro"), uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _open_error(path: Path, exc: BaseException, writing: bool) -> JournalError:
    """A SQLite or OS error while opening, as the JournalError the command line turns into exit 3."""
    if isinstance(exc, JournalError):
        return exc
    if _is_full(exc):
        return JournalFull(f"journal {path}: {exc}; free disk space before trading")
    code = getattr(exc, "sqlite_errorcode", 0) or 0
    if isinstance(exc, OSError):
        why = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        return JournalError(f"journal {path}: cannot {'write' if writing else 'read'} it{where}: {why}; "
                            f"check the permissions of the file and of its directory")
    if code & 0xFF == _SQLITE_READONLY:
        real = _real(path)
        stuck = [f"{real}{s}" for s in ("-wal", "-shm") if os.path.exists(f"{real}{s}")
                 and not os.access(f"{real}{s}", os.W_OK)]
        which = f" (not writable: {', '.join(stuck)})" if stuck else ""
        return JournalError(f"journal {path} is read-only{which} ({exc}): rustro must write it; check "
                            f"the permissions of the file, of its -wal/-shm files and of its directory "
                            f"and that the disk is mounted read-write")
    if code & 0xFF in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
        return JournalCorrupt(f"journal {path} is not a readable SQLite database ({exc}); refusing to "
                              f"trade: restore it from a backup or move it aside")
    return JournalError(f"journal {path}: cannot {'open it for writing' if writing else 'read it'} "
                        f"({exc}); check the permissions of the file and of its directory")


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) or 0
        if code & 0xFF in (_SQLITE_CANTOPEN, _SQLITE_READONLY) or "unable to open" in str(exc):
            raise  # permissions, not damage: _open_error says so
        raise JournalCorrupt(f"journal {path} is not a readable SQLite database ({exc}); "
                             f"refusing to trade: restore it from a backup or move it aside") from None
    if result != ["ok"]:
        raise JournalCorrupt(f"journal {path} failed its integrity check ({'; '.join(result[:3])}); "
                             f"refusing to trade: restore it from a backup or move it aside")


def _acquire_lock(path: Path, real: Path) -> int:
    """flock `<real journal>.lock`: one lock file whatever path (symlink, relative) names it."""
    lock_path = real.with_name(real.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _open_error(path, exc, writing=True) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        same = "" if real == Path(os.path.abspath(path)) else f" (the file {real})"
        raise JournalLocked(f"journal {path}{same} is in use by another rustro process (pid {holder}); "
                            f"only one bot may write a journal") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise _open_error(path, exc, writing=True) from None
    return fd


# --- is it a rustro journal? ---------------------------------------------------------------------
def _inspect(path: Path, real: Path) -> tuple[str, int]:
    """("new", 0) for a missing or empty file, else ("rustro" | "legacy", schema version).

    Reads without writing anything: with no -wal or -journal beside it the file is opened
    `immutable` (no lock, no -shm), so another program's database is left byte for byte as it was.
    Raises NotAJournal, JournalCorrupt (not SQLite) or JournalError (a directory, unreadable)."""
    try:
        st = os.stat(real)
    except FileNotFoundError:
        if not real.parent.is_dir():
            raise JournalError(f"journal {path}: directory {real.parent} does not exist") from None
        return "new", 0
    except OSError as exc:
        raise _open_error(path, exc, writing=False) from None
    if stat.S_ISDIR(st.st_mode):
        raise JournalError(f"journal {path} is a directory, not a file: name a file inside it")
    if not stat.S_ISREG(st.st_mode):
        raise NotAJournal(f"{path} is not a rustro journal (not a regular file): refusing to use it")
    if st.st_size == 0:
        return "new", 0
    sidecar = any(os.path.exists(f"{real}{s}") for s in ("-wal", "-journal"))
    try:
        conn = sqlite3.connect(_uri(real, mode="ro") if sidecar else _uri(real, mode="ro", immutable="1"),
                               uri=True, isolation_level=None)
    except (sqlite3.Error, OSError) as exc:
        raise _open_error(path, exc, writing=False) from None
    try:
        return _classify(conn, path)
    except sqlite3.Error as exc:
        raise _open_error(path, exc, writing=False) from None
    finally:
        conn.close()


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def _classify(conn: sqlite3.Connection, path: Path) -> tuple[str, int]:
    """What the open database is: ("rustro", version) if marked with APPLICATION_ID, ("legacy",
    version) for a journal written before the mark (rustro's `meta` schema_version row and `events`
    table); anything else, a database without tables included, raises NotAJournal."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    meta_version = None
    if "meta" in tables:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            meta_version = int(row[0]) if row else None
        except (sqlite3.Error, ValueError, TypeError):
            meta_version = None
    if app_id == APPLICATION_ID:
        return "rustro", max(user_version, meta_version or 0)
    if app_id == 0 and meta_version is not None and "events" in tables:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
        if _EVENT_COLUMNS <= columns:
            return "legacy", meta_version
    listed = ", ".join(tables[:6]) + (", ..." if len(tables) > 6 else "") if tables else "none"
    hint = " (it looks like the paper broker's order database)" if path.name.endswith(".paper.sqlite") \
        else ""
    raise NotAJournal(f"{path} is not a rustro journal{hint}: a SQLite database with application_id "
                      f"{app_id:#x} and tables: {listed}. Refusing to write into another program's "
                      f"database (it is left untouched): pass --journal a new file or an existing "
                      f"rustro journal")


def _newer(path: Path, version: int) -> str:
    return (f"journal {path} was written by a newer rustro (schema {version} > {SCHEMA_VERSION}): "
            f"upgrade rustro")


def _create(real: Path) -> None:
    """A new journal appears whole: built (schema, application_id) in `<journal>.new`, synced, then
    renamed over the missing or empty file. A crash leaves either no journal or a complete one,
    never a half-made file the next open would have to refuse. Called under the lock."""
    tmp = real.with_name(real.name + ".new")
    for leftover in (tmp, Path(f"{tmp}-journal")):
        if leftover.exists():
            leftover.unlink()  # a crash during an earlier creation: ours, under our lock
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            _migrate(conn, 0, 0)
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, real)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    fd = os.open(real.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def _migrate(conn: sqlite3.Connection, version: int, verified_seq: int) -> None:
    """Bring the schema to SCHEMA_VERSION and mark the file (application_id, user_version), in one
    transaction: a new file's first commit makes it a complete, marked journal."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for target, statements in projection.MIGRATIONS:
            if version < target:
                for statement in statements:
                    conn.execute(statement)
        conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('verified_seq', ?)", (str(verified_seq),))
        conn.execute(f"PRAGMA user_version = {int(SCHEMA_VERSION)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
