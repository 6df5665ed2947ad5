"""Position stops, the trailing example, exit priority, and the costs model."""
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from rustro.clock import IST
from rustro.config import Config, parse_config
from rustro.costs import Costs, order_costs, pnl, trade_costs
from rustro.positions import (
    EXIT_REASONS, ExitContext, Position, evaluate_exit, exit_reasons, new_position,
    update_premium)

CFG = Config()
X = CFG.exits
T0 = datetime(2025, 10, 7, 11, 15, 10, tzinfo=IST)
EOD = CFG.session.eod_exit
STALE = CFG.data.stale_exit_sec


def mk(entry=100.0, option_type="CE", cfg=CFG, qty=75) -> Position:
    return new_position("p1", "NIFTY", option_type, "NFO", "NIFTY07OCT2525000CE", "12345", qty,
                        entry, T0, 75, 0.05, cfg)


def ectx(**kw) -> ExitContext:
    base = dict(now=T0 + timedelta(minutes=30), eod_exit_time=EOD, stale_exit_sec=STALE)
    base.update(kw)
    return ExitContext(**base)


# --- new position -------------------------------------------------------------------------------

def test_new_position_stops_from_config():
    p = mk(100.0)
    assert p.hard_stop == pytest.approx(100 * (1 - X.stop_loss_pct)) == pytest.approx(80.0)
    assert p.target is None and not p.trail_active and p.trail_stop is None
    assert p.highest == 100.0 and p.entry_time == T0
    cfg = parse_config({"exits": {"target_pct": 0.3, "stop_loss_pct": 0.1}})
    p = mk(100.0, cfg=cfg)
    assert p.target == pytest.approx(130.0) and p.hard_stop == pytest.approx(90.0)


@pytest.mark.parametrize("kw,name", [
    ({"option_type": "XX"}, "option_type"), ({"entry": 0.0}, "entry_price"),
    ({"qty": 70}, "quantity"), ({"qty": 0}, "quantity"),
])
def test_new_position_rejects_bad_input(kw, name):
    with pytest.raises(ValueError, match=name):
        mk(**kw)


def test_position_is_frozen():
    with pytest.raises(Exception):
        mk().highest = 5.0


# --- trailing -----------------------------------------------------------------------------------

def test_spec_worked_trailing_example():
    p = mk(100.0)
    p, ev = update_premium(p, 101.99, CFG)
    assert not p.trail_active and ev == [] and p.highest == 101.99
    p, ev = update_premium(p, 102.0, CFG)                      # activates
    assert p.trail_active and p.trail_stop == pytest.approx(100.47, abs=1e-9)
    assert [(e.kind, e.old_stop) for e in ev] == [("trail_activated", None)]
    p, ev = update_premium(p, 105.0, CFG)                      # raised, unrounded
    assert p.trail_stop == pytest.approx(103.425, abs=1e-9) and p.highest == 105.0
    assert ev[0].kind == "trail_raised" and ev[0].old_stop == pytest.approx(100.47)
    assert ev[0].new_stop == pytest.approx(103.425)
    assert evaluate_exit(p, 103.45, ectx(), CFG) is None       # above the stop: hold
    d = evaluate_exit(p, 103.40, ectx(), CFG)
    assert d.primary == "trailing_stop" and d.secondary == ()
    assert d.values["trail_stop"] == pytest.approx(103.425)


def test_trail_stop_only_ever_raised():
    p, _ = update_premium(mk(100.0), 110.0, CFG)
    stop = p.trail_stop
    for px in (108.0, 104.0, 109.99):
        p, ev = update_premium(p, px, CFG)
        assert p.trail_stop == stop and ev == [] and p.highest == 110.0
    p, ev = update_premium(p, 110.05, CFG)
    assert p.trail_stop > stop and len(ev) == 1


def test_trail_gap_and_activation_follow_config():
    cfg = parse_config({"exits": {"trail_activate_pct": 0.1, "trail_gap_pct": 0.05}})
    p, _ = update_premium(mk(100.0, cfg=cfg), 109.0, cfg)
    assert not p.trail_active
    p, _ = update_premium(p, 110.0, cfg)
    assert p.trail_active and p.trail_stop == pytest.approx(104.5)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_update_rejects_bad_premium(bad):
    with pytest.raises(ValueError, match="premium"):
        update_premium(mk(), bad, CFG)


# --- exit rules at their thresholds -------------------------------------------------------------

