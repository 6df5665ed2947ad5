"""NSE calendar (trading days, expiries, DTE) and the clocks every decision reads."""
import time as _time
from datetime import date, datetime, time, timedelta, timezone

import pytest

from rustro.calendar import TradingCalendar, at, dte, shipped_holidays
from rustro.clock import IST, AcceleratedClock, VirtualClock, WallClock, ist
from rustro.config import Config, parse_config

D = date
CAL = TradingCalendar()
IST_OFFSET = timedelta(hours=5, minutes=30)


# --- trading days ---------------------------------------------------------------------------------

@pytest.mark.parametrize("day,reason", [
    (D(2026, 1, 26), "NSE holiday: Republic Day"),
    (D(2025, 8, 15), "NSE holiday: Independence Day"),
    (D(2026, 3, 3), "NSE holiday: Holi"),
    (D(2026, 1, 24), "weekend (Saturday)"),
    (D(2026, 1, 25), "weekend (Sunday)"),
])
def test_closed_days_say_why(day, reason):
    assert CAL.closed_reason(day) == reason
    assert not CAL.is_trading_day(day)


@pytest.mark.parametrize("day", [D(2026, 1, 23), D(2026, 1, 27), D(2025, 8, 14), D(2026, 11, 20)])
def test_ordinary_weekdays_are_open(day):
    assert CAL.closed_reason(day) is None
    assert CAL.is_trading_day(day)


def test_shipped_holidays_are_named_weekdays_of_2025_and_2026():
    hols = shipped_holidays()
    assert len(hols) >= 25
    assert {d.year for d in hols} == {2025, 2026}
    assert all(d.weekday() < 5 and name.strip() for d, name in hols.items())


def test_extra_holiday_closes_a_weekday():
    cal = TradingCalendar(extra_holidays=[D(2026, 12, 31)])
    assert CAL.is_trading_day(D(2026, 12, 31))
    assert cal.closed_reason(D(2026, 12, 31)) == "NSE holiday: holiday (config calendar.extra_holidays)"
    assert cal.next_trading_day(D(2026, 12, 30)) == D(2027, 1, 1)


def test_extra_holiday_on_a_shipped_holiday_keeps_its_name():
    cal = TradingCalendar(extra_holidays=[D(2026, 1, 26)])
    assert cal.closed_reason(D(2026, 1, 26)) == "NSE holiday: Republic Day"


def test_extra_trading_day_opens_a_weekend_and_a_holiday():
    cal = TradingCalendar(extra_trading_days=[D(2026, 11, 8), D(2026, 11, 10)])
    assert cal.is_trading_day(D(2026, 11, 8))   # a Sunday special session
    assert cal.is_trading_day(D(2026, 11, 10))  # a shipped holiday cancelled
    assert not CAL.is_trading_day(D(2026, 11, 8))
    assert cal.next_trading_day(D(2026, 11, 6)) == D(2026, 11, 8)


def test_calendar_from_config():
    cfg = parse_config({"calendar": {"extra_holidays": ["2026-12-31"], "extra_trading_days": ["2026-11-08"]}})
    cal = TradingCalendar.from_config(cfg)
    assert not cal.is_trading_day(D(2026, 12, 31))
    assert cal.is_trading_day(D(2026, 11, 8))
    assert TradingCalendar.from_config(Config()).holidays == shipped_holidays()


def test_custom_holiday_table_replaces_the_shipped_one():
    cal = TradingCalendar(holidays={})
    assert cal.is_trading_day(D(2026, 1, 26))
    assert not cal.is_trading_day(D(2026, 1, 24))


def test_next_and_previous_across_a_long_weekend():
    # Fri 23 Jan 2026, weekend, Mon 26 Republic Day, Tue 27 open
    assert CAL.next_trading_day(D(2026, 1, 23)) == D(2026, 1, 27)
    assert CAL.previous_trading_day(D(2026, 1, 27)) == D(2026, 1, 23)
    assert CAL.next_trading_day(D(2026, 1, 24)) == D(2026, 1, 27)  # from a closed day too
    # Good Friday 18 Apr 2025: Thu 17 -> Mon 21
    assert CAL.next_trading_day(D(2025, 4, 17)) == D(2025, 4, 21)
    assert CAL.previous_trading_day(D(2025, 4, 21)) == D(2025, 4, 17)
    # next/previous never return the day itself
    assert CAL.next_trading_day(D(2026, 1, 27)) == D(2026, 1, 28)
    assert CAL.previous_trading_day(D(2026, 1, 28)) == D(2026, 1, 27)


