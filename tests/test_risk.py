"""Sizing multipliers, lot sizing with caps, and the persisted breakers."""
import json
from datetime import date, datetime, timedelta

import pytest

from rustro.clock import IST
from rustro.config import Config, parse_config
from rustro.risk import (
    BreakerEvent, ConsecutiveLossBreaker, DailyLossBreaker, KillSwitch, MismatchBreaker, RiskState,
    VixBreaker, dte_multiplier, in_cooldown, size_position, vix_multiplier)

CFG = Config()
Z = CFG.sizing


# --- multipliers --------------------------------------------------------------------------------

@pytest.mark.parametrize("vix,mult", [
    (0.0, 1.25), (10, 1.25), (11.99, 1.25), (12, 1.25), (12.01, 1.2496875), (13, 1.21875), (16, 1.125), (20, 1.0), (25, 0.875),
    (29.99, 0.75025), (30, 0.75), (30.01, 0.50), (80, 0.50),
])
def test_vix_multiplier(vix, mult):
    assert vix_multiplier(vix, Z) == pytest.approx(mult, abs=1e-12)


def test_vix_multiplier_follows_config_points():
    z = parse_config({"sizing": {"vix_low": 10.0, "vix_mid": 15.0, "vix_high": 40.0,
                                 "vix_extreme_mult": 0.25}}).sizing
    assert vix_multiplier(12.5, z) == pytest.approx(1.125)
    assert vix_multiplier(35, z) == pytest.approx(0.80)
    assert vix_multiplier(40.5, z) == 0.25


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, None])
def test_vix_multiplier_rejects_bad_vix(bad):
    with pytest.raises(ValueError, match="vix"):
        vix_multiplier(bad, Z)


@pytest.mark.parametrize("dte,mult", [(0, 0.50), (1, 0.50), (2, 0.75), (3, 0.75), (4, 0.75),
                                      (5, 1.00), (30, 1.00)])
def test_dte_multiplier(dte, mult):
    assert dte_multiplier(dte, Z) == mult


@pytest.mark.parametrize("bad", [-1, 2.5, None, True])
def test_dte_multiplier_rejects_bad_dte(bad):
    with pytest.raises(ValueError, match="dte"):
        dte_multiplier(bad, Z)


# --- sizing -------------------------------------------------------------------------------------

# capital 1,000,000 x 10 % = 100,000 base budget; premium 150 x lot 75 = 11,250 per lot
@pytest.mark.parametrize("vix,dte,budget,lots", [
    (10, 5, 125_000, 10),    # 11.1 lots -> capped at max_lots_per_trade 10
    (16, 5, 112_500, 10),    # exactly 10.0 lots
    (20, 5, 100_000, 8),
    (25, 5, 87_500, 7),
    (30, 5, 75_000, 6),
    (30.01, 5, 50_000, 4),
    (20, 4, 75_000, 6),
    (20, 2, 75_000, 6),
    (20, 1, 50_000, 4),
    (20, 0, 50_000, 4),
])
def test_size_examples(vix, dte, budget, lots):
    d = size_position(1_000_000, 150.0, 75, vix, dte, 1800, CFG)
    assert d.budget == pytest.approx(budget)
    assert (d.lots, d.quantity) == (lots, lots * 75)
    assert d.lots <= Z.max_lots_per_trade and d.quantity <= 1800
    assert d.vix_mult == pytest.approx(vix_multiplier(vix, Z))
    assert d.dte_mult == dte_multiplier(dte, Z)
    assert d.reason == "ok"


def test_exactly_ten_lots_is_not_capped():
    d = size_position(1_000_000, 150.0, 75, 16, 5, 1800, CFG)
    assert (d.lots, d.raw_lots, d.capped_by) == (10, 10, None)


def test_capped_by_max_lots():
    d = size_position(1_000_000, 100.0, 75, 10, 5, 1800, CFG)  # 16.67 lots raw
    assert (d.raw_lots, d.lots, d.capped_by) == (16, Z.max_lots_per_trade, "max_lots_per_trade")


def test_capped_by_freeze_quantity():
    d = size_position(1_000_000, 100.0, 75, 10, 5, 500, CFG)   # 500 // 75 = 6 lots
    assert (d.lots, d.quantity, d.capped_by, d.freeze_lots) == (6, 450, "freeze_qty", 6)
    d = size_position(1_000_000, 100.0, 75, 10, 5, 525, CFG)   # exactly 7 lots of freeze
    assert (d.lots, d.quantity) == (7, 525)


