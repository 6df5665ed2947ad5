"""Execution: every order's state machine, advanced one bounded step per tick, never by waiting.

A job never sleeps here. `submit` journals the intent, calls the broker once and records its
answer; `step` then advances each order at most one action per monitor tick: look an unseen order
up by tag, poll a working one (fills first, then its status), modify it to the ladder's next price
when due, cancel it when due. Ladders are schedules of (time, price) from the moment of sending.

Exposure in flight counts: an order whose reply was lost is `unknown` and working until the broker's
books prove otherwise, and only both books answering without it for `unknown_grace_sec` conclude
"never placed"; a failed lookup proves nothing. `sellable` is the one guard before every SELL.
"""
from __future__ import annotations

import logging
import time as _time
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Callable

from . import order_machine as om
from .broker.base import SELL, AmbiguousOrder, BrokerError, BrokerOrder, OrderRejected, OrderRequest
from .order_inbox import OrderInbox
from .orders import ladder_schedule, last_resort_price
from .working_order import Outcome, WorkingOrder

log = logging.getLogger(__name__)
NO_NEWS = object()  # the order socket is up and said nothing new: advance on what we know
STEP_BUDGET_SEC = 20.0  # wall seconds one step may spend before leaving orders to the next tick


class _Books:
    """The order book and trade book, fetched at most once per step and only when needed."""

    def __init__(self, broker, journal_error: Callable[[str, str], None]):
        self.broker, self.journal_error = broker, journal_error
        self._cache: dict[str, list | None] = {}

    def get(self, name: str) -> list | None:
        if name not in self._cache:
            try:
                self._cache[name] = getattr(self.broker, name)()
            except BrokerError as exc:
                self.journal_error(name, str(exc))
                self._cache[name] = None
        return self._cache[name]