def test_trading_days_in_a_month():
    jan = CAL.trading_days(D(2026, 1, 1), D(2026, 1, 31))
    # 31 days - 9 weekend days - Jan 15 and Jan 26
    assert len(jan) == 20
    assert D(2026, 1, 15) not in jan and D(2026, 1, 26) not in jan
    assert jan[0] == D(2026, 1, 1) and jan[-1] == D(2026, 1, 30)
    mar = CAL.trading_days(D(2026, 3, 1), D(2026, 3, 31))
    assert len(mar) == 31 - 9 - 3  # weekends; Holi, Ram Navami, Mahavir Jayanti
    assert CAL.trading_days(D(2026, 1, 27), D(2026, 1, 27)) == [D(2026, 1, 27)]  # inclusive
    assert CAL.trading_days(D(2026, 1, 24), D(2026, 1, 26)) == []


# --- expiries -------------------------------------------------------------------------------------

def test_nifty_weekly_thursday_until_august_2025_then_tuesday():
    got = CAL.expiries("NIFTY", D(2025, 8, 1), D(2025, 9, 30))
    assert got == [D(2025, 8, 7), D(2025, 8, 14), D(2025, 8, 21), D(2025, 8, 28),
                   D(2025, 9, 2), D(2025, 9, 9), D(2025, 9, 16), D(2025, 9, 23), D(2025, 9, 30)]


def test_expiry_weekday_switch():
    assert TradingCalendar.expiry_weekday(D(2025, 8, 31)) == 3
    assert TradingCalendar.expiry_weekday(D(2025, 9, 1)) == 1


def test_weekly_expiries_of_an_ordinary_month():
    assert CAL.expiries("NIFTY", D(2026, 1, 1), D(2026, 1, 31)) == [
        D(2026, 1, 6), D(2026, 1, 13), D(2026, 1, 20), D(2026, 1, 27)]


@pytest.mark.parametrize("holiday,shifted", [
    (D(2026, 3, 3), D(2026, 3, 2)),      # Holi, Tuesday -> Monday
    (D(2026, 11, 24), D(2026, 11, 23)),  # Guru Nanak Jayanti
    (D(2026, 11, 10), D(2026, 11, 9)),   # Diwali Balipratipada
    (D(2025, 10, 21), D(2025, 10, 20)),  # Diwali Laxmi Pujan
    (D(2025, 4, 10), D(2025, 4, 9)),     # Mahavir Jayanti, a Thursday expiry -> Wednesday
])
def test_expiry_on_a_holiday_moves_to_the_previous_trading_day(holiday, shifted):
    got = CAL.expiries("NIFTY", holiday - timedelta(days=7), holiday + timedelta(days=1))
    assert holiday not in got
    assert shifted in got
    assert CAL.is_trading_day(shifted)


def test_holiday_shift_walks_back_over_several_closed_days():
    cal = TradingCalendar(holidays={D(2026, 1, 13): "x", D(2026, 1, 12): "y"})
    assert D(2026, 1, 9) in cal.expiries("NIFTY", D(2026, 1, 7), D(2026, 1, 14))  # Friday before


def test_march_2026_weekly_and_monthly():
    assert CAL.expiries("NIFTY", D(2026, 3, 1), D(2026, 3, 31)) == [
        D(2026, 3, 2), D(2026, 3, 10), D(2026, 3, 17), D(2026, 3, 24), D(2026, 3, 30)]
    assert CAL.monthly_expiry(2026, 3) == D(2026, 3, 30)  # last Tuesday 31st is Mahavir Jayanti