def test_freeze_below_one_lot():
    d = size_position(1_000_000, 100.0, 75, 10, 5, 74, CFG)
    assert (d.lots, d.quantity, d.reason) == (0, 0, "freeze quantity below one lot")


@pytest.mark.parametrize("premium,lots,reason", [
    (1333.33, 1, "ok"), (1333.34, 0, "size below one lot"), (5000.0, 0, "size below one lot"),
])
def test_size_below_one_lot(premium, lots, reason):
    d = size_position(1_000_000, premium, 75, 20, 5, 1800, CFG)  # budget 100,000
    assert (d.lots, d.quantity, d.reason) == (lots, lots * 75, reason)


def test_float_edge_is_not_one_lot_short():
    # 700,000 x 10 % x 0.875 / (9.8 x 25) is 249.99999999999997 in floats; exactly 250 lots
    cfg = parse_config({"sizing": {"max_lots_per_trade": 1000}})
    assert 700_000 * 10 / 100 * 0.875 / (9.8 * 25) < 250
    d = size_position(700_000, 9.8, 25, 25, 5, 100_000, cfg)
    assert (d.lots, d.quantity) == (250, 6250)


def test_size_uses_configured_percentage():
    cfg = parse_config({"sizing": {"base_position_size_pct": 5.0}})
    assert size_position(1_000_000, 150.0, 75, 20, 5, 1800, cfg).lots == 4


@pytest.mark.parametrize("kw,name", [
    ({"premium": 0.0}, "premium"), ({"premium": -5.0}, "premium"),
    ({"premium": float("nan")}, "premium"), ({"lot_size": 0}, "lot_size"),
    ({"lot_size": -75}, "lot_size"), ({"freeze_qty": 0}, "freeze_qty"),
    ({"capital": -1.0}, "capital"),
])
def test_size_rejects_bad_input_naming_it(kw, name):
    args = dict(capital=1_000_000, premium=150.0, lot_size=75, vix=15, dte=5, freeze_qty=1800)
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        size_position(cfg=CFG, **args)


# --- breakers -----------------------------------------------------------------------------------

def test_vix_breaker_hysteresis_sequence():
    b = VixBreaker.from_config(CFG.risk)
    assert b.update(29.0) is None and not b.tripped
    ev = b.update(30.0)
    assert ev == BreakerEvent("vix", "tripped", {"vix": 30.0, "vix_spike": 30.0,
                                                 "vix_resume": 22.0}, "vix 30.0 >= 30.0")
    assert b.update(31.0) is None and b.tripped          # no second trip event
    assert b.update(25.0) is None and b.tripped          # below spike, above resume: still tripped
    assert b.update(22.0) is None and b.tripped          # exactly resume: not yet
    ev = b.update(21.9)
    assert ev.action == "reset" and ev.inputs["vix"] == 21.9 and not b.tripped
    assert b.update(29.99) is None and not b.tripped


def test_vix_breaker_round_trips():
    b = VixBreaker.from_config(CFG.risk)
    b.update(35)
    b2 = VixBreaker.from_dict(json.loads(json.dumps(b.to_dict())), CFG.risk)
    assert b2.tripped and b2.update(25) is None and b2.update(20).action == "reset"


LIMIT = 1_000_000 * CFG.risk.daily_loss_limit_pct / 100


@pytest.mark.parametrize("pnl,trips", [(-LIMIT + 0.01, False), (-LIMIT, True),
                                       (-LIMIT - 0.01, True), (1000.0, False)])
def test_daily_loss_breaker_at_limit(pnl, trips):
    b = DailyLossBreaker(CFG.risk.daily_loss_limit_pct)
    ev = b.update(pnl, 1_000_000)
    assert b.tripped is trips and (ev is not None) is trips
    if trips:
        assert ev.breaker == "daily_loss" and ev.inputs["limit"] == -LIMIT


def test_daily_loss_breaker_stays_tripped():
    b = DailyLossBreaker(CFG.risk.daily_loss_limit_pct)
    assert b.update(-25_000, 1_000_000).action == "tripped"
    assert b.update(10_000, 1_000_000) is None and b.tripped
    assert DailyLossBreaker.from_dict(b.to_dict(), CFG.risk).tripped


