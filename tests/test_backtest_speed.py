"""A fast backtest is the same bot: skipped idle ticks, batched journal commits, shared synthetic
caches and one-price-at-a-time option pricing change no trade, no event and no price.

* 20 consecutive days (and scenario days that trip the VIX, daily-loss and consecutive-loss
  breakers) run both ways — `run_backtest` as it is now (idle monitor ticks skipped, one journal
  opened once, not durable, committed per day) and `run_day` per day with every 5-second tick on a
  durable journal opened per day — and give the same journal: every event with its timestamp and
  payload (the wall-clock `longest_job` of the day summary aside), and the same derived tables;
* the journal's batch mode: a group still rolls back alone, nothing is visible to another reader
  before `flush`, `close` flushes, and `run` stays durable;
* the driver skips only on a VirtualClock and never past another job's fire time;
* the scalar option pricing equals the NumPy functions bit for bit, and the market's
  `next_change` promise holds minute by minute (and is withdrawn when a read is replaced).
"""
import dataclasses
import json
import math
import sqlite3
from datetime import date, datetime, time, timedelta

import numpy as np
import pytest
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rustro import journal as journal_mod
from rustro.app import run_backtest, run_day
from rustro.calendar import TradingCalendar, at
from rustro.clock import IST, AcceleratedClock, VirtualClock
from rustro.config import Config, ExitsConfig, RiskConfig, UnderlyingConfig
from rustro.credentials import Secrets
from rustro.desk import build_desk
from rustro.journal import Journal
from rustro.market.options import (black76, black76_scalar, implied_vol_from_vix,
                                   implied_vol_scalar, norm_cdf, norm_cdf_scalar,
                                   option_quote_from_price, spread_width)
from rustro.market.synthetic import SyntheticMarket
from rustro.market.synthetic_paths import DayScenario, VIX_TOKEN
from rustro.scheduler import Agenda, PlanEntry, SimDriver, day_plan

TABLES = {"orders": "tag", "fills": "fill_id", "positions": "position_id",
          "risk_state": "trading_day", "transitions": "seq", "day_state": "trading_day"}


