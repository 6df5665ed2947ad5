"""One driver semantics: a phase is never skipped, late interval jobs are coalesced and re-armed from
the clock, catch-up re-checks until nothing is due, and each phase runs once per process, in live
and sim alike (both drive the same `Agenda`)."""
import os
import signal
import threading
import time as _time
from collections import Counter
from datetime import datetime, time, timedelta

import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rustro import machine as m
from rustro.calendar import TradingCalendar, at
from rustro.clock import IST, AcceleratedClock, VirtualClock, WallClock
from rustro.config import Config
from rustro.engine import Services, TradingDay
from rustro.journal import Journal
from rustro.scheduler import Agenda, LiveDriver, PlanEntry, SimDriver, day_plan

from conftest import DAY

S = datetime(2026, 11, 20, 9, 15, tzinfo=IST)
PHASES = TradingDay.PHASES


def once(t):
    return DateTrigger(run_date=t, timezone=IST)


def every(sec, start, end):
    return IntervalTrigger(seconds=sec, start_date=start, end_date=end, timezone=IST)


# --- the step function -----------------------------------------------------------------------
def test_agenda_runs_a_phase_late_by_hours_at_once_and_once():
    agenda = Agenda([PlanEntry("pre_open", once(S))], S + timedelta(hours=5))
    assert agenda.next_due() == S
    due = agenda.pop_due(S + timedelta(hours=5))
    assert due.job == "pre_open" and due.scheduled == S
    assert agenda.pop_due(S + timedelta(hours=5)) is None and agenda.next_due() is None
    assert agenda.phases_run == {"pre_open"}


def test_agenda_coalesces_a_late_interval_job_and_rearms_it_from_now():
    agenda = Agenda([PlanEntry("monitor", every(5, S, S + timedelta(hours=1)))], S)
    assert agenda.pop_due(S).job == "monitor" and agenda.next_due() == S + timedelta(seconds=5)
    late = S + timedelta(seconds=62)  # a 62 s job: 12 fire times missed
    assert agenda.pop_due(late).scheduled == S + timedelta(seconds=5)  # run once, late ...
    assert agenda.pop_due(late) is None  # ... not twelve times
    assert agenda.next_due() == S + timedelta(seconds=65)  # next fire after now, not after 09:15:05


def test_agenda_skips_a_phase_run_elsewhere_and_keeps_plan_order_at_one_instant():
    ran = {"pre_open"}
    plan = [PlanEntry("pre_open", once(S)), PlanEntry("market_open", once(S)),
            PlanEntry("eod_exit", once(S)), PlanEntry("monitor", every(5, S, S + timedelta(minutes=1)))]
    agenda = Agenda(plan, S, ran)
    ran.add("eod_exit")  # run by catch-up after the agenda was made: shared set, still skipped
    jobs = []
    while (due := agenda.pop_due(S)) is not None:
        jobs.append(due.job)
    assert jobs == ["market_open", "monitor"]
    assert ran == {"pre_open", "market_open", "eod_exit"}


# --- a long job does not lose the end of the day -------------------------------------------
def small_day(start):
    """market_open, eod_exit at +90 s, market_close at +120 s, monitor every 5 s in between."""
    return [PlanEntry("market_open", once(start + timedelta(seconds=2))),
            PlanEntry("eod_exit", once(start + timedelta(seconds=90))),
            PlanEntry("market_close", once(start + timedelta(seconds=120))),
            PlanEntry("monitor", every(5, start + timedelta(seconds=2), start + timedelta(seconds=120)))]


def run_guarded(driver, seconds):
    """driver.run(), stopped from a watchdog if the day never ends (as it did not before)."""
    watchdog = threading.Timer(seconds, driver.stop)
    watchdog.start()
    try:
        return driver.run()
    finally:
        watchdog.cancel()


@pytest.mark.parametrize("kind", ["live", "sim"])
def test_long_jobs_on_an_accelerated_clock_still_close_the_day(kind):
    clock = AcceleratedClock(S, factor=100)  # 120 virtual seconds in ~1.2 s
    plan = small_day(S)
    seen = []
    deadline = _time.monotonic() + 6

    def run_job(job):
        seen.append((job, clock.now()))
        if job == "monitor":
            _time.sleep(0.12)  # 12 virtual seconds: every monitor outlasts its 5 s interval

    def should_stop():
        return any(j == "market_close" for j, _ in seen) or _time.monotonic() > deadline

    if kind == "live":
        driver = LiveDriver(plan, run_job, should_stop, misfire_grace_sec=1, clock=clock)
    else:
        driver = SimDriver(clock, plan, run_job, should_stop)
    run_guarded(driver, 6)
    assert _time.monotonic() < deadline
    jobs = Counter(j for j, _ in seen)
    assert jobs["market_open"] == jobs["eod_exit"] == jobs["market_close"] == 1
    when = {j: t for j, t in seen if j != "monitor"}
    # late by at most the one monitor running when they fell due (plus scheduling noise)
    assert when["eod_exit"] - (S + timedelta(seconds=90)) < timedelta(seconds=30)
    assert when["market_close"] - (S + timedelta(seconds=120)) < timedelta(seconds=30)
    assert jobs["monitor"] <= 12  # re-armed from the clock: no backlog of missed runs replayed


