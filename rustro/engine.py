"""One trading day: the scheduled jobs, start-up recovery and catch-up, and shutdown.

The engine owns no rules: it reads the clock, moves the DayMachine, asks the desk (strategy, risk,
orders, positions) to act, and journals what happened. Every job is idempotent with respect to the
day's state, so a restart simply re-runs the phases whose time has passed.
"""
from __future__ import annotations

import logging
import time as _time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from . import idle
from . import machine as m
from .calendar import TradingCalendar, at, unknown_year_warning
from .backup import backup_at_close
from .journal import JournalFull
from .recovery import rebuild

log = logging.getLogger(__name__)
DISK_FULL = "disk full"  # the shutdown reason when the journal cannot be written


@dataclass
class Services:
    """What a day runs on. Only clock, market data and broker differ between modes."""
    cfg: object
    clock: object
    journal: object
    calendar: TradingCalendar
    mode: str
    market: object = None
    broker: object = None
    desk: object = None          # strategy + risk + orders + positions (see rustro/desk.py)
    kill_file: Path | None = None
    extra: dict = field(default_factory=dict)


class TradingDay:
    PHASES = ("pre_open", "market_open", "entry_start", "eod_exit", "market_close")

    def __init__(self, svc: Services, day: date):
        self.svc, self.cfg, self.day = svc, svc.cfg, day
        self.journal, self.clock = svc.journal, svc.clock
        self.machine = m.DayMachine(svc.journal, day)
        self.shutdown_requested: str | None = None
        self.job_errors = 0
        self.recovered = None
        self.longest_job: tuple[float, str, str] = (0.0, "", "")  # wall seconds, job, when
        self.phases_run: set[str] = set()  # phases run in this process (shared with the driver's agenda)
        self.after_job: list = []  # callables (job, failed) run after every job (rustro/notify.py)

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.machine.state == m.CLOSED or self.shutdown_requested is not None

    def startup(self) -> None:
        """Recover from the journal, then run every phase whose time has already passed."""
        rec = rebuild(self.journal, self.day)
        self.recovered = rec
        self.machine.resume(rec.state)
        if rec.fresh:
            self.journal.record("state_changed", {"src": "none", "dst": m.PRE_OPEN, "trigger": "start",
                                                  "reason": f"{self.svc.mode} run"}, day=self.day)
        else:
            self.journal.record("recovered", rec.summary(), day=self.day)
            log.info("resumed %s in state %s from %d journal events", self.day, rec.state, rec.events)
        if self.svc.desk is not None:
            self.svc.desk.bind(self)
            self.svc.desk.restore(rec)
        self.catch_up()
        if not rec.fresh and self.svc.desk is not None and not self.done:
            self.svc.desk.missed_hourly_close(self)  # a close missed while down, still current

    def catch_up(self) -> None:
        """Run the phases already due, re-reading the clock after each until none is left, so a
        phase that falls due while catch-up itself runs is not missed. Each phase runs once per
        process: `phases_run` records it, and the driver's agenda skips what is in it."""
        s = self.cfg.session
        while not self.done:  # closed, or a signal asked to stop between jobs
            now = self.clock.now()
            due = [job for job in self.PHASES
                   if job not in self.phases_run and at(self.day, getattr(s, job)) <= now]
            if not due:
                return
            self.phases_run.add(due[0])
            self.run_job(due[0])

    def request_shutdown(self, signame: str) -> None:
        """From a signal handler: journaled at the next safe point, between jobs."""
        self.shutdown_requested = signame

    def finish_shutdown(self) -> None:
        flatten = self.cfg.exits.flatten_on_shutdown or self.shutdown_requested == DISK_FULL
        open_positions = self.svc.desk.open_position_count() if self.svc.desk else 0
        self.journal.record("shutdown", {"signal": self.shutdown_requested, "state": self.machine.state,
                                         "flatten_on_shutdown": flatten,
                                         "open_positions": open_positions}, day=self.day)
        desk = self.svc.desk
        if not flatten or desk is None or not (open_positions or desk.ex.live()):
            return
        desk.flatten_all("shutdown")
        # Bounded: the exits' ladders advance on monitor steps until flat or the time is up
        # (systemd's TimeoutStopSec is 120 s). The driver loop has ended, so this waits itself.
        deadline = self.clock.now().timestamp() + self.cfg.exits.shutdown_flatten_sec
        while (len(desk.book) or desk.ex.live()) and self.clock.now().timestamp() < deadline:
            self.clock.sleep(self.cfg.session.monitor_interval_sec)
            self.run_job("monitor")

    # --- job dispatch ----------------------------------------------------------------------
    def run_job(self, job: str) -> None:
        if self.machine.state == m.CLOSED and job != "market_close":
            return
        started = _time.monotonic()  # a measurement of the job, not a trading decision
        failed = False
        try:
            getattr(self, f"job_{job}")()
        except JournalFull as exc:
            self.on_disk_full(job, exc)
        except Exception as exc:  # a job failure is journaled; the next job still protects positions
            failed = True
            self.job_errors += 1
            log.exception("job %s failed", job)
            self.journal.record("job_error", {"job": job, "error": f"{type(exc).__name__}: {exc}",
                                              "state": self.machine.state}, day=self.day)
            if self.svc.extra.get("raise_job_errors"):
                raise
        finally:
            took = _time.monotonic() - started
            if took > self.longest_job[0]:
                self.longest_job = (round(took, 3), job, self.clock.now().isoformat())
            for hook in self.after_job:
                hook(job, failed)

    def on_disk_full(self, job: str, exc: Exception) -> None:
        """The journal cannot grow: free the space reserved at start, say so, and stop after
        flattening (the exits' events fit in the reserve). Nothing unjournaled was ever sent."""
        freed = self.journal.release_reserve()
        log.critical("journal is full during %s (%s): freed %d reserved bytes, flattening and "
                     "stopping", job, exc, freed)
        try:
            self.journal.record("disk_full", {"job": job, "error": str(exc), "reserve_freed": freed,
                                              "state": self.machine.state}, day=self.day)
        except JournalFull:
            log.critical("the journal is still full after releasing the reserve")
        self.request_shutdown(DISK_FULL)

    def _fire(self, trigger: str, reason: str) -> None:
        src = self.machine.state
        dst = self.machine.fire(trigger, reason)
        log.info("%s  %s -> %s (%s)", self.clock.now().strftime("%H:%M:%S"), src, dst, reason)

    # --- phases ----------------------------------------------------------------------------
    def job_pre_open(self) -> None:
        if self.machine.state != m.PRE_OPEN:
            return
        if not self.svc.calendar.covers(self.day):
            self._warn_unknown_year()
        closed = self.svc.calendar.closed_reason(self.day)
        if closed:
            self.journal.record("holiday", {"reason": closed}, day=self.day)
            self._fire("holiday", closed)
            return
        if self.svc.desk is not None and not self.svc.desk.pre_open_done:
            self.svc.desk.pre_open()

    def _warn_unknown_year(self) -> None:
        """Once a day: the holidays of this year are unknown, so a holiday may look open."""
        if not self.journal.events(self.day, kinds=("calendar_unknown_year",)):
            text = unknown_year_warning(self.day)
            log.warning("%s", text)
            self.journal.record("calendar_unknown_year", {"year": self.day.year, "warning": text},
                                day=self.day)

    def job_market_open(self) -> None:
        if self.machine.state == m.PRE_OPEN:
            if self.clock.now() >= at(self.day, self.cfg.session.eod_exit):
                return  # started too late to trade: eod_exit closes the day
            if self.svc.desk is not None and not self.svc.desk.pre_open_done:
                self.svc.desk.pre_open()
            if self.svc.desk is not None and self.svc.desk.halt_reason:
                self._fire("start_warmup", "market open")
                self._fire("halt", self.svc.desk.halt_reason)
                return
            self._fire("start_warmup", "market open")
        if self.machine.state in (m.WARMUP, m.ENTRY_WINDOW, m.MANAGING, m.HALTED):
            if self.svc.desk is not None and not self.svc.desk.warmed_up:
                self.svc.desk.warmup()

    def job_entry_start(self) -> None:
        if self.machine.state == m.WARMUP and self.clock.now() < at(self.day, self.cfg.session.eod_exit):
            self._fire("open_entries", "entry window open")
            desk = self.svc.desk
            if desk is not None and not desk.reconciled and self.machine.can("halt"):
                reason = "reconciliation with the broker has not succeeded: no entries"
                self.journal.record("halted", {"reason": reason}, day=self.day)
                self._fire("halt", reason)

    def job_hourly_close(self) -> None:
        if self.svc.desk is None:
            self.journal.record("hourly_signal", {"signal": None, "reason": "no strategy configured"},
                                day=self.day)
            return
        self.svc.desk.on_hourly_close(self)

    # Idle-tick tracking for the virtual driver (app._idle_probe turns it on; never on a wall or
    # accelerated clock): after a monitor tick, the instant until which further ticks are idle.
    idle_tracking = False
    idle_until = None

    def job_monitor(self) -> None:
        desk = self.svc.desk
        if not self.idle_tracking or desk is None:
            self._kill_switch()
            if desk is not None:
                desk.on_monitor(self)
            return
        # A tick that journals nothing and leaves the desk's state as it found it is a fixed
        # point: run again on the same market data it does the same nothing. Until the desk's
        # next_change (the next change of what a tick reads, reconciliation, EOD) it is repeated.
        self.idle_until = None
        records, state = self.journal.records, self.machine.state
        _, before = idle.next_change(desk, None)
        self._kill_switch()
        desk.on_monitor(self)
        if self.journal.records != records or self.machine.state != state:
            return
        until, after = idle.next_change(desk, self.clock.now())
        if until is not None and after == before:
            self.idle_until = until

    def job_stream(self) -> None:
        """Socket data woke the loop between jobs: react now (rustro/stream.py)."""
        stream = self.svc.extra.get("stream")
        if stream is not None:
            stream.react(self)

    def job_eod_exit(self) -> None:
        if self.machine.state in (m.PRE_OPEN, m.WARMUP, m.ENTRY_WINDOW, m.MANAGING, m.HALTED):
            self._fire("eod", "mandatory end-of-day exit")
        if self.machine.state == m.EOD_EXIT and self.svc.desk is not None:
            self.svc.desk.end_of_day()

    def job_market_close(self) -> None:
        if self.machine.state == m.CLOSED:
            return
        if self.machine.state != m.EOD_EXIT:
            self.job_eod_exit()
        summary = self.svc.desk.day_summary() if self.svc.desk is not None else {}
        summary["longest_job"] = {"wall_sec": self.longest_job[0], "job": self.longest_job[1],
                                  "at": self.longest_job[2]}
        self.journal.record("day_summary", summary, day=self.day)
        self._fire("close", "market closed" if not summary.get("open_positions")
                   else "market closed with positions still open")
        backup_at_close(self.cfg, self.journal, self.day)  # optional; journaled, never raises

    # --- kill switch -----------------------------------------------------------------------
    def _kill_switch(self) -> None:
        """Honoured in every state but closed; acts once, then exits advance on later ticks."""
        kf, desk = self.svc.kill_file, self.svc.desk
        if kf is None or self.machine.state == m.CLOSED or not kf.exists():
            return
        if desk is not None and desk.risk.kill.tripped:
            return
        reason = f"kill switch: {kf.name} file present"
        if desk is not None and desk.pre_open_done:
            desk.flatten_all("kill_switch")  # trips (and journals) the kill breaker first
        elif desk is not None:
            desk.journal_breaker(desk.risk.kill.trip(reason))
            desk.save_risk()
        else:
            self.journal.record("breaker_tripped", {"breaker": "kill_switch", "reason": reason},
                                day=self.day)
        if self.machine.can("halt"):
            self.journal.record("halted", {"reason": reason}, day=self.day)
            self._fire("halt", reason)
