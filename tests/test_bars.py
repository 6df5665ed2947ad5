"""Session-aligned bars, expected starts and gaps, and the rolling BarWindow."""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import pytest

from rustro.calendar import at
from rustro.clock import IST
from rustro.market.bars import (BarWindow, bar_close, daily_bars, expected_hour_starts,
                                expected_minute_starts, expected_starts, find_gaps,
                                hour_bar_close, hour_bar_start, hourly_bars)
from rustro.market.base import ONE_DAY, ONE_HOUR, ONE_MINUTE, Bar, DataError

D = date(2025, 6, 3)          # a Tuesday
D2 = date(2025, 6, 4)


def t(hh: int, mm: int, ss: int = 0, day: date = D) -> datetime:
    return at(day, time(hh, mm, ss))


def minute_day(day: date = D, seed: int = 1) -> list[Bar]:
    """A full session of minute bars with distinct, checkable values."""
    rng = np.random.default_rng(seed)
    out, price = [], 24000.0
    for start in expected_minute_starts(day):
        o = price
        c = round(o + rng.normal(0, 3), 2)
        h, l = max(o, c) + rng.random() * 2, min(o, c) - rng.random() * 2
        out.append(Bar(start, o, h, l, c, float(rng.integers(1, 500))))
        price = c
    return out


def direct_merge(bars: list[Bar], start: datetime) -> tuple:
    return (start, bars[0].open, max(b.high for b in bars), min(b.low for b in bars),
            bars[-1].close, sum(b.volume for b in bars))


def as_tuple(b: Bar) -> tuple:
    return (b.start, b.open, b.high, b.low, b.close, b.volume)


# ----------------------------------------------------------------------------- hourly slots
@pytest.mark.parametrize("dt,start", [
    (t(9, 15), t(9, 15)), (t(10, 14, 59), t(9, 15)), (t(10, 15), t(10, 15)),
    (t(12, 0), t(11, 15)), (t(15, 15), t(15, 15)), (t(15, 29, 59), t(15, 15)),
    (datetime(2025, 6, 3, 4, 0, tzinfo=timezone.utc), t(9, 15)),      # 09:30 IST
])
def test_hour_bar_start(dt, start):
    got = hour_bar_start(dt)
    assert got == start and got.tzinfo == IST


@pytest.mark.parametrize("dt", [t(9, 14, 59), t(15, 30), t(20, 0), t(0, 0)])
def test_hour_bar_start_outside_session_raises(dt):
    with pytest.raises(ValueError, match="outside the session 09:15-15:30"):
        hour_bar_start(dt)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive datetime"):
        hour_bar_start(datetime(2025, 6, 3, 10, 0))
    with pytest.raises(ValueError, match="naive datetime"):
        hourly_bars([Bar(datetime(2025, 6, 3, 10, 0), 1, 1, 1, 1)])


def test_hour_bar_close():
    assert hour_bar_close(t(9, 15)) == t(10, 15)
    assert hour_bar_close(t(14, 15)) == t(15, 15)
    assert hour_bar_close(t(15, 15)) == t(15, 30)                    # the short last bar
    with pytest.raises(ValueError, match="not a session hourly bar start"):
        hour_bar_close(t(9, 20))
    with pytest.raises(ValueError, match="outside the session"):
        hour_bar_close(t(16, 15))


def test_bar_close_per_interval():
    assert bar_close(t(9, 15), ONE_MINUTE) == t(9, 16)
    assert bar_close(t(15, 15), ONE_HOUR) == t(15, 30)
    assert bar_close(at(D, time(0)), ONE_DAY) == t(15, 30)
    with pytest.raises(ValueError, match="interval must be"):
        bar_close(t(9, 15), "FIVE_MINUTE")


def test_custom_session_bounds():
    assert hour_bar_start(t(10, 5), time(10, 0), time(12, 30)) == t(10, 0)
    assert hour_bar_close(t(12, 0), time(10, 0), time(12, 30)) == t(12, 30)
    assert expected_hour_starts(D, time(10, 0), time(12, 30)) == [t(10, 0), t(11, 0), t(12, 0)]
    with pytest.raises(ValueError, match="session_open 15:30:00 must be before"):
        expected_minute_starts(D, time(15, 30), time(9, 15))


