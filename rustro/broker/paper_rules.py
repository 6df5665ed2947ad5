"""Pure rules of the paper exchange: ids, refusal texts, crossing, partial sizes, positions.

Kept free of I/O so every rule is testable on its own; `paper.py` applies them to stored orders.
Money is summed in whole paise (ints) and P&L computed with Fractions, so round trips are exact
to the paisa instead of accumulating float noise.
"""
from __future__ import annotations

import hashlib
import math
import random
import uuid
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Iterable

from ..market.base import Quote, on_tick
from .base import BUY, SELL, BrokerPosition, Fill

PENDING = "put order req received"  # Angel's first status: stored and acked, not yet validated
OPEN, COMPLETE, REJECTED, CANCELLED = "open", "complete", "rejected", "cancelled"
ORDER_TYPES = ("LIMIT", "MARKET")
VARIETIES = ("NORMAL",)
PRODUCTS = ("INTRADAY", "CARRYFORWARD", "DELIVERY", "MARGIN")
DURATIONS = ("DAY", "IOC")
MAX_TAG_LEN = 20


@dataclass(frozen=True)
class ContractSpec:
    """What the exchange enforces per instrument. freeze_qty <= 0 means no freeze limit."""
    lot_size: int
    tick_size: float = 0.05
    freeze_qty: int = 0


def make_order_id(day: date, seq: int) -> str:
    """Angel's 15-digit shape: YYMMDD + a 9-digit sequence that never restarts."""
    if not 0 < seq < 10**9:
        raise ValueError(f"order sequence {seq} out of range 1..999999999")
    return f"{day:%y%m%d}{seq:09d}"


