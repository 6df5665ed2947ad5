"""The `Broker` protocol, its typed records, and the one error hierarchy every broker raises.

Angel One, the paper broker and the sandbox all speak this; the order manager sees nothing else.
Quantities are units (lots x lot size); prices are rupees on the tick grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

BUY, SELL = "BUY", "SELL"
TERMINAL_STATUSES = frozenset({"complete", "rejected", "cancelled"})


@dataclass(frozen=True)
class OrderRequest:
    tag: str            # idempotency key, sent as Angel's `ordertag` (<= 20 chars)
    exchange: str       # NFO for options
    symbol: str         # trading symbol from the instrument master
    token: str
    side: str           # BUY | SELL
    qty: int            # units, a whole number of lots
    price: float        # limit price on the tick grid
    order_type: str = "LIMIT"
    product: str = "INTRADAY"
    variety: str = "NORMAL"
    duration: str = "DAY"


@dataclass(frozen=True)
class OrderAck:
    order_id: str
    unique_order_id: str


@dataclass(frozen=True)
class BrokerOrder:
    order_id: str
    unique_order_id: str
    tag: str
    exchange: str
    symbol: str
    token: str
    side: str
    qty: int
    price: float
    status: str          # Angel's `orderstatus`, lower case
    filled_qty: int
    avg_price: float
    text: str = ""
    updated: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def unfilled_qty(self) -> int:
        return self.qty - self.filled_qty


@dataclass(frozen=True)
class Fill:
    fill_id: str         # the broker's trade id: the natural key of a fill
    order_id: str
    exchange: str
    symbol: str
    token: str
    side: str
    qty: int
    price: float
    time: datetime


@dataclass(frozen=True)
class BrokerPosition:
    exchange: str
    symbol: str
    token: str
    product: str
    net_qty: int         # signed units
    buy_qty: int = 0
    sell_qty: int = 0
    buy_avg: float = 0.0
    sell_avg: float = 0.0
    realised: float = 0.0
    unrealised: float = 0.0
    ltp: float = 0.0


@dataclass(frozen=True)
class Funds:
    available_cash: float
    net: float = 0.0
    utilised: float = 0.0


class BrokerError(Exception):
    """Base of every broker failure. `code` is the broker's error code when it gave one."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code
        self.text = message


class AuthExpired(BrokerError):
    """The session is no longer valid (AG8001/AG8002/AB1010...): refresh or log in again."""


class RateLimited(BrokerError):
    """Angel's 403 'exceeding access rate' or our own limiter refused; back off and retry."""


class TransientError(BrokerError):
    """Timeout, connection reset, 5xx, empty body or an HTML page on a call that is safe to retry."""


class OrderRejected(BrokerError):
    """A definitive business refusal (status false with a code): nothing was placed."""


class AmbiguousOrder(BrokerError):
    """We cannot know whether the broker accepted the order: resolve by tag, never resend blindly."""


class Broker(Protocol):
    name: str

    def login(self) -> None: ...

    def place_order(self, req: OrderRequest) -> OrderAck: ...

    def modify_order(self, order_id: str, req: OrderRequest) -> None:
        """Change a working order to `req.price` / `req.qty` (other fields as originally sent)."""

    def cancel_order(self, order_id: str, variety: str = "NORMAL") -> None: ...

    def order_details(self, unique_order_id: str) -> BrokerOrder: ...

    def order_book(self) -> list[BrokerOrder]: ...

    def trade_book(self) -> list[Fill]: ...

    def positions(self) -> list[BrokerPosition]: ...

    def funds(self) -> Funds: ...


def find_by_tag(broker: Broker, tag: str) -> BrokerOrder | None:
    """The order carrying `tag` in today's order book, if the broker has one."""
    for order in broker.order_book():
        if order.tag == tag:
            return order
    return None
