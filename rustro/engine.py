"""One trading day: the scheduled jobs, start-up recovery and catch-up, and shutdown.

The engine owns no rules: it reads the clock, moves the DayMachine, asks the desk (strategy, risk,
orders, positions) to act, and journals what happened. Every job is idempotent with respect to the
day's state, so a restart simply re-runs the phases whose time has passed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from . import machine as m
from .calendar import TradingCalendar, at
from .recovery import rebuild

log = logging.getLogger(__name__)


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

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.machine.state == m.CLOSED or self.shutdown_requested is not None

    def startup(self) -> None:
        """Recover from the journal, then run every phase whose time has already passed."""
        rec = rebuild(self.journal, self.day)
        self.recovered = rec
        self.machine = m.DayMachine(self.journal, self.day, rec.state)
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

    def catch_up(self) -> None:
        now = self.clock.now()
        s = self.cfg.session
        for job in self.PHASES:
            if self.machine.state == m.CLOSED:
                return
            if at(self.day, getattr(s, job)) <= now:
                self.run_job(job)

    def request_shutdown(self, signame: str) -> None:
        """From a signal handler: journaled at the next safe point, between jobs."""
        self.shutdown_requested = signame

    def finish_shutdown(self) -> None:
        flatten = self.cfg.exits.flatten_on_shutdown
        open_positions = self.svc.desk.open_position_count() if self.svc.desk else 0
        self.journal.record("shutdown", {"signal": self.shutdown_requested, "state": self.machine.state,
                                         "flatten_on_shutdown": flatten,
                                         "open_positions": open_positions}, day=self.day)
        if flatten and open_positions and self.svc.desk is not None:
            self.svc.desk.flatten_all("shutdown")

    # --- job dispatch ----------------------------------------------------------------------
    def run_job(self, job: str) -> None:
        if self.machine.state == m.CLOSED and job != "market_close":
            return
        try:
            getattr(self, f"job_{job}")()
        except Exception as exc:  # a job failure is journaled; the next job still protects positions
            self.job_errors += 1
            log.exception("job %s failed", job)
            self.journal.record("job_error", {"job": job, "error": f"{type(exc).__name__}: {exc}",
                                              "state": self.machine.state}, day=self.day)
            if self.svc.extra.get("raise_job_errors"):
                raise

    def _fire(self, trigger: str, reason: str) -> None:
        src = self.machine.state
        dst = self.machine.fire(trigger, reason)
        log.info("%s  %s -> %s (%s)", self.clock.now().strftime("%H:%M:%S"), src, dst, reason)

    # --- phases ----------------------------------------------------------------------------
    def job_pre_open(self) -> None:
        if self.machine.state != m.PRE_OPEN:
            return
        closed = self.svc.calendar.closed_reason(self.day)
        if closed:
            self.journal.record("holiday", {"reason": closed}, day=self.day)
            self._fire("holiday", closed)
            return
        if self.svc.desk is not None and not self.svc.desk.pre_open_done:
            self.svc.desk.pre_open()

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

    def job_hourly_close(self) -> None:
        if self.svc.desk is None:
            self.journal.record("hourly_signal", {"signal": None, "reason": "no strategy configured"},
                                day=self.day)
            return
        self.svc.desk.on_hourly_close(self)

    def job_monitor(self) -> None:
        if self._kill_switch_pressed():
            return
        if self.svc.desk is not None:
            self.svc.desk.on_monitor(self)

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
        self.journal.record("day_summary", summary, day=self.day)
        self._fire("close", "market closed" if not summary.get("open_positions")
                   else "market closed with positions still open")

    # --- kill switch -----------------------------------------------------------------------
    def _kill_switch_pressed(self) -> bool:
        kf = self.svc.kill_file
        if kf is None or not kf.exists() or self.machine.state in (m.HALTED, m.EOD_EXIT, m.CLOSED):
            return False
        reason = f"kill switch: {kf.name} file present"
        if self.svc.desk is not None:
            self.svc.desk.flatten_all("kill_switch")  # trips (and journals) the kill breaker first
        else:
            self.journal.record("breaker_tripped", {"breaker": "kill_switch", "reason": reason},
                                day=self.day)
        if self.machine.can("halt"):
            self.journal.record("halted", {"reason": reason}, day=self.day)
            self._fire("halt", reason)
        return True