def test_live_driver_on_the_wall_clock_runs_phases_later_than_the_misfire_grace():
    now = datetime.now(IST)
    plan = [PlanEntry("hourly_close", once(now + timedelta(seconds=0.2))),
            PlanEntry("eod_exit", once(now + timedelta(seconds=0.4))),
            PlanEntry("market_close", once(now + timedelta(seconds=0.5))),
            PlanEntry("monitor", every(0.25, now, now + timedelta(seconds=4)))]
    ran = []
    t0 = _time.monotonic()

    def run_job(job):
        ran.append(job)
        if job == "hourly_close":
            _time.sleep(1.5)  # an order ladder blocking past the 1 s grace

    run_guarded(LiveDriver(plan, run_job, lambda: "market_close" in ran, misfire_grace_sec=1), 3)
    assert ran.count("eod_exit") == 1 and ran.count("market_close") == 1
    assert ran.index("hourly_close") < ran.index("eod_exit") < ran.index("market_close")
    assert _time.monotonic() - t0 < 2.5  # the loop ended with the day, not at the test's deadline


def test_a_signal_stops_the_wait_for_a_distant_job_promptly():
    clock = AcceleratedClock(S, factor=1)  # next job an hour away, waited for in real time
    plan = [PlanEntry("eod_exit", once(S + timedelta(hours=1)))]
    ran = []
    driver = SimDriver(clock, plan, ran.append, lambda: False)

    def on_term(signum, frame):
        driver.stop()
    old = signal.signal(signal.SIGTERM, on_term)
    try:
        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        t0 = _time.monotonic()
        assert driver.run() == 0
        assert _time.monotonic() - t0 < 1.5 and ran == []
    finally:
        signal.signal(signal.SIGTERM, old)


# --- late start: catch-up and the driver agree ----------------------------------------------
def late_day(tmp_path, start: time, slow: dict):
    """A TradingDay started at `start` on a VirtualClock; `slow[job]` virtual seconds are spent in
    that job (a slow broker login, a blocking ladder...). Returns (day, clock, journal, calls)."""
    cfg = Config()
    clock = VirtualClock(at(DAY, start))
    j = Journal.open(tmp_path / "journal.sqlite", clock)
    svc = Services(cfg=cfg, clock=clock, journal=j, calendar=TradingCalendar(), mode="sim",
                   extra={"raise_job_errors": True})
    day = TradingDay(svc, DAY)
    calls = Counter()
    run_job = day.run_job

    def counting(job):
        calls[job] += 1
        if job in slow:
            clock.advance(slow.pop(job))
        run_job(job)
    day.run_job = counting  # catch-up and the driver both go through it
    return day, clock, j, calls


def test_late_start_whose_catch_up_runs_past_market_open_still_warms_up(tmp_path):
    day, clock, j, calls = late_day(tmp_path, time(9, 14), {"pre_open": 120})
    try:
        day.startup()  # pre_open ends at 09:16: market_open fell due during catch-up
        assert day.machine.state == m.WARMUP and clock.now() == at(DAY, time(9, 16))
        SimDriver(clock, day_plan(DAY, day.cfg.session), day.run_job,
                  lambda: day.done or clock.now() >= at(DAY, time(10, 1)),
                  phases_run=day.phases_run).run()
        assert day.machine.state == m.ENTRY_WINDOW
        assert calls["pre_open"] == calls["market_open"] == calls["entry_start"] == 1
    finally:
        j.close()


def test_each_phase_runs_exactly_once_per_process_even_when_late(tmp_path):
    day, clock, j, calls = late_day(tmp_path, time(9, 14), {"pre_open": 120})
    try:
        day.startup()
        assert dict(calls) == {"pre_open": 1, "market_open": 1}  # catch-up ran these

        def run_job(job):
            if job == "hourly_close" and clock.now() >= at(DAY, time(15, 15)):
                clock.advance(20 * 60)  # blocks from 15:15:05 to 15:35:05: past eod and close
            day.run_job(job)
        SimDriver(clock, day_plan(DAY, day.cfg.session), run_job, lambda: day.done,
                  phases_run=day.phases_run).run()
        assert day.machine.state == m.CLOSED
        assert all(calls[p] == 1 for p in PHASES), calls
        assert day.phases_run == set(PHASES)
        with Journal.open_readonly(tmp_path / "journal.sqlite") as r:
            rows = [tuple(x) for x in r.query("SELECT ts, dst FROM transitions ORDER BY seq")]
        assert [d for _, d in rows] == ["pre_open", "warmup", "entry_window", "eod_exit", "closed"]
        assert all(ts[11:19] == "15:35:05" for ts, _ in rows[-2:])  # at once when the job ended
    finally:
        j.close()


def test_live_driver_on_wall_clock_defaults():
    d = LiveDriver([], lambda job: None, lambda: False, 30)
    assert isinstance(d.clock, WallClock) and d.run() == 0
