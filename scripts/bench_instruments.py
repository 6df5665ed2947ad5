"""Benchmark: load and index a realistic ~150k-row instrument master (target: under 2 s total).

Generates a seeded master of realistic shape (mostly equities, stock derivatives, BSE/MCX/CDS
rows, plus NIFTY/BANKNIFTY/FINNIFTY index futures and options over several expiries) in a temp
dir, then measures read + json.loads + parse_master in a fresh interpreter so the peak RSS
reported is that of loading, not of generating.

    python scripts/bench_instruments.py [--rows 150000] [--seed 7] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
TARGET_SEC = 2.0


def _dmy(d: date) -> str:
    return f"{d.day:02d}{MONTHS[d.month - 1]}{d.year}"


def _short(d: date) -> str:
    return f"{d.day:02d}{MONTHS[d.month - 1]}{d.year % 100:02d}"


def _row(token, symbol, name, expiry, strike, lot, itype, seg, tick):
    return {"token": str(token), "symbol": symbol, "name": name, "expiry": expiry,
            "strike": f"{strike:.6f}", "lotsize": str(lot), "instrumenttype": itype,
            "exch_seg": seg, "tick_size": f"{tick:.6f}"}


def _tuesdays(start: date, n: int) -> list[date]:
    d = start + timedelta(days=(1 - start.weekday()) % 7)
    return [d + timedelta(weeks=i) for i in range(n)]


def _monthlies(start: date, n: int) -> list[date]:
    """Last Tuesday of each month from start's month."""
    out, y, m = [], start.year, start.month
    while len(out) < n:
        nxt = date(y + m // 12, m % 12 + 1, 1)
        last = nxt - timedelta(days=1)
        out.append(last - timedelta(days=(last.weekday() - 1) % 7))
        y, m = nxt.year, nxt.month
    return out


def generate(rows_wanted: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    start = date(2026, 1, 5)
    tok = iter(range(30000, 10**7))
    rows: list[dict] = []

    def options(name, seg, itype, expiries, centre, step, n_strikes, lot):
        for e in expiries:
            for k in range(-(n_strikes // 2), n_strikes - n_strikes // 2):
                strike = centre + k * step
                for cp in ("CE", "PE"):
                    rows.append(_row(next(tok), f"{name}{_short(e)}{strike:g}{cp}", name, _dmy(e),
                                     strike * 100, lot, itype, seg, 5))

    indices = [("99926000", "Nifty 50", "NIFTY"), ("99926009", "Nifty Bank", "BANKNIFTY"),
               ("99926037", "Nifty Fin Service", "FINNIFTY"), ("99926017", "India VIX", "INDIA VIX"),
               ("99926013", "Nifty Next 50", "NIFTY NEXT 50"), ("99926074", "NIFTY MID SELECT", "MIDCPNIFTY")]
    indices += [(str(99926100 + i), f"Nifty Sector {i}", f"NIFTY SECTOR {i}") for i in range(120)]
    for token, symbol, name in indices:
        rows.append(_row(token, symbol, name, "", 0, 1, "AMXIDX", "NSE", 0))
    for i in range(40):
        rows.append(_row(99919000 + i, f"BSE INDEX {i}", f"BSE INDEX {i}", "", 0, 1, "AMXIDX", "BSE", 0))

    # the underlyings the bot trades: weekly NIFTY, monthly BANKNIFTY/FINNIFTY, plus futures
    monthly = _monthlies(start, 4)
    nifty_exp = sorted(set(_tuesdays(start, 8)) | set(monthly) | set(_monthlies(start, 12)[5::3]))
    options("NIFTY", "NFO", "OPTIDX", nifty_exp, 24000, 50, 240, 65)
    options("BANKNIFTY", "NFO", "OPTIDX", monthly, 52000, 100, 220, 30)
    options("FINNIFTY", "NFO", "OPTIDX", monthly, 24000, 50, 160, 60)
    options("MIDCPNIFTY", "NFO", "OPTIDX", monthly, 13000, 25, 160, 120)
    options("NIFTYNXT50", "NFO", "OPTIDX", monthly, 68000, 100, 100, 25)
    for name, lot in (("NIFTY", 65), ("BANKNIFTY", 30), ("FINNIFTY", 60), ("MIDCPNIFTY", 120)):
        for e in monthly[:3]:
            rows.append(_row(next(tok), f"{name}{_short(e)}FUT", name, _dmy(e), -1, lot,
                             "FUTIDX", "NFO", 10))
    options("SENSEX", "BFO", "OPTIDX", _tuesdays(start, 6), 80000, 100, 200, 20)

    # everything else, until the row count is reached: stock F&O, equities, MCX, CDS, NCDEX
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    stocks = ["".join(rnd.choice(letters) for _ in range(rnd.randint(3, 10))) for _ in range(220)]
    for s in stocks:
        price, lot = rnd.choice((100, 500, 1500, 4000)), rnd.choice((250, 500, 1000, 1500))
        for e in monthly[:3]:
            rows.append(_row(next(tok), f"{s}{_short(e)}FUT", s, _dmy(e), -1, lot, "FUTSTK", "NFO", 5))
        options(s, "NFO", "OPTSTK", monthly[:3], price, max(1, price // 50), 44, lot)
    fillers = [("NSE", "", "-EQ", 1), ("BSE", "", "", 1), ("MCX", "OPTFUT", "", 100),
               ("CDS", "OPTCUR", "", 1000), ("NCDEX", "FUTCOM", "", 10)]
    while len(rows) < rows_wanted:
        seg, itype, suffix, lot = rnd.choice(fillers)
        name = "".join(rnd.choice(letters) for _ in range(rnd.randint(3, 12)))
        e = rnd.choice(monthly) if itype else None
        rows.append(_row(next(tok), f"{name}{_short(e) + str(rnd.randint(1, 999)) + 'CE' if e else suffix}",
                         name, _dmy(e) if e else "", rnd.randint(1, 99999) * 100 if e else -1,
                         lot, itype, seg, 5 if seg != "CDS" else 0.25))
    rnd.shuffle(rows)
    return rows[:rows_wanted] if len(rows) > rows_wanted else rows


def _peak_rss_mb() -> float:
    """VmHWM of this process; ru_maxrss on Linux keeps the parent's peak across fork+exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: str) -> None:
    from rustro.market.instruments import InstrumentMaster, parse_master

    t0 = time.perf_counter()
    data = Path(path).read_bytes()
    t1 = time.perf_counter()
    rows = json.loads(data)
    t2 = time.perf_counter()
    master = parse_master(rows)
    t3 = time.perf_counter()
    records = master.to_records()
    InstrumentMaster.from_records(records)
    t4 = time.perf_counter()
    for u in ("NIFTY", "BANKNIFTY", "FINNIFTY"):
        master.require_options(u)
    e = master.nearest_expiry("NIFTY", date(2026, 1, 6), 1)
    atm = master.atm("NIFTY", e, 24025.0, "CE", 50)
    total = t3 - t0
    peak_mb = _peak_rss_mb()
    print(f"file:            {len(data) / 1e6:.1f} MB, {len(rows)} rows")
    print(f"read bytes:      {t1 - t0:.3f} s")
    print(f"json.loads:      {t2 - t1:.3f} s")
    print(f"parse_master:    {t3 - t2:.3f} s  (kept {len(master)}, skipped {master.skipped or 'none'})")
    print(f"total load:      {total:.3f} s  (target < {TARGET_SEC:.1f} s: {'OK' if total < TARGET_SEC else 'SLOW'})")
    print(f"records round-trip: {t4 - t3:.3f} s ({len(records)} records)")
    print(f"peak RSS:        {peak_mb:.0f} MB")
    print(f"sanity:          NIFTY nearest expiry {e}, ATM CE {atm.symbol} lot {atm.lot_size}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=150_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", help="write the generated master into this directory and keep it")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        measure(args.measure)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp) / "OpenAPIScripMaster.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        # indent=1 brings 150k rows to the ~40 MB of a real dump (whitespace only costs the parser)
        out.write_text(json.dumps(generate(args.rows, args.seed), indent=1), encoding="utf-8")
        subprocess.run([sys.executable, __file__, "--measure", str(out)], check=True)


if __name__ == "__main__":
    main()
