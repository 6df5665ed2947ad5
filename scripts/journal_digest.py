#!/usr/bin/env python3
"""A digest of everything a backtest journaled, to prove a speed change changed nothing.

Runs `app.run_backtest` over [--from, --to] (config.toml, a fresh temporary journal) and prints one
sha256 over every table of the journal (events with their payloads, orders, fills, positions,
transitions, risk state, bars, instrument masters...) and of the paper broker's store, each read in
key order. The day summary's `longest_job` (a wall-clock figure) is masked. Run it on two commits
(e.g. in a `git worktree`): the same digest means the same journal, row for row.

Usage: python scripts/journal_digest.py [--from D] [--to D] [-v]
"""
import argparse
import hashlib
import logging
import re
import sqlite3
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def table_digests(con: sqlite3.Connection, prefix: str = "") -> list[tuple[str, int, bytes]]:
    out = []
    names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                                       "name NOT LIKE 'sqlite_%' ORDER BY name")]
    for name in names:
        h, n = hashlib.sha256(), 0
        for row in con.execute(f"SELECT * FROM {name} ORDER BY 1, 2" if len(
                con.execute(f"SELECT * FROM {name} LIMIT 0").description) > 1
                else f"SELECT * FROM {name} ORDER BY 1"):
            text = re.sub(r'"longest_job": \{[^}]*\}', '"longest_job": WALL', repr(row))
            h.update(text.encode())
            n += 1
        out.append((prefix + name, n, h.digest()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="start", type=date.fromisoformat, default=date(2026, 1, 1))
    ap.add_argument("--to", dest="end", type=date.fromisoformat, default=date(2026, 12, 31))
    ap.add_argument("-v", action="store_true", help="print each table's row count and digest")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from rustro.app import run_backtest
    from rustro.config import load_config
    from rustro.desk import build_desk
    cfg = load_config(REPO / "config.toml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.sqlite"
        t0 = time.perf_counter()
        days = run_backtest(cfg, path, args.start, args.end, None, build_desk)
        wall = time.perf_counter() - t0
        with sqlite3.connect(path) as con:
            parts = table_digests(con)
        paper = path.with_name(path.stem + ".paper.sqlite")
        if paper.exists():
            with sqlite3.connect(paper) as con:
                parts += table_digests(con, "paper.")
    total = hashlib.sha256()
    for name, n, digest in parts:
        total.update(name.encode() + digest)
        if args.v:
            print(f"{name:28s} {n:8d} rows  {digest.hex()[:16]}")
    print(f"{len(days)} days in {wall:.2f} s, journal digest {total.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