class Execution:
    def __init__(self, journal, broker, clock, orders_cfg, day: date, held: Callable[[str], int],
                 bid_for: Callable[[WorkingOrder], float] | None = None):
        self.journal, self.broker, self.clock, self.cfg, self.day = journal, broker, clock, orders_cfg, day
        self.held, self.bid_for = held, bid_for or (lambda o: 0.0)
        self.orders: dict[str, WorkingOrder] = {}
        self.failing = ""  # the shared books' failing call, journaled once per streak
        # The order-status socket (rustro/stream.py), when on: updates wait in the inbox for
        # the next step; while the socket is up a working order is polled only every
        # poll_every_sec. before_step drains the socket queue on this thread.
        self.inbox = OrderInbox()
        self.push_live: Callable[[], bool] = lambda: False
        self.poll_every_sec: float = 0.0
        self.before_step: Callable[[], object] | None = None

    # --- journal ------------------------------------------------------------------------------
    def _rec(self, kind: str, payload: dict) -> None:
        self.journal.record(kind, payload, day=self.day)

    def _error_once(self, o: WorkingOrder | None, call: str, error: str) -> None:
        """A failing call is journaled once per streak (per order, or for the shared books)."""
        key, holder = f"{call}: {error}", o if o is not None else self
        if getattr(holder, "failing", "") == key:
            return
        holder.failing = key
        self._rec("broker_error", {**({"tag": o.tag} if o is not None else {}), "call": call,
                                   "error": error})

    def grace_sec(self) -> float:
        """How long an order may stay invisible in the broker's books: a broker that states its
        lag (the paper broker) is taken at its word; otherwise `orders.unknown_grace_sec`."""
        lag = getattr(self.broker, "book_lag_sec", None)
        return self.cfg.unknown_grace_sec if lag is None else float(lag)

    # --- queries ------------------------------------------------------------------------------
    def known(self, tag: str) -> WorkingOrder | None:
        return self.orders.get(tag)

    def live(self, purpose: str | None = None, position_id: str | None = None) -> list[WorkingOrder]:
        """Orders that are, or may be, working at the broker (unknown ones included)."""
        return [o for o in self.orders.values() if o.state in om.IN_FLIGHT
                and (purpose is None or o.purpose == purpose)
                and (position_id is None or o.position_id == position_id)]

    def in_flight_sell_qty(self, token: str) -> int:
        return sum(o.unfilled for o in self.live() if o.req.side == SELL and o.req.token == token)

    def sellable(self, token: str) -> int:
        """Held minus what working and unknown exits may still sell: the guard against a short."""
        return self.held(token) - self.in_flight_sell_qty(token)

    def _may_send(self, req: OrderRequest) -> bool:
        """The one SELL guard: never sell more than is held less what is already on its way."""
        if req.side != SELL or req.qty <= self.sellable(req.token):
            return True
        self._rec("sell_refused", {"tag": req.tag, "token": req.token, "qty": req.qty,
                                   "held": self.held(req.token),
                                   "in_flight": self.in_flight_sell_qty(req.token),
                                   "reason": "would sell more than is held: a net short"})
        return False

    # --- submit -------------------------------------------------------------------------------
    def submit(self, req: OrderRequest, purpose: str, position_id: str | None, underlying: str,
               tick: float, decision: tuple[str, dict] | None = None) -> WorkingOrder | None:
        """Journal (the decision and) the intent in one commit, call the broker once, record the
        answer. Returns the order (maybe unknown), or None if refused before or by the broker."""
        if req.tag in self.orders:
            raise RuntimeError(f"order tag {req.tag} already journaled: refusing to send it again")
        if not self._may_send(req):
            return None
        now = self.clock.now()
        with self.journal.transaction():
            if decision is not None:
                self._rec(*decision)
            self._rec("order_intent", {"tag": req.tag, "purpose": purpose, "position_id": position_id,
                                       "underlying": underlying, "exchange": req.exchange,
                                       "symbol": req.symbol, "token": req.token, "side": req.side,
                                       "qty": req.qty, "price": req.price, "tick": tick})
            self._rec("order_sent", {"tag": req.tag})
        o = WorkingOrder(req.tag, purpose, position_id, underlying, req, tick, now,
                         om.OrderMachine(om.SENT), first_price=req.price, last_action=now)
        self.orders[req.tag] = o
        self._place(o)
        return None if o.state == om.REJECTED else o

    def _place(self, o: WorkingOrder) -> None:
        try:
            ack = self.broker.place_order(o.req)
        except OrderRejected as exc:
            self._move(o, om.REJECTED, "order_rejected", code=exc.code, text=exc.text)
            return
        except (AmbiguousOrder, BrokerError) as exc:
            self._move(o, om.UNKNOWN, "order_unknown", text=f"reply lost: {exc}")
            return
        o.order_id, o.unique_id = ack.order_id, ack.unique_order_id
        self._move(o, om.OPEN, "order_ack", order_id=ack.order_id, unique_order_id=ack.unique_order_id)

    def revive(self, o: WorkingOrder, seen: BrokerOrder, by: str) -> None:
        """The broker shows an order we had not seen (or had concluded never placed): follow it."""
        o.order_id, o.unique_id = seen.order_id, seen.unique_order_id
        self._move(o, om.OPEN, "order_ack", order_id=seen.order_id,
                   unique_order_id=seen.unique_order_id, resolved_by=by)

    def resend(self, o: WorkingOrder, reason: str) -> None:
        """Send a never-placed order again under the same tag (proved absent by both books)."""
        if not self._may_send(o.req):
            return
        self._move(o, om.SENT, "order_resent", reason=reason)
        o.sent_at = o.last_action = self.clock.now()
        o.steps_done, o.failing = 0, ""
        self._place(o)

    # --- moving the machine -------------------------------------------------------------------
    def _move(self, o: WorkingOrder, target: str, kind: str = "order_update", **payload) -> bool:
        """Journal the move, then make it; an illegal move is journaled and refused."""
        try:
            trigger = o.machine.trigger_to(target)
        except om.IllegalOrderMove as exc:
            self._rec("order_transition_rejected", {"tag": o.tag, "src": o.state, "dst": target,
                                                    "event": kind, "reason": str(exc)})
            return False
        if trigger is None and kind == "order_update":
            return False
        self._rec(kind, {"tag": o.tag, "status": target, "trigger": trigger, **payload})
        if trigger is not None:
            o.machine.move(trigger)
        return True

    def push(self, seen: BrokerOrder) -> bool:
        """An order-socket update, kept for the next step (stale and duplicate ones dropped)."""
        o = self.orders.get(seen.tag)
        if o is None or o.terminal:
            return False
        return self.inbox.offer(seen, o.filled_qty, o.seen_at)

    # --- the tick -----------------------------------------------------------------------------
    def step(self) -> list[Outcome]:
        """Advance every order that is not final by at most one action. Bounded: at most one
        order-book and one trade-book call, and per order one poll plus one modify or cancel."""
        if self.before_step is not None:
            self.before_step()
        books = _Books(self.broker, lambda call, err: self._error_once(None, call, err))
        out, started = [], _time.monotonic()
        live = [o for o in self.orders.values() if o.state in om.IN_FLIGHT]
        live.sort(key=lambda o: o.stepped)  # the least recently stepped first: none starves
        for o in live:
            if _time.monotonic() - started > STEP_BUDGET_SEC:
                break  # slow broker: the rest go first next tick, the job stays bounded
            o.stepped = _time.monotonic()
            before_qty, before_value, before_terminal = o.filled_qty, o.fill_value, o.terminal
            try:
                self._step_one(o, books)
            except BrokerError as exc:  # one order's trouble never stops the others
                self._error_once(o, "step", str(exc))
            if o.filled_qty != before_qty or o.terminal != before_terminal:
                out.append(Outcome(o, o.filled_qty - before_qty, o.fill_value - before_value,
                                   o.terminal and not before_terminal))
        return out

    def _step_one(self, o: WorkingOrder, books: _Books) -> None:
        if o.state in om.UNSEEN:
            self._look_up(o, books)
            return
        seen = self._poll(o, books)
        if seen is None:
            return
        if seen is not NO_NEWS:
            self._observe(o, seen, books)
            self.inbox.absorbed(o.tag, o.filled_qty)
        if not o.terminal:
            self._advance(o)

    def _look_up(self, o: WorkingOrder, books: _Books) -> None:
        book = books.get("order_book")
        if book is None:
            return
        found = next((b for b in book if b.tag == o.tag), None)
        if found is not None:
            self.revive(o, found, "tag")
            self._observe(o, found, books)
            return
        if books.get("trade_book") is None:
            return
        age = (self.clock.now() - o.sent_at).total_seconds()
        if age < self.grace_sec() or self._position_shows(o, books):
            return
        self._move(o, om.NEVER_PLACED, text=f"never placed: absent from the order book and "
                   f"trade book {age:.0f} s after it was sent (both lookups succeeded) and no "
                   f"unexplained position in {o.req.symbol}")

    def _position_shows(self, o: WorkingOrder, books: _Books) -> bool:
        """True unless the broker's positions (which do not lag) prove nothing of this order was
        done: a long beyond what we hold for a BUY, less than we hold for a SELL. A failed call
        proves nothing either."""
        positions = books.get("positions")
        if positions is None:
            return True
        net = sum(p.net_qty for p in positions if p.token == o.req.token)
        held = self.held(o.req.token)
        return net > held if o.req.side != SELL else net < held

    def _poll(self, o: WorkingOrder, books: _Books) -> BrokerOrder | None:
        pushed = self.inbox.peek(o.tag)
        if pushed is not None:
            return pushed
        now = self.clock.now()
        if o.unique_id and self.push_live() and \
                (now - (o.polled_at or o.sent_at)).total_seconds() < self.poll_every_sec:
            return NO_NEWS
        o.polled_at = now
        if o.unique_id:
            try:
                seen = self.broker.order_details(o.unique_id)
                o.failing = ""
                return seen
            except BrokerError as exc:  # "not found" soon after sending means "not visible yet"
                self._error_once(o, "order_details", str(exc))
        book = books.get("order_book")
        return next((b for b in book or () if b.tag == o.tag), None)

    def _observe(self, o: WorkingOrder, seen: BrokerOrder, books: _Books) -> None:
        """Fills first, then the status: a journaled status never claims fills we lack."""
        if seen.order_id and not o.order_id:
            o.order_id, o.unique_id = seen.order_id, seen.unique_order_id
        if seen.updated is not None and (o.seen_at is None or seen.updated > o.seen_at):
            o.seen_at = seen.updated
        if seen.filled_qty > o.filled_qty:
            self._sync_fills(o, seen, books)
            if seen.filled_qty > o.filled_qty:
                return  # the trade book lags the order: keep the status until it catches up
        if seen.price > 0 and seen.price != o.req.price and o.state != om.MODIFY_PENDING:
            o.req = replace(o.req, price=seen.price)
        target = om.broker_target(seen.status, o.filled_qty, o.req.qty, o.state)
        if o.state == om.MODIFY_PENDING and target in (om.OPEN, om.PARTIAL):
            o.req = replace(o.req, price=seen.price or o.req.price)
        self._move(o, target, broker_status=seen.status, filled_qty=o.filled_qty,
                   avg_price=o.avg_price, text=seen.text)

    def _sync_fills(self, o: WorkingOrder, seen: BrokerOrder, books: _Books) -> None:
        trades = books.get("trade_book")
        for f in trades or ():
            if f.order_id != seen.order_id or f.fill_id in o.fill_ids:
                continue
            self._rec("fill", {"fill_id": f.fill_id, "tag": o.tag, "order_id": f.order_id,
                               "symbol": f.symbol or seen.symbol, "token": f.token or seen.token,
                               "side": f.side, "qty": f.qty, "price": f.price, "time": f.time})
            o.fill_ids.add(f.fill_id)
            o.filled_qty += f.qty
            o.fill_value += f.qty * f.price
            o.first_fill_ts = o.first_fill_ts or f.time.isoformat()
            o.last_fill_ts = f.time.isoformat()

    # --- ladders ------------------------------------------------------------------------------
    def _advance(self, o: WorkingOrder) -> None:
        """At most one modify or cancel, when the order's schedule says it is due."""
        now = self.clock.now()
        if o.cancel_wanted and o.state in (om.OPEN, om.PARTIAL, om.MODIFY_PENDING):
            self.cancel(o, o.cancel_wanted)
            return
        if o.state == om.CANCEL_PENDING:
            if now - o.last_action >= timedelta(seconds=self.cfg.fill_timeout_sec):
                self._send_cancel(o)  # the last request may have been lost: ask again
            return
        if o.state not in (om.OPEN, om.PARTIAL):
            return
        plan = ladder_schedule(o.sent_at, o.first_price, o.req.side, o.tick, self.cfg)
        if o.steps_done < len(plan):
            when, price = plan[o.steps_done]
            if now >= when:
                self.modify(o, price)
            return
        if now - (o.last_action or o.sent_at) < timedelta(seconds=self.cfg.fill_timeout_sec):
            return
        if o.purpose == "entry":
            self.cancel(o, "entry ladder exhausted")
        else:
            self.modify(o, last_resort_price(self.bid_for(o) or o.req.price, o.tick, self.cfg))

    def modify(self, o: WorkingOrder, price: float) -> None:
        o.steps_done += 1
        o.last_action = self.clock.now()
        if abs(price - o.req.price) < o.tick / 2:
            return  # already there: a step that changes nothing costs no call
        old = o.req.price
        self._move(o, om.MODIFY_PENDING, "order_modify", price=price, step=o.steps_done)
        try:
            self.broker.modify_order(o.order_id, replace(o.req, price=price))
            o.req = replace(o.req, price=price)
        except OrderRejected as exc:  # definitive: the order kept its old price
            back = om.PARTIAL if o.filled_qty else om.OPEN
            self._move(o, back, price=old, text=f"modify refused: {exc}")
        except BrokerError as exc:  # ambiguous: the next poll shows which price stands
            self._error_once(o, "modify_order", str(exc))

    def cancel(self, o: WorkingOrder, reason: str) -> None:
        """Ask the broker to cancel; an order not yet seen is cancelled as soon as it is found."""
        o.cancel_wanted = reason
        if o.state in om.UNSEEN or o.terminal or o.state == om.CANCEL_PENDING:
            return
        self._move(o, om.CANCEL_PENDING, "order_cancel", order_id=o.order_id, reason=reason)
        self._send_cancel(o)

    def _send_cancel(self, o: WorkingOrder) -> None:
        o.last_action = self.clock.now()
        try:
            self.broker.cancel_order(o.order_id)
        except OrderRejected as exc:  # already final at the broker: the next poll says which
            self._error_once(o, "cancel_order", str(exc))
        except BrokerError as exc:
            self._error_once(o, "cancel_order", str(exc))

    # --- start-up -----------------------------------------------------------------------------
    def restore(self, rows: list[dict], fills: list[dict], modifies: dict[str, int],
                cancels: dict[str, str]) -> None:
        """Rebuild every order of the day from the journal (the only time it is read)."""
        for r in rows:
            req = OrderRequest(tag=r["tag"], exchange=r["exchange"], symbol=r["symbol"],
                               token=r["token"], side=r["side"], qty=r["qty"], price=r["price"])
            sent = datetime.fromisoformat(r["created_ts"])
            o = WorkingOrder(r["tag"], r["purpose"], r["position_id"], r["underlying"] or "", req,
                             r.get("tick") or 0.05, sent, om.OrderMachine(r["status"]),
                             first_price=r.get("first_price") or r["price"],
                             order_id=r["broker_order_id"] or "", unique_id=r["unique_order_id"] or "",
                             steps_done=modifies.get(r["tag"], 0),
                             last_action=datetime.fromisoformat(r["updated_ts"]),
                             cancel_wanted=cancels.get(r["tag"], ""))
            self.orders[o.tag] = o
        for f in fills:
            o = self.orders.get(f["tag"])
            if o is not None and f["fill_id"] not in o.fill_ids:
                o.fill_ids.add(f["fill_id"])
                o.filled_qty += f["qty"]
                o.fill_value += f["qty"] * f["price"]
                o.first_fill_ts = o.first_fill_ts or f["ts"]
                o.last_fill_ts = f["ts"]
