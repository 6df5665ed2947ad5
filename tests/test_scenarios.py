"""Scenario days on the synthetic market (seed 42): each shows one rule end to end in the journal.

The dates were found by backtesting June-November 2026; the synthetic market is deterministic for
(seed, date, scenario), so each day replays exactly.
"""
import dataclasses
import logging
from datetime import date, time

import pytest

from rustro.app import run_day
from rustro.config import Config, ExitsConfig, RiskConfig, UnderlyingConfig
from rustro.credentials import Secrets
from rustro.desk import build_desk
from rustro.journal import Journal
from rustro.market.synthetic_paths import DayScenario

from fakes import assert_never_short

THREE = (UnderlyingConfig(), UnderlyingConfig("BANKNIFTY", "Nifty Bank", 100, 600),
         UnderlyingConfig("FINNIFTY", "Nifty Fin Service", 50, 1800))


def simulate(tmp_path_factory, day, cfg=None, scenarios=None):
    path = tmp_path_factory.mktemp("day") / "journal.sqlite"
    res = run_day(cfg or Config(), "sim", path, day, 42, Secrets(), build_desk=build_desk,
                  extra={"scenarios": scenarios, "raise_job_errors": True})
    assert res.job_errors == 0
    assert_never_short(path.with_name("journal.paper.sqlite"))
    return Journal.open_readonly(path), res


def kinds(j, kind):
    return j.events(kinds=(kind,))


def entries_after(j, ts):
    return [e for e in kinds(j, "order_intent") if e.payload["purpose"] == "entry" and e.ts > ts]


def assert_flat_and_closed(j, res):
    assert res.state == "closed"
    assert j.query("SELECT COUNT(*) FROM positions WHERE status = 'open'")[0][0] == 0
    for r in j.query("SELECT exit_time FROM positions"):
        assert r[0][11:16] <= "15:21"


@pytest.fixture(scope="module")
def trend_day(tmp_path_factory):
    return simulate(tmp_path_factory, date(2026, 10, 14))


def test_trend_day_enters_and_exits_by_trailing_stop(trend_day):
    j, res = trend_day
    assert kinds(j, "daily_bias")[0].payload["bias"] == "CE"
    first = j.query("SELECT * FROM positions ORDER BY entry_time")[0]
    assert first["exit_reason"] == "trailing_stop" and first["gross_pnl"] > 0
    signal = [e for e in kinds(j, "hourly_signal") if e.payload["aligned"]][0]
    assert signal.payload["adx"] >= 25 and signal.payload["plus_di"] > signal.payload["minus_di"]
    decision = [e for e in kinds(j, "entry_decision") if e.payload["allowed"]][0]
    filters = [e.payload for e in kinds(j, "filter_result") if e.payload["tag"] == decision.payload["tag"]]
    assert len(filters) == 13 and all(f["passed"] for f in filters)
    trail = [e.payload for e in kinds(j, "stop_updated") if e.payload["position_id"] == first["position_id"]]
    assert trail[0]["kind"] == "trail_activated"
    stops = [t["trail_stop"] for t in trail]
    assert stops == sorted(stops)  # only ever raised
    exit_sig = [e.payload for e in kinds(j, "exit_signal") if e.payload["position_id"] == first["position_id"]]
    assert exit_sig[0]["primary"] == "trailing_stop" and exit_sig[0]["premium"] <= stops[-1] + 1e-9
    traded = j.query("SELECT SUM(qty) FROM positions")[0][0]
    fills = dict(tuple(r) for r in j.query("SELECT side, SUM(qty) FROM fills GROUP BY side"))
    assert fills == {"BUY": traded, "SELL": traded}  # every bought unit was sold
    assert_flat_and_closed(j, res)


def test_hard_stop_day_then_daily_loss_halts(tmp_path_factory):
    j, res = simulate(tmp_path_factory, date(2026, 7, 15))
    stopped = j.query("SELECT * FROM positions WHERE exit_reason = 'hard_stop'")
    assert len(stopped) == 1
    p = stopped[0]
    sig = [e.payload for e in kinds(j, "exit_signal") if e.payload["position_id"] == p["position_id"]][0]
    assert sig["premium"] <= p["hard_stop"] and abs(p["hard_stop"] - p["entry_price"] * 0.8) < 1e-9
    trip = [e for e in kinds(j, "breaker_tripped") if e.payload["breaker"] == "daily_loss"]
    assert trip and trip[0].payload["inputs"]["day_pnl_net"] <= -20000
    halted = [t for t in j.query("SELECT ts, dst FROM transitions") if t[1] == "halted"]
    assert halted and not entries_after(j, trip[0].ts)
    assert_flat_and_closed(j, res)


