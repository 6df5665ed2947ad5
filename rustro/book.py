"""The position book: open positions and what is still held, fed only by fills.

A position is opened from its entry order's fills and shrinks by its exit orders' fills; nothing
else changes a quantity. Decisions read this in-memory book (rebuilt from the journal at start),
never the journal, while trading.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .positions import Position


@dataclass
class Holding:
    pos: Position
    open_qty: int
    exit_value: float = 0.0          # sum of exit fill qty x price
    exit_orders: set = field(default_factory=set)   # exit tags with fills (brokerage per order)
    exiting: str = ""                # the exit reason once an exit is decided: never forgotten
    exit_secondary: tuple = ()
    last_price: float | None = None
    last_price_at: datetime | None = None
    last_exit_fill: str | None = None   # time of the latest exit fill (when a stop-out happened)


class PositionBook:
    def __init__(self):
        self.holdings: dict[str, Holding] = {}
        self.realized_net = 0.0
        self.closed = 0

    # --- reading ------------------------------------------------------------------------------
    def __contains__(self, pid: str) -> bool:
        return pid in self.holdings

    def __len__(self) -> int:
        return len(self.holdings)

    def ids(self) -> list[str]:
        return list(self.holdings)

    def get(self, pid: str) -> Holding:
        return self.holdings[pid]

    def held(self, token: str) -> int:
        """Units this bot holds long in `token` (what a SELL may at most take)."""
        return sum(h.open_qty for h in self.holdings.values() if h.pos.token == token)

    def has_underlying(self, underlying: str) -> bool:
        return any(h.pos.underlying == underlying for h in self.holdings.values())

    # --- fed by fills -------------------------------------------------------------------------
    def open(self, pos: Position, when: datetime) -> Holding:
        h = Holding(pos, pos.quantity, last_price=pos.entry_price, last_price_at=when)
        self.holdings[pos.position_id] = h
        return h

    def exit_fill(self, pid: str, tag: str, qty: int, price: float, at: str | None) -> Holding | None:
        h = self.holdings.get(pid)
        if h is None:
            return None
        h.last_exit_fill = at or h.last_exit_fill
        h.open_qty -= qty
        h.exit_value += qty * price
        h.exit_orders.add(tag)
        return h

    def remove(self, pid: str, net_pnl: float) -> Holding:
        self.realized_net += net_pnl
        self.closed += 1
        return self.holdings.pop(pid)

    def mark(self, pid: str, price: float, at: datetime) -> None:
        h = self.holdings[pid]
        h.last_price, h.last_price_at = price, at
