"""What the bot knows about a market: bars, quotes, the tick grid, and the `MarketData` protocol.

Every `MarketData` is bound to a Clock and never reveals anything from that clock's future: candles
are returned only once complete, quotes are as of `clock.now()`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

ONE_MINUTE, ONE_HOUR, ONE_DAY = "ONE_MINUTE", "ONE_HOUR", "ONE_DAY"  # Angel's interval names
TICK = 0.05


@dataclass(frozen=True)
class Bar:
    start: datetime  # aware IST; the bar covers [start, start + interval)
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass(frozen=True)
class Quote:
    token: str
    ltp: float
    bid: float
    ask: float
    ts: datetime

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2

    @property
    def spread_pct(self) -> float:
        """(ask - bid) / mid in percent; inf when there is no two-sided quote."""
        if self.bid <= 0 or self.ask <= 0:
            return math.inf
        return (self.ask - self.bid) / self.mid * 100


class MarketData(Protocol):
    def instrument_master(self) -> list[dict]:
        """Rows in the exact shape of Angel's OpenAPIScripMaster.json (all values strings)."""

    def ltp(self, exchange: str, token: str) -> float: ...

    def quote(self, exchange: str, token: str) -> Quote: ...

    def candles(self, exchange: str, token: str, interval: str,
                start: datetime, end: datetime) -> list[Bar]:
        """Completed bars whose start is in [start, end), ascending."""

    def vix(self) -> float: ...


def round_to_tick(price: float, tick: float = TICK, direction: str = "nearest") -> float:
    """Price on the tick grid: 'up' for buys, 'down' for sells. Works in whole ticks, not floats."""
    if tick <= 0:
        raise ValueError(f"tick must be > 0, got {tick}")
    n = round(price / tick, 6)  # kill representation noise before ceil/floor
    steps = {"up": math.ceil, "down": math.floor, "nearest": lambda x: math.floor(x + 0.5)}[direction](n)
    decimals = max(0, -math.floor(math.log10(tick)) + 1)
    return round(steps * tick, decimals)


def on_tick(price: float, tick: float = TICK) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6