@pytest.mark.parametrize("year,month,expected", [
    (2025, 7, D(2025, 7, 31)),    # last Thursday
    (2025, 8, D(2025, 8, 28)),
    (2025, 9, D(2025, 9, 30)),    # last Tuesday from September 2025
    (2025, 12, D(2025, 12, 30)),  # December: next month is January of the next year
    (2026, 1, D(2026, 1, 27)),
    (2026, 2, D(2026, 2, 24)),
    (2026, 11, D(2026, 11, 23)),  # last Tuesday 24th is a holiday
])
def test_monthly_expiry_is_last_expiry_weekday_shifted(year, month, expected):
    assert CAL.monthly_expiry(year, month) == expected


@pytest.mark.parametrize("underlying", ["BANKNIFTY", "FINNIFTY"])
def test_banknifty_and_finnifty_are_monthly_only(underlying):
    got = CAL.expiries(underlying, D(2025, 7, 1), D(2026, 3, 31))
    assert got == [CAL.monthly_expiry(y, m) for y, m in
                   [(2025, 7), (2025, 8), (2025, 9), (2025, 10), (2025, 11), (2025, 12),
                    (2026, 1), (2026, 2), (2026, 3)]]
    assert CAL.expiries(underlying, D(2026, 1, 1), D(2026, 1, 26)) == []


def test_expiries_are_within_range_sorted_and_unique():
    got = CAL.expiries("NIFTY", D(2026, 1, 7), D(2026, 1, 27))
    assert got == [D(2026, 1, 13), D(2026, 1, 20), D(2026, 1, 27)]  # both ends inclusive
    assert got == sorted(set(got))


def test_next_expiry_min_dte_on_an_expiry_day():
    tue = D(2026, 1, 6)
    assert CAL.next_expiry("NIFTY", tue, min_dte=0) == tue
    assert CAL.next_expiry("NIFTY", tue, min_dte=1) == D(2026, 1, 13)
    assert CAL.next_expiry("NIFTY", D(2026, 1, 5), min_dte=1) == tue  # DTE 1 the day before
    # shifted expiry: Monday 2 March 2026 is the expiry day
    assert CAL.next_expiry("NIFTY", D(2026, 3, 2), min_dte=0) == D(2026, 3, 2)
    assert CAL.next_expiry("NIFTY", D(2026, 3, 2), min_dte=1) == D(2026, 3, 10)


def test_next_expiry_monthly_rolls_to_next_month():
    assert CAL.next_expiry("BANKNIFTY", D(2026, 1, 27), min_dte=0) == D(2026, 1, 27)
    assert CAL.next_expiry("BANKNIFTY", D(2026, 1, 27), min_dte=1) == D(2026, 2, 24)
    assert CAL.next_expiry("FINNIFTY", D(2026, 3, 30), min_dte=1) == D(2026, 4, 28)
    assert CAL.next_expiry("BANKNIFTY", D(2025, 12, 31), min_dte=1) == D(2026, 1, 27)


def test_next_expiry_respects_larger_min_dte():
    assert CAL.next_expiry("NIFTY", D(2026, 1, 5), min_dte=2) == D(2026, 1, 13)
    e = CAL.next_expiry("NIFTY", D(2026, 1, 5), min_dte=10)
    assert e == D(2026, 1, 20) and dte(D(2026, 1, 5), e) >= 10


def test_dte_is_calendar_days():
    assert dte(D(2026, 1, 23), D(2026, 1, 27)) == 4  # one trading day apart, four calendar days
    assert dte(D(2026, 1, 27), D(2026, 1, 27)) == 0
    assert dte(D(2026, 1, 30), D(2026, 2, 3)) == 4
    assert dte(D(2025, 12, 30), D(2026, 1, 6)) == 7


def test_at_is_an_aware_ist_instant():
    t = at(D(2026, 1, 27), time(9, 15))
    assert t.tzinfo is IST and t.utcoffset() == IST_OFFSET
    assert t == datetime(2026, 1, 27, 3, 45, tzinfo=timezone.utc)


# --- clocks ---------------------------------------------------------------------------------------

START = datetime(2026, 1, 27, 9, 0, tzinfo=IST)


