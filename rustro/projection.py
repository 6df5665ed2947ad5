"""Derived tables: what each journal event does to the queryable state, and the audit views.

`apply` runs inside the transaction that inserts the event, so derived rows and their event commit
together. Every derived table can be rebuilt from `events` alone (`journal verify` does that).
"""
from __future__ import annotations

import json
import sqlite3

from .market.instruments import INSTRUMENTS_DDL, MIGRATE_INSTRUMENTS_TO_MASTERS

TABLES = [
    """CREATE TABLE IF NOT EXISTS events(
        seq INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, trading_day TEXT NOT NULL,
        kind TEXT NOT NULL, payload TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS events_day_kind ON events(trading_day, kind)",
    """CREATE TABLE IF NOT EXISTS day_state(
        trading_day TEXT PRIMARY KEY, state TEXT NOT NULL, updated_ts TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS transitions(
        seq INTEGER PRIMARY KEY, trading_day TEXT NOT NULL, ts TEXT NOT NULL, src TEXT NOT NULL,
        dst TEXT NOT NULL, trigger TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '')""",
    """CREATE TABLE IF NOT EXISTS orders(
        tag TEXT PRIMARY KEY, trading_day TEXT NOT NULL, purpose TEXT NOT NULL,
        position_id TEXT, underlying TEXT, exchange TEXT NOT NULL, symbol TEXT NOT NULL,
        token TEXT NOT NULL, side TEXT NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL,
        status TEXT NOT NULL, broker_order_id TEXT, unique_order_id TEXT,
        filled_qty INTEGER NOT NULL DEFAULT 0, avg_price REAL NOT NULL DEFAULT 0,
        text TEXT NOT NULL DEFAULT '', created_ts TEXT NOT NULL, updated_ts TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS fills(
        fill_id TEXT PRIMARY KEY, trading_day TEXT NOT NULL, tag TEXT NOT NULL,
        broker_order_id TEXT, symbol TEXT NOT NULL, token TEXT NOT NULL, side TEXT NOT NULL,
        qty INTEGER NOT NULL, price REAL NOT NULL, ts TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS positions(
        position_id TEXT PRIMARY KEY, trading_day TEXT NOT NULL, underlying TEXT NOT NULL,
        option_type TEXT NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL, token TEXT NOT NULL,
        qty INTEGER NOT NULL, open_qty INTEGER NOT NULL, entry_price REAL NOT NULL,
        entry_time TEXT NOT NULL, lot_size INTEGER NOT NULL, tick_size REAL NOT NULL,
        highest REAL NOT NULL, hard_stop REAL NOT NULL, trail_active INTEGER NOT NULL DEFAULT 0,
        trail_stop REAL, target REAL, last_price REAL, status TEXT NOT NULL DEFAULT 'open',
        exit_value REAL NOT NULL DEFAULT 0, exit_price REAL, exit_time TEXT, exit_reason TEXT,
        gross_pnl REAL, costs REAL, net_pnl REAL)""",
    """CREATE TABLE IF NOT EXISTS risk_state(
        trading_day TEXT PRIMARY KEY, payload TEXT NOT NULL, updated_ts TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bars(
        token TEXT NOT NULL, interval TEXT NOT NULL, start TEXT NOT NULL, open REAL NOT NULL,
        high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL, volume REAL NOT NULL,
        PRIMARY KEY(token, interval, start))""",
    # A cache, not a projection: the day's parsed instrument master, so a restart does not
    # download it again. Written in the same transaction as its `instruments_loaded` event.
    INSTRUMENTS_DDL,
]

VIEWS = [
    # The day's timeline, one row per state change.
    """CREATE VIEW IF NOT EXISTS v_transitions AS
       SELECT trading_day, ts, src, dst, trigger, reason FROM transitions ORDER BY seq""",
    # Closed trades with gross and net P&L.
    """CREATE VIEW IF NOT EXISTS v_trades AS
       SELECT trading_day, position_id, underlying, option_type, symbol, qty, entry_time,
              entry_price, exit_time, exit_price, exit_reason, gross_pnl, costs, net_pnl
       FROM positions WHERE status = 'closed' ORDER BY entry_time""",
    # One row per day: trades, wins, losses, gross and net P&L.
    """CREATE VIEW IF NOT EXISTS v_daily_pnl AS
       SELECT trading_day, COUNT(*) AS trades, SUM(net_pnl > 0) AS wins, SUM(net_pnl <= 0) AS losses,
              ROUND(SUM(gross_pnl), 2) AS gross_pnl, ROUND(SUM(costs), 2) AS costs,
              ROUND(SUM(net_pnl), 2) AS net_pnl
       FROM positions WHERE status = 'closed' GROUP BY trading_day ORDER BY trading_day""",
    # Every order with what was filled against it.
    """CREATE VIEW IF NOT EXISTS v_orders AS
       SELECT o.trading_day, o.tag, o.purpose, o.position_id, o.symbol, o.side, o.qty, o.price,
              o.status, o.broker_order_id, o.filled_qty, o.avg_price, o.text, o.created_ts,
              (SELECT COUNT(*) FROM fills f WHERE f.tag = o.tag) AS fills
       FROM orders o ORDER BY o.created_ts""",
    # Entry decisions with their filter values, straight from the events.
    """CREATE VIEW IF NOT EXISTS v_decisions AS
       SELECT trading_day, ts, kind, json_extract(payload, '$.underlying') AS underlying,
              json_extract(payload, '$.name') AS name, json_extract(payload, '$.passed') AS passed,
              json_extract(payload, '$.value') AS value, json_extract(payload, '$.threshold') AS threshold,
              json_extract(payload, '$.reason') AS reason
       FROM events WHERE kind IN ('daily_bias', 'hourly_signal', 'filter_result', 'entry_decision',
                                  'size_decision', 'exit_signal') ORDER BY seq""",
    # Breaker trips and resets with their inputs.
    """CREATE VIEW IF NOT EXISTS v_breakers AS
       SELECT trading_day, ts, kind, json_extract(payload, '$.breaker') AS breaker,
              json_extract(payload, '$.reason') AS reason, payload
       FROM events WHERE kind IN ('breaker_tripped', 'breaker_reset', 'halted') ORDER BY seq""",
]

MIGRATIONS: list[tuple[int, list[str]]] = [(1, TABLES + VIEWS),
                                            (2, MIGRATE_INSTRUMENTS_TO_MASTERS)]


def _state_changed(c: sqlite3.Connection, ev) -> None:
    p = ev.payload
    c.execute("INSERT INTO transitions VALUES (?,?,?,?,?,?,?)",
              (ev.seq, ev.trading_day.isoformat(), ev.ts.isoformat(), p["src"], p["dst"],
               p["trigger"], p.get("reason", "")))
    c.execute("INSERT INTO day_state VALUES (?,?,?,?) ON CONFLICT(trading_day) DO UPDATE SET "
              "state = excluded.state, updated_ts = excluded.updated_ts, reason = excluded.reason",
              (ev.trading_day.isoformat(), p["dst"], ev.ts.isoformat(), p.get("reason", "")))


def _order_intent(c, ev) -> None:
    p = ev.payload
    c.execute("INSERT INTO orders(tag, trading_day, purpose, position_id, underlying, exchange, "
              "symbol, token, side, qty, price, status, created_ts, updated_ts) "
              "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
              (p["tag"], ev.trading_day.isoformat(), p["purpose"], p.get("position_id"),
               p.get("underlying"), p["exchange"], p["symbol"], p["token"], p["side"], p["qty"],
               p["price"], "intent", ev.ts.isoformat(), ev.ts.isoformat()))


def _order_field_update(**fixed):
    """An event that sets columns of the order named by payload['tag']."""
    def apply(c, ev) -> None:
        p = ev.payload
        cols = dict(fixed)
        for key, col in (("order_id", "broker_order_id"), ("unique_order_id", "unique_order_id"),
                         ("status", "status"), ("filled_qty", "filled_qty"),
                         ("avg_price", "avg_price"), ("text", "text"), ("price", "price"),
                         ("qty", "qty")):
            if key in p and p[key] is not None:
                cols[col] = p[key]
        sets = ", ".join(f"{k} = ?" for k in cols)
        cur = c.execute(f"UPDATE orders SET {sets}, updated_ts = ? WHERE tag = ?",
                        (*cols.values(), ev.ts.isoformat(), p["tag"]))
        if cur.rowcount != 1:
            raise ValueError(f"event {ev.kind} #{ev.seq}: no order with tag {p['tag']!r}")
    return apply


def _fill(c, ev) -> None:
    p = ev.payload
    c.execute("INSERT INTO fills VALUES (?,?,?,?,?,?,?,?,?,?)",
              (p["fill_id"], ev.trading_day.isoformat(), p["tag"], p.get("order_id"), p["symbol"],
               p["token"], p["side"], p["qty"], p["price"], p.get("time") or ev.ts.isoformat()))
    row = c.execute("SELECT purpose, position_id FROM orders WHERE tag = ?", (p["tag"],)).fetchone()
    if row is None:
        raise ValueError(f"fill {p['fill_id']}: no order with tag {p['tag']!r}")
    if row[0] == "exit" and row[1]:
        c.execute("UPDATE positions SET open_qty = open_qty - ?, exit_value = exit_value + ? "
                  "WHERE position_id = ?", (p["qty"], p["qty"] * p["price"], row[1]))


def _position_opened(c, ev) -> None:
    p = ev.payload
    c.execute("INSERT INTO positions(position_id, trading_day, underlying, option_type, exchange, "
              "symbol, token, qty, open_qty, entry_price, entry_time, lot_size, tick_size, highest, "
              "hard_stop, trail_active, trail_stop, target, last_price) "
              "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
              (p["position_id"], ev.trading_day.isoformat(), p["underlying"], p["option_type"],
               p["exchange"], p["symbol"], p["token"], p["quantity"], p["quantity"],
               p["entry_price"], p["entry_time"], p["lot_size"], p["tick_size"], p["highest"],
               p["hard_stop"], int(bool(p.get("trail_active"))), p.get("trail_stop"),
               p.get("target"), p["entry_price"]))


def _stop_updated(c, ev) -> None:
    p = ev.payload
    c.execute("UPDATE positions SET highest = ?, trail_active = ?, trail_stop = ?, last_price = ? "
              "WHERE position_id = ?", (p["highest"], int(bool(p["trail_active"])),
                                        p.get("trail_stop"), p.get("premium"), p["position_id"]))


def _position_mark(c, ev) -> None:
    c.execute("UPDATE positions SET last_price = ? WHERE position_id = ?",
              (ev.payload["premium"], ev.payload["position_id"]))


def _position_closed(c, ev) -> None:
    p = ev.payload
    cur = c.execute("UPDATE positions SET status = 'closed', open_qty = 0, exit_price = ?, "
                    "exit_time = ?, exit_reason = ?, gross_pnl = ?, costs = ?, net_pnl = ? "
                    "WHERE position_id = ?",
                    (p["exit_price"], ev.ts.isoformat(), p["reason"], p["gross_pnl"], p["costs"],
                     p["net_pnl"], p["position_id"]))
    if cur.rowcount != 1:
        raise ValueError(f"position_closed #{ev.seq}: no position {p['position_id']!r}")


def _risk_state(c, ev) -> None:
    c.execute("INSERT INTO risk_state VALUES (?,?,?) ON CONFLICT(trading_day) DO UPDATE SET "
              "payload = excluded.payload, updated_ts = excluded.updated_ts",
              (ev.trading_day.isoformat(), _json(ev.payload), ev.ts.isoformat()))


def _bar_closed(c, ev) -> None:
    p = ev.payload
    c.execute("INSERT OR REPLACE INTO bars VALUES (?,?,?,?,?,?,?,?)",
              (p["token"], p["interval"], p["start"], p["open"], p["high"], p["low"], p["close"],
               p.get("volume", 0.0)))


_ENCODER = json.JSONEncoder(sort_keys=True)  # what json.dumps(..., sort_keys=True) builds per call


def _json(payload: dict) -> str:
    return _ENCODER.encode(payload)


HANDLERS = {
    "state_changed": _state_changed,
    "order_intent": _order_intent,
    "order_sent": _order_field_update(status="sent"),
    "order_ack": _order_field_update(status="acked"),
    "order_update": _order_field_update(),
    "order_modify": _order_field_update(),
    "order_rejected": _order_field_update(status="rejected"),
    "order_unknown": _order_field_update(status="unknown"),
    "order_resent": _order_field_update(status="sent"),
    "order_cancel": _order_field_update(status="cancel_pending"),
    "fill": _fill,
    "position_opened": _position_opened,
    "stop_updated": _stop_updated,
    "position_mark": _position_mark,
    "position_closed": _position_closed,
    "risk_state": _risk_state,
    "bar_closed": _bar_closed,
}

DERIVED_TABLES = ("day_state", "transitions", "orders", "fills", "positions", "risk_state", "bars")


def apply(conn: sqlite3.Connection, event) -> None:
    handler = HANDLERS.get(event.kind)
    if handler is not None:
        handler(conn, event)
