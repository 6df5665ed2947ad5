import hashlib
import math
import re
import subprocess
import sys
from datetime import date, datetime, time, timedelta

import numpy as np
import pytest

from rustro.calendar import TradingCalendar, at
from rustro.clock import VirtualClock
from rustro.market.base import ONE_DAY, ONE_HOUR, ONE_MINUTE, on_tick
from rustro.market.options import time_to_expiry
from rustro.market.synthetic import RATE, SyntheticMarket, UnknownInstrument
from rustro.market.synthetic_contracts import Contract, decode_token
from rustro.market.synthetic_paths import DayScenario

NIFTY, BANK, FIN, VIX = "99926000", "99926009", "99926037", "99926017"
DAY = date(2026, 2, 10)      # a Tuesday (NIFTY weekly expiry)
CAL = TradingCalendar()


class FreeClock:
    """A clock that may be set backwards, to probe what the market reveals at any instant."""

    def __init__(self, now: datetime):
        self.now_ = now

    def now(self) -> datetime:
        return self.now_

    def sleep(self, seconds: float) -> None:
        self.now_ += timedelta(seconds=seconds)


def market(now: datetime, seed: int = 42, **kw) -> SyntheticMarket:
    return SyntheticMarket(VirtualClock(now), seed, **kw)


def day_digest(m: SyntheticMarket, d: date, token: str = NIFTY, exch: str = "NSE") -> str:
    bars = m.candles(exch, token, ONE_MINUTE, at(d, time(0)), at(d, time(23, 59)))
    return hashlib.sha256(repr([(b.start, b.open, b.high, b.low, b.close, b.volume)
                                for b in bars]).encode()).hexdigest()


@pytest.fixture(scope="module")
def year_market():
    """NIFTY 2026 seen from after the year's end (read-only use)."""
    return market(at(date(2027, 1, 4), time(8, 0)), seed=11)


# ------------------------------------------------------------------ determinism

def test_same_seed_and_date_give_identical_data_and_other_dates_or_seeds_differ():
    end = at(date(2026, 3, 2), time(16, 0))
    a, b = market(end), market(end)
    assert day_digest(a, DAY) == day_digest(b, DAY)
    assert a.candles("NSE", VIX, ONE_MINUTE, at(DAY, time(9)), at(DAY, time(16))) == \
        b.candles("NSE", VIX, ONE_MINUTE, at(DAY, time(9)), at(DAY, time(16)))
    assert day_digest(a, DAY) != day_digest(a, date(2026, 2, 11))
    assert day_digest(a, DAY) != day_digest(market(end, seed=43), DAY)


def test_identical_across_processes_whatever_the_hash_seed():
    code = ("from datetime import date, time;"
            "from rustro.calendar import at; from rustro.clock import VirtualClock;"
            "from rustro.market.synthetic import SyntheticMarket;"
            "import tests.test_synthetic as t;"
            "m = SyntheticMarket(VirtualClock(at(date(2026, 3, 2), time(16))), 42);"
            "print(t.day_digest(m, date(2026, 2, 10)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""}, cwd=".").stdout.strip()
    assert out == day_digest(market(at(date(2026, 3, 2), time(16))), DAY)


def test_a_day_does_not_depend_on_which_days_were_generated_before():
    end = at(date(2026, 3, 2), time(16))
    warm = market(end)
    for d in CAL.trading_days(date(2026, 1, 1), date(2026, 2, 27)):
        warm.ltp("NSE", NIFTY)
        warm.candles("NSE", NIFTY, ONE_HOUR, at(d, time(0)), at(d, time(23)))
    assert day_digest(warm, DAY) == day_digest(market(end), DAY)


# ------------------------------------------------------------------ shape of the path

def test_days_chain_continuously_with_small_gaps(year_market):
    bars = year_market.candles("NSE", NIFTY, ONE_DAY, at(date(2025, 1, 1), time(0)),
                               at(date(2027, 1, 1), time(0)))
    assert len(bars) > 480
    gaps = np.array([b.open / a.close - 1 for a, b in zip(bars, bars[1:])])
    assert np.all(np.abs(gaps) < 0.045)
    assert 0.0005 < np.median(np.abs(gaps)) < 0.01
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    assert 20000 < np.median([b.close for b in bars]) < 29000


def test_levels_of_the_other_indices():
    m = market(at(date(2026, 6, 1), time(12)), underlyings=("NIFTY", "BANKNIFTY", "FINNIFTY"))
    assert 40000 < m.ltp("NSE", BANK) < 65000
    assert 18000 < m.ltp("NSE", FIN) < 30000


def test_minute_bars_chain_and_the_daily_bar_equals_their_aggregate(year_market):
    for d in CAL.trading_days(date(2026, 3, 2), date(2026, 3, 13)):
        for token in (NIFTY, VIX):
            mins = year_market.candles("NSE", token, ONE_MINUTE, at(d, time(0)), at(d, time(23)))
            assert len(mins) == 375
            assert mins[0].start == at(d, time(9, 15)) and mins[-1].start == at(d, time(15, 29))
            assert all(a.close == b.open for a, b in zip(mins, mins[1:]))
            assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in mins)
            assert all(b.volume == 0 for b in mins)
            (day,) = year_market.candles("NSE", token, ONE_DAY, at(d, time(0)), at(d, time(1)))
            assert day.start == at(d, time(0))
            assert (day.open, day.high, day.low, day.close) == (
                mins[0].open, max(b.high for b in mins), min(b.low for b in mins), mins[-1].close)
            if token == NIFTY:
                assert all(on_tick(b.open) and on_tick(b.high) and on_tick(b.low) for b in mins)


