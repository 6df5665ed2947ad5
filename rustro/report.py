"""`status`: a read-only view of the journal. Rows are built by pure functions; tabulate prints them.

`status --json` prints one object whose top-level keys (day, state, transitions, positions, orders,
fills, pnl, risk, ...) are a stable interface for scripts and monitoring.
"""
from __future__ import annotations

import json
from datetime import date

from tabulate import tabulate


def _rows(journal, sql: str, day: date) -> list[dict]:
    return [dict(r) for r in journal.query(sql, (day.isoformat(),))]


def build_status(journal, day: date, now=None) -> dict:
    """`now` (default: the wall clock) decides `missed_close` (see rustro/liveness.py)."""
    from .clock import WallClock
    from .liveness import close_check
    d = day.isoformat()
    state = journal.day_state(day)
    transitions = _rows(journal, "SELECT ts, src, dst, trigger, reason FROM transitions "
                                 "WHERE trading_day = ? ORDER BY seq", day)
    positions = _rows(journal, "SELECT position_id, underlying, option_type, symbol, qty, open_qty, "
                               "entry_time, entry_price, last_price, highest, hard_stop, trail_active, "
                               "trail_stop, target, status, exit_time, exit_price, exit_reason, "
                               "gross_pnl, costs, net_pnl FROM positions WHERE trading_day = ? "
                               "ORDER BY entry_time", day)
    orders = _rows(journal, "SELECT created_ts, tag, purpose, symbol, side, qty, price, status, "
                            "filled_qty, avg_price, broker_order_id, text FROM orders "
                            "WHERE trading_day = ? ORDER BY created_ts", day)
    fills = _rows(journal, "SELECT ts, fill_id, tag, symbol, side, qty, price FROM fills "
                           "WHERE trading_day = ? ORDER BY ts, fill_id", day)
    risk_row = journal.query("SELECT payload FROM risk_state WHERE trading_day = ?", (d,))
    risk = json.loads(risk_row[0][0]) if risk_row else {}
    breakers = _rows(journal, "SELECT ts, kind, json_extract(payload, '$.breaker') AS breaker, "
                              "json_extract(payload, '$.reason') AS reason FROM events "
                              "WHERE trading_day = ? AND kind IN ('breaker_tripped', 'breaker_reset') "
                              "ORDER BY seq", day)
    realized_gross = round(sum(p["gross_pnl"] or 0 for p in positions if p["status"] == "closed"), 2)
    realized_net = round(sum(p["net_pnl"] or 0 for p in positions if p["status"] == "closed"), 2)
    unrealized = round(sum((p["last_price"] - p["entry_price"]) * p["open_qty"]
                           for p in positions if p["status"] == "open" and p["last_price"] is not None), 2)
    summary = journal.query("SELECT payload FROM events WHERE trading_day = ? AND kind = 'day_summary' "
                            "ORDER BY seq DESC LIMIT 1", (d,))
    errors = journal.query("SELECT COUNT(*) FROM events WHERE trading_day = ? AND kind = 'job_error'",
                           (d,))[0][0]
    return {
        "day": d,
        "state": state,
        "transitions": transitions,
        "positions": positions,
        "orders": orders,
        "fills": fills,
        "pnl": {"realized_gross": realized_gross, "realized_net": realized_net,
                "unrealized": unrealized, "total_net": round(realized_net + unrealized, 2)},
        "risk": risk,
        "breakers": breakers,
        "summary": json.loads(summary[0][0]) if summary else None,
        "job_errors": errors,
        **close_check(state, day, now or WallClock().now()),
    }


def _time(ts: str | None) -> str:
    return ts[11:19] if ts else ""


def _table(title: str, rows: list[list], headers: list[str], empty: str, numparse: bool = True) -> str:
    body = (tabulate(rows, headers=headers, tablefmt="simple", floatfmt=".2f",
                     disable_numparse=not numparse) if rows else f"  ({empty})")
    return f"{title}\n{body}"


def render(status: dict) -> str:
    out = [f"rustro status for {status['day']}: state {status['state'] or 'not started'}"
           + (" -- MISSED CLOSE: not closed by the deadline" if status.get("missed_close") else "")]
    out.append(_table("Timeline", [[_time(t["ts"]), t["src"], t["dst"], t["trigger"], t["reason"]]
                                   for t in status["transitions"]],
                      ["time", "from", "to", "trigger", "reason"], "no transitions journaled"))
    out.append(_table("Positions", [[p["position_id"], p["symbol"], p["open_qty"] or p["qty"],
                                     p["entry_price"], p["last_price"], p["hard_stop"],
                                     p["trail_stop"] if p["trail_active"] else "-", p["status"],
                                     p["exit_reason"] or ""] for p in status["positions"]],
                      ["id", "symbol", "qty", "entry", "last", "stop", "trail", "status", "exit reason"],
                      "no positions today"))
    trades = [p for p in status["positions"] if p["status"] == "closed"]
    out.append(_table("Trades", [[_time(p["entry_time"]), _time(p["exit_time"]), p["symbol"], p["qty"],
                                  p["entry_price"], p["exit_price"], p["exit_reason"], p["gross_pnl"],
                                  p["costs"], p["net_pnl"]] for p in trades],
                      ["in", "out", "symbol", "qty", "entry", "exit", "reason", "gross", "costs", "net"],
                      "no closed trades today"))
    out.append(_table("Orders", [[_time(o["created_ts"]), o["tag"], o["purpose"], o["side"], o["symbol"],
                                  o["qty"], o["price"], o["status"], o["filled_qty"], o["avg_price"]]
                                 for o in status["orders"]],
                      ["time", "tag", "purpose", "side", "symbol", "qty", "price", "status", "filled", "avg"],
                      "no orders today"))
    out.append(_table("Fills", [[_time(f["ts"]), f["fill_id"], f["side"], f["symbol"], f["qty"], f["price"]]
                                for f in status["fills"]],
                      ["time", "fill id", "side", "symbol", "qty", "price"], "no fills today"))
    pnl = status["pnl"]
    out.append(_table("P&L", [[pnl["realized_gross"], pnl["realized_net"], pnl["unrealized"],
                               pnl["total_net"]]],
                      ["realized gross", "realized net", "unrealized", "total net"], ""))
    out.append(_table("Risk", _risk_rows(status["risk"]), ["counter", "value", "limit"],
                      "no risk state journaled", numparse=False))
    out.append(_table("Breakers", [[name, "TRIPPED" if tripped else "ok"]
                                   for name, tripped in status["risk"].get("breakers", {}).items()],
                      ["breaker", "state"], "no risk state journaled (no breaker has been armed today)"))
    out.append(_table("Breaker events", [[_time(b["ts"]), b["kind"], b["breaker"], b["reason"]]
                                         for b in status["breakers"]],
                      ["time", "event", "breaker", "reason"], "no breaker tripped today"))
    if status["job_errors"]:
        out.append(f"WARNING: {status['job_errors']} job error(s) journaled today "
                   f"(SELECT * FROM events WHERE kind = 'job_error')")
    return "\n\n".join(out)


def _num(v) -> str:
    """Counters as whole numbers, rupees with paise; as text so tabulate keeps them apart."""
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def _risk_rows(risk: dict) -> list[list]:
    rows = []
    for key, value in risk.items():
        if key in ("state", "breakers"):
            continue  # the raw persisted state and the breaker table are shown elsewhere
        if isinstance(value, dict) and "value" in value:
            rows.append([key, _num(value["value"]), _num(value.get("limit", ""))])
        else:
            rows.append([key, json.dumps(value) if isinstance(value, (dict, list)) else value, ""])
    return rows
