"""Opening a journal: is the file a rustro journal (application_id, schema version), is it whole
(integrity_check) and do its events decode, the single-writer lock, the connection, creation and
migration of the schema, and the `<journal>.reserve` file kept for a full disk.

`Journal.open` / `Journal.open_readonly` (rustro.journal) put these together; see that module's
docstring for what an open guarantees.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import stat
import urllib.parse
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from . import projection
from .journal_errors import (_SQLITE_CANTOPEN, _SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_READONLY,
                             JournalCorrupt, JournalError, JournalFull, JournalLocked, NotAJournal,
                             _is_full)

SCHEMA_VERSION = 2
APPLICATION_ID = 0x52535452  # "RSTR" in PRAGMA application_id: this file is a rustro journal
RESERVE_SUFFIX = ".reserve"
_EVENT_COLUMNS = {"seq", "ts", "trading_day", "kind", "payload"}


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
    modification time, and the sizes of a -wal or -journal file beside it (an empty -wal, which a
    reader leaves behind, holds nothing: the same as none)."""
    try:
        st = os.stat(real)
    except OSError:
        return None
    side = tuple(_size(f"{real}{s}") for s in ("-wal", "-journal"))
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) + side


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _unchanged_since_verified(real: Path) -> bool:
    """A disposable journal this process closed, untouched since (see `_VERIFIED`)."""
    stamp = _VERIFIED.get(real)
    return stamp is not None and stamp == _stamp(real)


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



def _create(real: Path, migrate: Callable[[sqlite3.Connection, int, int], None]) -> None:
    """A new journal appears whole: built (schema, application_id) in `<journal>.new`, synced, then
    renamed over the missing or empty file. A crash leaves either no journal or a complete one,
    never a half-made file the next open would have to refuse. Called under the lock; `migrate` is
    `_migrate` as the caller names it."""
    tmp = real.with_name(real.name + ".new")
    for leftover in (tmp, Path(f"{tmp}-journal")):
        if leftover.exists():
            leftover.unlink()  # a crash during an earlier creation: ours, under our lock
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            migrate(conn, 0, 0)
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


def _migrate(conn: sqlite3.Connection, version: int, verified_seq: int,
             schema: int = SCHEMA_VERSION) -> None:
    """Bring the schema to `schema` (SCHEMA_VERSION) and mark the file (application_id,
    user_version), in one transaction: a new file's first commit makes it a complete, marked journal."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for target, statements in projection.MIGRATIONS:
            if version < target:
                for statement in statements:
                    conn.execute(statement)
        conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(schema),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('verified_seq', ?)", (str(verified_seq),))
        conn.execute(f"PRAGMA user_version = {int(schema)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
