"""Fill a market-data store with a synthetic market's days, in the shape `data import` writes:
minute bars (no `seen`: history, available once complete) for the index, VIX, near future and
the option chain around the money, plus the day's instrument master. For benchmarks and tests,
and to try `backtest --data store` and the sandbox's recorded days without real history."""
from __future__ import annotations

from datetime import date, time, timedelta

from ..calendar import at
from ..clock import VirtualClock
from .base import ONE_MINUTE
from .store import MarketStore
from .stored import put_derived

VIX_TOKEN = "99926017"


def chain_rows(master: list[dict], name: str, day: date, spot: float, step: int, width: int,
               expiries: int = 2) -> list[dict]:
    """The option rows of `name` for its `expiries` nearest expiries, `width` strikes each side."""
    from datetime import datetime
    opts = [r for r in master if r.get("name") == name and r.get("instrumenttype") == "OPTIDX"]
    exp = sorted({datetime.strptime(r["expiry"].title(), "%d%b%Y").date() for r in opts})
    exp = [e for e in exp if e >= day][:expiries]
    atm = round(spot / step) * step
    keep = {atm + k * step for k in range(-width, width + 1)}
    return [r for r in opts if datetime.strptime(r["expiry"].title(), "%d%b%Y").date() in exp
            and round(float(r["strike"]) / 100) in keep]


def fill_day(store: MarketStore, market, clock: VirtualClock, day: date, underlyings=("NIFTY",),
             step: int = 50, width: int = 10, options: bool = True, derived: bool = True) -> int:
    """One synthetic day into `store`; returns the number of bars written."""
    clock.set(max(clock.now(), at(day, time(23, 0))))
    master = market.instrument_master()
    store.put_master(day, master)
    lo, hi = at(day, time(9, 15)), at(day, time(15, 30))
    wanted = [r for r in master if str(r.get("token")) == VIX_TOKEN
              or (r.get("instrumenttype") in ("AMXIDX", "FUTIDX") and r.get("name") in underlyings)]
    if options:
        for name in underlyings:
            spot_row = next(r for r in master if r.get("instrumenttype") == "AMXIDX"
                            and r.get("name") == name)
            first = market.candles("NSE", spot_row["token"], ONE_MINUTE, lo, lo + timedelta(minutes=1))
            wanted += chain_rows(master, name, day, first[0].open, step, width)
    n = 0
    for r in wanted:
        bars = market.candles(r["exch_seg"], str(r["token"]), ONE_MINUTE, lo, hi)
        rows = [(int(b.start.timestamp()), b.open, b.high, b.low, b.close, b.volume, 0.0)
                for b in bars]
        store.put_bars(str(r["token"]), ONE_MINUTE, rows)
        if derived:
            put_derived(store, str(r["token"]), rows)
        n += len(bars)
    store.commit()
    return n
