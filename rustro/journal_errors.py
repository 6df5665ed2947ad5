"""The journal's exceptions, and whether a SQLite or OS error means a full disk."""
from __future__ import annotations

import errno
import sqlite3

_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_FULL, _SQLITE_NOTADB, _SQLITE_CORRUPT = 8, 14, 13, 26, 11


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



def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, JournalFull):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == _SQLITE_FULL) or "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC
