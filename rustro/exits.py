"""Exits and protection: breakers on every monitor tick, stops and trails per position, closing orders.

An exit never gives up while the position is open: a close that does not complete leaves the
position open and the next tick sends a new exit attempt (a new tag), after checking that no earlier
exit order is still working at the broker.
"""
from __future__ import annotations

import logging
from datetime import datetime

from . import machine as m
from .broker.base import SELL, BrokerError, OrderRequest
from .calendar import at
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


def open_qty(desk, pid: str) -> int:
    row = desk.journal.query("SELECT open_qty FROM positions WHERE position_id = ?", (pid,))
    return int(row[0][0]) if row else 0


def unrealized_net(desk) -> float:
    total = 0.0
    for pid, pos in desk.positions.items():
        price = desk.last_price.get(pid, (pos.entry_price, None))[0]
        qty = open_qty(desk, pid)
        if qty > 0:
            gross, net = pnl(pos.entry_price, price, qty, trade_costs(pos.entry_price, price, qty, desk.cfg))
            total += net
    return total


def day_pnl_net(desk) -> float:
    realized = desk.journal.query("SELECT COALESCE(SUM(net_pnl), 0) FROM positions WHERE trading_day = ? "
                                  "AND status = 'closed'", (desk.day.isoformat(),))[0][0]
    return round(realized + unrealized_net(desk), 2)


# --- breakers -------------------------------------------------------------------------------------
def check_breakers(desk) -> None:
    try:
        vix = desk.feed.vix()
    except BrokerError as exc:
        if "feed" not in desk.gap_open and desk.feed_failing_since is None:
            desk.rec("broker_error", {"call": "vix", "error": str(exc)})  # once per failure streak
        check_freshness(desk, fresh=False)
        return
    check_freshness(desk, fresh=True)
    ev = desk.risk.vix.update(vix)
    if ev is not None:
        desk.rec("vix", {"value": vix})
        desk.journal_breaker(ev)
        desk.save_risk()
        if ev.action == "tripped":
            flatten(desk, "vix_breaker")
            desk.halt(f"VIX breaker: {ev.reason}")
        else:
            maybe_resume(desk, ev.reason)
    if desk.positions or not desk.risk.daily_loss.tripped:
        ev = desk.risk.daily_loss.update(desk.day_pnl_net(), desk.capital)
        if ev is not None:
            desk.journal_breaker(ev)
            desk.save_risk()
            flatten(desk, "daily_loss")
            desk.halt(f"daily loss limit: {ev.reason}")


def check_freshness(desk, fresh: bool) -> None:
    """No fresh price for `data_gap_threshold_sec` is a data gap: entries stop until it heals."""
    now = desk.clock.now()
    if fresh:
        desk.last_fresh, desk.feed_failing_since = now, None
        if "feed" in desk.gap_open:
            desk.gap_open.discard("feed")
            desk.rec("data_healed", {"underlying": "feed", "reason": "prices flowing again"})
        return
    if desk.feed_failing_since is None:
        desk.feed_failing_since = now
    age = (now - (desk.last_fresh or desk.feed_failing_since)).total_seconds()
    if age >= desk.cfg.data.data_gap_threshold_sec and "feed" not in desk.gap_open:
        desk.gap_open.add("feed")
        desk.rec("data_gap", {"underlying": "feed", "reason": f"no fresh price for {age:.0f} s",
                              "threshold_sec": desk.cfg.data.data_gap_threshold_sec})


def maybe_resume(desk, reason: str) -> None:
    """Back to entries once the only breaker that halted us (VIX) has reset and we are flat."""
    if (desk.machine is not None and desk.machine.state == m.HALTED and not desk.risk.entry_blockers()
            and not desk.positions and desk.clock.now() < at(desk.day, desk.cfg.session.eod_exit)):
        desk.fire("resume", reason)


def flatten(desk, reason: str) -> None:
    for pid in list(desk.positions):
        close_position(desk, pid, reason, [])


