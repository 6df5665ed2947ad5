"""Order vocabulary, pure: idempotency tags and ladders as schedules of (time, price).

The tag is derived from the decision, never from a timestamp, so the same decision always yields
the same tag and a tag is never sent twice (LESSONS 2). A ladder is not a loop that waits: it is a
list of instants and prices that later monitor ticks act on (rustro/execution.py).
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta

from .broker.base import BUY
from .market.base import round_to_tick


def order_tag(day: date, underlying: str, side: str, signal_bar: str, leg: str, attempt: int,
              length: int = 20) -> str:
    """Deterministic idempotency key: the same decision always yields the same tag, never a timestamp."""
    raw = f"{day.isoformat()}|{underlying}|{side}|{signal_bar}|{leg}|{attempt}"
    return hashlib.sha256(raw.encode()).hexdigest()[:length]


def ladder_prices(first: float, ladder_pct, side: str, tick: float) -> list[float]:
    """Entry (BUY) steps up from the first price, exit (SELL) steps down; on the tick grid."""
    sign, direction = (1, "up") if side == BUY else (-1, "down")
    return [max(tick, round_to_tick(first * (1 + sign * p / 100), tick, direction)) for p in ladder_pct]


def ladder_schedule(sent_at: datetime, first: float, side: str, tick: float,
                    orders_cfg) -> list[tuple[datetime, float]]:
    """(when, price) of each ladder step: the first after `fill_timeout_sec`, each later one after
    its backoff. After the last step an entry is cancelled and an exit re-priced to the last
    resort, each `fill_timeout_sec` later."""
    prices = ladder_prices(first, orders_cfg.ladder_pct, side, tick)
    t, out = sent_at + timedelta(seconds=orders_cfg.fill_timeout_sec), []
    for price, backoff in zip(prices, orders_cfg.ladder_backoff_sec):
        t += timedelta(seconds=backoff)
        out.append((t, price))
    return out


def last_resort_price(bid: float, tick: float, orders_cfg) -> float:
    """An exit that the ladder did not fill: this far below the bid, never below one tick."""
    return max(tick, round_to_tick(bid * (1 - orders_cfg.exit_last_resort_pct / 100), tick, "down"))