def test_vix_spike_trips_breaker_and_exits(tmp_path_factory):
    wide = dataclasses.replace(Config(), exits=ExitsConfig(stop_loss_pct=0.6, trail_activate_pct=0.5,
                                                            trail_gap_pct=0.3))
    day = date(2026, 11, 5)
    j, res = simulate(tmp_path_factory, day, wide, {day: DayScenario(vix_spike_at=time(11, 0))})
    trip = [e for e in kinds(j, "breaker_tripped") if e.payload["breaker"] == "vix"][0]
    assert trip.payload["inputs"]["vix"] >= 30
    closed = j.query("SELECT exit_reason, exit_time FROM positions")
    assert [r[0] for r in closed] == ["vix_breaker"] and closed[0][1] >= trip.ts.isoformat()
    dsts = [r[0] for r in j.query("SELECT dst FROM transitions ORDER BY seq")]
    assert "halted" in dsts and not entries_after(j, trip.ts)
    assert_flat_and_closed(j, res)


def test_three_losses_halt_entries(tmp_path_factory):
    # a tight 2 % stop, three underlyings and no cooldown: three stop-outs by 11:17
    cfg = dataclasses.replace(Config(), underlyings=THREE, exits=ExitsConfig(stop_loss_pct=0.02),
                              risk=RiskConfig(max_trades_per_day=8, reentry_cooldown_min=0))
    j, res = simulate(tmp_path_factory, date(2026, 10, 14), cfg)
    trip = [e for e in kinds(j, "breaker_tripped") if e.payload["breaker"] == "consecutive_losses"][0]
    losses = j.query("SELECT net_pnl FROM positions WHERE status = 'closed' AND exit_time <= ? "
                     "ORDER BY exit_time", (trip.ts.isoformat(),))
    assert len(losses) == 3 and all(r[0] <= 0 for r in losses)
    assert trip.payload["inputs"]["count"] == 3 and trip.ts.time() < time(15, 0)
    assert not entries_after(j, trip.ts)
    halted = j.query("SELECT ts, reason FROM transitions WHERE dst = 'halted'")
    assert halted and "consecutive losses" in halted[0][1]
    later_closes = [e for e in kinds(j, "bar_closed") if e.ts > trip.ts]
    assert later_closes  # the day went on (bars still journaled) without entering again
    assert_flat_and_closed(j, res)


def test_no_trade_bias_day_has_no_entries(tmp_path_factory):
    j, res = simulate(tmp_path_factory, date(2026, 8, 3))
    bias = kinds(j, "daily_bias")[0].payload
    assert bias["bias"] == "NO_TRADE" and bias["adx"] < 20
    assert kinds(j, "order_intent") == []
    decisions = kinds(j, "entry_decision")
    assert decisions and all(not d.payload["allowed"] and "NO_TRADE" in d.payload["reason"]
                             for d in decisions)
    assert [r[0] for r in j.query("SELECT dst FROM transitions ORDER BY seq")] == [
        "pre_open", "warmup", "entry_window", "eod_exit", "closed"]


def test_position_closed_by_eod_exit(tmp_path_factory):
    j, res = simulate(tmp_path_factory, date(2026, 11, 5))
    eod = j.query("SELECT * FROM positions WHERE exit_reason = 'eod'")
    assert len(eod) == 1 and eod[0]["exit_time"][11:16] == "15:20"
    sells = j.query("SELECT SUM(qty) FROM fills WHERE side = 'SELL' AND tag IN (SELECT tag FROM orders "
                    "WHERE position_id = ?)", (eod[0]["position_id"],))[0][0]
    assert sells == eod[0]["qty"]
    t = [(r[0][11:19], r[1]) for r in j.query("SELECT ts, dst FROM transitions ORDER BY seq")]
    assert ("15:20:00", "eod_exit") in t and t[-1][1] == "closed"
    assert_flat_and_closed(j, res)


def test_twenty_consecutive_days(tmp_path_factory):
    from rustro.app import run_backtest
    path = tmp_path_factory.mktemp("bt") / "journal.sqlite"
    logging.disable(logging.INFO)
    try:
        results = run_backtest(Config(), path, date(2026, 10, 1), date(2026, 10, 30), 42, build_desk,
                               extra={"raise_job_errors": True})
    finally:
        logging.disable(logging.NOTSET)
    assert len(results) == 20 and all(r.state == "closed" and r.job_errors == 0 for r in results)
    assert len(assert_never_short(path.with_name("journal.paper.sqlite"))) > 0
    with Journal.open_readonly(path) as j:
        assert j.query("SELECT COUNT(*) FROM positions")[0][0] > 0
        assert j.query("SELECT COUNT(*) FROM positions WHERE status = 'open'")[0][0] == 0
        assert j.query("SELECT COUNT(*) FROM positions WHERE substr(exit_time, 12, 5) > '15:21'")[0][0] == 0
        assert j.query("SELECT COUNT(*) FROM events WHERE kind = 'job_error'")[0][0] == 0
