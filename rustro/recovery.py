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
