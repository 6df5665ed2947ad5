"""What the bot knows about a market: bars, quotes, the tick grid, and the `MarketData` protocol.

Every `MarketData` is bound to a Clock and never reveals anything from that clock's future: candles
are returned only once complete, quotes are as of `clock.now()`.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from ..broker.base import BrokerError

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


class DataError(BrokerError, ValueError):
    """A market-data value we refuse (a zero or negative price, NaN, high < low...).

    It names the row: the route that sent it, the row's index in the answer (None for a single
    value), the field and the value. Being a BrokerError (and a ValueError) it is handled wherever
    the bot already treats a failing call as "market data unavailable"; a refused candle is instead
    skipped, so it shows up as a missing bar, and reported through `payload()` for the journal.
    """

    def __init__(self, route: str, index: int | str | None = None, field: str = "",
                 value: Any = None, reason: str = "", token: str = "", row: Any = None):
        if isinstance(index, str):
            # BrokerError's (message, code) form: how SmartApiSession._scrub rebuilds an error
            # with secrets masked (it then copies route, index, field... over from the original)
            super().__init__(route, index)
            self.route, self.index, self.field, self.value = "", None, "", None
            self.reason, self.token, self.row = "", "", None
            return
        self.route, self.index, self.field, self.value = route, index, field, value
        self.reason, self.token, self.row = reason, token, row
        where = route if index is None else f"{route} row {index}"
        if token:
            where += f" (token {token})"
        super().__init__(f"{where}: field {field!r} {reason}: {_short(value)}")

    def payload(self) -> dict:
        """JSON-safe description of the refused row (the journal refuses NaN and inf)."""
        out = {"route": self.route, "index": self.index, "field": self.field,
               "value": _json_safe(self.value), "error": str(self)}
        if self.token:
            out["token"] = self.token
        if self.row is not None:
            out["row"] = _short(self.row, 160)
        return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:60] + "..."
    if isinstance(value, int):
        return value if abs(value) < 2 ** 53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return _short(value)


def _finite(value: Any) -> bool:
    if type(value) is float:  # the common case, without the slow abstract-class check
        return math.isfinite(value)
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def check_price(value: Any, route: str, field: str, index: int | None = None,
                allow_zero: bool = True, token: str = "") -> float:
    """`value` as a finite price >= 0 (> 0 unless `allow_zero`), else DataError naming it."""
    if not _finite(value):
        raise DataError(route, index, field, value, "is not a finite number", token)
    if value < 0 or (value == 0 and not allow_zero):
        raise DataError(route, index, field, value,
                        "must be >= 0" if allow_zero else "must be > 0", token)
    return float(value)


def check_candle(open_: Any, high: Any, low: Any, close: Any, volume: Any, route: str,
                 index: int | None = None) -> None:
    """A candle we can use: prices finite and > 0, low <= open, close <= high, volume >= 0."""
    if (type(open_) is float and type(high) is float and type(low) is float
            and type(close) is float and (type(volume) is float or type(volume) is int)
            and 0 < low <= open_ <= high and low <= close <= high and math.isfinite(high)
            and 0 <= volume and math.isfinite(volume)):
        return  # the common, good candle; NaN fails every comparison and takes the long way
    for field, v in (("open", open_), ("high", high), ("low", low), ("close", close)):
        check_price(v, route, field, index, allow_zero=False)
    check_price(volume, route, "volume", index)
    if high < low:
        raise DataError(route, index, "high", high, f"is below low {low!r}")
    for field, v in (("open", open_), ("close", close)):
        if not low <= v <= high:
            raise DataError(route, index, field, v, f"is outside [low, high] = [{low!r}, {high!r}]")


def check_bar(bar: Bar, route: str, index: int | None = None) -> Bar:
    try:
        check_candle(bar.open, bar.high, bar.low, bar.close, bar.volume, route, index)
    except DataError as err:
        err.row = [bar.start.isoformat(), bar.open, bar.high, bar.low, bar.close, bar.volume]
        raise
    return bar


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
    if direction == "nearest":
        steps = math.floor(n + 0.5)
    elif direction == "up":
        steps = math.ceil(n)
    elif direction == "down":
        steps = math.floor(n)
    else:
        raise KeyError(direction)
    return round(steps * tick, tick_decimals(tick))


@lru_cache(maxsize=64)
def tick_decimals(tick: float) -> int:
    """Decimals that show a multiple of `tick` exactly (one more than the tick's own)."""
    return max(0, -math.floor(math.log10(tick)) + 1)


def on_tick(price: float, tick: float = TICK) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6