def test_ist_refuses_naive_and_converts_aware():
    with pytest.raises(ValueError, match="naive datetime"):
        ist(datetime(2026, 1, 27, 9, 0))
    got = ist(datetime(2026, 1, 27, 3, 30, tzinfo=timezone.utc))
    assert got == START and got.tzinfo is IST and got.hour == 9


def test_virtual_clock_refuses_naive_start_and_set():
    with pytest.raises(ValueError, match="naive"):
        VirtualClock(datetime(2026, 1, 27, 9, 0))
    clock = VirtualClock(START)
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2026, 1, 27, 10, 0))
    assert clock.now() == START


def test_virtual_clock_never_goes_back():
    clock = VirtualClock(START)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(START - timedelta(seconds=1))
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    assert clock.now() == START
    clock.set(START)  # standing still is allowed
    assert clock.now() == START


def test_virtual_clock_sleep_and_advance_move_it():
    clock = VirtualClock(START)
    t0 = _time.monotonic()
    clock.sleep(3600)
    assert _time.monotonic() - t0 < 0.5  # no real wait
    assert clock.now() == START + timedelta(hours=1)
    clock.sleep(0)
    clock.sleep(-5)
    assert clock.now() == START + timedelta(hours=1)
    clock.advance(1.5)
    assert clock.now() == START + timedelta(hours=1, seconds=1.5)
    clock.set(datetime(2026, 1, 27, 5, 0, tzinfo=timezone.utc))  # 10:30 IST
    assert clock.now() == datetime(2026, 1, 27, 10, 30, tzinfo=IST)


def test_virtual_clock_start_in_another_zone_reads_as_ist():
    clock = VirtualClock(datetime(2026, 1, 27, 3, 30, tzinfo=timezone.utc))
    assert clock.now().tzinfo is IST and clock.now().hour == 9


def test_wall_clock_is_aware_ist():
    now = WallClock().now()
    assert now.tzinfo is IST and now.utcoffset() == IST_OFFSET


class FakeWall:
    def __init__(self, t):
        self.t, self.slept = t, []

    def time(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


@pytest.fixture
def wall(monkeypatch):
    w = FakeWall(1_000_000.0)
    monkeypatch.setattr(_time, "time", w.time)
    monkeypatch.setattr(_time, "sleep", w.sleep)
    return w


def test_accelerated_clock_runs_factor_times_wall(wall):
    clock = AcceleratedClock(START, factor=60, wall_epoch=wall.t - 10)
    assert clock.now() == START + timedelta(minutes=10)
    assert clock.now().tzinfo is IST
    wall.t += 1.5
    assert clock.now() == START + timedelta(minutes=11, seconds=30)


def test_accelerated_clock_default_epoch_is_now(wall):
    clock = AcceleratedClock(START, factor=100)
    assert clock.wall_epoch == wall.t
    assert clock.now() == START


def test_two_accelerated_clocks_with_the_same_epoch_agree(wall):
    a = AcceleratedClock(START, 30, wall_epoch=wall.t)
    wall.t += 7
    b = AcceleratedClock(START, 30, wall_epoch=wall.t - 7)
    assert a.now() == b.now() == START + timedelta(seconds=210)


def test_accelerated_clock_sleep_divides_by_factor(wall):
    clock = AcceleratedClock(START, factor=60, wall_epoch=wall.t)
    clock.sleep(120)
    assert wall.slept == [2.0]
    assert clock.now() == START + timedelta(minutes=2)
    clock.sleep(0)
    clock.sleep(-3)
    assert wall.slept == [2.0]
    clock.sleep_until(START + timedelta(minutes=5))
    assert wall.slept == [2.0, 3.0]
    assert clock.now() == START + timedelta(minutes=5)
    with pytest.raises(ValueError, match="naive"):
        clock.sleep_until(datetime(2026, 1, 27, 10, 0))


@pytest.mark.parametrize("factor", [0, -1])
def test_accelerated_clock_refuses_bad_factor_and_naive_start(factor):
    with pytest.raises(ValueError, match="factor must be > 0"):
        AcceleratedClock(START, factor=factor, wall_epoch=0.0)
    with pytest.raises(ValueError, match="naive"):
        AcceleratedClock(datetime(2026, 1, 27, 9, 0), factor=10, wall_epoch=0.0)
