"""`rustro data download --from D --to D`: Angel's historical candles into the market-data store.

What Angel serves (getCandleData, spec 3.8): minute and daily candles of the configured indices
and India VIX, and minute candles of the option contracts still listed in today's instrument
master (an expired contract's candles are no longer served): the `--expiries` nearest expiries
of each configured underlying, `--strikes` strikes each side of the index's last close.

Through the bot's own Angel client (`AngelOneMarketData.candles`): requests are chunked by the
interval's day limit (30 days of minute bars, 2000 of daily) and paced by its rate limiter
(getCandleData: 3/s, 500/min, 5000/h). Resumable and deduplicated: each (token, interval, day) fully
fetched is marked in the store, a rerun asks only for the days it lacks, and bars are upserts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, time, timedelta

from ..calendar import TradingCalendar, at
from .base import ONE_DAY, ONE_HOUR, ONE_MINUTE
from .store import MarketStore
from .stored import put_derived
from .store_synthetic import chain_rows

log = logging.getLogger(__name__)
VIX_TOKEN = "99926017"


@dataclass(frozen=True)
class Target:
    exchange: str
    token: str
    symbol: str
    interval: str


@dataclass
class Progress:
    requests_days: int = 0   # trading days asked for
    skipped_days: int = 0    # trading days already in the store
    bars: int = 0


def targets(master: list[dict], cfg, spots: dict[str, float], today: date, expiries: int,
            strikes: int) -> list[Target]:
    """Indices and VIX (minute and daily bars), then the listed options around the money."""
    out: list[Target] = []
    wanted = {u.spot_name for u in cfg.underlyings}
    for r in master:
        if r.get("exch_seg") == "NSE" and (r.get("symbol") in wanted or str(r.get("token")) == VIX_TOKEN):
            for interval in (ONE_MINUTE, ONE_DAY):
                out.append(Target("NSE", str(r["token"]), r["symbol"], interval))
    for u in cfg.underlyings:
        if u.name in spots:
            for r in chain_rows(master, u.name, today, spots[u.name], u.strike_step, strikes, expiries):
                out.append(Target(r["exch_seg"], str(r["token"]), r["symbol"], ONE_MINUTE))
    return out


def missing_runs(days: list[date], have: set[date]) -> list[tuple[date, date]]:
    """Runs of consecutive entries of `days` not in `have`, as (first, last)."""
    runs: list[tuple[date, date]] = []
    extending = False
    for d in days:
        if d in have:
            extending = False
        elif extending:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
            extending = True
    return runs


def fetch(market, store: MarketStore, target: Target, days: list[date], today: date,
          progress: Progress) -> None:
    have = store.fetched_days(target.token, target.interval)
    progress.skipped_days += sum(1 for d in days if d in have)
    for first, last in missing_runs(days, have):
        start = at(first, time(0))
        end = at(last, time(0)) + timedelta(days=1)
        bars = market.candles(target.exchange, target.token, target.interval, start, end)
        rows = [(int(b.start.timestamp()), b.open, b.high, b.low, b.close, b.volume, None)
                for b in bars]
        store.put_bars(target.token, target.interval, rows)
        if target.interval == ONE_MINUTE:
            # hourly bars for the strategy's history (Angel's own daily bars are fetched)
            put_derived(store, target.token, rows, (ONE_HOUR,))
        # only whole past days are marked: today's bars are still forming
        done = [d for d in days if first <= d <= last and d < today]
        store.mark_fetched(target.token, target.interval, done)
        store.commit()
        progress.requests_days += len(done)
        progress.bars += len(bars)


def download(cfg, market, store: MarketStore, start: date, end: date, today: date,
             expiries: int = 1, strikes: int = 10, on_target=None) -> Progress:
    """Everything `targets` lists for the trading days in [start, end] (see the docstring)."""
    cal = TradingCalendar.from_config(cfg)
    days = cal.trading_days(start, min(end, today))
    master = market.instrument_master()
    store.put_master(today, master)
    store.commit()
    spots: dict[str, float] = {}
    progress = Progress()
    for t in targets(master, cfg, {}, today, expiries, strikes):
        fetch(market, store, t, days, today, progress)
        if on_target:
            on_target(t, progress)
    for u in cfg.underlyings:
        spot = next((r for r in master if r.get("symbol") == u.spot_name), None)
        if spot is None:
            continue
        last = store.last_bar(str(spot["token"]), ONE_MINUTE)
        if last:
            spots[u.name] = last[4]
    for t in targets(master, cfg, spots, today, expiries, strikes):
        if t.exchange == "NFO":
            fetch(market, store, t, days, today, progress)
            if on_target:
                on_target(t, progress)
    return progress