# --- the same journal both ways ------------------------------------------------------------------
def journal_content(path):
    """Events (ts, day, kind, payload; a day summary's wall-clock longest_job left out), derived
    tables and instruments, as comparable values."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        events = []
        for ts, day, kind, payload in conn.execute(
                "SELECT ts, trading_day, kind, payload FROM events ORDER BY seq"):
            p = json.loads(payload)
            if kind == "day_summary":
                p.pop("longest_job", None)
            events.append((ts, day, kind, p))
        tables = {t: conn.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall()
                  for t, key in TABLES.items()}
        tables["v_trades"] = conn.execute("SELECT * FROM v_trades ORDER BY 1, 2, 3").fetchall()
        tables["instruments"] = conn.execute(
            "SELECT COUNT(*), SUM(strike), MIN(token), MAX(token) FROM instruments").fetchall()
        return events, tables
    finally:
        conn.close()


def every_tick_day_by_day(tmp_path, cfg, days, extra=None):
    """The reference: `run_day` per day, durable journal opened per day, no tick skipped."""
    path = tmp_path / "ref" / "journal.sqlite"
    path.parent.mkdir()
    for d in days:
        res = run_day(cfg, "sim", path, d, 42, Secrets(), build_desk=build_desk,
                      extra={**(extra or {}), "skip_idle": False, "raise_job_errors": True})
        assert res.state == "closed" and res.job_errors == 0
    return path


def fast_backtest(tmp_path, cfg, start, end, extra=None):
    path = tmp_path / "fast" / "journal.sqlite"
    path.parent.mkdir()
    results = run_backtest(cfg, path, start, end, 42, build_desk,
                           extra={**(extra or {}), "raise_job_errors": True})
    assert all(r.state == "closed" and r.job_errors == 0 for r in results)
    return path, results


def assert_same_journal(ref, fast):
    ref_events, ref_tables = journal_content(ref)
    fast_events, fast_tables = journal_content(fast)
    for i, (a, b) in enumerate(zip(ref_events, fast_events)):
        assert a == b, f"event {i} differs:\n every tick: {a}\n skipping:   {b}"
    assert len(ref_events) == len(fast_events)
    for name in ref_tables:
        assert ref_tables[name] == fast_tables[name], name


def test_twenty_consecutive_days_same_journal_with_idle_ticks_skipped(tmp_path):
    cfg = Config()
    days = TradingCalendar().trading_days(date(2026, 10, 1), date(2026, 10, 30))
    assert len(days) == 20
    ref = every_tick_day_by_day(tmp_path, cfg, days)
    fast, results = fast_backtest(tmp_path, cfg, days[0], days[-1])
    assert_same_journal(ref, fast)
    events, tables = journal_content(fast)
    assert len(tables["v_trades"]) >= 5 and any(e[2] == "stop_updated" for e in events)
    # the skipping really happened: about one tick a minute instead of twelve
    assert sum(r.jobs for r in results) < len(days) * 4500 / 8


SCENARIOS = {
    # the VIX breaker trips on a spike with a position open (and resets later in the day)
    "vix": (date(2026, 11, 5),
            dict(exits=ExitsConfig(stop_loss_pct=0.6, trail_activate_pct=0.5, trail_gap_pct=0.3)),
            {date(2026, 11, 5): DayScenario(vix_spike_at=time(11, 0))}),
    # a hard stop, then the daily-loss breaker halts the day
    "daily_loss": (date(2026, 7, 15), {}, None),
    # the daily-loss breaker reads the price the previous tick marked: it trips at 10:16:05, on
    # the tick after the minute's price change, which is why a tick is skipped only after one
    # that left the desk's state as it found it
    "daily_loss_lag": (date(2026, 10, 14),
                       dict(exits=ExitsConfig(stop_loss_pct=0.6, trail_activate_pct=0.5,
                                              trail_gap_pct=0.3),
                            risk=RiskConfig(daily_loss_limit_pct=0.1)),
                       None),
    # three losing trades in a row on three underlyings halt entries
    "consecutive": (date(2026, 10, 14),
                    dict(underlyings=(UnderlyingConfig(),
                                      UnderlyingConfig("BANKNIFTY", "Nifty Bank", 100, 600),
                                      UnderlyingConfig("FINNIFTY", "Nifty Fin Service", 50, 1800)),
                         exits=ExitsConfig(stop_loss_pct=0.02),
                         risk=RiskConfig(max_trades_per_day=8, reentry_cooldown_min=0)),
                    None),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_breaker_days_same_journal_with_idle_ticks_skipped(tmp_path, name):
    day, changes, scenarios = SCENARIOS[name]
    cfg = dataclasses.replace(Config(), **changes)
    extra = {"scenarios": scenarios}
    ref = every_tick_day_by_day(tmp_path, cfg, [day], extra)
    fast, _ = fast_backtest(tmp_path, cfg, day, day, extra)
    assert_same_journal(ref, fast)
    trips = {e[3]["breaker"]: e[0] for e in journal_content(fast)[0] if e[2] == "breaker_tripped"}
    assert {"vix": "vix", "daily_loss": "daily_loss", "daily_loss_lag": "daily_loss",
            "consecutive": "consecutive_losses"}[name] in trips
    if name == "daily_loss_lag":
        assert trips["daily_loss"] == "2026-10-14T10:16:05+05:30"


def test_a_sim_run_skips_by_default_with_the_same_journal(tmp_path):
    day = date(2026, 10, 14)
    skip = run_day(Config(), "sim", tmp_path / "a.sqlite", day, 42, Secrets(), build_desk=build_desk)
    ref = run_day(Config(), "sim", tmp_path / "b.sqlite", day, 42, Secrets(), build_desk=build_desk,
                  extra={"skip_idle": False})
    assert skip.jobs < ref.jobs / 4
    assert journal_content(tmp_path / "a.sqlite") == journal_content(tmp_path / "b.sqlite")


def test_a_kill_file_is_honoured_at_the_same_tick_when_skipping(tmp_path):
    """The KILL file appears while a position is open (written from inside a job, as an operator
    would between two ticks): both ways, the same tick sees it and the same exits follow."""
    from fakes import on_event
    paths = []
    for name, extra in (("skip", None), ("every", {"skip_idle": False})):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "journal.sqlite"
        res = run_day(Config(), "sim", path, date(2026, 10, 14), 42, Secrets(), extra=extra,
                      build_desk=on_event("position_opened",
                                          lambda svc: svc.kill_file.write_text("stop")))
        assert res.state == "closed"
        paths.append(path)
    events, _ = journal_content(paths[0])
    assert any(e[2] == "breaker_tripped" and e[3]["breaker"] == "kill_switch" for e in events)
    assert journal_content(paths[0]) == journal_content(paths[1])


# --- the journal's commit modes ------------------------------------------------------------------
def _reader_count(path):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    finally:
        conn.close()


def test_batch_journal_commits_on_flush_and_a_group_still_rolls_back_alone(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock, durable=False) as j:
        assert j.conn.execute("PRAGMA synchronous").fetchone()[0] == 0
        j.record("vix", {"value": 14.0})
        with pytest.raises(RuntimeError):
            with j.transaction():
                j.record("vix", {"value": 15.0})
                raise RuntimeError("a decision that could not be completed")
        with j.transaction():
            j.record("vix", {"value": 16.0})
            j.record("vix", {"value": 17.0})
        assert _reader_count(path) == 0  # nothing committed yet: one batch
        assert [e.payload["value"] for e in j.events()] == [14.0, 16.0, 17.0]
        j.flush()
        assert _reader_count(path) == 3
        j.record("vix", {"value": 18.0})
    assert _reader_count(path) == 4  # close flushes
    with Journal.open(path, vclock) as j:  # durable again: every group is a commit
        assert j.durable and j.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        j.record("vix", {"value": 19.0})
        assert _reader_count(path) == 5


def test_backtest_opens_its_journal_once_and_commits_per_day(tmp_path, monkeypatch):
    checks, flushes = [], []
    real_check, real_flush = journal_mod._check_integrity, Journal.flush
    monkeypatch.setattr(journal_mod, "_check_integrity", lambda c, p: (checks.append(p), real_check(c, p)))

    def flush(self):
        if not self.durable and self.conn.in_transaction and not self._depth:
            flushes.append(self.clock.now().date())
        real_flush(self)
    monkeypatch.setattr(Journal, "flush", flush)
    path = tmp_path / "journal.sqlite"
    results = run_backtest(Config(), path, date(2026, 10, 12), date(2026, 10, 14), 42, build_desk)
    assert [r.day for r in results] == [date(2026, 10, 12), date(2026, 10, 13), date(2026, 10, 14)]
    assert len(checks) == 1
    assert flushes == [r.day for r in results]  # one commit per simulated day
    with Journal.open_readonly(path) as j:
        assert [r[0] for r in j.query("SELECT state FROM day_state ORDER BY trading_day")] == ["closed"] * 3


def test_a_backtest_collects_garbage_in_batches_and_restores_the_thresholds(tmp_path, monkeypatch):
    import gc
    from rustro import app
    seen = []
    real_run_day = app.run_day
    monkeypatch.setattr(app, "run_day", lambda *a, **k: (seen.append(gc.get_threshold()),
                                                         real_run_day(*a, **k))[1])
    before = gc.get_threshold()
    run_backtest(Config(), tmp_path / "journal.sqlite", date(2026, 10, 12), date(2026, 10, 13), 42,
                 build_desk)
    assert seen == [app.BATCH_GC_THRESHOLDS] * 2 and gc.get_threshold() == before
    with pytest.raises(RuntimeError):  # restored when a day raises, too
        with app.batch_gc():
            raise RuntimeError("day failed")
    assert gc.get_threshold() == before


def test_a_backtest_in_chunks_checks_its_journal_once_unless_it_changed(tmp_path, monkeypatch):
    """The report runs its days in chunks, one run_backtest each: the disposable journal this
    process closed is not integrity-checked again; once another writer touched it, it is."""
    checks = []
    real_check = journal_mod._check_integrity
    monkeypatch.setattr(journal_mod, "_check_integrity", lambda c, p: (checks.append(p), real_check(c, p)))
    path = tmp_path / "journal.sqlite"
    run_backtest(Config(), path, date(2026, 10, 12), date(2026, 10, 13), 42, build_desk)
    with Journal.open_readonly(path) as j:  # the report reads each chunk's days back
        assert len(j.query("SELECT * FROM day_state")) == 2
    run_backtest(Config(), path, date(2026, 10, 14), date(2026, 10, 15), 42, build_desk)
    with Journal.open_readonly(path) as j:
        assert len(j.query("SELECT * FROM day_state")) == 4
    assert len(checks) == 1
    run_day(Config(), "sim", path, date(2026, 10, 16), 42, Secrets(), build_desk=build_desk)
    assert len(checks) == 2  # `run` (durable) always checks
    with Journal.open_readonly(path):
        assert len(checks) == 3  # a reader too, once the file changed since a backtest closed it
    run_backtest(Config(), path, date(2026, 10, 19), date(2026, 10, 19), 42, build_desk)
    assert len(checks) == 4  # the file changed since this process's backtest closed it
    with Journal.open_readonly(path) as j:
        assert len(j.query("SELECT * FROM day_state WHERE state = 'closed'")) == 6


# --- the driver ----------------------------------------------------------------------------------
S = datetime(2026, 11, 20, 9, 15, tzinfo=IST)


def test_agenda_defer_keeps_the_grid_and_never_passes_another_job():
    plan = [PlanEntry("hourly_close", DateTrigger(run_date=S + timedelta(minutes=60, seconds=5),
                                                  timezone=IST)),
            PlanEntry("monitor", IntervalTrigger(seconds=5, start_date=S, end_date=S + timedelta(hours=2),
                                                 timezone=IST))]
    agenda = Agenda(plan, S)
    assert agenda.pop_due(S).job == "monitor"
    assert agenda.defer("monitor", S + timedelta(seconds=61)) == S + timedelta(seconds=65)  # on the grid
    assert agenda.defer("monitor", S + timedelta(hours=3)) == S + timedelta(minutes=60, seconds=5)
    assert agenda.pop_due(S + timedelta(minutes=60, seconds=5)).job == "hourly_close"  # plan order
    assert agenda.pop_due(S + timedelta(minutes=60, seconds=5)).job == "monitor"


def test_only_a_virtual_clock_driver_skips():
    plan = day_plan(date(2026, 11, 20), Config().session)
    probe = lambda: S + timedelta(hours=1)  # noqa: E731
    assert SimDriver(VirtualClock(S), plan, print, lambda: True, idle_until=probe).idle_until is probe
    assert SimDriver(AcceleratedClock(S, 100.0), plan, print, lambda: True,
                     idle_until=probe).idle_until is None


def test_virtual_driver_skips_exactly_what_idle_until_names():
    clock = VirtualClock(datetime(2026, 11, 20, 8, 59, tzinfo=IST))
    seen = []
    driver = SimDriver(clock, day_plan(date(2026, 11, 20), Config().session),
                       lambda job: seen.append((clock.now().strftime("%H:%M:%S"), job)), lambda: False,
                       idle_until=lambda: clock.now().replace(second=0) + timedelta(minutes=1))
    driver.run()
    mons = [t for t, j in seen if j == "monitor"]
    assert mons[:3] == ["09:15:00", "09:16:00", "09:17:00"]
    assert "10:15:05" in mons and "10:16:00" in mons  # after the hourly close, then on the minute
    assert [j for _, j in seen if j != "monitor"] == ["pre_open", "market_open", "entry_start"] + \
        ["hourly_close"] * 6 + ["eod_exit", "market_close"]


# --- prices --------------------------------------------------------------------------------------
def test_scalar_pricing_equals_the_numpy_functions_bit_for_bit():
    rng = np.random.default_rng(7)
    xs = np.concatenate([rng.uniform(-40, 40, 3000), rng.normal(0, 2, 3000),
                         [0.0, -0.0, 7.07106781186547, -7.07106781186547, 37.0, 37.5, -40.0]])
    for x in xs:
        assert norm_cdf_scalar(float(x)) == float(norm_cdf(float(x)))
    for _ in range(6000):
        f = float(rng.uniform(5000, 60000))
        k = float(round(f * rng.uniform(0.7, 1.3) / 50) * 50)
        t = float(rng.choice([0.0, rng.uniform(0, 0.25), rng.uniform(0, 2e-4)]))
        vix, call = float(rng.uniform(8, 80)), bool(rng.integers(2))
        iv = implied_vol_from_vix(vix, k, f, t)
        assert implied_vol_scalar(vix, k, f, t) == iv
        assert black76_scalar(f, k, t, iv, 0.065, call) == black76(f, k, t, iv, 0.065, call)
        m = math.log(k / f)
        assert spread_width(f / 100, m) == float(spread_width(np.float64(f / 100), np.float64(m)))


def test_option_quotes_are_the_array_formula_at_each_minute():
    """SyntheticMarket.quote prices one option at one minute with the scalar functions: the same
    bid and ask as `_option_prices` (the NumPy path it used before) on those scalars."""
    d = date(2026, 10, 14)
    clock = VirtualClock(at(d, time(9, 0)))
    m = SyntheticMarket(clock, 42)
    tokens = [r["token"] for r in m.instrument_master() if r["instrumenttype"] == "OPTIDX"][::23]
    for minute in range(0, 376, 25):
        clock.set(at(d, time(9, 15)) + timedelta(minutes=minute, seconds=3))
        for token in tokens:
            q = m.quote("NFO", token)
            kind, c, day, k, px = m._value("NFO", token)
            spot = float(m._spot_day(c.underlying, day).points[k])
            t = float(m._years_left(c, day)[k])
            theo, _ = m._option_prices(c, spot, float(m._vix_day(day).points[k]), t)
            bid, ask = option_quote_from_price(max(float(theo), 0.0),
                                               math.log(c.strike / (spot * math.exp(m.rate * t))))
            assert (q.ltp, q.bid, q.ask) == (px, bid, ask), (token, minute)


def test_market_next_change_is_the_next_minute_step_and_the_band_exit():
    d = date(2026, 11, 20)
    clock = VirtualClock(at(d, time(8, 0)))
    m = SyntheticMarket(clock, 42)
    assert m.next_change(clock.now()) == at(d, time(9, 15))
    assert m.next_change(at(d, time(11, 7, 5))) == at(d, time(11, 8))
    assert m.next_change(at(d, time(15, 29, 59))) == at(d, time(15, 30))
    assert m.next_change(at(d, time(15, 30))) == at(date(2026, 11, 23), time(9, 15))  # Monday
    # a band: the first minute whose VIX leaves it, found by reading the VIX minute by minute
    clock.set(at(d, time(9, 15)))
    vixes = []
    for k in range(376):
        clock.set(at(d, time(9, 15)) + timedelta(minutes=k))
        vixes.append(m.vix())
    lo, hi = sorted(vixes)[40], sorted(vixes)[-40]
    for k in (0, 50, 200, 374):
        now = at(d, time(9, 15)) + timedelta(minutes=k, seconds=5)
        out = [j for j in range(k + 1, 376) if not lo <= vixes[j] < hi]
        want = at(d, time(9, 15)) + timedelta(minutes=out[0]) if out else at(date(2026, 11, 23), time(9, 15))
        assert m.next_change(now, {VIX_TOKEN: (lo, hi)}) == want
    m.vix = lambda: 99.0  # a replaced read: no promise at all
    assert m.next_change(now) is None and m.next_change(now, {VIX_TOKEN: (lo, hi)}) is None


def test_a_market_with_a_replaced_read_gets_every_tick(tmp_path):
    """A fault injected by replacing a market method withdraws the promise: nothing is skipped."""
    seen = {}

    def build(svc, day, secrets):
        build_desk(svc, day, secrets)
        real = svc.market.vix
        svc.market.vix = lambda: real()
        seen["market"] = svc.market
    res = run_day(Config(), "sim", tmp_path / "j.sqlite", date(2026, 11, 20), 42, Secrets(),
                  build_desk=build)
    assert res.state == "closed" and res.jobs > 4400  # every 5-second tick ran
    assert seen["market"].next_change(at(date(2026, 11, 20), time(12))) is None


def test_run_opens_its_journal_durable_and_only_run_backtest_batches(tmp_path):
    """`run` (run_day on its own) opens the journal durable; only run_backtest batches."""
    path = tmp_path / "j.sqlite"
    opened = []
    real = Journal.open.__func__

    def spy(cls, *a, **kw):
        j = real(cls, *a, **kw)
        opened.append(j.durable)
        return j
    try:
        Journal.open = classmethod(spy)
        run_day(Config(), "sim", path, date(2026, 11, 20), 42, Secrets(), build_desk=build_desk)
        run_backtest(Config(), tmp_path / "b.sqlite", date(2026, 11, 20), date(2026, 11, 20), 42,
                     build_desk)
    finally:
        Journal.open = classmethod(real)
    assert opened == [True, False]
