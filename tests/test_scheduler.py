"""The day plan fires what DESIGN.md says, when it says, and both drivers honour it."""
import threading
import time as _time
from datetime import date, datetime, timedelta

from apscheduler.triggers.date import DateTrigger

from rustro.clock import IST, VirtualClock
from rustro.config import Config
from rustro.scheduler import LiveDriver, PlanEntry, SimDriver, day_plan, hourly_closes

DAY = date(2026, 11, 20)


def fire_times(day=DAY):
    cfg = Config()
    clock = VirtualClock(datetime(2026, 11, 20, 8, 59, tzinfo=IST))
    seen = []
    SimDriver(clock, day_plan(day, cfg.session), lambda job: seen.append((clock.now(), job)),
              lambda: False).run()
    return seen


def test_phases_fire_once_at_their_times():
    seen = [(t.strftime("%H:%M:%S"), j) for t, j in fire_times() if j != "monitor"]
    assert seen == [("09:00:00", "pre_open"), ("09:15:00", "market_open"), ("10:00:00", "entry_start"),
                    ("10:15:05", "hourly_close"), ("11:15:05", "hourly_close"),
                    ("12:15:05", "hourly_close"), ("13:15:05", "hourly_close"),
                    ("14:15:05", "hourly_close"), ("15:15:05", "hourly_close"),
                    ("15:20:00", "eod_exit"), ("15:30:00", "market_close")]


def test_monitor_every_5_seconds_through_the_session():
    mons = [t for t, j in fire_times() if j == "monitor"]
    assert mons[0].strftime("%H:%M:%S") == "09:15:00" and mons[-1].strftime("%H:%M:%S") == "15:30:00"
    assert all((b - a) == timedelta(seconds=5) for a, b in zip(mons, mons[1:]))
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(hours=5, minutes=30) for t in mons)


def test_phase_runs_before_monitor_at_the_same_instant():
    seen = fire_times()
    at_eod = [j for t, j in seen if t.strftime("%H:%M:%S") == "15:20:00"]
    assert at_eod == ["eod_exit", "monitor"]


def test_hourly_closes_follow_the_session():
    assert [t.strftime("%H:%M") for t in hourly_closes(Config().session)] == [
        "10:15", "11:15", "12:15", "13:15", "14:15", "15:15"]


def test_sim_driver_skips_past_one_off_phases_on_resume():
    cfg = Config()
    clock = VirtualClock(datetime(2026, 11, 20, 11, 37, tzinfo=IST))
    seen = []
    ran_by_catch_up = {"pre_open", "market_open", "entry_start"}
    SimDriver(clock, day_plan(DAY, cfg.session), seen.append, lambda: len(seen) > 3,
              phases_run=ran_by_catch_up).run()
    assert not ran_by_catch_up & set(seen)  # the engine's catch-up ran those: not run twice
    assert seen == ["monitor"] * 4


def test_sim_driver_runs_a_past_phase_not_yet_run_at_once_and_once():
    cfg = Config()
    clock = VirtualClock(datetime(2026, 11, 20, 11, 37, tzinfo=IST))
    seen = []
    SimDriver(clock, day_plan(DAY, cfg.session), lambda j: seen.append((clock.now(), j)),
              lambda: len(seen) > 4).run()
    assert [j for _, j in seen] == ["pre_open", "market_open", "entry_start", "monitor", "monitor"]
    assert [t.strftime("%H:%M:%S") for t, _ in seen] == ["11:37:00"] * 4 + ["11:37:05"]


def test_live_driver_runs_jobs_in_order_one_at_a_time_and_stops():
    now = datetime.now(IST)
    plan = [PlanEntry(f"job{i}", DateTrigger(run_date=now + timedelta(seconds=0.3 + 0.2 * i), timezone=IST))
            for i in range(3)]
    ran, active = [], []

    def run_job(name):
        active.append(name)
        assert len(active) == 1  # never two jobs at once
        assert threading.current_thread() is threading.main_thread()  # single-threaded bot
        _time.sleep(0.05)
        ran.append(name)
        active.pop()

    driver = LiveDriver(plan, run_job, lambda: len(ran) == 3, misfire_grace_sec=30)
    t0 = _time.monotonic()
    driver.run()  # returns when the last job says stop
    assert ran == ["job0", "job1", "job2"] and _time.monotonic() - t0 < 5


def test_live_driver_jobs_can_write_the_journal_opened_on_the_main_thread(tmp_path):
    from rustro.clock import WallClock
    from rustro.journal import Journal
    with Journal.open(tmp_path / "j.sqlite", WallClock()) as j:
        now = datetime.now(IST)
        plan = [PlanEntry("monitor", DateTrigger(run_date=now + timedelta(seconds=0.3), timezone=IST))]
        written = []
        LiveDriver(plan, lambda name: written.append(j.record("vix", {"value": 14.0})),
                   lambda: bool(written), misfire_grace_sec=30).run()
        assert len(written) == 1 and len(j.events()) == 1


def test_sigterm_stops_the_live_loop_between_jobs(tmp_path):
    import os
    import signal
    now = datetime.now(IST)
    plan = [PlanEntry(f"job{i}", DateTrigger(run_date=now + timedelta(seconds=0.2 + 0.3 * i), timezone=IST))
            for i in range(5)]
    ran, stop = [], []
    driver = LiveDriver(plan, ran.append, lambda: bool(stop), misfire_grace_sec=30)

    def on_term(signum, frame):
        stop.append(signum)
        driver.stop()
    old = signal.signal(signal.SIGTERM, on_term)
    try:
        import threading as th
        th.Timer(0.65, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        driver.run()
    finally:
        signal.signal(signal.SIGTERM, old)
    assert stop and 1 <= len(ran) < 5  # stopped early, cleanly
