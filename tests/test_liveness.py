"""A missed close (no `closed` state by 15:35) as `status --json` shows it to cron monitors."""
import json
from datetime import date, datetime, time

from rustro.calendar import TradingCalendar, at
from rustro.clock import IST, VirtualClock
from rustro.config import Config
from rustro.engine import Services, TradingDay
from rustro.journal import Journal
from rustro.liveness import close_check
from rustro.scheduler import SimDriver, day_plan

from conftest import run_cli

PAST = date(2025, 3, 3)  # a Monday, a trading day long past on any machine that runs the suite


def test_close_check_states():
    day = date(2026, 11, 20)  # a Friday, a trading day
    before, after = datetime(2026, 11, 20, 15, 34, tzinfo=IST), datetime(2026, 11, 20, 15, 35, tzinfo=IST)
    assert close_check("managing", day, before)["day_status"] == "open"
    assert close_check(None, day, before)["day_status"] == "not_started"
    for state in ("managing", "halted", "eod_exit", None):  # died, hung, never started
        c = close_check(state, day, after)
        assert (c["day_status"], c["missed_close"]) == ("missed_close", True), state
    c = close_check("closed", day, after)
    assert (c["day_status"], c["missed_close"]) == ("closed", False)
    assert c["close_deadline"] == "2026-11-20T15:35+05:30"
    sunday = date(2026, 11, 22)
    assert close_check(None, sunday, datetime(2026, 11, 23, tzinfo=IST))["day_status"] == "no_trading_day"
    assert close_check(None, date(2026, 11, 24), after, TradingCalendar(extra_holidays=[date(2026, 11, 24)])
                       )["missed_close"] is False


def run_until(path, stop: time | None) -> None:
    cfg = Config()
    clock = VirtualClock(at(PAST, cfg.session.pre_open))
    with Journal.open(path, clock) as j:
        svc = Services(cfg=cfg, clock=clock, journal=j, calendar=TradingCalendar(), mode="sim")
        day = TradingDay(svc, PAST)
        day.startup()
        SimDriver(clock, day_plan(PAST, cfg.session), day.run_job,
                  lambda: day.done or (stop is not None and clock.now() >= at(PAST, stop)),
                  phases_run=day.phases_run).run()


def status(path, *args):
    r = run_cli("status", "--json", "--journal", path, *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_status_json_shows_a_day_that_stopped_before_its_close(tmp_path):
    path = tmp_path / "journal.sqlite"
    run_until(path, time(11, 0))
    s = status(path)
    assert (s["day"], s["state"], s["day_status"], s["missed_close"]) == (
        "2025-03-03", "entry_window", "missed_close", True)
    assert "state entry_window -- MISSED CLOSE" in run_cli("status", "--journal", path).stdout
    run_until(path, None)  # restarted: it runs to the close
    s = status(path)
    assert (s["state"], s["day_status"], s["missed_close"]) == ("closed", "closed", False)
    text = run_cli("status", "--journal", path).stdout
    assert "MISSED CLOSE" not in text


def test_status_of_a_day_never_started_is_a_missed_close(tmp_path):
    path = tmp_path / "journal.sqlite"
    run_until(path, None)
    s = status(path, "--day", "2025-03-04")  # the bot never ran that Tuesday
    assert (s["state"], s["day_status"], s["missed_close"]) == (None, "missed_close", True)
    assert status(path, "--day", "2025-03-08")["day_status"] == "no_trading_day"  # a Saturday
