"""Crash recovery: rebuild the day from the journal alone.

A clean start and a crash restart share this one path. What is rebuilt is journaled as a
`recovered` event so an auditor can see exactly what the bot believed when it resumed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from .machine import PRE_OPEN


@dataclass
class Recovered:
    state: str = PRE_OPEN
    fresh: bool = True                      # no events for this day before this start
    last_ts: datetime | None = None
    daily_bias: dict | None = None          # the `daily_bias` payload, per underlying
    risk: dict = field(default_factory=dict)
    open_positions: list[dict] = field(default_factory=list)
    pending_orders: list[dict] = field(default_factory=list)
    closed_trades: int = 0
    realized_net: float = 0.0
    events: int = 0

    def summary(self) -> dict:
        return {"state": self.state, "events": self.events,
                "last_event_ts": self.last_ts.isoformat() if self.last_ts else None,
                "daily_bias": self.daily_bias, "risk": self.risk,
                "open_positions": [p["position_id"] for p in self.open_positions],
                "pending_orders": [o["tag"] for o in self.pending_orders],
                "closed_trades": self.closed_trades, "realized_net": self.realized_net}


def rebuild(journal, day: date) -> Recovered:
    last = journal.last_event(day)
    if last is None:
        return Recovered()
    rec = Recovered(fresh=False, last_ts=last.ts)
    rec.state = journal.day_state(day) or PRE_OPEN
    d = day.isoformat()
    rec.events = journal.query("SELECT COUNT(*) FROM events WHERE trading_day = ?", (d,))[0][0]
    biases = journal.events(day, kinds=("daily_bias",))
    if biases:
        rec.daily_bias = {}
        for ev in biases:
            rec.daily_bias[ev.payload.get("underlying", "")] = ev.payload
    row = journal.query("SELECT payload FROM risk_state WHERE trading_day = ?", (d,))
    if row:
        import json
        rec.risk = json.loads(row[0][0])
    rec.open_positions = [dict(r) for r in journal.query(
        "SELECT * FROM positions WHERE trading_day = ? AND status = 'open' ORDER BY entry_time", (d,))]
    rec.pending_orders = [dict(r) for r in journal.query(
        "SELECT * FROM orders WHERE trading_day = ? AND status NOT IN "
        "('complete', 'rejected', 'cancelled') ORDER BY created_ts", (d,))]
    closed = journal.query("SELECT COUNT(*), COALESCE(SUM(net_pnl), 0) FROM positions "
                           "WHERE trading_day = ? AND status = 'closed'", (d,))[0]
    rec.closed_trades, rec.realized_net = closed[0], round(closed[1], 2)
    return rec


def restore_desk(desk, rec: Recovered) -> None:
    """Rebuild the desk's components from the journal: the one time trading state is read from it."""
    from .exits import position_from_row
    from .risk import RiskState
    j, day = desk.journal, desk.day
    if rec.risk.get("state"):
        desk.risk = RiskState.from_dict(rec.risk["state"], desk.cfg.risk)
    if rec.daily_bias:
        desk.bias = {u: p for u, p in rec.daily_bias.items() if u}
    cap = j.events(day, kinds=("capital",))
    if cap:
        desk.capital = float(cap[-1].payload["capital"])
    desk.book.realized_net, desk.book.closed = rec.realized_net, rec.closed_trades
    exiting = {}
    desk.entry_done = {r[0] for r in j.query("SELECT position_id FROM positions WHERE trading_day = ?",
                                             (day.isoformat(),))}
    for ev in j.events(day, kinds=("exit_signal", "entry_decision", "entry_abandoned")):
        p = ev.payload
        if ev.kind == "exit_signal":
            exiting.setdefault(p["position_id"], p["primary"])
        elif ev.kind == "entry_abandoned":
            desk.entry_done.add(p.get("tag"))
        elif p.get("tag"):
            desk.decided.add(p["tag"])
            if p.get("signal_bar"):
                desk.signal_bar[p["tag"]] = datetime.fromisoformat(p["signal_bar"])
    d = day.isoformat()
    for row in rec.open_positions:
        h = desk.book.open(position_from_row(row), datetime.fromisoformat(row["entry_time"]))
        h.open_qty, h.exit_value = row["open_qty"], row["exit_value"]
        h.last_price = row["last_price"]
        h.exiting = exiting.get(row["position_id"], "")
        exit_fills = j.query("SELECT tag, ts FROM fills WHERE tag IN (SELECT tag FROM orders WHERE "
                             "position_id = ? AND purpose = 'exit') ORDER BY ts", (row["position_id"],))
        h.exit_orders = {r[0] for r in exit_fills}
        h.last_exit_fill = exit_fills[-1][1] if exit_fills else None
    intents = {e.payload["tag"]: e.payload for e in j.events(day, kinds=("order_intent",))}
    rows = []
    for r in j.query("SELECT * FROM orders WHERE trading_day = ? ORDER BY created_ts", (d,)):
        r = dict(r)
        r["tick"] = intents.get(r["tag"], {}).get("tick")
        r["first_price"] = intents.get(r["tag"], {}).get("price")
        rows.append(r)
    modifies: dict[str, int] = {}
    cancels: dict[str, str] = {}
    resent_at: dict[str, str] = {}
    for ev in j.events(day, kinds=("order_modify", "order_cancel", "order_resent")):
        tag = ev.payload["tag"]
        if ev.kind == "order_modify":
            modifies[tag] = ev.payload.get("step", modifies.get(tag, 0))
        elif ev.kind == "order_cancel":
            cancels[tag] = ev.payload.get("reason") or "cancel requested before the restart"
        else:
            modifies[tag] = 0
            resent_at[tag] = ev.ts.isoformat()
    for r in rows:
        r["created_ts"] = resent_at.get(r["tag"], r["created_ts"])
    fills = [dict(r) for r in j.query("SELECT * FROM fills WHERE trading_day = ? ORDER BY ts", (d,))]
    desk.ex.restore(rows, fills, modifies, cancels)


