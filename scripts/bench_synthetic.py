"""Speed of the synthetic market, plus a few figures that show what its paths look like.

Targets: one year (~250 trading days) of NIFTY minute data in under 10 s.
Run: python scripts/bench_synthetic.py [--seed N] [--year YYYY]
"""
from __future__ import annotations

import argparse
import sys
import time as _time
from datetime import date, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rustro.calendar import TradingCalendar, at  # noqa: E402
from rustro.clock import VirtualClock  # noqa: E402
from rustro.market.base import ONE_DAY, ONE_MINUTE  # noqa: E402
from rustro.market.synthetic import SyntheticMarket  # noqa: E402

NIFTY, VIX = "99926000", "99926017"


def timed(label: str, fn):
    t0 = _time.perf_counter()
    out = fn()
    print(f"{label:<58} {_time.perf_counter() - t0:8.3f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--year", type=int, default=2025)
    args = ap.parse_args()
    cal = TradingCalendar()
    days = cal.trading_days(date(args.year, 1, 1), date(args.year, 12, 31))
    after = at(date(args.year + 1, 1, 5), time(8))

    m = SyntheticMarket(VirtualClock(after), args.seed)
    timed(f"year paths {2018}..{args.year} (NIFTY + VIX, daily level)",
          lambda: m.daily_ohlc("NIFTY", days[-1]))

    def minute_year():
        n = 0
        for d in days:
            n += len(m.candles("NSE", NIFTY, ONE_MINUTE, at(d, time(0)), at(d, time(23, 59))))
        return n

    n = timed(f"{len(days)} days of NIFTY minute bars (as Bar objects)", minute_year)
    print(f"{'':<58} {n} bars")
    m2 = SyntheticMarket(VirtualClock(after), args.seed)

    def minute_year_all():
        for d in days:
            for tok in (NIFTY, VIX):
                m2.candles("NSE", tok, ONE_MINUTE, at(d, time(0)), at(d, time(23, 59)))
    timed(f"{len(days)} days of NIFTY + India VIX minute bars", minute_year_all)

    mid = days[len(days) // 2]
    mm = SyntheticMarket(VirtualClock(at(mid, time(8, 30))), args.seed,
                         underlyings=("NIFTY", "BANKNIFTY", "FINNIFTY"))
    rows = timed("instrument master, 3 underlyings (cold, incl. year paths)", mm.instrument_master)
    mm._master = None
    timed("instrument master, 3 underlyings (rebuild)", mm.instrument_master)
    print(f"{'':<58} {len(rows)} rows")

    chain_m = SyntheticMarket(VirtualClock(at(mid, time(15, 45))), args.seed)
    opts = [c for c in chain_m.contracts("NIFTY") if c.is_option]

    def chain_day():
        for c in opts:
            chain_m.candles("NFO", c.token, ONE_MINUTE, at(mid, time(0)), at(mid, time(23, 59)))
    timed(f"one day's NIFTY option chain, minute candles ({len(opts)} contracts)", chain_day)
    snap_m = SyntheticMarket(VirtualClock(at(mid, time(11, 0))), args.seed)
    timed(f"one NIFTY option chain snapshot, quote() x {len(opts)}",
          lambda: [snap_m.quote("NFO", c.token) for c in opts])

    daily = m.candles("NSE", NIFTY, ONE_DAY, at(days[0], time(0)), at(days[-1], time(23)))
    vix = m.candles("NSE", VIX, ONE_DAY, at(days[0], time(0)), at(days[-1], time(23)))
    closes = np.array([b.close for b in daily])
    rets = np.diff(np.log(closes))
    gaps = np.array([b.open / a.close - 1 for a, b in zip(daily, daily[1:])])
    regimes = [m.regime("NIFTY", d) for d in days]
    print(f"\nNIFTY {args.year}: open {daily[0].open:.0f} close {daily[-1].close:.0f}, "
          f"daily sd {rets.std() * 100:.2f} %, median |gap| {np.median(np.abs(gaps)) * 100:.2f} %, "
          f"mean range {np.mean([(b.high - b.low) / b.open for b in daily]) * 100:.2f} %")
    print("regimes: " + ", ".join(f"{r} {regimes.count(r)}" for r in ("trend_up", "trend_down", "range")))
    print(f"India VIX: median {np.median([b.close for b in vix]):.1f}, "
          f"min {min(b.low for b in vix):.1f}, max {max(b.high for b in vix):.1f}, "
          f"days with high > 30: {sum(b.high > 30 for b in vix)}")


if __name__ == "__main__":
    main()
