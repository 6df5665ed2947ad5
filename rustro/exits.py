"""Exits and protection: stops and trails per position, closing orders, and the books they feed.

An exit, once decided, is never forgotten: the position keeps its exit reason and every tick
either lets its working (or unknown) exit order advance or, when none is in flight, sends a new
attempt for what is still sellable. Fills shrink the position; when none is left its books close in
one journal commit with the risk counters they move.
"""
from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache

from . import machine as m
from .broker.base import SELL, BrokerError, OrderRequest
from .costs import trade_costs
from .market.base import round_to_tick
from .orders import order_tag
from .positions import ExitContext, Position, evaluate_exit, pnl, update_premium

log = logging.getLogger(__name__)


def position_from_row(row: dict) -> Position:
    return Position(row["position_id"], row["underlying"], row["option_type"], row["exchange"],
                    row["symbol"], row["token"], row["qty"], row["entry_price"],
                    datetime.fromisoformat(row["entry_time"]), row["lot_size"], row["tick_size"],
                    row["highest"], row["hard_stop"], bool(row["trail_active"]), row["trail_stop"],
                    row["target"])


def unrealized_net(desk) -> float:
    total = 0.0
    for h in desk.book.holdings.values():
        price = h.last_price if h.last_price is not None else h.pos.entry_price
        if h.open_qty > 0:
            total += _net_if_sold(h.pos.entry_price, price, h.open_qty, desk.cfg.costs)
    return total


@lru_cache(maxsize=4096)
def _net_if_sold(entry: float, price: float, qty: int, costs_cfg) -> float:
    """Net P&L of selling `qty` bought at `entry` at `price`: exact decimal costing, so it is
    kept per price (the breakers ask every tick, and a premium moves once a minute)."""
    return pnl(entry, price, qty, trade_costs(entry, price, qty, costs_cfg))[1]


def day_pnl_net(desk) -> float:
    return round(desk.book.realized_net + unrealized_net(desk), 2)


# --- prices ---------------------------------------------------------------------------------------
def price_of(desk, pos: Position) -> tuple[float | None, float, float]:
    """(premium, bid, age in seconds of the price used); a failing quote falls back to the last."""
    now = desk.clock.now()
    h = desk.book.get(pos.position_id)
    try:
        q = desk.market.quote(pos.exchange, pos.token)
        if q.ltp > 0:
            desk.book.mark(pos.position_id, q.ltp, now)
            if desk.quote_failing.pop(pos.token, None) is not None:
                desk.rec("data_healed", {"underlying": pos.underlying, "token": pos.token,
                                         "reason": "option quotes flowing again"})
            return q.ltp, q.bid, 0.0
    except (BrokerError, LookupError, ValueError) as exc:
        if pos.token not in desk.quote_failing:  # journal the first failure of a streak only
            desk.quote_failing[pos.token] = now
            desk.rec("broker_error", {"call": "quote", "token": pos.token, "error": str(exc)})
    if h.last_price_at is None:
        return None, 0.0, float("inf")
    return h.last_price, 0.0, (now - h.last_price_at).total_seconds()


def bid_for_order(desk, order) -> float:
    """The bid an exit's last-resort price starts from (the last price when there is no bid)."""
    if order.position_id not in desk.book:
        return 0.0
    h = desk.book.get(order.position_id)
    _, bid, _ = price_of(desk, h.pos)
    return bid if bid > 0 else (h.last_price or 0.0)


# --- per position ---------------------------------------------------------------------------------
def check_positions(desk, hourly: bool) -> None:
    cfg = desk.cfg
    for pid in desk.book.ids():
        h = desk.book.get(pid)
        premium, _, age = price_of(desk, h.pos)
        if premium is not None:
            pos, events = update_premium(h.pos, premium, cfg)
            h.pos = pos
            for e in events:
                desk.rec("stop_updated", {"position_id": pid, "kind": e.kind, "old_stop": e.old_stop,
                                          "new_stop": e.new_stop, "highest": pos.highest,
                                          "trail_active": pos.trail_active, "trail_stop": pos.trail_stop,
                                          "premium": premium})
        plus_di = minus_di = None
        if hourly:
            if premium is not None:
                desk.rec("position_mark", {"position_id": pid, "premium": premium})
            view = desk.feed.hourly_view(h.pos.underlying)
            plus_di, minus_di = (view.plus_di, view.minus_di) if view else (None, None)
        ctx = ExitContext(now=desk.clock.now(), eod_exit_time=cfg.session.eod_exit,
                          stale_exit_sec=cfg.data.stale_exit_sec, kill_switch=desk.risk.kill.tripped,
                          vix_breaker_tripped=desk.risk.vix.tripped,
                          daily_loss_breached=desk.risk.daily_loss.tripped, hourly_close=hourly,
                          plus_di=plus_di, minus_di=minus_di, last_price_age_sec=age)
        decision = evaluate_exit(h.pos, premium, ctx, cfg)
        if decision is not None:
            close_position(desk, pid, decision.primary, list(decision.secondary), decision.values)
        elif h.exiting:
            close_position(desk, pid, h.exiting, [])


