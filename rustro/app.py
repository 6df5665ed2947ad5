"""Assembling a run: pick the mode, build clock / market data / broker once, run the day.

This is the only place that knows which implementation each mode uses (LESSONS 6: the paper/live
choice is made once, at start, never re-read deep inside services).
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .broker.paper_store import StorePool
from .calendar import TradingCalendar, at, require_known_year
from .clock import AcceleratedClock, VirtualClock, WallClock
from .config import Config
from .credentials import Secrets
from .engine import Services, TradingDay
from .journal import Journal
from .notify import attach as attach_notifier
from .market import recorder
from .scheduler import LiveDriver, SimDriver, day_plan

log = logging.getLogger(__name__)


class UsageError(RuntimeError):
    """A run that cannot start as asked (missing credentials, bad date...)."""


@dataclass
class RunResult:
    day: date
    state: str
    jobs: int
    job_errors: int
    shutdown: str | None


def choose_mode(requested: str | None, cfg: Config, secrets: Secrets) -> str:
    mode = requested or cfg.bot.mode
    if mode == "auto":
        return "paper" if secrets.complete else "sim"
    if mode in ("paper", "live") and not secrets.complete:
        raise UsageError(f"--{mode} needs broker credentials; missing {', '.join(secrets.missing())} "
                         f"(set them in the environment or .env)")
    return mode


def default_sim_day(cal: TradingCalendar, today: date) -> date:
    """Sim without --date replays today if it is a trading day, else the last trading day."""
    return today if cal.is_trading_day(today) else cal.previous_trading_day(today)


def paper_db_path(cfg: Config, journal_path: Path) -> Path:
    if cfg.paper.db:
        p = Path(cfg.paper.db)
        return p if p.is_absolute() else journal_path.parent / p
    return journal_path.with_name(journal_path.stem + ".paper.sqlite")


def load_clock_file(path: str | Path) -> AcceleratedClock:
    """The sandbox's shared clock: {"start": ISO, "wall_epoch": seconds, "factor": N}."""
    import json
    from datetime import datetime
    try:
        d = json.loads(Path(path).read_text())
        return AcceleratedClock(datetime.fromisoformat(d["start"]), float(d["factor"]),
                                float(d["wall_epoch"]))
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"clock file {path}: {exc}") from None


def run_day(cfg: Config, mode: str, journal_path: Path, day: date | None, seed: int | None,
            secrets: Secrets, build_desk=None, extra: dict | None = None,
            clock_file: str | None = None, journal: Journal | None = None) -> RunResult:
    """One trading day. `journal`: an already open journal to write (the backtest's, opened once
    for all its days); it is left open. Otherwise the journal at `journal_path` is opened (durable)
    and closed. `extra["skip_idle"] = False` makes a VirtualClock day run every monitor tick
    (see `_idle_probe`); the default skips the provably idle ones."""
    cal = TradingCalendar.from_config(cfg)
    clock, day = _clock_and_day(cfg, cal, mode, day, clock_file)
    require_known_year(cal, day, mode, cfg.calendar.allow_unknown_year)  # before the journal opens
    forbidden = (secrets.api_key, secrets.client_code, secrets.mpin, secrets.totp_secret)
    owned = journal is None
    if owned:
        # Paper and live keep disk space in reserve for the exits of a day whose disk fills; a
        # simulated day is disposable and does not spend it (a backtest would write one per day).
        journal = Journal.open(journal_path, clock, forbidden=forbidden,
                               reserve_mb=0 if mode == "sim" else cfg.bot.journal_reserve_mb)
    else:
        journal.clock = clock
    svc = notifier = None
    try:
        if mode == "sim" and not clock_file:
            clock = _resume_clock(cfg, clock, journal, day)
        svc = Services(cfg=cfg, clock=clock, journal=journal, calendar=cal, mode=mode,
                       kill_file=journal_path.with_name("KILL"), extra=dict(extra or {}))
        svc.extra["seed"] = cfg.sim.seed if seed is None else seed
        svc.extra["paper_db"] = paper_db_path(cfg, journal_path)
        if build_desk is not None:
            build_desk(svc, day, secrets)
        _crash_seams(journal, svc.broker)
        tday = TradingDay(svc, day)
        if owned:  # a backtest (a journal handed in) sends nothing
            notifier = attach_notifier(cfg, mode, secrets, tday)
        recorder.watch_jobs(svc, tday)  # issue 11: job instants, for replay
        jobs = _drive(cfg, mode, clock, tday, day, clock_file, notifier)
        return RunResult(day, tday.machine.state, jobs, tday.job_errors, tday.shutdown_requested)
    finally:
        _close_run(svc, notifier, journal, owned)