def test_hourly_bars_are_session_aligned_aggregates(year_market):
    d = date(2026, 4, 7)
    mins = year_market.candles("NSE", NIFTY, ONE_MINUTE, at(d, time(0)), at(d, time(23)))
    hours = year_market.candles("NSE", NIFTY, ONE_HOUR, at(d, time(0)), at(d, time(23)))
    assert [h.start.time() for h in hours] == [time(h, 15) for h in range(9, 16)]
    for h in hours:
        inside = [b for b in mins if h.start <= b.start < h.start + timedelta(hours=1)]
        assert (h.open, h.high, h.low, h.close) == (
            inside[0].open, max(b.high for b in inside), min(b.low for b in inside), inside[-1].close)
    assert len([b for b in mins if b.start >= hours[-1].start]) == 15  # 15:15-15:30


def test_intraday_volatility_is_u_shaped(year_market):
    acc = np.zeros(374)
    days = CAL.trading_days(date(2026, 5, 1), date(2026, 8, 31))
    for d in days:
        closes = [b.close for b in year_market.candles("NSE", NIFTY, ONE_MINUTE,
                                                       at(d, time(0)), at(d, time(23)))]
        acc += np.abs(np.diff(np.log(closes)))
    first, mid, last = acc[:30].mean(), acc[150:240].mean(), acc[-30:].mean()
    assert first > 1.2 * mid and last > 1.1 * mid


def test_vix_is_mean_reverting_spikes_a_few_times_a_year_and_moves_against_the_index(year_market):
    start, end = at(date(2026, 1, 1), time(0)), at(date(2027, 1, 1), time(0))
    vix = year_market.candles("NSE", VIX, ONE_DAY, start, end)
    nifty = year_market.candles("NSE", NIFTY, ONE_DAY, start, end)
    spikes = [b for b in vix if b.high > 30]
    assert 1 <= len(spikes) <= 15
    assert 11 < np.median([b.close for b in vix]) < 18
    assert all(9 <= b.low and b.high <= 85 for b in vix)
    dv = np.diff(np.log([b.close for b in vix]))
    dn = np.diff(np.log([b.close for b in nifty]))
    assert np.corrcoef(dv, dn)[0, 1] < -0.3


def test_spot_and_vix_minute_returns_are_negatively_correlated(year_market):
    d = date(2026, 9, 15)
    n = [b.close for b in year_market.candles("NSE", NIFTY, ONE_MINUTE, at(d, time(0)), at(d, time(23)))]
    v = [b.close for b in year_market.candles("NSE", VIX, ONE_MINUTE, at(d, time(0)), at(d, time(23)))]
    assert np.corrcoef(np.diff(np.log(n)), np.diff(np.log(v)))[0, 1] < -0.2


# ------------------------------------------------------------------ scenarios

