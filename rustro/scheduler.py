"""The day plan as one table of APScheduler triggers, and the one loop that runs it in every mode.

`day_plan` is the plan: APScheduler trigger objects (a DateTrigger per phase, a CronTrigger for the
hourly bar closes, an IntervalTrigger for the monitor). `Agenda` is the single step function over
it, shared by sim, backtest, the sandbox rehearsal, paper and live, so the sim can never be kinder
than live:

* a phase (pre_open, market_open, entry_start, eod_exit, market_close) is never skipped: late by any
  amount it runs at once, once per process (phases are idempotent, and one already run by the
  engine's catch-up is not run again: the agenda shares `TradingDay.phases_run`);
* an interval job (monitor, hourly_close) that is late runs once, then is re-armed from the clock's
  now (its next fire time after now), never from the missed schedule, so it cannot fall behind;
* jobs due at the same instant run in plan order (phases before the monitor).

The drivers differ only in how they wait for the next due job: a VirtualClock jumps to it; an
AcceleratedClock or the WallClock sleeps in slices of at most 0.5 s real time, so a signal handler
that sets the stop flag ends the loop between jobs promptly.

On a VirtualClock only, the driver may also be given `idle_until`: asked after each monitor tick,
it names an instant before which every further monitor tick is provably idle (the engine and the
desk prove it: see `app._idle_probe`), and the agenda then re-arms the monitor at its first fire
time at or after that instant, never past the next fire time of any other job (`Agenda.defer`).
The ticks that run are the ones that would have run, at the same instants; the skipped ones would
have journaled nothing and changed nothing. A driver on any other clock never skips.

Every job runs inline on the main thread, one at a time (one SQLite connection, signals handled
between jobs).

Live no longer runs on APScheduler's BlockingScheduler: it drops a one-off job that is later than
its misfire grace (after one long job, eod_exit and market_close never ran and the process stayed
up) and re-arms from the schedule, and running the sim through a second step function is how that
went unseen. The triggers are still APScheduler's; only the loop is ours.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, NamedTuple

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .calendar import at
from .clock import IST, AcceleratedClock, VirtualClock, WallClock

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


class DueJob(NamedTuple):
    job: str
    scheduled: datetime  # the fire time it was due at (earlier than now when late)


def _one_off(trigger: BaseTrigger) -> bool:
    return isinstance(trigger, DateTrigger)


def _next_after(trigger: BaseTrigger, fired: datetime, now: datetime) -> datetime | None:
    """The trigger's next fire time after both `fired` and `now`: fire times missed while a job
    ran are coalesced into the run just made, never replayed. A one-off gives None."""
    nxt = trigger.get_next_fire_time(fired, now)
    while nxt is not None and nxt <= now:
        nxt = trigger.get_next_fire_time(nxt, now)
    return nxt


class Agenda:
    """The step function every driver shares: what is due next, and take the next due job.

    `phases_run` is the set of one-off jobs (phases) already run in this process; it is shared with
    the engine (`TradingDay.phases_run`), so a phase run by catch-up is not run again, and a phase
    taken from the agenda is added to it.
    """

    def __init__(self, plan: list[PlanEntry], now: datetime, phases_run: set[str] | None = None):
        self.plan = list(plan)
        self.phases_run = set() if phases_run is None else phases_run
        # A one-off keeps its (possibly past) date: late, it is due at once, never dropped.
        self._due: list[datetime | None] = [
            None if _one_off(e.trigger) and e.job in self.phases_run
            else e.trigger.get_next_fire_time(None, now) for e in self.plan]

    def next_due(self) -> datetime | None:
        """The earliest fire time still pending (may be in the past), or None when the day is done."""
        pending = [t for t in self._due if t is not None]
        return min(pending) if pending else None

    def pop_due(self, now: datetime) -> DueJob | None:
        """Take the job due at `now` that was due first (plan order at the same instant), and re-arm
        its trigger from `now`. None if nothing is due yet. The caller runs the job."""
        while True:
            best = None
            for i, t in enumerate(self._due):
                if t is not None and t <= now and (best is None or t < self._due[best]):
                    best = i
            if best is None:
                return None
            entry, when = self.plan[best], self._due[best]
            self._due[best] = _next_after(entry.trigger, when, now)
            if _one_off(entry.trigger):
                if entry.job in self.phases_run:  # run meanwhile (by catch-up): once per process
                    continue
                self.phases_run.add(entry.job)
            return DueJob(entry.job, when)

    def defer(self, job: str, until: datetime) -> datetime | None:
        """Skip the interval job `job`'s fire times before `until` (the caller proved them idle),
        but not past the next pending fire time of any other job: the job is re-armed at its
        trigger's first fire time at or after the earlier of the two (same grid, same end date).
        Returns its new due time."""
        mine = [i for i, e in enumerate(self.plan) if e.job == job and not _one_off(e.trigger)]
        limit = min([until] + [t for i, t in enumerate(self._due) if t is not None and i not in mine])
        for i in mine:
            t = self._due[i]
            if t is not None and t < limit:
                self._due[i] = self.plan[i].trigger.get_next_fire_time(None, limit)
        due = [self._due[i] for i in mine if self._due[i] is not None]
        return min(due) if due else None


class DayDriver:
    """Runs the plan's jobs through an `Agenda` until it is empty or `should_stop()` / `stop()`.

    `phases_run`: phases already run in this process (pass `TradingDay.phases_run`).
    `late_warn_sec`: a job starting later than this is logged as late; it still runs.
    `idle_until`: VirtualClock only (ignored on any other clock): called after each `IDLE_JOB`
    run, the instant before which that job's further runs are provably idle, or None.
    `stream`: any clock but a VirtualClock (ignored there): the WebSocket hub. While waiting for
    the next job the driver sleeps on `stream.wait(wall_sec)` instead, and when it returns True
    (an urgent tick or order update arrived) runs the `STREAM_JOB` at once, between jobs.
    """

    SLICE_SEC = 0.5  # longest real-time sleep between two stop checks
    IDLE_JOB = "monitor"
    STREAM_JOB = "stream"

    def __init__(self, clock, plan: list[PlanEntry], run_job: Callable[[str], None],
                 should_stop: Callable[[], bool], *, phases_run: set[str] | None = None,
                 late_warn_sec: float | None = None,
                 idle_until: Callable[[], datetime | None] | None = None, stream=None):
        self.clock = clock
        self.plan = plan
        self.run_job = run_job
        self.should_stop = should_stop
        self.phases_run = set() if phases_run is None else phases_run
        self.late_warn_sec = late_warn_sec
        self.stop_requested = False
        self.agenda: Agenda | None = None
        self.idle_until = idle_until if isinstance(clock, VirtualClock) else None
        self.stream = None if isinstance(clock, VirtualClock) else stream
        self.wakes = 0  # stream jobs run between scheduled jobs
        self.deferrals = 0  # how many times the idle job was deferred (tests, benchmarks)

    def stop(self) -> None:
        """From a signal handler: the job running now finishes, then the loop ends."""
        self.stop_requested = True

    def _stopped(self) -> bool:
        return self.stop_requested or self.should_stop()

    def run(self) -> int:
        """Run jobs until the plan is exhausted or a stop; returns the number of jobs run."""
        self.agenda = agenda = Agenda(self.plan, self.clock.now(), self.phases_run)
        ran = 0
        while not self._stopped():
            when = agenda.next_due()
            if when is None or not self._wait_until(when):
                break
            now = self.clock.now()
            due = agenda.pop_due(now)
            if due is None:
                continue
            late = (now - due.scheduled).total_seconds()
            if self.late_warn_sec is not None and late > self.late_warn_sec:
                log.warning("job %s runs %.0f s late (due %s)", due.job, late,
                            due.scheduled.strftime("%H:%M:%S"))
            self.run_job(due.job)
            ran += 1
            if self.idle_until is not None and due.job == self.IDLE_JOB:
                until = self.idle_until()
                if until is not None and until > self.clock.now():
                    agenda.defer(self.IDLE_JOB, until)
                    self.deferrals += 1
        return ran

    def _wait_until(self, when: datetime) -> bool:
        """Until the clock reaches `when`; False if stopped while waiting."""
        if isinstance(self.clock, VirtualClock):
            if when > self.clock.now():
                self.clock.set(when)
            return True
        slice_sec = self.SLICE_SEC * getattr(self.clock, "factor", 1.0)  # in clock seconds
        while True:
            left = (when - self.clock.now()).total_seconds()
            if left <= 0:
                return True
            if self._stopped():
                return False
            if self.stream is None:
                self.clock.sleep(min(left, slice_sec))
            elif self.stream.wait(min(left, slice_sec) / getattr(self.clock, "factor", 1.0)):
                self.wakes += 1
                self.run_job(self.STREAM_JOB)


class SimDriver(DayDriver):
    """Sim, backtest and the sandbox rehearsal: a VirtualClock (jumps) or an AcceleratedClock."""

    def __init__(self, clock: VirtualClock | AcceleratedClock, plan: list[PlanEntry],
                 run_job: Callable[[str], None], should_stop: Callable[[], bool], *,
                 phases_run: set[str] | None = None, late_warn_sec: float | None = None,
                 idle_until: Callable[[], datetime | None] | None = None, stream=None):
        super().__init__(clock, plan, run_job, should_stop, phases_run=phases_run,
                         late_warn_sec=late_warn_sec, idle_until=idle_until, stream=stream)


class LiveDriver(DayDriver):
    """Paper and live: the same loop on the WallClock (or any clock given, for tests).

    `misfire_grace_sec` no longer skips anything: a job later than that is only logged as late."""

    def __init__(self, plan: list[PlanEntry], run_job: Callable[[str], None],
                 should_stop: Callable[[], bool], misfire_grace_sec: float | None = None, *,
                 clock=None, phases_run: set[str] | None = None, stream=None):
        super().__init__(clock if clock is not None else WallClock(), plan, run_job, should_stop,
                         phases_run=phases_run, late_warn_sec=misfire_grace_sec, stream=stream)
