"""The pure mapping from a journal event to the owner's message: every kind, and what it says."""
from datetime import date, datetime

import pytest

from rustro.clock import IST
from rustro.journal_events import Event
from rustro.notify_messages import KINDS, SWITCHES, Context, message_for

DAY = date(2026, 10, 14)


def ev(kind, payload, seq=7):
    return Event(seq, datetime(2026, 10, 14, 10, 15, tzinfo=IST), DAY, kind, payload)


def ctx(**kw):
    return Context("paper", ("NIFTY", "BANKNIFTY"), **kw)


def test_day_start_names_mode_capital_and_underlyings():
    m = message_for(ev("capital", {"capital": 250000.5, "source": "broker funds at pre-open"}), ctx())
    assert m.switch == "day_start" and m.seq == 7
    assert "paper" in m.title
    assert m.body == ("paper day 2026-10-14: capital Rs 250,000.50 (broker funds at pre-open); "
                      "underlyings NIFTY, BANKNIFTY")


def test_entry_then_exit_name_symbol_qty_price_reason_and_pnl():
    c = ctx()
    opened = {"position_id": "p1", "underlying": "NIFTY", "option_type": "CE",
              "symbol": "NIFTY20OCT2625000CE", "quantity": 650, "entry_price": 101.35, "hard_stop": 70.95}
    m = message_for(ev("position_opened", opened), c)
    assert m.switch == "fills" and m.level == "success"
    assert m.body == ("entry filled: BUY NIFTY20OCT2625000CE x650 @ 101.35 (NIFTY CE entry); "
                      "stop 70.95")
    closed = {"position_id": "p1", "exit_price": 95.2, "reason": "trailing_stop", "gross_pnl": -3997.5,
              "costs": 120.4, "net_pnl": -4117.9}
    m = message_for(ev("position_closed", closed), c)
    assert m.title == "rustro 2026-10-14: SELL NIFTY20OCT2625000CE -Rs 4,117.90"
    assert m.body == ("exit filled: SELL NIFTY20OCT2625000CE x650 @ 95.20, reason trailing_stop; "
                      "P&L net -Rs 4,117.90 (gross -Rs 3,997.50, costs Rs 120.40)")
    assert m.level == "warning"


def test_exit_of_a_position_this_run_never_saw_opening_names_its_id():
    m = message_for(ev("position_closed", {"position_id": "p9", "exit_price": 10, "reason": "eod",
                                           "net_pnl": 5, "gross_pnl": 6, "costs": 1}), ctx())
    assert "SELL p9 @ 10.00" in m.body and "+Rs 5.00" in m.body


def test_adopted_position_says_so():
    m = message_for(ev("position_opened", {"position_id": "a", "symbol": "S", "quantity": 65,
                                           "entry_price": 1, "adopted": "unknown broker position (adopt)"}),
                    ctx())
    assert "adopted: unknown broker position (adopt)" in m.body


def test_breakers_halts_and_resume():
    m = message_for(ev("breaker_tripped", {"breaker": "daily_loss", "reason": "loss 2.1% >= 2%"}), ctx())
    assert (m.switch, m.level, m.body) == ("breakers", "failure", "breaker daily_loss tripped: loss 2.1% >= 2%")
    m = message_for(ev("breaker_reset", {"breaker": "vix", "reason": "VIX 17 < 18"}), ctx())
    assert m.body == "breaker vix reset: VIX 17 < 18" and m.level == "info"
    m = message_for(ev("halted", {"reason": "broker mismatch at reconciliation"}), ctx())
    assert m.switch == "breakers" and m.body.endswith("broker mismatch at reconciliation")
    resume = {"src": "halted", "dst": "entry_window", "trigger": "resume", "reason": "VIX back"}
    assert message_for(ev("state_changed", resume), ctx()).body == "entries resumed: VIX back"
    ordinary = {"src": "warmup", "dst": "entry_window", "trigger": "open_entries", "reason": "x"}
    assert message_for(ev("state_changed", ordinary), ctx()) is None


def test_reconciliation_mismatch_lists_each_bad_row_and_ignores_a_clean_one():
    rows = [{"ok": True, "symbol": "A", "journal_qty": 65, "broker_qty": 65, "verdict": "ok"},
            {"ok": False, "symbol": "B", "journal_qty": 650, "broker_qty": 325,
             "verdict": "quantity_mismatch"}]
    m = message_for(ev("reconciled", {"ok": False, "rows": rows}), ctx())
    assert m.switch == "reconciliation"
    assert m.body == "reconciliation mismatch with the broker: B: journal 650, broker 325 (quantity_mismatch)"
    assert message_for(ev("reconciled", {"ok": True, "rows": rows[:1]}), ctx()) is None
    m = message_for(ev("short_position", {"symbol": "B", "net_qty": -65, "reason": "r"}), ctx())
    assert "net short -65 of B" in m.body


def test_restart_tells_a_crash_from_a_clean_stop():
    rec = {"state": "entry_window", "events": 420, "open_positions": ["p1"], "pending_orders": [],
           "realized_net": 1500.0}
    crash = message_for(ev("recovered", rec), ctx(previous_stop="position_mark"))
    assert crash.switch == "restarts" and crash.level == "warning"
    assert crash.body.startswith("restarted after a crash (the last run ended without a shutdown): "
                                 "resumed in state entry_window from 420 events; 1 open position(s)")
    clean = message_for(ev("recovered", rec), ctx(previous_stop="shutdown"))
    assert clean.body.startswith("restarted after a clean stop") and clean.level == "info"


def test_job_error_stop_and_summary():
    m = message_for(ev("job_error", {"job": "monitor", "error": "RuntimeError: boom", "state": "managing"}),
                    ctx())
    assert m.switch == "job_errors" and "job monitor failed in state managing: RuntimeError: boom" in m.body
    m = message_for(ev("shutdown", {"signal": "SIGTERM", "state": "managing", "open_positions": 1,
                                    "flatten_on_shutdown": True}), ctx())
    assert m.switch == "stops" and m.body == ("stopping on SIGTERM in state managing: 1 open position(s), "
                                              "flattening")
    s = {"trades": 2, "wins": 1, "losses": 1, "gross_pnl": 900.0, "costs": 250.5, "net_pnl": 649.5,
         "open_positions": 0, "unmanaged_broker_positions": {}}
    m = message_for(ev("day_summary", s), ctx())
    assert m.switch == "day_summary" and m.level == "info"
    assert m.body == ("day 2026-10-14 closed (paper): 2 trade(s), 1 won, 1 lost; net +Rs 649.50 "
                      "(gross +Rs 900.00, costs Rs 250.50)")
    m = message_for(ev("day_summary", {**s, "open_positions": 1}), ctx())
    assert m.level == "warning" and m.body.endswith("1 position(s) STILL OPEN")


@pytest.mark.parametrize("kind", ["order_intent", "fill", "position_mark", "risk_state", "vix",
                                  "notify_failed", "notify_dropped", "broker_error"])
def test_routine_events_are_not_messages(kind):
    assert message_for(ev(kind, {}), ctx()) is None


def test_every_mapped_kind_has_a_known_switch():
    samples = {"reconciled": {"ok": False, "rows": []}, "state_changed": {"trigger": "resume"}}
    for kind in KINDS:
        m = message_for(ev(kind, samples.get(kind, {})), ctx())
        assert m is not None and m.switch in SWITCHES, kind