def test_forced_trend_and_range_days():
    days = CAL.trading_days(date(2026, 3, 2), date(2026, 3, 20))
    up = {d: DayScenario(regime="trend_up") for d in days}
    m = market(at(date(2026, 3, 23), time(8)), overrides=up)
    for d in days:
        o, _, _, c = m.daily_ohlc("NIFTY", d)
        assert c > o and m.regime("NIFTY", d) == "trend_up"
    closes = [b.close for b in m.candles("NSE", NIFTY, ONE_DAY, at(days[0], time(0)),
                                         at(days[-1], time(1)))]
    assert closes[-1] > closes[0] * 1.05
    down = market(at(date(2026, 3, 23), time(8)),
                  overrides={d: DayScenario(regime="trend_down") for d in days})
    assert all(down.daily_ohlc("NIFTY", d)[3] < down.daily_ohlc("NIFTY", d)[0] for d in days)
    flat = market(at(date(2026, 3, 23), time(8)),
                  overrides={d: DayScenario(regime="range", gap_pct=0.0) for d in days})
    moves = [abs(flat.daily_ohlc("NIFTY", d)[3] / flat.daily_ohlc("NIFTY", d)[0] - 1) for d in days]
    assert np.median(moves) < 0.004


def test_forced_gap_and_move_and_vix_level():
    d = date(2026, 3, 10)
    m = market(at(d, time(16)), overrides={d: DayScenario(gap_pct=-1.0, move_pct=2.0, vix_level=26.0)})
    prev_close = m.daily_ohlc("NIFTY", CAL.previous_trading_day(d))[3]
    o, h, lo, c = m.daily_ohlc("NIFTY", d)
    assert o == pytest.approx(prev_close * 0.99, abs=0.05)
    assert c == pytest.approx(o * 1.02, abs=0.05)
    assert m.daily_ohlc("INDIA VIX", d)[0] == 26.0


def test_vix_spike_at_a_chosen_minute_and_the_index_slides_into_it():
    d = date(2026, 3, 10)
    clock = FreeClock(at(d, time(11, 0)))
    m = SyntheticMarket(clock, 42, overrides={d: DayScenario(vix_spike_at=time(11, 30), vix_peak=36.0)})
    assert m.vix() < 25
    spot_before = m.ltp("NSE", NIFTY)
    clock.now_ = at(d, time(11, 30))
    assert m.vix() == 36.0
    assert m.ltp("NSE", NIFTY) < spot_before
    assert m.candles("NSE", VIX, ONE_DAY, at(d, time(0)), at(d, time(1))) == []  # not closed yet
    clock.now_ = at(d, time(15, 30))
    (day,) = m.candles("NSE", VIX, ONE_DAY, at(d, time(0)), at(d, time(1)))
    assert day.high == 36.0
    quiet = market(at(d, time(16)), overrides={d: DayScenario(no_vix_spike=True)})
    assert quiet.daily_ohlc("INDIA VIX", d)[1] < 30


def test_bad_scenarios_and_overrides_are_refused():
    with pytest.raises(ValueError, match="regime"):
        DayScenario(regime="sideways")
    with pytest.raises(ValueError, match="vix_spike_at"):
        DayScenario(vix_spike_at=time(9, 0))
    with pytest.raises(ValueError, match="vix_peak"):
        DayScenario(vix_peak=500.0)
    with pytest.raises(ValueError, match="gap_pct"):
        DayScenario(gap_pct=-100.0)
    with pytest.raises(ValueError, match="overrides"):
        market(at(DAY, time(9)), overrides={"2026-02-10": DayScenario()})
    with pytest.raises(ValueError, match="2026-02-14 is not a trading day"):
        market(at(DAY, time(9)), overrides={date(2026, 2, 14): DayScenario()})
    with pytest.raises(ValueError, match="SENSEX"):
        market(at(DAY, time(9)), underlyings=("NIFTY", "SENSEX"))


# ------------------------------------------------------------------ no look-ahead