def make_unique_order_id(seed: int, seq: int) -> str:
    """A UUID derived from (seed, seq): looks like Angel's, repeats exactly across test runs."""
    digest = hashlib.sha256(f"rustro-paper:{seed}:{seq}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def make_fill_id(seq: int) -> str:
    """Angel-like numeric trade id; unique because the fill sequence never restarts."""
    return str(50_000_000 + seq)


def paise(rupees: float) -> int:
    return round(rupees * 100)


def to_rupees(amount_paise: Fraction | int) -> float:
    """Paise (possibly fractional) to rupees rounded half away from zero to the paisa."""
    fr = Fraction(amount_paise)
    whole = math.floor(abs(fr) + Fraction(1, 2))
    return (whole if fr >= 0 else -whole) / 100


def crossing_price(side: str, order_type: str, limit: float, quote: Quote | None) -> float | None:
    """The fill price if the order crosses the touch now, else None.

    Pessimistic: a BUY pays the ask and a SELL receives the bid (the spread is always crossed,
    never improved inside it). A LIMIT BUY fills only when limit >= ask, a LIMIT SELL only when
    limit <= bid, so the touch price is always at least as good for us as the limit. No fill
    without a two-sided touch on our side (bid/ask of 0 means "no quote").
    """
    if quote is None:
        return None
    touch = quote.ask if side == BUY else quote.bid
    if touch <= 0:
        return None
    if order_type == "MARKET":
        return touch
    eps = 1e-9
    if side == BUY:
        return touch if limit + eps >= touch else None
    return touch if limit - eps <= touch else None


def fill_quantity(remaining: int, lot_size: int, first_fill: bool, prob: float,
                  rng: random.Random) -> int:
    """Units filled by this match: the whole remainder, or with probability `prob` on an order's
    first fill a random whole-lot part of it (the rest fills on a later match)."""
    lots = remaining // lot_size
    if first_fill and lots > 1 and rng.random() < prob:
        return rng.randint(1, lots - 1) * lot_size
    return remaining


def static_refusal(qty: int, price: float, order_type: str, spec: ContractSpec, ltp: float,
                   band_pct: float) -> str:
    """The exchange's checks that need no account state; '' when the order passes."""
    if qty % spec.lot_size:
        return f"Order quantity {qty} is not a multiple of the lot size {spec.lot_size}."
    if spec.freeze_qty and spec.freeze_qty > 0 and qty > spec.freeze_qty:
        return f"Order quantity {qty} exceeds the exchange freeze quantity {spec.freeze_qty}."
    if order_type == "LIMIT":
        if not on_tick(price, spec.tick_size):
            return f"Order price {price:.2f} is not a multiple of the tick size {spec.tick_size}."
        if ltp > 0 and abs(price - ltp) > ltp * band_pct / 100 + 1e-9:
            return ("Order price is beyond the Limit Price Protection range defined by the "
                    f"exchange: price {price:.2f}, LTP {ltp:.2f}, allowed +-{band_pct:g}%.")
    return ""


def funds_refusal(available_paise: int, required_paise: int) -> str:
    """Angel's insufficient-funds text, word for word; '' when the cash is there (or none is
    needed: a square-off is never refused for cash, even on an overdrawn account)."""
    if required_paise <= 0 or required_paise <= available_paise:
        return ""
    return ("Your order has been rejected due to Insufficient Funds. Available funds - "
            f"Rs. {available_paise / 100:.2f} . You require Rs. {required_paise / 100:.2f} "
            "funds to execute this order.")


def position_key(row: dict) -> tuple[str, str, str]:
    """What a position is kept per, for an order or fill row: (exchange, token, product)."""
    return row["exchange"], row["token"], row["product"]


def short_exposure(net_qty: int, selling: int) -> int:
    """Units that would be short if every working SELL (`selling` units unfilled) filled against a
    net position of `net_qty`: an open short plus the working sells' part beyond the long."""
    return max(0, selling - net_qty)


def blocked_paise(orders: Iterable[dict], nets: dict[tuple[str, str, str], int],
                  short_margin_paise: int) -> int:
    """Paise held back by working order rows, given the day's net qty per position key.

    A BUY blocks its unfilled value at `ref_price`, except the part that would cover an open
    short (oldest BUY first): Angel lets a short be squared off without fresh cash, its margin
    pays for it. Short margin is blocked on the units that would be short if every working SELL
    filled (`short_exposure`).
    """
    cover = {k: max(0, -n) for k, n in nets.items()}
    selling: dict[tuple[str, str, str], int] = {}
    buys = 0
    for o in sorted(orders, key=lambda o: o["seq"]):
        key, remaining = position_key(o), o["qty"] - o["filled_qty"]
        if o["side"] == SELL:
            selling[key] = selling.get(key, 0) + remaining
            continue
        covering = min(remaining, cover.get(key, 0))
        cover[key] = cover.get(key, 0) - covering
        buys += (remaining - covering) * paise(o["ref_price"])
    short = sum(short_exposure(nets.get(k, 0), selling.get(k, 0)) for k in set(nets) | set(selling))
    return buys + short * short_margin_paise


def short_refusal(qty: int, sellable: int) -> str:
    """With shorts switched off (`allow_short = false`), a SELL beyond the long position still
    unsold is refused, as a broker without writing permission would."""
    if qty <= sellable:
        return ""
    return (f"Short selling is not allowed: sell quantity {qty} exceeds the sellable net "
            f"position {max(sellable, 0)}.")


def positions_from_fills(fills: Iterable[tuple[Fill, str]],
                         ltps: dict[tuple[str, str], float]) -> list[BrokerPosition]:
    """Net positions from (fill, product) pairs, average-cost P&L, in first-fill order.

    realised = matched qty x (sell avg - buy avg); unrealised = open qty marked to `ltps` against
    the average of the open side (0 when no ltp). Exact to the paisa.
    """
    books: dict[tuple[str, str, str], dict] = {}
    for fill, product in fills:
        b = books.setdefault((fill.exchange, fill.token, product), {
            "symbol": fill.symbol, "bq": 0, "sq": 0, "bp": 0, "sp": 0})
        if fill.side == BUY:
            b["bq"] += fill.qty
            b["bp"] += fill.qty * paise(fill.price)
        else:
            b["sq"] += fill.qty
            b["sp"] += fill.qty * paise(fill.price)
    out = []
    for (exchange, token, product), b in books.items():
        buy_avg = Fraction(b["bp"], b["bq"]) if b["bq"] else Fraction(0)
        sell_avg = Fraction(b["sp"], b["sq"]) if b["sq"] else Fraction(0)
        net = b["bq"] - b["sq"]
        realised = min(b["bq"], b["sq"]) * (sell_avg - buy_avg)
        ltp = ltps.get((exchange, token), 0.0)
        unrealised = Fraction(0)
        if ltp > 0 and net > 0:
            unrealised = net * (paise(ltp) - buy_avg)
        elif ltp > 0 and net < 0:
            unrealised = -net * (sell_avg - paise(ltp))
        out.append(BrokerPosition(
            exchange=exchange, symbol=b["symbol"], token=token, product=product, net_qty=net,
            buy_qty=b["bq"], sell_qty=b["sq"], buy_avg=float(buy_avg / 100),
            sell_avg=float(sell_avg / 100), realised=to_rupees(realised),
            unrealised=to_rupees(unrealised), ltp=ltp))
    return out


def request_refusal(tag: str, side: str, order_type: str, variety: str, product: str,
                    duration: str, qty: int, price: float) -> tuple[str, str]:
    """(code, message) for a request refused synchronously, before anything is stored; ('', '')
    when it may be placed."""
    if len(tag) > MAX_TAG_LEN:
        return "AB4008", f"ordertag length should be less than {MAX_TAG_LEN} characters (got {len(tag)})"
    if variety not in VARIETIES:
        return "AB1008", f"Invalid order variety {variety!r}: the paper broker supports {VARIETIES}"
    if product not in PRODUCTS:
        return "AB1012", f"Invalid product type {product!r}"
    if side not in (BUY, SELL):
        return "AB2000", f"Invalid transactiontype {side!r}: expected BUY or SELL"
    if order_type not in ORDER_TYPES:
        return "AB2000", f"Invalid ordertype {order_type!r}: the paper broker supports {ORDER_TYPES}"
    if duration not in DURATIONS:
        return "AB2000", f"Invalid duration {duration!r}: expected one of {DURATIONS}"
    if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
        return "AB2000", f"Invalid quantity {qty!r}: must be a positive whole number of units"
    if order_type == "LIMIT" and not price > 0:
        return "AB2000", f"Invalid price {price!r} for a LIMIT order: must be > 0"
    return "", ""