def test_consecutive_losses_sequence():
    b = ConsecutiveLossBreaker(CFG.risk.consecutive_loss_limit)
    assert b.record(-100) is None and b.count == 1
    assert b.record(-100) is None and b.count == 2
    assert b.record(50) is None and b.count == 0         # a win resets
    assert b.record(-1) is None and b.record(-1) is None and not b.tripped
    ev = b.record(-1)
    assert ev.action == "tripped" and ev.inputs["count"] == 3 and b.tripped
    assert b.record(500) is None and b.tripped and b.count == 0  # stays for the day


def test_consecutive_zero_net_is_not_a_loss():
    b = ConsecutiveLossBreaker(2)
    b.record(-5)
    b.record(0.0)
    assert b.count == 0


def test_consecutive_round_trips_mid_streak():
    b = ConsecutiveLossBreaker(3)
    b.record(-1), b.record(-1)
    b2 = ConsecutiveLossBreaker.from_dict(b.to_dict(), CFG.risk)
    assert b2.count == 2 and b2.record(-1).action == "tripped"


def test_kill_switch_and_mismatch():
    k = KillSwitch()
    ev = k.trip("KILL file found", {"path": "KILL"})
    assert ev == BreakerEvent("kill_switch", "tripped", {"path": "KILL"}, "KILL file found")
    assert k.trip("again") is None and k.tripped
    assert KillSwitch.from_dict(k.to_dict()).tripped
    assert k.reset("operator").action == "reset" and not k.tripped and k.reset("x") is None
    assert MismatchBreaker().trip("qty differs").breaker == "broker_mismatch"


# --- cooldown -----------------------------------------------------------------------------------

T0 = datetime(2025, 10, 7, 11, 0, tzinfo=IST)
M = CFG.risk.reentry_cooldown_min


@pytest.mark.parametrize("after,cool", [
    (timedelta(0), True), (timedelta(minutes=M) - timedelta(microseconds=1), True),
    (timedelta(minutes=M), False), (timedelta(minutes=M, seconds=1), False),
])
def test_cooldown_boundary(after, cool):
    assert in_cooldown(T0, T0 + after, M) is cool


def test_no_stopout_no_cooldown():
    assert in_cooldown(None, T0, M) is False


def test_cooldown_refuses_naive_times():
    with pytest.raises(ValueError, match="naive"):
        in_cooldown(datetime(2025, 10, 7, 11, 0), T0, M)


# --- risk state ---------------------------------------------------------------------------------

def test_risk_state_round_trip_and_new_day():
    r = RiskState.new(date(2025, 10, 7), CFG.risk)
    r.vix.update(31)
    r.daily_loss.update(-30_000, 1_000_000)
    r.record_entry(), r.record_entry()
    assert r.record_close("NIFTY", -500.0, "hard_stop", T0) == []
    assert r.record_close("BANKNIFTY", 800.0, "target", T0) == []
    assert r.last_stopout_at("NIFTY") == T0 and r.last_stopout_at("BANKNIFTY") is None
    r.kill.trip("halt command")
    back = RiskState.from_dict(json.loads(json.dumps(r.to_dict())), CFG.risk)
    assert back == r and back.halted
    assert set(back.entry_blockers()) == {"vix", "daily_loss", "kill_switch"}
    nxt = back.new_day(date(2025, 10, 8), CFG.risk)
    assert nxt.trades_today == 0 and nxt.last_stopout == {} and not nxt.daily_loss.tripped
    assert nxt.vix.tripped and nxt.kill.tripped          # carried until VIX resumes / operator


def test_risk_state_stop_reasons_and_consecutive_trip():
    r = RiskState.new(date(2025, 10, 7), CFG.risk)
    r.record_close("NIFTY", 100.0, "trailing_stop", T0)
    assert r.last_stopout_at("NIFTY") == T0
    evs = [e for i in range(3) for e in r.record_close("NIFTY", -1.0, "technical", T0)]
    assert [e.breaker for e in evs] == ["consecutive_losses"]
    assert r.consecutive_losses == 3 and r.entry_blockers() == ["consecutive_losses"]
    assert not r.halted


def test_risk_state_from_dict_names_missing_key():
    with pytest.raises(ValueError, match="trading_day"):
        RiskState.from_dict({}, CFG.risk)
