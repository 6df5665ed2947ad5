"""The records execution keeps per order: `WorkingOrder` (one order's request, machine, fills and
bookkeeping) and `Outcome` (what one step changed for one order, for the entry and exit flows)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from . import order_machine as om
from .broker.base import OrderRequest


@dataclass
class WorkingOrder:
    tag: str
    purpose: str                    # entry | exit
    position_id: str | None
    underlying: str
    req: OrderRequest               # as last sent (price follows modifies)
    tick: float
    sent_at: datetime
    machine: om.OrderMachine
    first_price: float = 0.0
    order_id: str = ""
    unique_id: str = ""
    filled_qty: int = 0             # journaled fills only
    fill_value: float = 0.0
    first_fill_ts: str | None = None
    last_fill_ts: str | None = None
    steps_done: int = 0
    last_action: datetime | None = None
    cancel_wanted: str = ""         # a reason once we want it gone (found later: cancelled then)
    failing: str = ""               # the call failing now, journaled once per streak
    stepped: float = 0.0            # monotonic time this order was last stepped
    polled_at: datetime | None = None  # last REST poll (the order socket spares the others)
    seen_at: datetime | None = None    # broker's updatetime of the last row observed
    fill_ids: set = field(default_factory=set)

    @property
    def state(self) -> str:
        return self.machine.state

    @property
    def terminal(self) -> bool:
        return self.state in om.TERMINAL

    @property
    def unfilled(self) -> int:
        return max(0, self.req.qty - self.filled_qty)

    @property
    def avg_price(self) -> float:
        return round(self.fill_value / self.filled_qty, 4) if self.filled_qty else 0.0


@dataclass(frozen=True)
class Outcome:
    """What one step changed for one order, for the flows (entries, exits) to act on."""
    order: WorkingOrder
    new_fill_qty: int
    new_fill_value: float
    became_terminal: bool
