"""Speed of the synthetic market, plus a few figures that show what its paths look like.

Targets: one year (~250 trading days) of NIFTY minute data in under 10 s; the reads of a backtest
day (a new market each day, as `backtest` builds them) in a few milliseconds of CPU.
Run: python scripts/bench_synthetic.py [--seed N] [--year YYYY]
"""
from __future__ import annotations

import argparse
import sys
import time as _time
from datetime import date, time, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rustro.calendar import TradingCalendar, at  # noqa: E402
from rustro.clock import VirtualClock  # noqa: E402
from rustro.market.base import ONE_DAY, ONE_HOUR, ONE_MINUTE  # noqa: E402
from rustro.market.synthetic import SyntheticMarket  # noqa: E402
from rustro.market.synthetic_contracts import Contract  # noqa: E402

NIFTY, VIX = "99926000", "99926017"


def timed(label: str, fn):
    t0 = _time.perf_counter()
    out = fn()
    print(f"{label:<58} {_time.perf_counter() - t0:8.3f} s")
    return out


def backtest_day_reads(seed: int, cal: TradingCalendar, d: date) -> float:
    """CPU seconds of the market reads a backtest day makes of a new market (the instrument
    master aside): the warmup's 365 days of daily and 56 days of hourly bars, the hourly
    refreshes, the near future's minute bars, the VIX and its idle-tick promise every half hour,
    four option quotes at entry and the held option's promise through the afternoon."""
    clock = VirtualClock(at(d, time(9, 0)))
    t0 = _time.process_time()
    m = SyntheticMarket(clock, seed, calendar=cal)
    m.candles("NSE", NIFTY, ONE_DAY, at(d, time(9, 15)) - timedelta(days=365), at(d, time(9)))
    m.candles("NSE", NIFTY, ONE_HOUR, at(d - timedelta(days=56), time(9, 15)), clock.now())
    spot = m.ltp("NSE", NIFTY)
    fut = Contract("NIFTY", m._near_month("NIFTY", d), "FUT").token
    strike = int(round(spot / 50.0)) * 50
    expiry = cal.next_expiry("NIFTY", d, 1)
    opts = [Contract("NIFTY", expiry, k, strike + s).token for k in ("CE", "PE") for s in (0, 50)]
    vix_band = {VIX: (1e-9, 30.0)}
    for minutes in range(60, 375, 30):  # 10:15 .. 15:15
        clock.set(at(d, time(9, 15)) + timedelta(minutes=minutes))
        now = clock.now()
        if minutes % 60 == 0:
            m.candles("NSE", NIFTY, ONE_HOUR, at(d, time(9, 15)), now)
            m.candles("NFO", fut, ONE_MINUTE, at(d, time(9, 15)), now)
        m.vix()
        if minutes == 60:
            quotes = [m.quote("NFO", tok) for tok in opts]
        if minutes <= 90:
            m.next_change(now, vix_band)
        else:
            held = quotes[0]
            m.quote("NFO", opts[0])
            m.next_change(now, {opts[0]: (held.ltp * 0.8, held.ltp * 1.2), **vix_band})
    return _time.process_time() - t0


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

    backtest_day_reads(args.seed, cal, days[0])  # the year paths, built once per process
    per_day = sorted(backtest_day_reads(args.seed, cal, d) for d in days)
    print(f"{'the reads of a backtest day, a new market each day (CPU)':<58} "
          f"{sum(per_day):8.3f} s for {len(days)} days, median {per_day[len(days) // 2] * 1e3:.2f} ms")

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
