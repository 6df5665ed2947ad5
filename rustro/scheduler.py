"""The day plan as one table of APScheduler triggers, and the two drivers that run it.

Live and paper: APScheduler's BlockingScheduler whose executor runs each job in the scheduler's own
loop on the main thread (so the bot stays single-threaded: one SQLite connection, signals handled
between jobs), with max_instances=1, coalesce=True and a misfire grace. Sim: `SimDriver` asks the *same* trigger objects for their next
fire time, moves the VirtualClock to the earliest and runs that job, so the plan is tested once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .calendar import at
from .clock import IST, AcceleratedClock, VirtualClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanEntry:
    job: str             # name of the engine method run by this entry
    trigger: BaseTrigger


def hourly_closes(session) -> list:
    """Close instants (as times) of the session-aligned hourly bars that close before the close."""
    day = date(2000, 1, 3)
    start, end = at(day, session.market_open), at(day, session.market_close)
    out, t = [], start + timedelta(hours=1)
    while t <= end:
        out.append(t.time())
        t += timedelta(hours=1)
    return out


def day_plan(day: date, session) -> list[PlanEntry]:
    """Every scheduled job of one trading day. Order matters for jobs due at the same instant."""
    def once(t) -> DateTrigger:
        return DateTrigger(run_date=at(day, t), timezone=IST)

    grace = timedelta(seconds=session.bar_ready_grace_sec)
    closes = [at(day, t) + grace for t in hourly_closes(session)]
    plan = [
        PlanEntry("pre_open", once(session.pre_open)),
        PlanEntry("market_open", once(session.market_open)),
        PlanEntry("entry_start", once(session.entry_start)),
        PlanEntry("eod_exit", once(session.eod_exit)),
        PlanEntry("market_close", once(session.market_close)),
        PlanEntry("hourly_close", CronTrigger(
            year=day.year, month=day.month, day=day.day,
            hour=",".join(sorted({str(c.hour) for c in closes})),
            minute=closes[0].minute, second=closes[0].second, timezone=IST)),
        PlanEntry("monitor", IntervalTrigger(
            seconds=session.monitor_interval_sec, start_date=at(day, session.market_open),
            end_date=at(day, session.market_close), timezone=IST)),
    ]
    return plan


class SimDriver:
    """Runs the plan on a VirtualClock (or an AcceleratedClock) as fast as it allows."""

    def __init__(self, clock: VirtualClock | AcceleratedClock, plan: list[PlanEntry],
                 run_job: Callable[[str], None], should_stop: Callable[[], bool]):
        self.clock = clock
        self.plan = plan
        self.run_job = run_job
        self.should_stop = should_stop

    def run(self) -> int:
        """Run jobs until `should_stop()`; returns the number of jobs run."""
        now = self.clock.now()
        due: list[datetime | None] = [e.trigger.get_next_fire_time(None, now) for e in self.plan]
        # One-off phases already past were run by the engine's catch-up, as in live.
        due = [None if t is not None and t < now else t for t in due]
        ran = 0
        while not self.should_stop():
            pending = [(t, i) for i, t in enumerate(due) if t is not None]
            if not pending:
                break
            when, i = min(pending)
            if isinstance(self.clock, VirtualClock):
                if when > self.clock.now():
                    self.clock.set(when)
            else:
                self.clock.sleep_until(when)
            self.run_job(self.plan[i].job)
            ran += 1
            after = max(when, self.clock.now())
            nxt = self.plan[i].trigger.get_next_fire_time(when, after)
            due[i] = nxt if nxt is None or nxt > when else None
            for j, t in enumerate(due):  # a long job pushed the clock past other jobs: coalesce
                if j != i and t is not None and t < self.clock.now() and self.plan[j].job == "monitor":
                    due[j] = self.plan[j].trigger.get_next_fire_time(t, self.clock.now())
        return ran


class LiveDriver:
    """APScheduler BlockingScheduler, jobs run inline on the main thread: no overlap, missed runs
    coalesced, late runs beyond the misfire grace skipped (the engine's catch-up covers phases)."""

    def __init__(self, plan: list[PlanEntry], run_job: Callable[[str], None],
                 should_stop: Callable[[], bool], misfire_grace_sec: int):
        from apscheduler.executors.debug import DebugExecutor

        self.plan = plan
        self.run_job = run_job
        self.should_stop = should_stop
        self.scheduler = _day_loop()(
            timezone=IST, executors={"default": DebugExecutor()},
            job_defaults={"max_instances": 1, "coalesce": True,
                          "misfire_grace_time": misfire_grace_sec})

    def _wrapped(self, job: str) -> None:
        if self.should_stop():
            return
        self.run_job(job)
        if self.should_stop():
            self.scheduler.stop_requested = True

    def run(self) -> int:
        for i, entry in enumerate(self.plan):
            self.scheduler.add_job(self._wrapped, entry.trigger, args=[entry.job],
                                   id=f"{entry.job}-{i}", name=entry.job)
        self.scheduler.start()
        return 0

    def stop(self) -> None:
        """From a signal handler: the job running now finishes, then the loop ends."""
        self.scheduler.stop_requested = True
        if self.scheduler.running:
            self.scheduler.wakeup()


def _day_loop():
    from apscheduler.schedulers.blocking import BlockingScheduler

    class DayLoop(BlockingScheduler):
        """Stops only between job batches, so a job is never cut short and APScheduler's job store
        is never shut under a job that is still running."""
        stop_requested = False

        def _process_jobs(self):
            wait = super()._process_jobs()
            if self.stop_requested:
                self.shutdown(wait=False)
            return wait

    return DayLoop