@pytest.mark.parametrize("premium,exits", [(80.0, True), (79.95, True), (80.05, False)])
def test_hard_stop(premium, exits):
    d = evaluate_exit(mk(100.0), premium, ectx(), CFG)
    assert (d is not None and d.primary == "hard_stop") is exits and (d is None) is not exits


@pytest.mark.parametrize("premium,exits", [(130.0, True), (130.05, True), (129.95, False)])
def test_target(premium, exits):
    cfg = parse_config({"exits": {"target_pct": 0.3, "trail_activate_pct": 0.9}})
    d = evaluate_exit(mk(100.0, cfg=cfg), premium, ectx(), cfg)
    assert (d is not None and d.primary == "target") is exits and (d is None) is not exits


def test_target_off_by_default():
    p = replace(mk(100.0), highest=500.0)
    assert evaluate_exit(p, 500.0, ectx(), CFG) is None


@pytest.mark.parametrize("now,exits", [
    (datetime.combine(T0.date(), EOD, IST) - timedelta(seconds=1), False),
    (datetime.combine(T0.date(), EOD, IST), True),
    (datetime.combine(T0.date(), EOD, IST) + timedelta(seconds=1), True),
])
def test_eod(now, exits):
    d = evaluate_exit(mk(), 100.0, ectx(now=now), CFG)
    assert (d is not None and d.primary == "eod") is exits and (d is None) is not exits


@pytest.mark.parametrize("flag,reason", [("kill_switch", "kill_switch"),
                                         ("shutdown_flatten", "shutdown"),
                                         ("vix_breaker_tripped", "vix_breaker"),
                                         ("daily_loss_breached", "daily_loss")])
def test_flag_exits(flag, reason):
    assert evaluate_exit(mk(), 100.0, ectx(**{flag: True}), CFG).primary == reason
    assert evaluate_exit(mk(), 100.0, ectx(**{flag: False}), CFG) is None


@pytest.mark.parametrize("opt,plus,minus,hourly,exits", [
    ("CE", 20.0, 20.0, True, True), ("CE", 19.9, 20.0, True, True), ("CE", 20.1, 20.0, True, False),
    ("CE", 10.0, 30.0, False, False),   # only on an hourly close
    ("PE", 20.0, 20.0, True, True), ("PE", 20.1, 20.0, True, True), ("PE", 19.9, 20.0, True, False),
    ("CE", None, None, True, False),
])
def test_technical(opt, plus, minus, hourly, exits):
    d = evaluate_exit(mk(option_type=opt), 100.0,
                      ectx(hourly_close=hourly, plus_di=plus, minus_di=minus), CFG)
    assert (d is not None and d.primary == "technical") is exits and (d is None) is not exits


@pytest.mark.parametrize("age,exits", [(STALE - 1, False), (STALE, True), (STALE + 1, True)])
def test_stale_price(age, exits):
    d = evaluate_exit(mk(), None, ectx(last_price_age_sec=age), CFG)
    assert (d is not None and d.primary == "stale_price") is exits and (d is None) is not exits


def test_stale_position_still_evaluated_on_last_price():
    d = evaluate_exit(mk(100.0), 79.0, ectx(last_price_age_sec=STALE - 1), CFG)
    assert d.primary == "hard_stop"


# --- priority -----------------------------------------------------------------------------------

def test_priority_with_every_reason_true():
    cfg = parse_config({"exits": {"target_pct": 0.01, "trail_activate_pct": 0.5}})
    p = replace(mk(100.0, cfg=cfg), hard_stop=200.0, trail_active=True, trail_stop=200.0)
    c = ectx(now=datetime.combine(T0.date(), EOD, IST), kill_switch=True, shutdown_flatten=True,
             vix_breaker_tripped=True, daily_loss_breached=True, hourly_close=True,
             plus_di=10.0, minus_di=30.0, last_price_age_sec=STALE)
    assert exit_reasons(p, 150.0, c, cfg) == list(EXIT_REASONS)
    d = evaluate_exit(p, 150.0, c, cfg)
    assert d.primary == "eod" and d.secondary == EXIT_REASONS[1:]


