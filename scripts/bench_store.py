"""Benchmark of the market-data store (rustro/market/store.py): what recording costs per quote,
how long a backtest day takes to load from a year store, and the disk a day takes.

    PYTHONPATH=. python scripts/bench_store.py [--days 245] [--strikes 41]

1. Recorder: `RecordingMarket.quote` over an in-memory source versus the source alone (the
   difference is the recorder's cost per quote, its commits included).
2. A store holding a year of index + VIX minute bars (random walks, 375 bars a session) and one
   day's option chain (two expiries, --strikes strikes, calls and puts): the time to load one
   backtest day: (a) every chain contract's minute bars of the day, (b) what the strategy reads
   in a day from `StoredMarket` (master, hourly and daily history, the index, VIX and one option).
3. Disk: bytes per stored minute bar, per recorded quote and per compressed master row.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, time as dtime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rustro.calendar import TradingCalendar, at  # noqa: E402
from rustro.clock import IST, VirtualClock  # noqa: E402
from rustro.config import Config  # noqa: E402
from rustro.market.base import ONE_DAY, ONE_HOUR, ONE_MINUTE, Quote  # noqa: E402
from rustro.market.recorder import Recorder, RecordingMarket  # noqa: E402
from rustro.market.store import MarketStore  # noqa: E402
from rustro.market.stored import StoredMarket, put_derived  # noqa: E402

SPOT, VIX, FUT = "99926000", "99926017", "50000"
DERIVED = True  # --minutes-only: no stored hourly/daily bars, every one built from minute bars


class Source:
    """An in-memory MarketData: the cheapest possible inner source."""

    def __init__(self, clock):
        self.clock = clock

    def quote(self, exchange, token):
        return Quote(token, 101.0, 100.95, 101.05, self.clock.now())


def bench_recorder(n: int, tmp: Path) -> tuple[float, float]:
    clock = VirtualClock(datetime(2026, 10, 14, 9, 15, tzinfo=IST))
    src = Source(clock)
    t0 = time.perf_counter()
    for i in range(n):
        src.quote("NFO", str(i % 50))
        clock.advance(0.01)
    bare = (time.perf_counter() - t0) / n
    rec = Recorder(tmp / "rec.sqlite", clock, clock.now().date(), lambda k, p: None)
    market = RecordingMarket(Source(clock), rec)
    t0 = time.perf_counter()
    for i in range(n):
        market.quote("NFO", str(i % 50))
        clock.advance(0.01)
    rec.close()
    recorded = (time.perf_counter() - t0) / n
    return bare, recorded


def walk(rng, n: int, start: float, vol: float) -> np.ndarray:
    return start * np.exp(np.cumsum(rng.normal(0, vol, n)))


def put_day(store: MarketStore, token: str, d: date, closes: np.ndarray) -> None:
    t0 = int(at(d, dtime(9, 15)).timestamp())
    opens = np.concatenate([[closes[0]], closes[:-1]])
    hi, lo = np.maximum(opens, closes) * 1.0005, np.minimum(opens, closes) * 0.9995
    rows = [(t0 + 60 * i, float(opens[i]), float(hi[i]), float(lo[i]), float(closes[i]), 1000.0,
             0.0) for i in range(len(closes))]
    store.put_bars(token, ONE_MINUTE, rows)
    if DERIVED:
        put_derived(store, token, rows)  # as `data import` and `data download` store them


def master_rows(d: date, strikes: int) -> list[dict]:
    rows = [{"token": SPOT, "symbol": "Nifty 50", "name": "NIFTY", "expiry": "", "strike": "0",
             "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE", "tick_size": "0"},
            {"token": VIX, "symbol": "India VIX", "name": "INDIA VIX", "expiry": "", "strike": "0",
             "lotsize": "1", "instrumenttype": "AMXIDX", "exch_seg": "NSE", "tick_size": "0"}]
    for e, expiry in enumerate((d + timedelta(days=5), d + timedelta(days=12))):
        for k in range(strikes):
            strike = 24000 + 50 * (k - strikes // 2)
            for cp in ("CE", "PE"):
                rows.append({"token": f"{e}{k:03d}{cp}", "symbol": f"NIFTY{expiry:%d%b%y}{strike}{cp}".upper(),
                             "name": "NIFTY", "expiry": f"{expiry:%d%b%Y}".upper(),
                             "strike": f"{strike * 100:.6f}", "lotsize": "65",
                             "instrumenttype": "OPTIDX", "exch_seg": "NFO", "tick_size": "5.000000"})
    return rows


def build_year(path: Path, days: list[date], strikes: int) -> tuple[int, list[dict]]:
    rng = np.random.default_rng(7)
    store = MarketStore(path)
    spot = walk(rng, 375 * len(days), 24000.0, 0.0004)
    vix = walk(rng, 375 * len(days), 14.0, 0.001)
    for i, d in enumerate(days):
        put_day(store, SPOT, d, spot[375 * i:375 * (i + 1)])
        put_day(store, VIX, d, vix[375 * i:375 * (i + 1)])
        store.commit()
    last = days[-1]
    rows = master_rows(last, strikes)
    store.put_master(last, rows)
    chain = [r for r in rows if r["instrumenttype"] == "OPTIDX"]
    for r in chain:
        put_day(store, r["token"], last, walk(rng, 375, 100.0, 0.003))
    store.close()
    return len(chain), chain


def bench_day(path: Path, day: date, chain: list[dict], repeat: int) -> tuple[list[float], list[float]]:
    chain_ms, strategy_ms = [], []
    lo = int(at(day, dtime(0)).timestamp())
    for _ in range(repeat):
        store = MarketStore(path, readonly=True)
        t0 = time.perf_counter()
        for r in chain:
            store.bars(r["token"], ONE_MINUTE, lo, lo + 86_400)
        chain_ms.append((time.perf_counter() - t0) * 1000)
        store.close()
    from rustro.market import stored
    stored._BUILT.clear()  # the first read is a fresh process's: history built from minute bars
    for _ in range(repeat):
        store = MarketStore(path, readonly=True)
        clock = VirtualClock(at(day, dtime(11, 15)))
        t0 = time.perf_counter()
        m = StoredMarket(store, clock)
        m.instrument_master()
        m.candles("NSE", SPOT, ONE_DAY, at(day - timedelta(days=365), dtime(9, 15)), at(day, dtime(9, 0)))
        m.candles("NSE", SPOT, ONE_HOUR, at(day - timedelta(days=60), dtime(9, 15)), clock.now())
        m.ltp("NSE", SPOT), m.vix(), m.quote("NFO", chain[len(chain) // 2]["token"])
        strategy_ms.append((time.perf_counter() - t0) * 1000)
        store.close()
    return chain_ms, strategy_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=245, help="trading days of index + VIX bars")
    ap.add_argument("--strikes", type=int, default=41, help="strikes per expiry in the chain")
    ap.add_argument("--quotes", type=int, default=20000)
    ap.add_argument("--minutes-only", action="store_true", help="store no hourly/daily bars: "
                    "the first day of a process builds a year of them from minute bars")
    args = ap.parse_args()
    global DERIVED
    DERIVED = not args.minutes_only
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bare, recorded = bench_recorder(args.quotes, tmp)
        qsize = os.path.getsize(tmp / "rec.sqlite")
        print(f"recorder: {recorded * 1e6:.1f} us per quote recorded vs {bare * 1e6:.1f} us bare "
              f"-> {(recorded - bare) * 1e6:.1f} us per quote; {qsize / args.quotes:.0f} bytes "
              f"per recorded quote on disk")
        cal = TradingCalendar.from_config(Config())
        days = cal.trading_days(date(2025, 10, 1), date(2026, 10, 14))[-args.days:]
        path = tmp / "year.sqlite"
        t0 = time.perf_counter()
        n_chain, chain = build_year(path, days, args.strikes)
        built = time.perf_counter() - t0
        store = MarketStore(path, readonly=True)
        counts = store.counts()
        store.close()
        size = os.path.getsize(path)
        print(f"year store: {len(days)} days of index + VIX minute bars and a {n_chain}-contract "
              f"chain on {days[-1]}: {counts['bars']} bars, {size / 1e6:.1f} MB "
              f"({size / counts['bars']:.0f} bytes per bar incl. the master), built in {built:.1f} s")
        chain_ms, strat_ms = bench_day(path, days[-1], chain, 7)
        print(f"load one backtest day: the whole {n_chain}-contract chain's minute bars "
              f"{statistics.median(chain_ms):.1f} ms median (min {min(chain_ms):.1f}); "
              f"what the strategy reads (master, a year of daily and 60 days of hourly bars"
              f"{' built from minute bars' if not DERIVED else ''}, index, VIX, one option): "
              f"first day of a process "
              f"{strat_ms[0]:.1f} ms, each further day {statistics.median(strat_ms[1:]):.1f} ms "
              f"median (past days' hourly and daily bars are built once per process)")
        mstore = MarketStore(tmp / "master.sqlite")
        rows = master_rows(days[-1], args.strikes * 60)  # unique rows, ~10 000
        mstore.put_master(days[-1], rows)
        mstore.commit()
        blob = mstore.conn.execute("SELECT SUM(length(data)) FROM masters").fetchone()[0]
        mstore.close()
        total = os.path.getsize(tmp / "master.sqlite")
        print(f"master: {len(rows)} rows -> {blob / 1e3:.0f} kB a day compressed "
              f"({blob / len(rows):.0f} bytes per row); the contract directory (each contract "
              f"once, uncompressed, for symbol look-ups) {(total - blob) / len(rows):.0f} bytes "
              f"per new contract")


if __name__ == "__main__":
    main()
