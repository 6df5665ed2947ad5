"""Journal backups through SQLite's online backup API, safe while the bot writes the journal.

The copy is one consistent snapshot: `sqlite3.Connection.backup` with all pages in one step reads
the journal inside one read transaction, which in WAL mode never blocks the bot's writer (nor is it
restarted by the writer's commits). The copy is written to `<dest>.partial`, checked (integrity,
application_id, its events decode), synced, then linked to its final name, which fails if a file
is already there: a backup never replaces anything silently.

`backup_at_close` is the optional backup of each day's close (`[journal] backup_dir`, keeping the
newest `backup_keep`); it journals what it did and never raises, so a failed backup cannot fail
the close.
"""
from __future__ import annotations

import logging
import os
import re
import sqlite3
import time as _time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from .clock import IST
from .journal_errors import JournalError, JournalFull
from .journal_open import (APPLICATION_ID, _check_integrity, _classify, _inspect, _real, _unreadable,
                           _uri, _CHECK_SQL)

log = logging.getLogger(__name__)
PARTIAL_SUFFIX = ".partial"


class BackupError(JournalError):
    """A backup that could not be made or did not verify; nothing was left at the destination."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    events: int
    last_seq: int
    seconds: float


def backup_journal(source: str | os.PathLike, dest: str | os.PathLike) -> BackupResult:
    """Copy the journal `source` to `dest` (a new file; a directory: a new file named after the
    journal and the time inside it) and verify the copy. Raises BackupError, or JournalError /
    NotAJournal / JournalCorrupt for a source that is not a readable rustro journal."""
    src = Path(source)
    real = _real(src)
    if _inspect(src, real)[0] == "new":
        raise BackupError(f"no journal at {src}: nothing to back up")
    target = _target(src, Path(dest))
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    started = _time.monotonic()
    try:
        _copy(real, partial)
        events, last_seq = _verify_copy(partial, target)
        _sync(partial)
        try:
            os.link(partial, target)  # refuses an existing target, even one created meanwhile
        except FileExistsError:
            raise BackupError(f"backup {target} already exists: refusing to overwrite it; "
                              f"choose another path or move it away") from None
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {src} to {target} failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"backup of {src} to {target} failed: {exc.strerror or exc}") from None
    finally:
        if partial.exists():
            partial.unlink()
    _sync_dir(target.parent)
    return BackupResult(target, target.stat().st_size, events, last_seq,
                        round(_time.monotonic() - started, 3))


def _target(src: Path, dest: Path) -> Path:
    if dest.is_dir():
        stamp = datetime.now(IST).strftime("%Y%m%d-%H%M%S")
        return dest / f"{src.stem}-{stamp}.sqlite"
    if dest.exists() or dest.is_symlink():
        raise BackupError(f"backup {dest} already exists: refusing to overwrite it; choose another "
                          f"path or move it away")
    if not dest.parent.is_dir():
        raise BackupError(f"backup {dest}: directory {dest.parent} does not exist (create it first)")
    return dest


def _copy(real: Path, partial: Path) -> None:
    if partial.exists():
        partial.unlink()  # left by a backup killed midway: never a verified copy
    source = sqlite3.connect(_uri(real, mode="ro"), uri=True, isolation_level=None)
    try:
        source.execute("PRAGMA busy_timeout=5000")
        copy = sqlite3.connect(partial, isolation_level=None)
        try:
            source.backup(copy)  # pages=-1: every page in one step, one snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        finally:
            copy.close()
    finally:
        source.close()


def _verify_copy(partial: Path, target: Path) -> tuple[int, int]:
    """(events, last seq) of a copy that is whole, marked as a rustro journal and whose every
    event decodes; else BackupError."""
    conn = sqlite3.connect(_uri(partial, mode="ro"), uri=True, isolation_level=None)
    try:
        try:
            _check_integrity(conn, target)
            _classify(conn, target)
        except JournalError as exc:
            raise BackupError(f"the copy failed verification: {exc}") from None
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            raise BackupError(f"the copy {target} lacks rustro's application_id")  # pragma: no cover
        bad = _unreadable(conn.execute(_CHECK_SQL + " ORDER BY seq"))
        if bad:
            seq, kind, why = bad[0]
            raise BackupError(f"the copy's event #{seq} ({kind}) is unreadable: {why}; the source "
                              f"journal is damaged: run `rustro journal verify` on it")
        count, last = conn.execute("SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(count), int(last)
    finally:
        conn.close()


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    try:
        _sync(path)
    except OSError:  # a filesystem that cannot sync a directory: the file itself is synced
        pass


# --- the backup at each close ----------------------------------------------------------------
def close_backup_path(backup_dir: Path, journal_path: Path, day: date) -> Path:
    """`<backup_dir>/<journal stem>-<day>.sqlite`, or `-<day>-2`, `-3`... if taken."""
    stem = Path(journal_path).stem
    path, n = backup_dir / f"{stem}-{day.isoformat()}.sqlite", 1
    while path.exists():
        n += 1
        path = backup_dir / f"{stem}-{day.isoformat()}-{n}.sqlite"
    return path


def prune(backup_dir: Path, journal_path: Path, keep: int) -> list[Path]:
    """Delete the oldest close backups of this journal beyond the newest `keep` (0 = keep all).
    Only files named as `close_backup_path` names them are ever considered. Returns the deleted."""
    if keep <= 0:
        return []
    pattern = re.compile(rf"{re.escape(Path(journal_path).stem)}-(\d{{4}}-\d{{2}}-\d{{2}})(?:-(\d+))?\.sqlite")
    found = []
    for p in backup_dir.iterdir():
        m = pattern.fullmatch(p.name)
        if m and p.is_file():
            found.append(((m.group(1), int(m.group(2) or 1)), p))
    found.sort()
    doomed = [p for _, p in found[:-keep]] if len(found) > keep else []
    for p in doomed:
        p.unlink()
    return doomed


def backup_at_close(cfg, journal, day: date) -> BackupResult | None:
    """The optional backup after the day closed. Journals `journal_backup` or
    `journal_backup_failed`; never raises (the close has happened and must stay a success)."""
    directory = cfg.journal.backup_dir
    if not directory or not journal.durable:  # off, or a backtest's disposable journal
        return None
    backup_dir = Path(directory)
    if not backup_dir.is_absolute():
        backup_dir = Path(journal.path).parent / backup_dir
    try:
        if not backup_dir.is_dir():
            raise BackupError(f"journal.backup_dir: directory {backup_dir} does not exist (create it)")
        result = backup_journal(journal.path, close_backup_path(backup_dir, journal.path, day))
        pruned = prune(backup_dir, journal.path, cfg.journal.backup_keep)
    except Exception as exc:  # noqa: BLE001 - any failure is reported, none fails the close
        log.error("journal backup at the close failed: %s", exc)
        _record(journal, "journal_backup_failed", {"dir": str(backup_dir), "error": str(exc)}, day)
        return None
    log.info("journal backed up to %s (%d events, %.2f s)", result.path, result.events, result.seconds)
    _record(journal, "journal_backup", {"path": str(result.path), "bytes": result.bytes,
                                        "events": result.events, "last_seq": result.last_seq,
                                        "seconds": result.seconds,
                                        "pruned": [p.name for p in pruned]}, day)
    return result


def _record(journal, kind: str, payload: dict, day: date) -> None:
    try:
        journal.record(kind, payload, day=day)
    except (JournalFull, JournalError, sqlite3.Error) as exc:  # a full disk, most likely
        log.error("could not journal %s: %s", kind, exc)