def _drive(cfg: Config, mode: str, clock, tday: TradingDay, day: date, clock_file: str | None,
           notifier) -> int:
    """Start-up, then the driver until the day closes or a signal stops it; jobs run."""
    driver_box: list = []

    def on_signal(signum, _frame):
        name = signal.Signals(signum).name
        tday.request_shutdown(name)
        if driver_box:
            driver_box[0].stop()  # the job running now finishes, then the loop ends

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        tday.startup()
        if notifier is not None:
            notifier.after_job("startup", False)  # a restart is told before the first job
        driver = _driver(cfg, mode, clock, tday, day, virtual=mode == "sim" or bool(clock_file))
        driver_box.append(driver)
        jobs = 0 if tday.done else driver.run()
        if tday.shutdown_requested:
            tday.finish_shutdown()
        return jobs
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _close_run(svc, notifier, journal: Journal, owned: bool) -> None:
    """Whatever the day's end, every party is closed; the journal last."""
    if notifier is not None:
        notifier.close()  # bounded wait for the sender; journals what failed
    try:
        recorder.finish(svc)  # the market-data store's last writes
        if svc is not None and svc.extra.get("stream") is not None:
            svc.extra["stream"].close()  # the WebSocket threads
        if svc is not None and hasattr(svc.broker, "close"):
            svc.broker.close()  # the paper broker's own database
    finally:
        if owned:
            journal.close()
        else:
            journal.flush()  # a backtest's batch: one commit per simulated day


def _resume_clock(cfg: Config, clock, journal: Journal, day: date):
    """A simulated day resumes where its journal stopped, never before."""
    last = journal.last_event(day)
    if last is None or last.ts <= clock.now():
        return clock
    if isinstance(clock, VirtualClock):
        clock.set(last.ts)
        return clock
    journal.clock = AcceleratedClock(last.ts, cfg.sim.speed)
    return journal.clock


def _clock_and_day(cfg: Config, cal: TradingCalendar, mode: str, day: date | None,
                   clock_file: str | None):
    if clock_file:
        clock = load_clock_file(clock_file)
        return clock, clock.now().date()
    if mode == "sim":
        day = day or default_sim_day(cal, WallClock().now().date())
        if cfg.sim.speed > 0:
            return AcceleratedClock(at(day, cfg.session.pre_open), cfg.sim.speed), day
        return VirtualClock(at(day, cfg.session.pre_open)), day
    clock = WallClock()
    today = clock.now().date()
    if day is not None and day != today:
        raise UsageError(f"--date {day} is only for --sim; {mode} trades today ({today})")
    return clock, today


def _driver(cfg: Config, mode: str, clock, tday: TradingDay, day: date, virtual: bool):
    """One loop for every mode (see scheduler.py); phases run by catch-up are not run again."""
    plan = day_plan(day, cfg.session)
    stream = tday.svc.extra.get("stream") if cfg.ws.wake else None  # [ws]: wake on socket data
    if virtual:
        idle = (_idle_probe(tday) if isinstance(clock, VirtualClock)
                and tday.svc.extra.get("skip_idle", True) else None)
        return SimDriver(clock, plan, tday.run_job, lambda: tday.done, phases_run=tday.phases_run,
                         late_warn_sec=None if isinstance(clock, VirtualClock)
                         else cfg.session.misfire_grace_sec, idle_until=idle, stream=stream)
    return LiveDriver(plan, tday.run_job, lambda: tday.done, cfg.session.misfire_grace_sec,
                      clock=clock, phases_run=tday.phases_run, stream=stream)


