"""What the owner is told: a journal event (kind, payload) mapped to a short message, or None.

Pure: no I/O, no clock. Every message is built from the journaled payload (which the journal has
already refused to hold a secret), plus the run's context (mode, underlyings, how the previous run
ended, the day's positions so an exit names its symbol). Each message belongs to one of the
per-kind switches of `[notify]` (`Message.switch`). docs/notifications.md shows one of each.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SWITCHES = ("day_start", "fills", "breakers", "job_errors", "reconciliation", "restarts", "stops",
            "day_summary")


@dataclass(frozen=True)
class Message:
    switch: str        # the [notify] switch that turns this kind of message on or off
    title: str
    body: str
    level: str = "info"  # info | success | warning | failure (apprise's notify types)
    seq: int = 0       # the journal event it tells of (0: not from an event)


@dataclass
class Context:
    """What a message needs beyond its event: fixed for the run, plus positions seen so far."""
    mode: str
    underlyings: tuple[str, ...]
    previous_stop: str | None = None  # kind of the day's last event before this run (None: fresh)
    positions: dict[str, dict] = field(default_factory=dict)  # position_id -> symbol, quantity


def _rupees(x) -> str:
    return f"Rs {float(x):,.2f}"


def _px(x) -> str:
    """A price as the exchange quotes it (2 decimals; the tick is 0.05)."""
    return f"{float(x):.2f}" if isinstance(x, (int, float)) else str(x)


def _signed(x) -> str:
    return f"{'+' if float(x) >= 0 else '-'}Rs {abs(float(x)):,.2f}"


def _day_start(day, p, ctx):
    return Message("day_start", f"rustro {day}: day start ({ctx.mode})",
                   f"{ctx.mode} day {day}: capital {_rupees(p.get('capital', 0))} "
                   f"({p.get('source', 'config')}); underlyings {', '.join(ctx.underlyings)}")


def _holiday(day, p, ctx):
    return Message("day_start", f"rustro {day}: market closed",
                   f"{ctx.mode} day {day}: no trading ({p.get('reason', 'holiday')})")


def _entry(day, p, ctx):
    ctx.positions[p.get("position_id", "")] = {"symbol": p.get("symbol"), "quantity": p.get("quantity")}
    how = f"adopted: {p['adopted']}" if p.get("adopted") else f"{p.get('underlying')} {p.get('option_type')} entry"
    return Message("fills", f"rustro {day}: BUY {p.get('symbol')}",
                   f"entry filled: BUY {p.get('symbol')} x{p.get('quantity')} @ {_px(p.get('entry_price'))} "
                   f"({how}); stop {_px(p.get('hard_stop'))}", "success")


def _exit(day, p, ctx):
    pos = ctx.positions.get(p.get("position_id", ""), {})
    symbol = pos.get("symbol") or p.get("position_id")
    qty = f" x{pos['quantity']}" if pos.get("quantity") else ""
    net = float(p.get("net_pnl") or 0)
    return Message("fills", f"rustro {day}: SELL {symbol} {_signed(net)}",
                   f"exit filled: SELL {symbol}{qty} @ {_px(p.get('exit_price'))}, reason {p.get('reason')}; "
                   f"P&L net {_signed(net)} (gross {_signed(p.get('gross_pnl') or 0)}, "
                   f"costs {_rupees(p.get('costs') or 0)})", "success" if net >= 0 else "warning")


def _breaker(day, p, ctx, action):
    level = "failure" if action == "tripped" else "info"
    return Message("breakers", f"rustro {day}: breaker {p.get('breaker')} {action}",
                   f"breaker {p.get('breaker')} {action}: {p.get('reason')}", level)


def _halted(day, p, ctx):
    return Message("breakers", f"rustro {day}: HALTED",
                   f"halted, no new entries today (open positions stay protected): {p.get('reason')}",
                   "failure")


def _state_changed(day, p, ctx):
    if p.get("trigger") != "resume":
        return None
    return Message("breakers", f"rustro {day}: entries resumed", f"entries resumed: {p.get('reason')}")


def _job_error(day, p, ctx):
    return Message("job_errors", f"rustro {day}: job {p.get('job')} failed",
                   f"job {p.get('job')} failed in state {p.get('state')}: {p.get('error')} "
                   f"(told once per streak; the next jobs still run)", "failure")


def _reconciled(day, p, ctx):
    if p.get("ok", True):
        return None
    rows = [r for r in p.get("rows", []) if not r.get("ok")]
    what = "; ".join(f"{r.get('symbol') or r.get('token')}: journal {r.get('journal_qty')}, "
                     f"broker {r.get('broker_qty')} ({r.get('verdict')})" for r in rows)
    return Message("reconciliation", f"rustro {day}: broker mismatch",
                   f"reconciliation mismatch with the broker: {what or 'see status'}", "failure")


def _short(day, p, ctx):
    return Message("reconciliation", f"rustro {day}: SHORT at the broker",
                   f"net short {p.get('net_qty')} of {p.get('symbol')} at the broker ({p.get('reason')}); "
                   f"the bot does not buy it back: act by hand", "failure")


def _duplicate(day, p, ctx):
    return Message("reconciliation", f"rustro {day}: duplicate order",
                   f"a second broker order {p.get('order_id')} under tag {p.get('tag')} "
                   f"(status {p.get('status')}, filled {p.get('filled_qty')}): cancelled if working",
                   "failure")


def _recovered(day, p, ctx):
    how = ("after a clean stop" if ctx.previous_stop == "shutdown"
           else "after a crash (the last run ended without a shutdown)")
    open_pos = p.get("open_positions") or []
    pending = p.get("pending_orders") or []
    return Message("restarts", f"rustro {day}: restarted",
                   f"restarted {how}: resumed in state {p.get('state')} from {p.get('events')} events; "
                   f"{len(open_pos)} open position(s), {len(pending)} pending order(s), realized net "
                   f"{_signed(p.get('realized_net') or 0)}",
                   "info" if ctx.previous_stop == "shutdown" else "warning")


def _shutdown(day, p, ctx):
    flat = "flattening" if p.get("flatten_on_shutdown") else "positions left open"
    return Message("stops", f"rustro {day}: stopped by {p.get('signal')}",
                   f"stopping on {p.get('signal')} in state {p.get('state')}: "
                   f"{p.get('open_positions')} open position(s), {flat}", "warning")


def _disk_full(day, p, ctx):
    return Message("stops", f"rustro {day}: DISK FULL",
                   f"the journal's disk is full (during {p.get('job')}): reserve released, "
                   f"flattening and stopping", "failure")


def _summary(day, p, ctx):
    body = (f"day {day} closed ({ctx.mode}): {p.get('trades', 0)} trade(s), {p.get('wins', 0)} won, "
            f"{p.get('losses', 0)} lost; net {_signed(p.get('net_pnl') or 0)} (gross "
            f"{_signed(p.get('gross_pnl') or 0)}, costs {_rupees(p.get('costs') or 0)})")
    if p.get("open_positions"):
        body += f"; {p['open_positions']} position(s) STILL OPEN"
    if p.get("unmanaged_broker_positions"):
        body += f"; unmanaged broker positions: {', '.join(sorted(p['unmanaged_broker_positions']))}"
    level = "warning" if p.get("open_positions") or p.get("unmanaged_broker_positions") else "info"
    return Message("day_summary", f"rustro {day}: day summary {_signed(p.get('net_pnl') or 0)}",
                   body, level)


_MAPPERS = {
    "capital": _day_start, "holiday": _holiday,
    "position_opened": _entry, "position_closed": _exit,
    "breaker_tripped": lambda d, p, c: _breaker(d, p, c, "tripped"),
    "breaker_reset": lambda d, p, c: _breaker(d, p, c, "reset"),
    "halted": _halted, "state_changed": _state_changed,
    "job_error": _job_error,
    "reconciled": _reconciled, "short_position": _short, "duplicate_order": _duplicate,
    "recovered": _recovered, "shutdown": _shutdown, "disk_full": _disk_full,
    "day_summary": _summary,
}
KINDS = tuple(_MAPPERS)  # the journal event kinds that can become a message


def message_for(event, ctx: Context) -> Message | None:
    """The message telling of one journal event, or None for an event the owner need not hear of.
    Records the day's positions in `ctx` (an exit names the symbol its entry bought)."""
    mapper = _MAPPERS.get(event.kind)
    if mapper is None:
        return None
    msg = mapper(event.trading_day.isoformat(), event.payload, ctx)
    if msg is None:
        return None
    return Message(msg.switch, msg.title, msg.body, msg.level, event.seq)
