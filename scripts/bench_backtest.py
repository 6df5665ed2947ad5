#!/usr/bin/env python3
"""Benchmark: a year of NIFTY one-minute synthetic data through the full bot, in one process.

`app.run_backtest` runs every trading day of [--from, --to] (default 2026-01-01 .. 2026-12-31, the
default config.toml) through the real bot: day machine, strategy, risk, execution and the paper
broker, on a virtual clock, into a fresh journal (disposable: one commit per day). Printed: days,
days/s, underlying bars/s (375 one-minute NIFTY bars a session), wall time, peak RSS, trades and
net P&L (so two runs can be compared).

If `backtrader` can be imported (it is not a dependency of rustro: `pip install backtrader` to
measure), its plain SMA-cross strategy (SMA 10 / SMA 30, buy on the cross up, close on the cross
down) is run over the same number of NIFTY minute bars of the same synthetic market, and its bars/s
and the ratio are printed. Figures only: nothing here asserts a speed.

Then `rustro.py backtest --workers N` (default 2) is timed as a user runs it, from the command's
start: the figure for parallel days.

Usage: python scripts/bench_backtest.py [--from D] [--to D] [--every-tick] [--workers N]
                                       [--no-backtrader]
"""
import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BARS_PER_DAY = 375


def bench_rustro(start: date, end: date, every_tick: bool) -> dict:
    from rustro.app import run_backtest
    from rustro.config import load_config
    from rustro.desk import build_desk
    from rustro.journal import Journal
    cfg = load_config(REPO / "config.toml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.sqlite"
        t0 = time.perf_counter()
        results = run_backtest(cfg, path, start, end, None, build_desk,
                               extra={"skip_idle": False} if every_tick else None)
        wall = time.perf_counter() - t0
        with Journal.open_readonly(path) as j:
            trades, net = j.query("SELECT COUNT(*), COALESCE(SUM(net_pnl), 0) FROM v_trades")[0]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"days": len(results), "wall": wall, "rss_mb": rss_mb, "trades": trades, "net": net,
            "jobs": sum(r.jobs for r in results),
            "errors": sum(r.job_errors for r in results)}


def bench_cli(start: date, end: date, workers: int) -> dict:
    """`rustro.py backtest --workers N` as a user runs it: wall time from the command's start
    (interpreter and imports included) to its last line, and the summary it printed."""
    import json
    import subprocess
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(REPO / "rustro.py"), "backtest", "--from", start.isoformat(),
               "--to", end.isoformat(), "--workers", str(workers), "--json",
               "--journal", str(Path(tmp) / "journal.sqlite")]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True).stdout
        wall = time.perf_counter() - t0
    summary = json.loads(out)["summary"]
    return {"wall": wall, "trades": summary["trades"], "net": summary["net"]}


def nifty_minute_bars(days: list[date]) -> list[tuple]:
    """(naive IST datetime, open, high, low, close, volume) of every NIFTY minute of `days`."""
    from rustro.calendar import at
    from rustro.clock import VirtualClock
    from rustro.market.base import ONE_MINUTE
    from rustro.market.synthetic import SyntheticMarket
    from rustro.market.synthetic_paths import INDICES
    token = INDICES["NIFTY"].token
    clock = VirtualClock(at(days[-1], datetime.strptime("16:00", "%H:%M").time()))
    market = SyntheticMarket(clock, 42)
    rows = []
    for d in days:
        start = at(d, datetime.strptime("09:15", "%H:%M").time())
        for b in market.candles("NSE", token, ONE_MINUTE, start, start + timedelta(minutes=BARS_PER_DAY)):
            # the synthetic index has no volume; backtrader does not need one for an SMA cross
            rows.append((b.start.replace(tzinfo=None), b.open, b.high, b.low, b.close, 1.0))
    return rows