# ----------------------------------------------------------------------------- expected starts
def test_expected_starts():
    mins = expected_minute_starts(D)
    assert len(mins) == 375 and mins[0] == t(9, 15) and mins[-1] == t(15, 29)
    assert all(b - a == timedelta(minutes=1) for a, b in zip(mins, mins[1:]))
    assert expected_hour_starts(D) == [t(h, 15) for h in range(9, 16)]
    assert expected_starts(D, ONE_DAY) == [at(D, time(0))]
    assert expected_starts(D, ONE_MINUTE) == mins
    with pytest.raises(ValueError, match="interval must be"):
        expected_starts(D, "ONE_WEEK")


# ----------------------------------------------------------------------------- gaps
def test_find_gaps_minutes():
    bars = [b for b in minute_day() if b.start not in (t(9, 17), t(10, 0), t(11, 0))]
    assert find_gaps(bars, D, t(10, 1)) == [t(9, 17), t(10, 0)]         # 10:00 closed at 10:01
    assert find_gaps(bars, D, t(10, 0, 59)) == [t(9, 17)]                # 10:00 still forming
    assert find_gaps(bars, D, t(10, 1, 3), grace_sec=5) == [t(9, 17)]    # inside the grace
    assert find_gaps(bars, D, t(10, 1, 5), grace_sec=5) == [t(9, 17), t(10, 0)]
    assert find_gaps(bars, D, t(18, 0)) == [t(9, 17), t(10, 0), t(11, 0)]
    assert find_gaps(bars, D, t(9, 15, 30)) == []                        # nothing due yet
    assert len(find_gaps([], D, t(9, 20))) == 5


def test_find_gaps_hours_days_and_other_days():
    hours = [Bar(t(9, 15), 1, 1, 1, 1), Bar(t(11, 15), 1, 1, 1, 1),
             Bar(t(10, 15, day=D2), 1, 1, 1, 1)]                         # other day: ignored
    assert find_gaps(hours, D, t(11, 15, 4), ONE_HOUR, grace_sec=5) == []
    assert find_gaps(hours, D, t(11, 15, 5), ONE_HOUR, grace_sec=5) == [t(10, 15)]
    later = [t(h, 15) for h in range(12, 16)]
    assert find_gaps(hours, D, t(15, 30), ONE_HOUR) == [t(10, 15)] + later
    assert find_gaps([], D, t(15, 29), ONE_DAY) == []
    assert find_gaps([], D, t(15, 30), ONE_DAY) == [at(D, time(0))]
    assert find_gaps([Bar(at(D, time(0)), 1, 1, 1, 1)], D, t(23, 0), ONE_DAY) == []
    with pytest.raises(ValueError, match="grace_sec must be >= 0"):
        find_gaps([], D, t(10, 0), grace_sec=-1)


# ----------------------------------------------------------------------------- hourly_bars
def test_hourly_bars_full_session():
    mins = minute_day()
    hours = hourly_bars(mins)
    assert [h.start for h in hours] == expected_hour_starts(D)
    for h in hours:
        inside = [b for b in mins if h.start <= b.start < hour_bar_close(h.start)]
        assert len(inside) == (15 if h.start == t(15, 15) else 60)
        assert as_tuple(h) == direct_merge(inside, h.start)


def test_hourly_bars_only_complete_hours_unless_partial():
    mins = [b for b in minute_day() if b.start < t(11, 40)]
    assert [h.start for h in hourly_bars(mins)] == [t(9, 15), t(10, 15)]
    partial = hourly_bars(mins, include_partial=True)
    assert [h.start for h in partial] == [t(9, 15), t(10, 15), t(11, 15)]
    assert as_tuple(partial[-1]) == direct_merge([b for b in mins if b.start >= t(11, 15)],
                                                 t(11, 15))
    upto_1114 = [b for b in minute_day() if b.start <= t(11, 14)]
    assert [h.start for h in hourly_bars(upto_1114)] == [t(9, 15), t(10, 15)]


