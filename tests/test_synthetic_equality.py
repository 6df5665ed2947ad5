"""The synthetic market's shortcuts give exactly the values of the straightforward computation.

Its per-process caches, bisected trading-day ranges, per-year daily bars, minute bars built only
as far as asked and option prices taken one at a time are there for speed only: each answer here
is compared, bit for bit, with what the plain formula gives (a day-by-day calendar scan, the whole
day's bars, one NumPy pricing pass over the day).
"""
from datetime import date, datetime, time, timedelta

import numpy as np

from rustro.calendar import TradingCalendar, at
from rustro.market.base import ONE_DAY, ONE_MINUTE, TICK, Bar
from rustro.market.options import black76, implied_vol_from_vix, round_array_to_tick
from rustro.market.synthetic import SyntheticMarket
from rustro.market.synthetic_cache import days_between
from rustro.market.synthetic_paths import N_MIN, VIX_TOKEN, DayScenario, spike_schedule

NIFTY = "99926000"


class VirtualClock:
    """A clock the test sets freely (back in time too)."""

    def __init__(self, now: datetime):
        self.now_ = now

    def now(self) -> datetime:
        return self.now_

DAY = date(2026, 3, 10)


def bits(a) -> bytes:
    return np.asarray(a, dtype=float).tobytes()


def one_pass_prices(m: SyntheticMarket, c, d: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, bar highs, bar lows) of an option's day, priced as one array: the plain formula."""
    s, v = m._spot_day(c.underlying, d), m._vix_day(d)
    t = m._years_left(c, d)
    tm = (t[:-1] + t[1:]) / 2
    up, down = (s.high, s.low) if c.kind == "CE" else (s.low, s.high)
    spot = np.concatenate([s.points, up, down])
    vix = np.concatenate([v.points, v.high, v.low])
    tt = np.concatenate([t, tm, tm])
    fwd = spot * np.exp(m.rate * tt)
    raw = black76(fwd, c.strike, tt, implied_vol_from_vix(vix, c.strike, fwd, tt), m.rate, c.kind == "CE")
    px = np.where(tt > 0, np.maximum(round_array_to_tick(raw), TICK), round_array_to_tick(raw))
    n = N_MIN + 1
    pts = px[:n]
    return (pts, np.maximum(px[n:n + N_MIN], np.maximum(pts[:-1], pts[1:])),
            np.minimum(px[n + N_MIN:], np.minimum(pts[:-1], pts[1:])))


def test_option_ltps_one_at_a_time_and_bars_priced_apart_equal_one_pricing_pass():
    clock = VirtualClock(at(DAY, time(9, 30)))
    m = SyntheticMarket(clock, seed=5, overrides={DAY: DayScenario(vix_level=30.0)})  # not shared
    spot = m.ltp("NSE", NIFTY)
    cs = [c for c in m.contracts("NIFTY") if c.is_option and abs(c.strike - spot) < 1500]
    cs = sorted(cs, key=lambda c: (c.expiry, abs(c.strike - spot)))[:12]  # near and far, CE and PE
    instants = [time(9, 15), time(9, 16), time(11, 3), time(15, 29), time(15, 30)]
    for c in cs:
        pts, hi, lo = one_pass_prices(m, c, DAY)
        for t in instants:  # nothing priced for the day yet: one price at a time
            clock.now_ = at(DAY, t)
            k = min(N_MIN, (t.hour * 60 + t.minute) - (9 * 60 + 15))
            assert bits(m.ltp("NFO", c.token)) == bits(pts[k]), (c.symbol, t)
            assert bits(m.quote("NFO", c.token).ltp) == bits(pts[k])
        day = m._option_day(c, DAY)  # the whole day, bars priced apart from the points
        assert bits(day.points) == bits(pts) and bits(day.high) == bits(hi) and bits(day.low) == bits(lo)
        assert bits(m.ltp("NFO", c.token)) == bits(pts[N_MIN])  # read from the day now


def test_trading_day_ranges_equal_the_calendar_scan():
    cal = TradingCalendar(extra_holidays=[date(2027, 2, 3)], extra_trading_days=[date(2026, 11, 7)])
    m = SyntheticMarket(VirtualClock(at(DAY, time(8))), 1, calendar=cal)
    for first, last in [(date(2025, 12, 20), date(2026, 1, 10)), (date(2026, 11, 1), date(2027, 2, 28)),
                        (date(2026, 1, 3), date(2026, 1, 4)), (date(2026, 5, 9), date(2026, 5, 1)),
                        (date(2024, 2, 29), date(2026, 3, 1))]:
        assert days_between(cal, m._cal_id, first, last) == cal.trading_days(first, last)


def test_daily_candles_equal_the_day_by_day_bars():
    m = SyntheticMarket(VirtualClock(at(DAY, time(15, 30))), seed=9)
    for now in [at(DAY, time(15, 30)), at(DAY, time(15, 29, 59)), at(DAY, time(0))]:
        m.clock.now_ = now
        for token, name in [(NIFTY, "NIFTY"), (VIX_TOKEN, "INDIA VIX")]:
            for start, end in [(at(date(2025, 3, 10), time(9, 15)), at(DAY, time(9, 0))),
                               (at(date(2025, 3, 10), time(0)), at(DAY, time(0))),
                               (at(date(2025, 12, 31), time(0)), at(date(2026, 12, 31), time(0))),
                               (at(DAY, time(0)), at(DAY, time(23)))]:
                ref = [Bar(at(d, time(0)), *m.daily_ohlc(name, d), 0.0)
                       for d in m.cal.trading_days(start.date(), DAY)
                       if start <= at(d, time(0)) < end and now >= at(d, time(15, 30))]
                assert m.candles("NSE", token, ONE_DAY, start, end) == ref
    m.clock.now_ = at(DAY, time(15, 29, 59))  # today's bar appears only at 15:30
    assert m.candles("NSE", NIFTY, ONE_DAY, at(DAY, time(0)), at(DAY, time(23))) == []