# --- per position ---------------------------------------------------------------------------------
def _price(desk, pos: Position) -> tuple[float | None, float, float]:
    """(premium, bid, age in seconds of the price used)."""
    now = desk.clock.now()
    try:
        q = desk.market.quote(pos.exchange, pos.token)
        if q.ltp > 0:
            desk.last_price[pos.position_id] = (q.ltp, now)
            if desk.quote_failing.pop(pos.token, None) is not None:
                desk.rec("data_healed", {"underlying": pos.underlying, "token": pos.token,
                                         "reason": "option quotes flowing again"})
            return q.ltp, q.bid, 0.0
    except BrokerError as exc:
        if pos.token not in desk.quote_failing:  # journal the first failure of a streak only
            desk.quote_failing[pos.token] = now
            desk.rec("broker_error", {"call": "quote", "token": pos.token, "error": str(exc)})
    last = desk.last_price.get(pos.position_id)
    if last is None:
        return None, 0.0, float("inf")
    return last[0], 0.0, (now - last[1]).total_seconds()


def check_positions(desk, hourly: bool) -> None:
    cfg = desk.cfg
    for pid in list(desk.positions):
        pos = desk.positions[pid]
        premium, _, age = _price(desk, pos)
        if premium is not None:
            pos, events = update_premium(pos, premium, cfg)
            desk.positions[pid] = pos
            for e in events:
                desk.rec("stop_updated", {"position_id": pid, "kind": e.kind, "old_stop": e.old_stop,
                                          "new_stop": e.new_stop, "highest": pos.highest,
                                          "trail_active": pos.trail_active, "trail_stop": pos.trail_stop,
                                          "premium": premium})
        plus_di = minus_di = None
        if hourly:
            if premium is not None:
                desk.rec("position_mark", {"position_id": pid, "premium": premium})
            view = desk.feed.hourly_view(pos.underlying)
            plus_di, minus_di = (view.plus_di, view.minus_di) if view else (None, None)
        ctx = ExitContext(now=desk.clock.now(), eod_exit_time=cfg.session.eod_exit,
                          stale_exit_sec=cfg.data.stale_exit_sec, kill_switch=desk.risk.kill.tripped,
                          vix_breaker_tripped=desk.risk.vix.tripped,
                          daily_loss_breached=desk.risk.daily_loss.tripped, hourly_close=hourly,
                          plus_di=plus_di, minus_di=minus_di, last_price_age_sec=age)
        decision = evaluate_exit(pos, premium, ctx, cfg)
        if decision is not None:
            close_position(desk, pid, decision.primary, list(decision.secondary), decision.values)


def broker_net_qty(desk, token: str) -> int:
    try:
        return max(0, sum(p.net_qty for p in desk.broker.positions() if p.token == token))
    except BrokerError as exc:
        desk.rec("broker_error", {"call": "positions", "error": str(exc)})
        return 0


def _working_exit(desk, pid: str):
    """An earlier exit order of this position that the broker still works, if any."""
    for row in desk.om.pending():
        if row["position_id"] == pid and row["purpose"] == "exit":
            order = desk.om.refresh(row)
            if order is not None:
                desk.om.sync(row["tag"], order)
                if not order.terminal:
                    return row, order
    return None


def close_position(desk, pid: str, reason: str, secondary: list, values: dict | None = None) -> None:
    pos = desk.positions[pid]
    qty = open_qty(desk, pid)
    if qty == 0:
        finish_if_flat(desk, pid, reason)  # already sold (e.g. an earlier attempt filled late)
        return
    if desk.risk.mismatch.tripped:
        qty = min(qty, broker_net_qty(desk, pos.token))  # protect what the broker really holds
    if qty > 0:
        desk.rec("exit_signal", {"position_id": pid, "primary": reason, "secondary": secondary,
                                 "premium": desk.last_price.get(pid, (None,))[0], "open_qty": qty,
                                 "values": values or {}})
        working = _working_exit(desk, pid)
        bid_now = lambda: _price(desk, pos)[1] or desk.last_price.get(pid, (pos.entry_price,))[0]
        if working is not None:
            row, order = working
            desk.om.work_exit(desk.om.request_for(row), order, pos.tick_size, bid_now)
        else:
            attempt = desk.journal.query("SELECT COUNT(*) FROM orders WHERE position_id = ? AND "
                                         "purpose = 'exit'", (pid,))[0][0]
            _, bid, _ = _price(desk, pos)
            ref = bid if bid > 0 else desk.last_price.get(pid, (pos.entry_price,))[0]
            price = max(pos.tick_size, round_to_tick(ref, pos.tick_size, "down"))
            tag = order_tag(desk.day, pos.underlying, SELL, pid, "exit", attempt, desk.cfg.orders.order_tag_len)
            req = OrderRequest(tag=tag, exchange=pos.exchange, symbol=pos.symbol, token=pos.token,
                               side=SELL, qty=qty, price=price)
            order = desk.om.submit(req, "exit", pid, pos.underlying)
            if order is not None:
                desk.om.work_exit(req, order, pos.tick_size, bid_now)
        finish_if_flat(desk, pid, reason)
        if pid in desk.positions:
            log.warning("exit of %s not complete yet; it stays open and is retried", pid)