# --- reconciliation with the broker ---------------------------------------------------------------
@dataclass(frozen=True)
class ReconRow:
    token: str
    symbol: str
    journal_qty: int
    broker_qty: int
    verdict: str  # ok | quantity_mismatch | unknown_broker_position | missing_at_broker

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


def compare_positions(journal_open: list[dict], broker_positions: list) -> list[ReconRow]:
    """Journal open quantities vs the broker's signed net quantities, per token. Pure."""
    mine: dict[str, tuple[str, int]] = {}
    for p in journal_open:
        sym, qty = mine.get(p["token"], (p["symbol"], 0))
        mine[p["token"]] = (sym, qty + int(p["open_qty"]))
    theirs: dict[str, tuple[str, int]] = {}
    for b in broker_positions:
        sym, qty = theirs.get(b.token, (b.symbol, 0))
        theirs[b.token] = (sym, qty + int(b.net_qty))
    rows = []
    for token in sorted(set(mine) | {t for t, (_, q) in theirs.items() if q != 0}):
        sym, jq = mine.get(token, (theirs.get(token, ("?", 0))[0], 0))
        bq = theirs.get(token, (sym, 0))[1]
        if jq == bq:
            verdict = "ok"
        elif jq == 0:
            verdict = "unknown_broker_position"
        elif bq == 0:
            verdict = "missing_at_broker"
        else:
            verdict = "quantity_mismatch"
        rows.append(ReconRow(token, sym, jq, bq, verdict))
    return rows


def render_recon(rows: list[ReconRow]) -> str:
    from tabulate import tabulate
    if not rows:
        return "reconciliation: no open positions in the journal or at the broker"
    return tabulate([[r.token, r.symbol, r.journal_qty, r.broker_qty, r.verdict] for r in rows],
                    headers=["token", "symbol", "journal qty", "broker qty", "verdict"])