def flatten(desk, reason: str) -> None:
    for pid in desk.book.ids():
        close_position(desk, pid, reason, [])


def broker_net_qty(desk, token: str) -> int | None:
    try:
        return max(0, sum(p.net_qty for p in desk.broker.positions() if p.token == token))
    except BrokerError as exc:
        desk.rec("broker_error", {"call": "positions", "error": str(exc)})
        return None


def close_position(desk, pid: str, reason: str, secondary: list, values: dict | None = None) -> None:
    """Decide the exit once; send an attempt only when no exit of this position is in flight."""
    h = desk.book.get(pid)
    pos = h.pos
    if not h.exiting:
        h.exiting, h.exit_secondary = reason, tuple(secondary)
        desk.rec("exit_signal", {"position_id": pid, "primary": reason, "secondary": secondary,
                                 "premium": h.last_price, "open_qty": h.open_qty,
                                 "values": values or {}})
    if desk.ex.live(purpose="exit", position_id=pid):
        return  # a working or unknown exit is advanced by the execution tick, never doubled
    qty = h.open_qty
    if desk.risk.mismatch.tripped:
        broker_qty = broker_net_qty(desk, pos.token)
        if broker_qty is None:
            return  # cannot see what the broker holds: ask again next tick
        qty = min(qty, broker_qty)  # protect what the broker really holds
    qty = min(qty, desk.ex.sellable(pos.token))
    if qty <= 0:
        return
    attempt = sum(1 for o in desk.ex.orders.values() if o.position_id == pid and o.purpose == "exit")
    _, bid, _ = price_of(desk, pos)
    ref = bid if bid > 0 else (h.last_price or pos.entry_price)
    price = max(pos.tick_size, round_to_tick(ref, pos.tick_size, "down"))
    tag = order_tag(desk.day, pos.underlying, SELL, pid, "exit", attempt, desk.cfg.orders.order_tag_len)
    req = OrderRequest(tag=tag, exchange=pos.exchange, symbol=pos.symbol, token=pos.token,
                       side=SELL, qty=qty, price=price)
    desk.ex.submit(req, "exit", pid, pos.underlying, pos.tick_size)


def on_exit_final(desk, order) -> None:
    """An exit the broker never received is sent again under its own tag (the same decision);
    one that ended otherwise leaves the position to the next tick's attempt."""
    if order.state != "never_placed" or order.position_id not in desk.book:
        return
    if any(o.position_id == order.position_id and o.purpose == "exit" and o.sent_at > order.sent_at
           for o in desk.ex.orders.values()):
        return  # a later attempt already took its place
    desk.ex.resend(order, "the broker never received this exit")


# --- fills and closing the books --------------------------------------------------------------
def on_exit_fills(desk, order, new_qty: int, new_value: float) -> None:
    h = desk.book.exit_fill(order.position_id, order.tag, new_qty, new_value / new_qty if new_qty else 0,
                            order.last_fill_ts)
    if h is None:
        return
    if h.open_qty < 0:
        desk.short_detected(h.pos.token, h.pos.symbol, h.open_qty, f"exit {order.tag} oversold")


def finish(desk, pid: str) -> None:
    """Close the position's books, its risk counters and the day machine's move in one commit."""
    h = desk.book.get(pid)
    pos, qty = h.pos, h.pos.quantity
    exit_price = round(h.exit_value / (qty - min(h.open_qty, 0)), 4)
    costs = trade_costs(pos.entry_price, exit_price, qty, desk.cfg, n_orders=1 + max(1, len(h.exit_orders)))
    gross, net = pnl(pos.entry_price, exit_price, qty, costs)
    reason = h.exiting or "exit_before_restart"
    with desk.decision():
        desk.rec("position_closed", {"position_id": pid, "exit_price": exit_price, "reason": reason,
                                     "gross_pnl": gross, "costs": float(costs.total), "net_pnl": net,
                                     "costs_detail": costs.__dict__})
        desk.book.remove(pid, net)
        closed_at = datetime.fromisoformat(h.last_exit_fill) if h.last_exit_fill else desk.clock.now()
        for ev in desk.risk.record_close(pos.underlying, net, reason, closed_at):
            desk.journal_breaker(ev)
            if ev.action == "tripped":
                desk.halt(f"consecutive losses: {ev.reason}")
        desk.save_risk()
        if not len(desk.book) and not desk.ex.live(purpose="entry") and desk.machine is not None \
                and desk.machine.state == m.MANAGING:
            desk.fire("flat", f"{pos.symbol} closed ({reason})")