@pytest.mark.parametrize("drop", EXIT_REASONS)
def test_priority_next_reason_wins_when_one_is_removed(drop):
    cfg = parse_config({"exits": {"target_pct": 0.01, "trail_activate_pct": 0.5}})
    p = replace(mk(100.0, cfg=cfg), hard_stop=200.0, trail_active=True, trail_stop=200.0)
    flags = dict(now=datetime.combine(T0.date(), EOD, IST), kill_switch=True,
                 shutdown_flatten=True, vix_breaker_tripped=True, daily_loss_breached=True,
                 hourly_close=True, plus_di=10.0, minus_di=30.0, last_price_age_sec=STALE)
    off = {"eod": {"now": T0}, "kill_switch": {"kill_switch": False},
           "shutdown": {"shutdown_flatten": False}, "vix_breaker": {"vix_breaker_tripped": False},
           "daily_loss": {"daily_loss_breached": False}, "technical": {"hourly_close": False},
           "stale_price": {"last_price_age_sec": 0.0}}
    if drop in off:
        flags.update(off[drop])
    elif drop == "hard_stop":
        p = replace(p, hard_stop=80.0)
    elif drop == "trailing_stop":
        p = replace(p, trail_active=False)
    elif drop == "target":
        p = replace(p, target=None)
    want = [r for r in EXIT_REASONS if r != drop]
    d = evaluate_exit(p, 150.0, ectx(**flags), cfg)
    assert (d.primary,) + d.secondary == tuple(want)


def test_hard_stop_beats_trailing_and_technical():
    p = replace(mk(100.0), trail_active=True, trail_stop=85.0)
    d = evaluate_exit(p, 79.0, ectx(hourly_close=True, plus_di=5.0, minus_di=40.0), CFG)
    assert (d.primary, d.secondary) == ("hard_stop", ("trailing_stop", "technical"))


# --- costs --------------------------------------------------------------------------------------

def test_trade_costs_hand_computed():
    # BUY 75 @ 100, SELL 75 @ 110: turnover 7,500 + 8,250 = 15,750
    # brokerage 2 x 20 = 40.00; STT 0.1 % x 8,250 = 8.25; exchange 0.03503 % x 15,750 = 5.517 -> 5.52
    # SEBI 10/crore x 15,750 = 0.01575 -> 0.02; stamp 0.003 % x 7,500 = 0.225 -> 0.23 (half up)
    # GST 18 % x (40 + 5.52 + 0.02) = 8.1972 -> 8.20; total 62.22
    c = trade_costs(100.0, 110.0, 75, CFG)
    assert c == Costs(40.0, 8.25, 5.52, 0.02, 0.23, 8.20, 62.22)
    assert pnl(100.0, 110.0, 75, c) == (750.0, 687.78)
    assert trade_costs(100.0, 110.0, 75, CFG.costs) == c       # section accepted too


def test_order_costs_by_side():
    buy = order_costs("BUY", 100.0, 75, CFG.costs)
    sell = order_costs("SELL", 110.0, 75, CFG.costs)
    # buy: 20 + exch 2.627->2.63 + sebi 0.0075->0.01 + stamp 0.23 + gst 18%*(22.64)=4.0752->4.08
    assert buy == Costs(20.0, 0.0, 2.63, 0.01, 0.23, 4.08, 26.95)
    # sell: 20 + stt 8.25 + exch 2.889975->2.89 + sebi 0.00825->0.01 + gst 18%*22.90=4.122->4.12
    assert sell == Costs(20.0, 8.25, 2.89, 0.01, 0.0, 4.12, 35.27)


def test_extra_orders_add_brokerage_and_gst():
    c = trade_costs(100.0, 110.0, 75, CFG, n_orders=3)
    assert c.brokerage == 60.0 and c.gst == round(0.18 * (60 + 5.52 + 0.02), 2)


def test_costs_follow_config():
    cfg = parse_config({"costs": {"brokerage_per_order": 0.0, "gst_pct": 0.0}})
    c = trade_costs(100.0, 110.0, 75, cfg)
    assert (c.brokerage, c.gst, c.total) == (0.0, 0.0, 8.25 + 5.52 + 0.02 + 0.23)


def test_pnl_loss_and_float_noise():
    gross, net = pnl(100.1, 100.3, 75, 30.0)   # (100.3 - 100.1) x 75 = 15.000000000000213 in floats
    assert (gross, net) == (15.0, -15.0)
    assert pnl(100.0, 80.0, 150, 10.5) == (-3000.0, -3010.5)


@pytest.mark.parametrize("call,name", [
    (lambda: order_costs("HOLD", 1.0, 1, CFG.costs), "side"),
    (lambda: order_costs("BUY", -1.0, 1, CFG.costs), "premium"),
    (lambda: trade_costs(1.0, 1.0, 1.5, CFG), "quantity"),
    (lambda: trade_costs(1.0, float("nan"), 1, CFG), "exit_price"),
])
def test_costs_reject_bad_input(call, name):
    with pytest.raises(ValueError, match=name):
        call()
