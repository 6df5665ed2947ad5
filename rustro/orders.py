"""The order manager: intent journaled -> sent -> ack -> polled to a terminal state -> fills journaled.

Write-ahead: `order_intent` (with its idempotency tag) is committed before the broker is called, the
broker's answer after. A tag is never sent twice: an intent without an answer is looked up in the
broker's order book by tag first (after an ambiguous reply, and after a crash). Entries ladder up and
are abandoned when unfilled; exits ladder down, then go to a last-resort price, and never give up.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from .broker.base import (BUY, SELL, AmbiguousOrder, AuthExpired, BrokerError, BrokerOrder,
                          OrderRejected, OrderRequest, RateLimited, TransientError, find_by_tag)
from .market.base import round_to_tick

log = logging.getLogger(__name__)
UNKNOWN_GRACE_SEC = 60  # an order absent from the broker's book this long after sending was never placed


def order_tag(day: date, underlying: str, side: str, signal_bar: str, leg: str, attempt: int,
              length: int = 20) -> str:
    """Deterministic idempotency key: the same decision always yields the same tag, never a timestamp."""
    raw = f"{day.isoformat()}|{underlying}|{side}|{signal_bar}|{leg}|{attempt}"
    return hashlib.sha256(raw.encode()).hexdigest()[:length]


def ladder_prices(first: float, ladder_pct, side: str, tick: float) -> list[float]:
    """Entry (BUY) steps up from the first price, exit (SELL) steps down; on the tick grid."""
    sign, direction = (1, "up") if side == BUY else (-1, "down")
    return [max(tick, round_to_tick(first * (1 + sign * p / 100), tick, direction)) for p in ladder_pct]


@dataclass
class OrderResult:
    tag: str
    status: str                 # complete | cancelled | rejected | unknown
    filled_qty: int = 0
    avg_price: float = 0.0
    text: str = ""
    fills: list = field(default_factory=list)


class OrderManager:
    def __init__(self, journal, broker, clock, orders_cfg, day: date):
        self.journal, self.broker, self.clock, self.cfg, self.day = journal, broker, clock, orders_cfg, day

    # --- journal helpers -------------------------------------------------------------------
    def _rec(self, kind: str, payload: dict) -> None:
        self.journal.record(kind, payload, day=self.day)

    def known(self, tag: str) -> dict | None:
        rows = self.journal.query("SELECT * FROM orders WHERE tag = ?", (tag,))
        return dict(rows[0]) if rows else None

    def journaled_fill_ids(self, tag: str) -> set[str]:
        return {r[0] for r in self.journal.query("SELECT fill_id FROM fills WHERE tag = ?", (tag,))}

    # --- submit ------------------------------------------------------------------------------
    def submit(self, req: OrderRequest, purpose: str, position_id: str | None,
               underlying: str) -> BrokerOrder | None:
        """Journal the intent, send once, journal the answer. None if the broker refused it."""
        if self.known(req.tag) is not None:
            raise RuntimeError(f"order tag {req.tag} already journaled: refusing to send it again")
        self._rec("order_intent", {"tag": req.tag, "purpose": purpose, "position_id": position_id,
                                   "underlying": underlying, "exchange": req.exchange,
                                   "symbol": req.symbol, "token": req.token, "side": req.side,
                                   "qty": req.qty, "price": req.price})
        self._rec("order_sent", {"tag": req.tag})
        try:
            ack = self.broker.place_order(req)
        except OrderRejected as exc:
            self._rec("order_rejected", {"tag": req.tag, "code": exc.code, "text": exc.text})
            return None
        except (AmbiguousOrder, TransientError, RateLimited, AuthExpired, BrokerError) as exc:
            self._rec("broker_error", {"tag": req.tag, "call": "place_order", "error": str(exc)})
            return self.resolve_by_tag(req.tag)
        self._rec("order_ack", {"tag": req.tag, "order_id": ack.order_id,
                                "unique_order_id": ack.unique_order_id})
        return self._details(req.tag, ack.unique_order_id, ack.order_id)

    def resolve_by_tag(self, tag: str, attempts: int = 3, journal_miss: bool = True) -> BrokerOrder | None:
        """After an ambiguous answer or a crash: ask the order book. Never re-send."""
        for i in range(attempts):
            try:
                found = find_by_tag(self.broker, tag)
            except BrokerError as exc:
                self._rec("broker_error", {"tag": tag, "call": "order_book", "error": str(exc)})
                found = None
            if found is not None:
                self._rec("order_ack", {"tag": tag, "order_id": found.order_id,
                                        "unique_order_id": found.unique_order_id, "resolved_by": "tag"})
                return found
            if i + 1 < attempts:
                self.clock.sleep(self.cfg.poll_interval_sec * (2 ** i))
        if journal_miss:
            self._rec("order_unknown", {"tag": tag, "text": "not in the broker's order book"})
        return None

    # --- follow --------------------------------------------------------------------------
    def _details(self, tag: str, unique_id: str, order_id: str) -> BrokerOrder | None:
        try:
            return self.broker.order_details(unique_id)
        except BrokerError as exc:
            self._rec("broker_error", {"tag": tag, "call": "order_details", "error": str(exc)})
            return None

    def sync(self, tag: str, order: BrokerOrder) -> None:
        """Journal new fills, then the status: a journaled status never claims fills we lack."""
        journaled = self.journaled_fill_ids(tag)
        if order.filled_qty > self.journaled_qty(tag):
            try:
                trades = self.broker.trade_book()
            except BrokerError as exc:
                self._rec("broker_error", {"tag": tag, "call": "trade_book", "error": str(exc)})
                return  # status left as it was: the next sync retries the fills first
            for f in trades:
                if f.order_id == order.order_id and f.fill_id not in journaled:
                    self._rec("fill", {"fill_id": f.fill_id, "tag": tag, "order_id": f.order_id,
                                       "symbol": f.symbol or order.symbol,
                                       "token": f.token or order.token, "side": f.side,
                                       "qty": f.qty, "price": f.price, "time": f.time})
                    journaled.add(f.fill_id)
            if order.filled_qty > self.journaled_qty(tag):
                return  # the trade book lags the order: keep the old status until it catches up
        row = self.known(tag)
        if row and (row["status"] != order.status or row["filled_qty"] != order.filled_qty):
            self._rec("order_update", {"tag": tag, "status": order.status, "filled_qty": order.filled_qty,
                                       "avg_price": order.avg_price, "text": order.text})

    def journaled_qty(self, tag: str) -> int:
        return self.journal.query("SELECT COALESCE(SUM(qty), 0) FROM fills WHERE tag = ?", (tag,))[0][0]

    def wait(self, tag: str, order: BrokerOrder, seconds: float) -> BrokerOrder:
        """Poll until terminal, fully filled, or `seconds` of clock time have passed."""
        deadline = self.clock.now().timestamp() + seconds
        while True:
            self.sync(tag, order)
            if order.terminal or order.unfilled_qty == 0:
                return order
            if self.clock.now().timestamp() >= deadline:
                return order
            self.clock.sleep(min(self.cfg.poll_interval_sec, max(0.0, deadline - self.clock.now().timestamp())))
            order = self._details(tag, order.unique_order_id, order.order_id) or order

    def _modify(self, tag: str, order: BrokerOrder, req: OrderRequest, price: float, step: int) -> bool:
        new = OrderRequest(**{**req.__dict__, "price": price})
        self._rec("order_modify", {"tag": tag, "price": price, "step": step})
        try:
            self.broker.modify_order(order.order_id, new)
            return True
        except BrokerError as exc:
            self._rec("broker_error", {"tag": tag, "call": "modify_order", "error": str(exc)})
            return False

    def cancel(self, tag: str, order: BrokerOrder) -> BrokerOrder:
        self._rec("order_cancel", {"tag": tag, "order_id": order.order_id})
        try:
            self.broker.cancel_order(order.order_id)
        except BrokerError as exc:
            self._rec("broker_error", {"tag": tag, "call": "cancel_order", "error": str(exc)})
        for _ in range(10):
            order = self._details(tag, order.unique_order_id, order.order_id) or order
            if order.terminal:
                break
            self.clock.sleep(self.cfg.poll_interval_sec)
        self.sync(tag, order)
        return order

    # --- the two ladders -------------------------------------------------------------------
    def work_entry(self, req: OrderRequest, order: BrokerOrder, tick: float) -> OrderResult:
        """Ladder a BUY up; whatever is unfilled at the end is cancelled."""
        order = self.wait(req.tag, order, self.cfg.fill_timeout_sec)
        steps = ladder_prices(req.price, self.cfg.ladder_pct, BUY, tick)
        for i, (price, backoff) in enumerate(zip(steps, self.cfg.ladder_backoff_sec)):
            if order.terminal or order.unfilled_qty == 0:
                break
            order = self.wait(req.tag, order, backoff)
            if order.terminal or order.unfilled_qty == 0:
                break
            if self._modify(req.tag, order, req, price, i + 1):
                order = self.wait(req.tag, order, self.cfg.fill_timeout_sec if i == len(steps) - 1 else 0)
        if not order.terminal and order.unfilled_qty > 0:
            order = self.cancel(req.tag, order)
        return self.result(req.tag, order)

    def work_exit(self, req: OrderRequest, order: BrokerOrder, tick: float, bid_now) -> OrderResult:
        """Ladder a SELL down, then a last-resort price below the bid, re-priced until filled."""
        order = self.wait(req.tag, order, self.cfg.fill_timeout_sec)
        steps = ladder_prices(req.price, self.cfg.ladder_pct, SELL, tick)
        for i, (price, backoff) in enumerate(zip(steps, self.cfg.ladder_backoff_sec)):
            if order.terminal or order.unfilled_qty == 0:
                break
            order = self.wait(req.tag, order, backoff)
            if not order.terminal and order.unfilled_qty > 0 and self._modify(req.tag, order, req, price, i + 1):
                order = self.wait(req.tag, order, 0)
        rounds = 0
        while not order.terminal and order.unfilled_qty > 0 and rounds < 20:
            bid = bid_now() or req.price
            last = max(tick, round_to_tick(bid * (1 - self.cfg.exit_last_resort_pct / 100), tick, "down"))
            if self._modify(req.tag, order, req, last, len(steps) + 1 + rounds):
                order = self.wait(req.tag, order, self.cfg.fill_timeout_sec)
            else:
                order = self.wait(req.tag, order, self.cfg.poll_interval_sec)
            rounds += 1
        return self.result(req.tag, order)

    def result(self, tag: str, order: BrokerOrder | None) -> OrderResult:
        fills = [dict(r) for r in self.journal.query("SELECT * FROM fills WHERE tag = ? ORDER BY ts", (tag,))]
        qty = sum(f["qty"] for f in fills)
        avg = round(sum(f["qty"] * f["price"] for f in fills) / qty, 4) if qty else 0.0
        status = order.status if order is not None else "unknown"
        return OrderResult(tag, status, qty, avg, order.text if order else "", fills)

    # --- after a crash ---------------------------------------------------------------------
    def pending(self) -> list[dict]:
        """Orders not known to be finished, or whose journaled fills do not cover their fill qty."""
        return [dict(r) for r in self.journal.query(
            "SELECT * FROM orders o WHERE trading_day = ? AND (status NOT IN ('complete', 'rejected', "
            "'cancelled') OR filled_qty > (SELECT COALESCE(SUM(qty), 0) FROM fills f WHERE f.tag = o.tag)) "
            "ORDER BY created_ts", (self.day.isoformat(),))]

    def refresh(self, row: dict) -> BrokerOrder | None:
        """The broker's current view of a journaled order (by unique id, else by tag).

        An order still `unknown` is looked up once more; absent from the book UNKNOWN_GRACE_SEC
        after it was last touched, it is concluded never placed (journaled, terminal)."""
        if row["unique_order_id"]:
            order = self._details(row["tag"], row["unique_order_id"], row["broker_order_id"])
            if order is not None:
                return order
        if row["status"] != "unknown":
            return self.resolve_by_tag(row["tag"])
        found = self.resolve_by_tag(row["tag"], attempts=1, journal_miss=False)
        age = (self.clock.now() - datetime.fromisoformat(row["updated_ts"])).total_seconds()
        if found is None and age >= UNKNOWN_GRACE_SEC:
            self._rec("order_update", {"tag": row["tag"], "status": "rejected", "text":
                                       f"never placed: not in the broker's order book {age:.0f} s "
                                       f"after it was sent"})
        return found

    def request_for(self, row: dict) -> OrderRequest:
        return OrderRequest(tag=row["tag"], exchange=row["exchange"], symbol=row["symbol"],
                            token=row["token"], side=row["side"], qty=row["qty"], price=row["price"])