def test_hourly_bars_handle_gaps_repeats_order_and_out_of_session():
    mins = minute_day()
    missing_interior = [b for b in mins if b.start != t(9, 40)]
    assert hourly_bars(missing_interior)[0].volume == sum(
        b.volume for b in mins if b.start < t(10, 15)) - next(
        b.volume for b in mins if b.start == t(9, 40))
    fixed = Bar(t(9, 15), mins[0].open, 99999.0, mins[0].low, mins[0].close, 7.0)
    noisy = list(reversed(mins)) + [fixed, Bar(t(9, 10), 1, 1, 1, 1, 5),
                                    Bar(t(15, 30), 1, 1e6, 0.5, 1, 5)]
    hours = hourly_bars(noisy)
    assert len(hours) == 7
    assert hours[0].high == 99999.0                                      # the repeat replaced
    assert hours[0].volume == sum(b.volume for b in mins[1:60]) + 7.0
    assert hours[-1].high < 1e6 and hours[0].open == mins[0].open        # 09:10 / 15:30 ignored


def test_hourly_bars_several_days_and_bad_starts():
    two = minute_day(D, 1) + minute_day(D2, 2)
    hours = hourly_bars(two)
    assert len(hours) == 14 and hours[7].start == t(9, 15, day=D2)
    utc = [Bar(b.start.astimezone(timezone.utc), b.open, b.high, b.low, b.close, b.volume)
           for b in minute_day()]
    ist_hours = [as_tuple(h) for h in hourly_bars(minute_day())]
    assert [as_tuple(h) for h in hourly_bars(utc)] == ist_hours
    assert hourly_bars(utc)[0].start.tzinfo == IST
    with pytest.raises(ValueError, match="not on a whole minute"):
        hourly_bars([Bar(t(9, 15, 30), 1, 1, 1, 1)])
    assert hourly_bars([]) == []


def test_daily_bars():
    d1, d2 = minute_day(D, 1), minute_day(D2, 2)
    days = daily_bars(d2 + d1 + [Bar(t(9, 5), 1, 1e6, 0.1, 1, 9)])      # pre-open ignored
    assert [d.start for d in days] == [at(D, time(0)), at(D2, time(0))]
    assert as_tuple(days[0]) == direct_merge(d1, at(D, time(0)))
    assert as_tuple(days[1]) == direct_merge(d2, at(D2, time(0)))
    assert daily_bars([]) == []


# ----------------------------------------------------------------------------- BarWindow
def bar(i: int, close: float = 100.0, day: date = D) -> Bar:
    return Bar(t(9, 15, day=day) + timedelta(minutes=i), close, close + 1, close - 1, close, 10.0)


def test_window_upsert_replaces_never_duplicates():
    w = BarWindow("26000", ONE_MINUTE)
    assert w.upsert(bar(0)) is True
    assert w.upsert(bar(0)) is False and len(w) == 1                    # identical repeat
    assert w.upsert(bar(0, close=101.0)) is True and len(w) == 1        # corrected repeat
    assert w.last.close == 101.0


def test_window_keeps_order_on_out_of_order_inserts():
    w = BarWindow("26000", ONE_MINUTE)
    assert w.extend([bar(5), bar(1), bar(3), bar(2), bar(4), bar(3, 50.0)]) == 6
    assert [b.start for b in w.bars()] == [bar(i).start for i in range(1, 6)]
    assert w.bars()[2].close == 50.0 and w.last.start == bar(5).start


def test_window_on_a_day_is_every_bar_whose_ist_date_it_is():
    w = BarWindow("26000", ONE_HOUR)
    days = [date(2026, 10, 13), date(2026, 10, 14), date(2026, 10, 15)]
    w.extend(Bar(at(d, time(h, 15)), 100.0, 101.0, 99.0, 100.0, 10.0) for d in days for h in (9, 15))
    # 00:30 IST on the 15th is 19:00 UTC on the 14th: the IST date counts
    w.upsert(Bar(datetime(2026, 10, 14, 19, 0, tzinfo=timezone.utc), 100.0, 101.0, 99.0, 100.0, 1.0))
    for d in days + [date(2026, 10, 16)]:
        assert w.on(d) == [b for b in w.bars() if b.start.date() == d]
    assert [b.start.hour for b in w.on(days[2])] == [0, 9, 15]