def test_answers_at_an_instant_do_not_depend_on_later_queries():
    t = at(DAY, time(11, 7, 30))
    later = FreeClock(at(DAY, time(15, 45)))
    seen = SyntheticMarket(later, 42)
    token = _atm_token(seen, "CE")
    for tok, ex in ((NIFTY, "NSE"), (VIX, "NSE"), (token, "NFO")):  # learn the whole day first
        seen.ltp(ex, tok)
        seen.candles(ex, tok, ONE_MINUTE, at(DAY, time(9)), at(DAY, time(16)))
    later.now_ = t
    fresh = SyntheticMarket(FreeClock(t), 42)
    for tok, ex in ((NIFTY, "NSE"), (VIX, "NSE"), (token, "NFO")):
        assert seen.quote(ex, tok) == fresh.quote(ex, tok)
        for iv in (ONE_MINUTE, ONE_HOUR, ONE_DAY):
            window = (at(DAY - timedelta(days=5), time(0)), at(DAY, time(23)))
            assert seen.candles(ex, tok, iv, *window) == fresh.candles(ex, tok, iv, *window)


def test_candles_end_at_now_and_ltp_is_the_last_completed_minute():
    clock = FreeClock(at(DAY, time(11, 7, 30)))
    m = SyntheticMarket(clock, 42)
    window = (at(DAY, time(0)), at(DAY, time(23)))
    mins = m.candles("NSE", NIFTY, ONE_MINUTE, *window)
    assert mins[-1].start == at(DAY, time(11, 6))
    assert m.ltp("NSE", NIFTY) == mins[-1].close
    assert m.quote("NSE", NIFTY).ts == at(DAY, time(11, 7))
    assert [h.start.time() for h in m.candles("NSE", NIFTY, ONE_HOUR, *window)] == [time(9, 15)]
    assert m.candles("NSE", NIFTY, ONE_DAY, *window) == []
    clock.now_ = at(DAY, time(11, 15))
    assert m.candles("NSE", NIFTY, ONE_HOUR, *window)[-1].start == at(DAY, time(10, 15))
    full_day = SyntheticMarket(FreeClock(at(DAY, time(18))), 42).candles("NSE", NIFTY, ONE_MINUTE, *window)
    for minute in (0, 1, 59, 200, 374):
        clock.now_ = at(DAY, time(9, 15)) + timedelta(minutes=minute, seconds=59)
        assert m.ltp("NSE", NIFTY) == full_day[minute].open  # never the bar still forming
    clock.now_ = at(DAY, time(15, 29, 59))
    assert m.candles("NSE", NIFTY, ONE_DAY, *window) == []
    clock.now_ = at(DAY, time(15, 30))
    assert m.candles("NSE", NIFTY, ONE_DAY, *window)[-1].close == full_day[-1].close == m.ltp("NSE", NIFTY)


def test_before_the_open_and_on_closed_days_ltp_is_the_previous_close():
    prev = CAL.previous_trading_day(DAY)
    m = market(at(DAY, time(9, 14, 59)))
    assert m.ltp("NSE", NIFTY) == m.daily_ohlc("NIFTY", prev)[3]
    assert m.candles("NSE", NIFTY, ONE_MINUTE, at(DAY, time(0)), at(DAY, time(23))) == []
    saturday = date(2026, 2, 14)
    m = market(at(saturday, time(12)))
    assert m.ltp("NSE", NIFTY) == m.daily_ohlc("NIFTY", date(2026, 2, 13))[3]
    assert m.vix() == m.daily_ohlc("INDIA VIX", date(2026, 2, 13))[3]


def test_daily_history_for_warmup_is_cheap_and_complete():
    m = market(at(DAY, time(9, 0)))
    bars = m.candles("NSE", NIFTY, ONE_DAY, at(DAY - timedelta(days=400), time(0)), at(DAY, time(23)))
    assert len(bars) == len(CAL.trading_days(DAY - timedelta(days=400), DAY - timedelta(days=1)))
    assert bars[-1].start == at(CAL.previous_trading_day(DAY), time(0))
    assert len(m._series) <= 2  # no minute data was generated for them


# ------------------------------------------------------------------ derivatives

def _atm_token(m: SyntheticMarket, kind: str, expiry: date | None = None) -> str:
    spot = m.ltp("NSE", NIFTY)
    cs = [c for c in m.contracts("NIFTY") if c.kind == kind]
    expiry = expiry or min(c.expiry for c in cs if c.expiry > m.clock.now().date())
    return min((c for c in cs if c.expiry == expiry), key=lambda c: abs(c.strike - spot)).token