def _idle_probe(tday: TradingDay):
    """On a VirtualClock only: after each monitor tick, the instant until which the following
    monitor ticks are provably idle (None: run the next one). A tick is idle when the one just run
    journaled nothing and left the desk's state as it found it (a fixed point), and until the
    desk's next change (`idle.next_change`) nothing it reads can change: the market's data,
    reconciliation, EOD (see `TradingDay.job_monitor`). The kill file is looked at here, at
    each skip: a file that appears later is seen by the next tick that runs."""
    if tday.svc.desk is None or not hasattr(tday.svc.desk, "book"):  # a test's stand-in desk
        return None
    tday.idle_tracking = True
    kill = str(tday.svc.kill_file) if tday.svc.kill_file is not None else None

    def idle_until():
        until = tday.idle_until
        if until is None or (kill is not None and os.path.exists(kill)):
            return None
        return until
    return idle_until


def _crash_seams(journal: Journal, broker) -> None:
    """Test seams for scripts/crashtest.py and the recovery tests: SIGKILL after the Nth journal
    commit, after the commit holding an event kind, or after the Nth paper-broker commit."""
    env = os.environ
    if env.get("RUSTRO_CRASH_AFTER_EVENTS"):
        journal.crash_after = int(env["RUSTRO_CRASH_AFTER_EVENTS"])
    journal.crash_after_kind = env.get("RUSTRO_CRASH_AFTER_KIND")
    store = getattr(broker, "store", None)
    if store is not None and env.get("RUSTRO_PAPER_CRASH_AFTER_COMMITS"):
        store.crash_after = int(env["RUSTRO_PAPER_CRASH_AFTER_COMMITS"])


def run_backtest(cfg: Config, journal_path: Path, start: date, end: date, seed: int | None,
                 build_desk, extra: dict | None = None, durable: bool = False) -> list[RunResult]:
    """Simulate every trading day in [start, end] on one journal, one day after the other.

    The journal is opened once for the whole backtest (one integrity check) and, unless `durable`,
    as a disposable journal: synchronous=OFF and one commit per simulated day (see journal.py).
    Each day is still the full bot of `run_day`; only the commit mode differs from `run --sim`."""
    cal = TradingCalendar.from_config(cfg)
    days = cal.trading_days(start, end)
    results: list[RunResult] = []
    if not days:
        return results
    clock = VirtualClock(at(days[0], cfg.session.pre_open))
    journal = Journal.open(journal_path, clock, reserve_mb=0, durable=durable)
    stores = StorePool()  # the paper broker's file, opened once too (broker/paper_store.py)
    extra = {**(extra or {}), "paper_stores": stores}
    try:
        with batch_gc():
            for day in days:
                results.append(run_day(cfg, "sim", journal_path, day, seed, Secrets(),
                                       build_desk=build_desk, extra=extra, journal=journal))
                if results[-1].shutdown:
                    break
    finally:
        try:
            stores.close()
        finally:
            journal.close()
    return results


BATCH_GC_THRESHOLDS = (20_000, 20, 20)


@contextlib.contextmanager
def batch_gc():
    """Fewer cyclic-garbage collections while a backtest runs (restored after).

    A simulated day allocates a few hundred thousand short-lived objects next to ~100 MB of
    long-lived caches (market paths, contracts, parsed master rows); with the default thresholds
    (700, 10, 10) the collector ran ~1,600 times a year, 7 % of the run, mostly re-walking those
    caches. A batch job can collect less often: ~45 runs in under half that time, for 3 MB more
    peak memory (measured on the 2026 year). Nothing the bot decides depends on when garbage is
    collected; a live `run` keeps Python's defaults."""
    before = gc.get_threshold()
    gc.set_threshold(*BATCH_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)