def finish_if_flat(desk, pid: str, reason: str) -> None:
    """Close the position's books once exit fills cover it; otherwise it stays open and protected."""
    if open_qty(desk, pid) > 0:
        return
    pos = desk.positions.pop(pid)
    row = desk.journal.query("SELECT qty, exit_value FROM positions WHERE position_id = ?", (pid,))[0]
    qty, exit_value = row[0], row[1]
    exit_price = round(exit_value / qty, 4)
    executed = desk.journal.query("SELECT COUNT(*) FROM orders WHERE filled_qty > 0 AND "
                                  "(tag = ? OR (position_id = ? AND purpose = 'exit'))", (pid, pid))[0][0]
    costs = trade_costs(pos.entry_price, exit_price, qty, desk.cfg, n_orders=max(2, executed))
    gross, net = pnl(pos.entry_price, exit_price, qty, costs)
    desk.rec("position_closed", {"position_id": pid, "exit_price": exit_price, "reason": reason,
                                 "gross_pnl": gross, "costs": float(costs.total), "net_pnl": net,
                                 "costs_detail": costs.__dict__})
    for ev in desk.risk.record_close(pos.underlying, net, reason, desk.clock.now()):
        desk.journal_breaker(ev)
        if ev.action == "tripped":
            desk.halt(f"consecutive losses: {ev.reason}")
    desk.save_risk()
    if not desk.positions and desk.machine is not None and desk.machine.state == m.MANAGING:
        desk.fire("flat", f"{pos.symbol} closed ({reason})")


# --- after a crash ----------------------------------------------------------------------------------
def resolve_pending_orders(desk) -> None:
    """Every order the journal left open is asked of the broker; none is ever re-sent blindly."""
    from .entries import open_position
    for row in desk.om.pending():
        order = desk.om.refresh(row)
        if order is None:
            continue  # the broker never got it: nothing to do, the decision stands as unfilled
        desk.om.sync(row["tag"], order)
        if row["purpose"] == "entry" and not order.terminal:
            order = desk.om.cancel(row["tag"], order)  # a stale entry signal is not chased
    for row in desk.journal.query("SELECT * FROM orders WHERE trading_day = ? AND purpose = 'entry' "
                                  "AND filled_qty > 0 AND tag NOT IN (SELECT position_id FROM positions)",
                                  (desk.day.isoformat(),)):
        row = dict(row)
        fills = desk.om.result(row["tag"], None)
        if fills.filled_qty > 0:
            inst = desk.feed.master.by_token(row["token"])
            desk.rec("recovered_fill", {"tag": row["tag"], "filled_qty": fills.filled_qty})
            open_position(desk, row["underlying"], inst.option_type, inst, row["tag"], fills.filled_qty,
                          fills.avg_price, datetime.fromisoformat(fills.fills[0]["ts"]))
    for pid in list(desk.positions):
        if open_qty(desk, pid) == 0:
            signals = [e for e in desk.journal.events(desk.day, kinds=("exit_signal",))
                       if e.payload["position_id"] == pid]
            finish_if_flat(desk, pid, signals[-1].payload["primary"] if signals else "exit_before_restart")