def test_option_quotes_atm_pass_the_spread_filter_and_far_cheap_ones_fail():
    m = market(at(DAY, time(11, 0)))
    for kind in ("CE", "PE"):
        q = m.quote("NFO", _atm_token(m, kind))
        assert on_tick(q.bid) and on_tick(q.ask) and on_tick(q.ltp)
        assert q.bid < q.ltp < q.ask and q.ltp > 50
        assert q.spread_pct < 1.0
    spot = m.ltp("NSE", NIFTY)
    far = [c for c in m.contracts("NIFTY") if c.kind == "PE" and c.strike < spot * 0.93]
    quotes = [m.quote("NFO", c.token) for c in far[:20]]
    assert all(q.spread_pct > 2.0 for q in quotes if q.ltp < 20)
    idx = m.quote("NSE", NIFTY)
    assert idx.bid == idx.ask == idx.ltp


def test_option_candles_follow_the_underlying_and_never_touch_zero():
    m = market(at(DAY, time(16)))
    spot = np.array([b.close for b in m.candles("NSE", NIFTY, ONE_MINUTE, at(DAY, time(0)), at(DAY, time(23)))])
    expiry = date(2026, 2, 17)
    for kind, sign in (("CE", 1), ("PE", -1)):
        bars = m.candles("NFO", _atm_token(m, kind, expiry), ONE_MINUTE, at(DAY, time(0)), at(DAY, time(23)))
        assert len(bars) == 375
        assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
        assert all(b.volume > 0 and b.low >= 0.05 and on_tick(b.high) for b in bars)
        closes = np.array([b.close for b in bars])
        assert sign * np.corrcoef(np.diff(spot), np.diff(closes))[0, 1] > 0.8


def test_futures_trade_at_carry_with_u_shaped_volume(year_market):
    d = date(2026, 4, 15)
    fut = next(c for c in _contracts_on(year_market, d) if c.kind == "FUT")
    assert fut.expiry == CAL.monthly_expiry(2026, 4)
    spot = year_market.candles("NSE", NIFTY, ONE_MINUTE, at(d, time(0)), at(d, time(23)))
    bars = year_market.candles("NFO", fut.token, ONE_MINUTE, at(d, time(0)), at(d, time(23)))
    for s, f in zip(spot, bars):
        carry = math.exp(RATE * time_to_expiry(s.start + timedelta(minutes=1), fut.expiry))
        assert f.close == pytest.approx(s.close * carry, abs=0.03)
    vol = np.array([b.volume for b in bars])
    assert np.all(vol > 0) and np.all(vol % fut.lot_size == 0)
    assert vol[:30].mean() > 1.5 * vol[150:240].mean()


def _contracts_on(m, d):
    probe = SyntheticMarket(FreeClock(at(d, time(9))), m.seed, m.underlyings, overrides=m.overrides)
    return probe.contracts("NIFTY")


def test_expired_option_settles_at_intrinsic():
    m = market(at(date(2026, 2, 12), time(12)))
    expiry = DAY
    settle = m.daily_ohlc("NIFTY", expiry)[3]
    k = int(round(settle / 50) * 50) - 200
    ce, pe = Contract("NIFTY", expiry, "CE", k), Contract("NIFTY", expiry, "PE", k)
    assert m.ltp("NFO", ce.token) == pytest.approx(settle - k, abs=0.05)
    assert m.ltp("NFO", pe.token) == 0.0
    assert m.candles("NFO", ce.token, ONE_MINUTE, at(date(2026, 2, 11), time(0)),
                     at(date(2026, 2, 12), time(23))) == []


def test_unknown_tokens_wrong_exchanges_and_bad_requests_are_refused():
    m = market(at(DAY, time(11)))
    with pytest.raises(UnknownInstrument, match="12345"):
        m.ltp("NFO", "12345")
    with pytest.raises(UnknownInstrument, match="NFO"):
        m.ltp("NFO", NIFTY)
    with pytest.raises(UnknownInstrument, match="BANKNIFTY"):
        m.ltp("NFO", Contract("BANKNIFTY", date(2026, 2, 24), "CE", 52000).token)
    with pytest.raises(ValueError, match="interval"):
        m.candles("NSE", NIFTY, "FIVE_MINUTE", at(DAY, time(9)), at(DAY, time(10)))
    with pytest.raises(ValueError, match="before end"):
        m.candles("NSE", NIFTY, ONE_MINUTE, at(DAY, time(10)), at(DAY, time(10)))
    with pytest.raises(ValueError, match="naive"):
        m.candles("NSE", NIFTY, ONE_MINUTE, datetime(2026, 2, 10, 9), at(DAY, time(10)))