def test_minute_candles_built_as_asked_equal_the_whole_day():
    clock = VirtualClock(at(DAY, time(10, 0)))
    m = SyntheticMarket(clock, seed=9)
    fut = min((c for c in m.contracts("NIFTY") if not c.is_option), key=lambda c: c.expiry)
    s = m._future_day(fut, DAY)
    ref = [Bar(at(DAY, time(9, 15)) + timedelta(minutes=i), float(s.open[i]), float(s.high[i]),
               float(s.low[i]), float(s.close[i]), float(s.volume[i])) for i in range(N_MIN)]
    start, end = at(DAY, time(9, 15)), at(DAY, time(16))
    assert m.candles("NFO", fut.token, ONE_MINUTE, start, end) == ref[:45]
    assert m.candles("NFO", fut.token, ONE_MINUTE, at(DAY, time(9, 20)), end) == ref[5:45]
    clock.now_ = at(DAY, time(15, 0))
    assert m.candles("NFO", fut.token, ONE_MINUTE, start, end) == ref[:345]
    clock.now_ = at(DAY, time(15, 45))
    assert m.candles("NFO", fut.token, ONE_MINUTE, start, at(DAY, time(12))) == ref[:165]
    assert m.candles("NFO", fut.token, ONE_MINUTE, start, end) == ref


def test_spike_schedules_shared_or_with_overrides_equal_the_schedule():
    spike_day = date(2026, 6, 9)
    plain = SyntheticMarket(VirtualClock(at(DAY, time(8))), 3)
    forced = SyntheticMarket(VirtualClock(at(DAY, time(8))), 3,
                             overrides={spike_day: DayScenario(vix_spike_at=time(11, 0))})
    days = plain.cal.trading_days(date(2026, 1, 1), date(2026, 12, 31))
    assert plain._spikes_of(2026) == spike_schedule(3, 2026, days, {})
    assert forced._spikes_of(2026) == spike_schedule(3, 2026, days, forced.overrides)
    assert forced._spikes_of(2026)[spike_day].minute == 105
    assert plain._spikes_of(2026) is SyntheticMarket(VirtualClock(at(DAY, time(8))), 3)._spikes_of(2026)


def test_hourly_candles_equal_the_per_day_aggregates():
    now = at(DAY, time(12, 20))
    m = SyntheticMarket(VirtualClock(now), seed=9)

    def hours(d: date) -> list[tuple[int, int, Bar]]:
        s = m._spot_day("NIFTY", d)
        out = []
        for a in range(0, N_MIN, 60):
            b = min(a + 60, N_MIN)
            out.append((a, b, Bar(at(d, time(9, 15)) + timedelta(minutes=a), float(s.open[a]),
                                  float(s.high[a:b].max()), float(s.low[a:b].min()),
                                  float(s.close[b - 1]), float(s.volume[a:b].sum()))))
        return out

    for start, end in [(at(date(2026, 1, 27), time(11, 0)), at(DAY, time(15, 0))),
                       (at(date(2026, 2, 2), time(9, 15)), at(date(2026, 2, 20), time(13, 15)))]:
        ref = []
        for d in m.cal.trading_days(start.date(), min(end.date(), now.date())):
            t0 = at(d, time(9, 15))
            ref += [bar for a, b, bar in hours(d)
                    if start <= t0 + timedelta(minutes=a) < end
                    and t0 + timedelta(minutes=b) <= min(now, t0 + timedelta(minutes=N_MIN))]
        assert m.candles("NSE", NIFTY, "ONE_HOUR", start, end) == ref
        assert ref[-1].start < end and ref[0].start >= start


def test_listed_rows_are_the_listed_keys_rows_as_the_window_drifts_widens_and_narrows():
    """A day's contract rows are slices of per-expiry strike-ordered lists, widened when asked;
    each slice must be exactly `listed_row` of every key `listed_keys` lists, in its order."""
    from rustro.market import synthetic_cache as sc
    from rustro.market.synthetic_contracts import listed_keys
    cal = TradingCalendar()
    spots = [24_000.0, 24_010.0, 23_100.0, 26_900.0, 25_000.0, 19_000.0, 31_000.0, 25_025.0]
    days = cal.trading_days(date(2026, 3, 2), date(2026, 3, 20))
    sc._CHAINS.clear()
    for d, spot in zip(days, spots * 3):
        for u in ("NIFTY", "BANKNIFTY"):
            want = [sc.listed_row(k) for k in listed_keys(cal, u, d, spot)]
            got = sc.listed_rows(cal, u, d, spot)
            assert [r["token"] for r in got] == [r["token"] for r in want], (d, u, spot)
            assert all(g is w for g, w in zip(got, want))  # the very rows, not look-alikes