def bench_backtrader(rows: list[tuple]) -> dict | None:
    try:
        import backtrader as bt
    except ImportError:
        return None

    class ListFeed(bt.feed.DataBase):
        params = (("rows", None),)

        def start(self):
            super().start()
            self._i = 0

        def _load(self):
            if self._i >= len(self.p.rows):
                return False
            dt, o, h, lo, c, v = self.p.rows[self._i]
            self._i += 1
            self.lines.datetime[0] = bt.date2num(dt)
            self.lines.open[0], self.lines.high[0], self.lines.low[0] = o, h, lo
            self.lines.close[0], self.lines.volume[0], self.lines.openinterest[0] = c, v, 0.0
            return True

    class SmaCross(bt.Strategy):  # backtrader's own quickstart strategy
        params = (("pfast", 10), ("pslow", 30))

        def __init__(self):
            self.crossover = bt.ind.CrossOver(bt.ind.SMA(period=self.p.pfast),
                                              bt.ind.SMA(period=self.p.pslow))

        def next(self):
            if not self.position:
                if self.crossover > 0:
                    self.buy()
            elif self.crossover < 0:
                self.close()

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ListFeed(rows=rows, timeframe=bt.TimeFrame.Minutes, compression=1))
    cerebro.addstrategy(SmaCross)
    t0 = time.perf_counter()
    strat = cerebro.run()[0]
    wall = time.perf_counter() - t0
    del strat
    return {"version": bt.__version__, "bars": len(rows), "wall": wall,
            "value": cerebro.broker.getvalue()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="start", type=date.fromisoformat, default=date(2026, 1, 1))
    ap.add_argument("--to", dest="end", type=date.fromisoformat, default=date(2026, 12, 31))
    ap.add_argument("--every-tick", action="store_true",
                    help="run every 5-second monitor tick (no idle skipping): the reference speed")
    ap.add_argument("--no-backtrader", action="store_true")
    ap.add_argument("--workers", type=int, default=2, metavar="N",
                    help="also time `rustro.py backtest --workers N` (0: skip)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    env_note = " (PYTHONDONTWRITEBYTECODE set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""

    r = bench_rustro(a.start, a.end, a.every_tick)
    bars = r["days"] * BARS_PER_DAY
    print(f"rustro full bot, {a.start} .. {a.end}{' (every tick)' if a.every_tick else ''}{env_note}")
    print(f"  days               {r['days']}")
    print(f"  wall               {r['wall']:.2f} s")
    print(f"  days/s             {r['days'] / r['wall']:.1f}")
    print(f"  underlying bars/s  {bars / r['wall']:,.0f}  ({bars:,} NIFTY minute bars)")
    print(f"  peak RSS           {r['rss_mb']:.0f} MB")
    print(f"  jobs run           {r['jobs']:,} ({r['errors']} job errors)")
    print(f"  trades / net P&L   {r['trades']} / {r['net']:.2f}")
    if a.workers > 0:
        w = bench_cli(a.start, a.end, a.workers)
        print(f"rustro.py backtest --workers {a.workers} (wall from the command's start)")
        print(f"  wall               {w['wall']:.2f} s")
        print(f"  underlying bars/s  {bars / w['wall']:,.0f}")
        print(f"  trades / net P&L   {w['trades']} / {w['net']:.2f}")
    if a.no_backtrader:
        return
    from rustro.calendar import TradingCalendar
    days = TradingCalendar().trading_days(a.start, a.end)
    try:
        import backtrader  # noqa: F401
    except ImportError:
        print("backtrader: not installed (pip install backtrader to compare; not a rustro dependency)")
        return
    b = bench_backtrader(nifty_minute_bars(days))
    print(f"backtrader {b['version']}, SMA(10)/SMA(30) cross on the same {b['bars']:,} NIFTY minute bars")
    print(f"  wall               {b['wall']:.2f} s")
    print(f"  bars/s             {b['bars'] / b['wall']:,.0f}")
    print(f"  ratio              rustro full bot {bars / r['wall']:,.0f} bars/s = "
          f"{(bars / r['wall']) / (b['bars'] / b['wall']):.2f} x backtrader's SMA cross")


if __name__ == "__main__":
    main()