# ------------------------------------------------------------------ instrument master

MASTER_KEYS = ["token", "symbol", "name", "expiry", "strike", "lotsize", "instrumenttype",
               "exch_seg", "tick_size"]


def test_master_rows_have_the_real_shape():
    m = market(at(DAY, time(8, 30)), underlyings=("NIFTY", "BANKNIFTY", "FINNIFTY"))
    rows = m.instrument_master()
    assert all(list(r) == MASTER_KEYS and all(type(v) is str for v in r.values()) for r in rows)
    assert len({r["token"] for r in rows}) == len(rows)
    idx = {r["token"]: r for r in rows if r["exch_seg"] == "NSE"}
    assert idx[NIFTY] == {"token": NIFTY, "symbol": "Nifty 50", "name": "NIFTY", "expiry": "",
                          "strike": "0.000000", "lotsize": "1", "instrumenttype": "AMXIDX",
                          "exch_seg": "NSE", "tick_size": "0.000000"}
    assert idx[VIX]["symbol"] == "India VIX" and idx[VIX]["name"] == "INDIA VIX"
    assert idx[BANK]["symbol"] == "Nifty Bank" and idx[FIN]["symbol"] == "Nifty Fin Service"
    lots = {"NIFTY": "65", "BANKNIFTY": "30", "FINNIFTY": "60"}
    prev_close = {u: m.daily_ohlc(u, CAL.previous_trading_day(DAY))[3] for u in lots}
    for r in rows:
        if r["exch_seg"] == "NSE":
            continue
        assert r["exch_seg"] == "NFO" and r["tick_size"] == "5.000000" and r["lotsize"] == lots[r["name"]]
        exp = datetime.strptime(r["expiry"], "%d%b%Y").date()
        assert r["expiry"] == r["expiry"].upper() and CAL.is_trading_day(exp) and exp >= DAY
        ddmmmyy = r["expiry"][:5] + r["expiry"][-2:]
        if r["instrumenttype"] == "FUTIDX":
            assert r["symbol"] == f"{r['name']}{ddmmmyy}FUT" and r["strike"] == "-1.000000"
        else:
            assert r["instrumenttype"] == "OPTIDX"
            mt = re.fullmatch(rf"{r['name']}{ddmmmyy}(\d+)(CE|PE)", r["symbol"])
            strike = int(mt.group(1))
            assert r["strike"] == f"{strike * 100:.6f}"
            assert abs(strike / prev_close[r["name"]] - 1) <= 0.15
            assert decode_token(r["token"]) == Contract(r["name"], exp, mt.group(2), strike)


def test_master_lists_nifty_weeklies_and_monthlies_and_old_lot_sizes_before_2026():
    m = market(at(date(2025, 11, 20), time(8, 30)))
    rows = [r for r in m.instrument_master() if r["instrumenttype"] == "OPTIDX"]
    expiries = sorted({datetime.strptime(r["expiry"], "%d%b%Y").date() for r in rows})
    assert expiries[:4] == CAL.expiries("NIFTY", date(2025, 11, 20), date(2025, 12, 31))[:4]
    assert CAL.monthly_expiry(2025, 11) in expiries and CAL.monthly_expiry(2025, 12) in expiries
    assert {r["lotsize"] for r in rows} == {"75"}
    assert all(e.weekday() == 1 or not CAL.is_trading_day(e + timedelta(days=1)) for e in expiries)
    jan = [r for r in market(at(date(2025, 12, 24), time(8, 30))).instrument_master()
           if r["expiry"].endswith("JAN2026")]
    assert jan and {r["lotsize"] for r in jan} == {"65"}


def test_master_is_read_by_the_instrument_parser():
    instruments = pytest.importorskip("rustro.market.instruments")
    m = market(at(DAY, time(8, 30)), underlyings=("NIFTY", "BANKNIFTY", "FINNIFTY"))
    rows = m.instrument_master()
    parsed = instruments.parse_master(rows)
    assert len(parsed) == len(rows) and not parsed.skipped