def test_window_maxlen_keeps_the_latest():
    w = BarWindow("26000", ONE_MINUTE, maxlen=3)
    w.extend(bar(i) for i in range(10))
    assert [b.start for b in w.bars()] == [bar(i).start for i in (7, 8, 9)]
    assert w.upsert(bar(2)) is False and len(w) == 3                    # older than the window
    assert w.upsert(bar(8, 55.0)) is True and w.bars()[1].close == 55.0
    assert w.upsert(bar(20)) is True
    assert [b.start for b in w.bars()] == [bar(i).start for i in (8, 9, 20)]
    assert BarWindow("x", ONE_HOUR).maxlen == 500


def test_window_arrays():
    w = BarWindow("26000", ONE_MINUTE)
    assert w.last is None
    empty = w.arrays()
    assert all(len(v) == 0 for v in empty.values())
    w.extend([bar(1, 101.0), bar(0, 100.0), bar(0, 100.5, day=D2)])
    a = w.arrays()
    assert set(a) == {"open", "high", "low", "close", "volume", "start", "session"}
    np.testing.assert_array_equal(a["close"], [100.0, 101.0, 100.5])
    np.testing.assert_array_equal(a["high"], [101.0, 102.0, 101.5])
    assert a["close"].dtype == np.float64 and a["session"].dtype == np.int64
    assert list(a["start"]) == [bar(0).start, bar(1).start, bar(0, day=D2).start]
    assert list(a["session"]) == [D.toordinal(), D.toordinal(), D2.toordinal()]


def test_window_rejects_bad_bars_and_arguments():
    w = BarWindow("26000", ONE_HOUR)
    with pytest.raises(ValueError, match="26000 ONE_HOUR bar at .* high 1.0 < low 2.0"):
        w.upsert(Bar(t(9, 15), 1.5, 1.0, 2.0, 1.5))
    with pytest.raises(ValueError, match="non-finite value"):
        w.upsert(Bar(t(9, 15), 1.0, math.nan, 1.0, 1.0))
    with pytest.raises(ValueError, match="naive datetime"):
        w.upsert(Bar(datetime(2025, 6, 3, 9, 15), 1, 1, 1, 1))
    with pytest.raises(ValueError, match="interval must be"):
        BarWindow("26000", "TWO_HOUR")
    with pytest.raises(ValueError, match="maxlen must be an integer >= 1"):
        BarWindow("26000", ONE_HOUR, maxlen=0)
    assert len(w) == 0


def test_window_stores_ist_starts():
    w = BarWindow("26000", ONE_MINUTE)
    utc = Bar(t(9, 15).astimezone(timezone.utc), 1, 1, 1, 1)
    w.upsert(utc)
    assert w.last.start.tzinfo == IST and w.last.start == t(9, 15)
    assert w.upsert(Bar(t(9, 15), 1, 1, 1, 1)) is False                 # same instant, same bar


@pytest.mark.parametrize("bar, field", [
    (Bar(t(9, 15), 0.0, 1.0, 0.0, 0.5), "open"),           # zero prices
    (Bar(t(9, 15), -1.0, 1.0, -2.0, 0.5), "open"),         # negative
    (Bar(t(9, 15), 3.0, 2.0, 1.0, 1.5), "open"),           # open above high
    (Bar(t(9, 15), 1.5, 2.0, 1.0, 0.5), "close"),          # close below low
    (Bar(t(9, 15), 1.5, 2.0, 1.0, 1.5, -10.0), "volume"),  # negative volume
])
def test_window_refuses_impossible_bars(bar, field):
    w = BarWindow("26000", ONE_HOUR)
    with pytest.raises(DataError, match=f"26000 ONE_HOUR bar at .*'{field}'") as info:
        w.upsert(bar)
    assert isinstance(info.value, ValueError) and info.value.field == field
    assert len(w) == 0
