#!/usr/bin/env python3
"""Kill the bot after every journal commit (and every paper-broker commit) of a simulated day,
restart it until the day closes, and compare each day with the uninterrupted run.

    python scripts/crashtest.py --date 2026-10-14 --all-commits
    python scripts/crashtest.py --date 2026-10-14 --every 9          # a reduced sample

A day is *identical* when its trades (entry and exit prices, reasons, net P&L), its fills (tag,
side, quantity, price) and its risk counters equal the uninterrupted run's, the day closed, no tag
was placed twice at the broker, every broker fill is in the journal, and no symbol was ever net
short in the broker's trade book. Prints `N/N identical`; exits 1 if any is not.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KINDS = {"journal": "RUSTRO_CRASH_AFTER_EVENTS", "paper": "RUSTRO_PAPER_CRASH_AFTER_COMMITS"}


def run(journal: Path, date: str, env_extra: dict | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTAPI_", "RUSTRO_"))}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(REPO / "rustro.py"), "run", "--sim", "--date", date,
                           "--journal", str(journal), "--quiet"], env=env, cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300).returncode


def snapshot(journal: Path, date: str) -> dict:
    """What must not change because of a crash, read from the journal and the paper broker."""
    j = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    state = j.execute("SELECT state FROM day_state WHERE trading_day = ?", (date,)).fetchone()
    trades = [tuple(r) for r in j.execute(
        "SELECT position_id, symbol, qty, entry_price, exit_price, exit_reason, ROUND(net_pnl, 2) "
        "FROM positions WHERE trading_day = ? ORDER BY entry_time", (date,))]
    fills = sorted(tuple(r) for r in j.execute(
        "SELECT tag, side, qty, price FROM fills WHERE trading_day = ?", (date,)))
    fill_ids = {r[0] for r in j.execute("SELECT fill_id FROM fills WHERE trading_day = ?", (date,))}
    row = j.execute("SELECT payload FROM risk_state WHERE trading_day = ?", (date,)).fetchone()
    j.close()
    risk = json.loads(row[0])["state"] if row else {}
    risk.pop("trading_day", None)
    paper = journal.with_name(journal.stem + ".paper.sqlite")
    p = sqlite3.connect(f"file:{paper}?mode=ro", uri=True)
    tags = [r[0] for r in p.execute("SELECT tag FROM orders WHERE trading_day = ?", (date,))]
    broker_fills = p.execute("SELECT fill_id, token, side, qty FROM fills WHERE trading_day = ? "
                             "ORDER BY seq", (date,)).fetchall()
    p.close()
    net, worst = {}, 0
    for _, token, side, qty in broker_fills:
        net[token] = net.get(token, 0) + (qty if side == "BUY" else -qty)
        worst = min(worst, net[token])
    return {"state": state[0] if state else None, "trades": trades, "fills": fills, "risk": risk,
            "duplicate_tags": len(tags) - len(set(tags)),
            "lost_fills": len({f[0] for f in broker_fills} - fill_ids), "min_net_qty": worst}


def verdict(ref: dict, got: dict) -> list[str]:
    bad = [k for k in ("trades", "fills", "risk") if got[k] != ref[k]]
    if got["state"] != "closed":
        bad.append(f"state {got['state']}")
    if got["duplicate_tags"]:
        bad.append(f"{got['duplicate_tags']} duplicate tags")
    if got["lost_fills"]:
        bad.append(f"{got['lost_fills']} lost fills")
    if got["min_net_qty"] < 0:
        bad.append(f"net short {got['min_net_qty']}")
    return bad


def one(kind: str, k: int, date: str, ref: dict, root: Path) -> tuple[str, int, list[str] | None]:
    """Kill after commit k, restart until closed. None when the day ended before commit k."""
    d = root / f"{kind}-{k}"
    d.mkdir()
    journal = d / "journal.sqlite"
    rc = run(journal, date, {KINDS[kind]: str(k)})
    if rc == 0:
        return kind, k, None
    if rc != -9:
        return kind, k, [f"crashed run exited {rc}"]
    for _ in range(3):
        rc = run(journal, date)
        if rc == 0:
            break
    if rc != 0:
        return kind, k, [f"restart exited {rc}"]
    return kind, k, verdict(ref, snapshot(journal, date))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--date", default="2026-10-14")
    ap.add_argument("--all-commits", action="store_true", help="every commit of both parties")
    ap.add_argument("--every", type=int, default=1, help="kill after every Nth commit only")
    ap.add_argument("--kinds", default="journal,paper", help="journal, paper or both")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    step = 1 if args.all_commits else max(1, args.every)
    with tempfile.TemporaryDirectory(prefix="crashtest-") as tmp:
        root = Path(tmp)
        ref_journal = root / "ref" / "journal.sqlite"
        ref_journal.parent.mkdir()
        if run(ref_journal, args.date) != 0:
            print("the uninterrupted run failed")
            return 2
        ref = snapshot(ref_journal, args.date)
        results, failures = [], []
        for kind in [k for k in args.kinds.split(",") if k]:
            k, done = 1, False
            with ThreadPoolExecutor(args.workers) as pool:
                while not done:
                    batch = list(range(k, k + step * args.workers * 4, step))
                    for kd, kk, bad in pool.map(lambda n: one(kind, n, args.date, ref, root), batch):
                        if bad is None:
                            done = True
                            continue
                        results.append((kd, kk))
                        if bad:
                            failures.append((kd, kk, bad))
                            done = done or bad[0].startswith("crashed run exited")  # broken: stop
                    k = batch[-1] + step
        for kd, kk, bad in failures:
            print(f"{kd} commit {kk}: {', '.join(bad)}")
        n = len(results)
        print(f"reference: {len(ref['trades'])} trades, {len(ref['fills'])} fills, "
              f"risk {json.dumps(ref['risk'], sort_keys=True)}")
        for kind in [k for k in args.kinds.split(",") if k]:
            tried = sum(1 for kd, _ in results if kd == kind)
            bad = sum(1 for kd, _, _ in failures if kd == kind)
            print(f"{kind} commits killed: {tried}, identical: {tried - bad}")
        print(f"{n - len(failures)}/{n} identical")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
