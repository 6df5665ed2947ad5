"""`journal verify`: integrity check, every event decodes, then rebuild every derived table from
`events` and compare.

An event that does not decode (a corrupted byte in its payload that SQLite's integrity check cannot
see) is reported by seq and kind. If the projection of the events does not reproduce the stored
tables, something wrote a derived row without its event (or the reverse): that is reported row by
row, never silently fixed.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from . import projection
from .journal import Journal, _event


def verify_journal(path: str | Path) -> list[str]:
    problems: list[str] = []
    with Journal.open_readonly(path) as j:
        bad = j.unreadable_events()
        if bad:
            problems += [f"event #{seq} ({kind}) is unreadable: {why}" for seq, kind, why in bad]
            problems.append(f"derived tables not compared: {len(bad)} event(s) cannot be replayed")
            return problems
        mem = sqlite3.connect(":memory:", isolation_level=None)
        for _, statements in projection.MIGRATIONS:
            for s in statements:
                mem.execute(s)
        mem.execute("BEGIN")
        for row in j.conn.execute("SELECT seq, ts, trading_day, kind, payload FROM events ORDER BY seq"):
            ev = _event(row)
            mem.execute("INSERT INTO events VALUES (?,?,?,?,?)", tuple(row))
            try:
                projection.apply(mem, ev)
            except (sqlite3.DatabaseError, ValueError, KeyError) as exc:
                problems.append(f"event #{ev.seq} ({ev.kind}) cannot be applied: {exc}")
        mem.execute("COMMIT")
        for table in projection.DERIVED_TABLES:
            stored = sorted(tuple(r) for r in j.conn.execute(f"SELECT * FROM {table}"))
            rebuilt = sorted(tuple(r) for r in mem.execute(f"SELECT * FROM {table}"))
            if stored != rebuilt:
                only_s = [r for r in stored if r not in rebuilt][:3]
                only_r = [r for r in rebuilt if r not in stored][:3]
                problems.append(f"table {table}: {len(stored)} stored rows vs {len(rebuilt)} rebuilt; "
                                f"only stored: {only_s}; only rebuilt: {only_r}")
    return problems
