#!/usr/bin/env python3
"""Benchmark: wall time and peak RSS of one full simulated day, and journal writes per second.

Usage: python scripts/bench_day.py [--date YYYY-MM-DD] [--events N]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def bench_day(day: str) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "journal.sqlite"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTAPI_")}
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, str(REPO / "rustro.py"), "run", "--sim", "--date", day,
                            "--journal", str(journal), "--quiet"], cwd=REPO, env=env,
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"sim day failed ({r.returncode}): {r.stderr[-2000:]}")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        import sqlite3
        events = sqlite3.connect(journal).execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return wall, rss_mb, events


def bench_journal(n: int) -> float:
    from rustro.clock import IST, VirtualClock
    from rustro.journal import Journal
    with tempfile.TemporaryDirectory() as tmp:
        clock = VirtualClock(datetime(2026, 11, 20, 9, 0, tzinfo=IST))
        with Journal.open(Path(tmp) / "j.sqlite", clock) as j:
            t0 = time.perf_counter()
            for i in range(n):
                j.record("vix", {"value": 14.0 + i * 1e-4, "token": "99926017"})
            return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--date", default="2026-10-14")  # seed 42: two round trips
    ap.add_argument("--events", type=int, default=2000)
    a = ap.parse_args()
    wall, rss, events = bench_day(a.date)
    print(f"simulated day {a.date}: wall {wall:.2f} s, peak RSS {rss:.0f} MB, {events} journal events")
    rate = bench_journal(a.events)
    print(f"journal: {rate:,.0f} committed events/s with WAL + synchronous=FULL "
          f"({a.events} single-event transactions)")


if __name__ == "__main__":
    main()
