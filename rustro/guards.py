"""The day's guards on every tick: breakers, data freshness, and reconciliation with the broker.

Each breaker is evaluated on its own (a failing VIX feed never hides the daily-loss limit).
Reconciliation runs at start-up, retried on later ticks with backoff until it succeeds (entries
stay blocked meanwhile and the day halts if it has not succeeded when entries open), and then
every `orders.reconcile_interval_sec`: positions and the order book against the journal. A
mismatch or a short position at the broker halts entries and keeps protecting what is held.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from . import machine as m
from . import order_machine as om
from .broker.base import BrokerError
from .calendar import at
from .entries import adopt_position
from .exits import flatten
from .recovery import compare_positions, render_recon

log = logging.getLogger(__name__)
RECONCILE_BACKOFF_SEC = (5, 10, 20, 40, 60)


# --- breakers -------------------------------------------------------------------------------------
def check_breakers(desk) -> None:
    try:
        vix = desk.feed.vix()
    except (BrokerError, LookupError, ValueError) as exc:
        if "feed" not in desk.gap_open and desk.feed_failing_since is None:
            desk.rec("broker_error", {"call": "vix", "error": str(exc)})  # once per failure streak
        check_freshness(desk, fresh=False)
        vix = None
    if vix is not None:
        check_freshness(desk, fresh=True)
        _vix_breaker(desk, vix)
    if len(desk.book) or not desk.risk.daily_loss.tripped:
        ev = desk.risk.daily_loss.update(desk.day_pnl_net(), desk.capital)
        if ev is not None:
            with desk.journal.transaction():
                desk.journal_breaker(ev)
                desk.save_risk()
            flatten(desk, "daily_loss")
            desk.halt(f"daily loss limit: {ev.reason}")


def _vix_breaker(desk, vix: float) -> None:
    ev = desk.risk.vix.update(vix)
    if ev is None:
        return
    with desk.journal.transaction():
        desk.rec("vix", {"value": vix})
        desk.journal_breaker(ev)
        desk.save_risk()
    if ev.action == "tripped":
        flatten(desk, "vix_breaker")
        desk.halt(f"VIX breaker: {ev.reason}")
    else:
        maybe_resume(desk, ev.reason)


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
            and not len(desk.book) and desk.reconciled
            and desk.clock.now() < at(desk.day, desk.cfg.session.eod_exit)):
        desk.fire("resume", reason)


# --- reconciliation ---------------------------------------------------------------------------------
def reconcile_due(desk) -> bool:
    return desk.next_reconcile is None or desk.clock.now() >= desk.next_reconcile


def reconcile_basis(desk) -> tuple | None:
    """What a reconciliation compares, as far as it can be known without asking: the broker's
    state version (None when it has none, as Angel) and the journal's open holdings. Equal
    bases give equal answers, so the virtual driver need not wake for a reconciliation that
    could only repeat the last one (idle.next_change)."""
    version = getattr(desk.broker, "state_version", None)
    version = version() if version is not None else None
    if version is None:
        return None
    return version, tuple((pid, h.pos.token, h.open_qty) for pid, h in desk.book.holdings.items())


def reconcile(desk) -> bool:
    """Positions (and the order book, for orders we gave up on) against the journal. True when
    the broker answered; a failure is retried with backoff, never read as 'nothing there'."""
    now = desk.clock.now()
    try:
        broker_positions = desk.broker.positions()
        book = desk.broker.order_book()
    except BrokerError as exc:
        desk.reconcile_failures += 1
        delay = RECONCILE_BACKOFF_SEC[min(desk.reconcile_failures, len(RECONCILE_BACKOFF_SEC)) - 1]
        desk.next_reconcile = now + timedelta(seconds=delay)
        desk.broker_healthy = False
        desk.rec("broker_error", {"call": "reconcile", "error": str(exc), "retry_in_sec": delay})
        return False
    desk.reconcile_failures, desk.broker_healthy = 0, True
    desk.next_reconcile = now + timedelta(seconds=desk.cfg.orders.reconcile_interval_sec)
    desk.recon_basis = reconcile_basis(desk)
    _revive_found_orders(desk, book)
    journal_open = [{"token": h.pos.token, "symbol": h.pos.symbol, "open_qty": h.open_qty}
                    for h in desk.book.holdings.values()]
    in_flight = {o.req.token for o in desk.ex.live()}
    rows = [r for r in compare_positions(journal_open, broker_positions)
            if r.ok or r.token not in in_flight]  # an order on its way explains a difference
    ok = all(r.ok for r in rows)
    summary = [r.__dict__ for r in rows if not r.ok]
    first, changed = not desk.reconciled, summary != desk.last_recon
    desk.reconciled, desk.last_recon = True, summary
    if first or changed:
        desk.rec("reconciled", {"ok": ok, "rows": [r.__dict__ for r in rows]})
    for b in broker_positions:
        if b.net_qty < 0:
            desk.short_detected(b.token, b.symbol, b.net_qty, "broker positions show a short")
    if not ok and changed:
        log.error("reconciliation mismatch: entries halted, positions kept and protected\n%s",
                  render_recon(rows))
        ev = desk.risk.mismatch.trip("broker positions do not match the journal", {"rows": summary})
        if ev is not None:
            with desk.journal.transaction():
                desk.journal_breaker(ev)
                desk.save_risk()
        desk.halt_reason = "broker mismatch at reconciliation"
        desk.halt(desk.halt_reason)
        _unknown_positions(desk, rows, broker_positions)
    elif ok and first:
        maybe_resume(desk, "reconciliation with the broker succeeded")
    return True


def _unknown_positions(desk, rows, broker_positions) -> None:
    """A long the broker holds that the journal does not (the journal lost, a trade by hand):
    `reconcile.unknown_positions` decides. halt: leave it and say so in every summary; adopt:
    journal it as a position with stops from the broker's average price, exited by the day's rules
    at the latest at EOD; flatten: adopt it and exit it now. Entries stay halted in every case."""
    policy = desk.cfg.reconcile.unknown_positions
    by_token = {b.token: b for b in broker_positions}
    for r in rows:
        if r.verdict != "unknown_broker_position" or r.broker_qty <= 0:
            continue
        if policy == "halt":
            desk.unmanaged[r.token] = {"symbol": r.symbol, "broker_qty": r.broker_qty}
            continue
        pid = adopt_position(desk, by_token[r.token], f"unknown broker position ({policy})")
        if pid is None:
            desk.unmanaged[r.token] = {"symbol": r.symbol, "broker_qty": r.broker_qty}
        elif policy == "flatten":
            desk.to_flatten.add(pid)  # sent by the first monitor tick of the session


def _revive_found_orders(desk, book) -> None:
    """An order we concluded never placed that the broker now shows is followed again; a second
    broker order under one of our tags (a resend after a book lagged past the grace) is journaled
    and cancelled if it still works. Its fills, if any, show as a position mismatch and halt."""
    for seen in book:
        o = desk.ex.known(seen.tag)
        if o is None:
            continue
        if o.state == om.NEVER_PLACED:
            desk.ex.revive(o, seen, "reconciliation")
            if o.purpose == "entry":
                o.cancel_wanted = "found after it was given up"
        elif o.order_id and seen.order_id != o.order_id and seen.order_id not in desk.duplicates:
            desk.duplicates.add(seen.order_id)
            desk.rec("duplicate_order", {"tag": seen.tag, "order_id": seen.order_id,
                                         "followed_order_id": o.order_id, "status": seen.status,
                                         "filled_qty": seen.filled_qty})
            if not seen.terminal:
                try:
                    desk.broker.cancel_order(seen.order_id)
                except BrokerError as exc:
                    desk.rec("broker_error", {"call": "cancel_order", "order_id": seen.order_id,
                                              "error": str(exc)})
