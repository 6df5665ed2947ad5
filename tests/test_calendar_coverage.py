"""Years without holiday data: known years, check-config and pre-open warnings, `run --live` refusal."""
import json
import time as _time
from datetime import date

import pytest
from freezegun import freeze_time

from rustro import cli
from rustro.calendar import (TradingCalendar, coverage_warnings, require_known_year, shipped_holidays,
                             shipped_years)
from rustro.config import ConfigError, parse_config
from rustro.journal import Journal

from conftest import REPO, run_cli

FAKE_CREDENTIALS = {"SMARTAPI_API_KEY": "k-not-real", "SMARTAPI_CLIENT_CODE": "C0000000",
                    "SMARTAPI_MPIN": "0000", "SMARTAPI_TOTP_SECRET": "JBSWY3DPEHPK3PXP"}


def test_known_years_are_the_tables_of_holidays_toml():
    assert shipped_years() == {2025, 2026}
    # every shipped date sits in the table of its own year (a typo such as 2026 under [2025] is caught)
    assert {d.year for d in shipped_holidays()} == set(shipped_years())
    cal = TradingCalendar()
    assert cal.covers(date(2026, 12, 31)) and cal.covers(date(2025, 1, 1))
    assert not cal.covers(date(2027, 1, 1)) and not cal.covers(date(2024, 12, 31))
    assert cal.unknown_years(date(2026, 12, 1), date(2028, 1, 5)) == [2027, 2028]


def test_an_extra_holiday_makes_its_year_known():
    cal = TradingCalendar.from_config(parse_config({"calendar": {"extra_holidays": ["2027-01-26"]}}))
    assert cal.covers(date(2027, 6, 1))
    assert not cal.covers(date(2028, 6, 1))
    assert not TradingCalendar(holidays={}).covers(date(2026, 6, 1))


def test_coverage_warnings_look_thirty_days_ahead():
    cal = TradingCalendar()
    assert coverage_warnings(cal, date(2026, 11, 30)) == []
    warned = coverage_warnings(cal, date(2026, 12, 2))
    assert len(warned) == 1 and "2027" in warned[0] and "holidays.toml" in warned[0]


def test_live_refuses_an_unknown_year_unless_allowed():
    cal = TradingCalendar()
    with pytest.raises(ConfigError) as exc:
        require_known_year(cal, date(2027, 1, 5), "live", allow_unknown_year=False)
    assert str(exc.value).startswith("calendar.allow_unknown_year: no NSE holiday data for 2027")
    require_known_year(cal, date(2027, 1, 5), "live", allow_unknown_year=True)
    require_known_year(cal, date(2027, 1, 5), "paper", allow_unknown_year=False)  # paper: a warning only
    require_known_year(cal, date(2026, 1, 5), "live", allow_unknown_year=False)


def test_allow_unknown_year_is_a_config_key():
    assert parse_config({"calendar": {"allow_unknown_year": True}}).calendar.allow_unknown_year is True
    with pytest.raises(ConfigError, match="calendar.allow_unknown_year: must be true or false"):
        parse_config({"calendar": {"allow_unknown_year": "yes"}})


def test_run_live_on_an_unknown_year_exits_2_before_anything_is_written(tmp_path):
    clock = tmp_path / "clock.json"  # a rehearsal clock on a day of 2027
    clock.write_text(json.dumps({"start": "2027-01-05T09:00:00+05:30", "wall_epoch": _time.time(),
                                 "factor": 1.0}))
    j = tmp_path / "journal.sqlite"
    r = run_cli("run", "--live", "--clock", clock, "--journal", j, "--config", REPO / "config.toml",
                env_extra=FAKE_CREDENTIALS, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "config error: calendar.allow_unknown_year: no NSE holiday data for 2027" in r.stderr
    assert not j.exists()
    for secret in FAKE_CREDENTIALS.values():
        assert secret not in r.stderr + r.stdout


def test_pre_open_journals_the_unknown_year_once(tmp_path):
    j = tmp_path / "journal.sqlite"
    runs = [run_cli("run", "--sim", "--date", "2027-01-05", "--journal", j, "--quiet") for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert "no NSE holiday data for 2027" in runs[0].stderr  # logged as well as journaled
    with Journal.open_readonly(j) as jj:
        warned = jj.events(kinds=("calendar_unknown_year",))
        assert len(warned) == 1 and warned[0].payload["year"] == 2027
        assert jj.day_state(date(2027, 1, 5)) == "closed"
    r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", tmp_path / "k.sqlite", "--quiet")
    with Journal.open_readonly(tmp_path / "k.sqlite") as jj:
        assert jj.events(kinds=("calendar_unknown_year",)) == []


@pytest.mark.parametrize("today,warned", [("2026-12-15", True), ("2026-06-15", False)])
def test_check_config_warns_about_the_coming_year(capsys, today, warned):
    with freeze_time(f"{today} 08:00:00+05:30"):
        assert cli.main(["check-config", "--config", str(REPO / "config.toml")]) == 0
    err = capsys.readouterr().err
    assert ("warning: calendar: no NSE holiday data for 2027" in err) is warned
