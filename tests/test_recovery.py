"""Restarting the day at different moments resumes in the state the clock and journal imply."""
from datetime import time

import pytest

from rustro import machine as m
from rustro.calendar import TradingCalendar, at
from rustro.clock import VirtualClock
from rustro.config import Config
from rustro.engine import Services, TradingDay
from rustro.journal import Journal
from rustro.scheduler import SimDriver, day_plan

from conftest import DAY


def run_until(path, start: time, stop: time | None):
    """Run the day from `start` on a fresh process-like stack until the clock passes `stop`."""
    cfg = Config()
    clock = VirtualClock(at(DAY, start))
    j = Journal.open(path, clock)
    try:
        svc = Services(cfg=cfg, clock=clock, journal=j, calendar=TradingCalendar(), mode="sim",
                       extra={"raise_job_errors": True})
        day = TradingDay(svc, DAY)
        day.startup()
        limit = at(DAY, stop) if stop else None
        SimDriver(clock, day_plan(DAY, cfg.session), day.run_job,
                  lambda: day.done or (limit is not None and clock.now() >= limit),
                  phases_run=day.phases_run).run()
        return day.machine.state, day.recovered
    finally:
        j.close()


def dsts(path):
    with Journal.open_readonly(path) as j:
        return [(r[0][11:19], r[1]) for r in j.query("SELECT ts, dst FROM transitions ORDER BY seq")]


@pytest.mark.parametrize("crash_at,restart_at,state_after_startup", [
    (time(9, 5), time(11, 37), m.ENTRY_WINDOW),
    (time(9, 30), time(11, 37), m.ENTRY_WINDOW),
    (time(10, 30), time(11, 37), m.ENTRY_WINDOW),
    (time(9, 20), time(9, 40), m.WARMUP),
    (time(11, 0), time(15, 25), m.EOD_EXIT),
    (time(11, 0), time(16, 0), m.CLOSED),
    (time(15, 25), time(15, 45), m.CLOSED),
])
def test_restart_resumes_in_the_right_state(tmp_path, crash_at, restart_at, state_after_startup):
    path = tmp_path / "journal.sqlite"
    run_until(path, time(9, 0), crash_at)
    before = dsts(path)
    cfg = Config()
    clock = VirtualClock(at(DAY, restart_at))
    with Journal.open(path, clock) as j:
        svc = Services(cfg=cfg, clock=clock, journal=j, calendar=TradingCalendar(), mode="sim",
                       extra={"raise_job_errors": True})
        day = TradingDay(svc, DAY)
        day.startup()
        assert day.machine.state == state_after_startup
        assert day.recovered.fresh is False
        rec = j.events(DAY, kinds=("recovered",))
        assert len(rec) == 1 and rec[0].payload["state"] == before[-1][1]
    after = dsts(path)
    assert after[:len(before)] == before  # history untouched, only appended
    for ts, _ in after[len(before):]:
        assert ts == restart_at.strftime("%H:%M:%S")  # catch-up transitions happen at the restart


def test_late_fresh_start_goes_straight_to_entry_window(tmp_path):
    path = tmp_path / "journal.sqlite"
    state, rec = run_until(path, time(11, 37), time(11, 38))
    assert rec.fresh and state == m.ENTRY_WINDOW
    assert [d for _, d in dsts(path)] == ["pre_open", "warmup", "entry_window"]


def test_start_after_eod_does_not_warm_up(tmp_path):
    path = tmp_path / "journal.sqlite"
    state, _ = run_until(path, time(15, 25), None)
    assert state == m.CLOSED
    assert [d for _, d in dsts(path)] == ["pre_open", "eod_exit", "closed"]


def test_full_day_then_restart_is_a_no_op(tmp_path):
    path = tmp_path / "journal.sqlite"
    run_until(path, time(9, 0), None)
    before = dsts(path)
    state, rec = run_until(path, time(15, 30), None)
    assert state == m.CLOSED and dsts(path) == before
