import math
from datetime import date, datetime, time, timedelta

import numpy as np
import pytest

from rustro.calendar import at
from rustro.market.base import on_tick, round_to_tick
from rustro.market.options import (MAX_VOL, MIN_VOL, black76, implied_vol_from_vix, norm_cdf,
                                   option_quote_from_price, round_array_to_tick, time_to_expiry)

R = 0.065


def _price(f, k, t, vix, call):
    return black76(f, k, t, implied_vol_from_vix(vix, k, f, t), R, call)


def test_norm_cdf_matches_erf_and_is_antisymmetric():
    xs = np.linspace(-12, 12, 4801)
    exact = np.array([0.5 * math.erfc(-x / math.sqrt(2)) for x in xs])
    assert np.max(np.abs(norm_cdf(xs) - exact)) < 1e-14
    assert np.all(norm_cdf(xs) + norm_cdf(-xs) == 1.0)


def test_scalar_in_scalar_out_and_arrays_broadcast():
    assert isinstance(black76(24000.0, 24000.0, 0.02, 0.14, R, True), float)
    strikes = np.arange(22000, 26001, 50.0)
    prices = black76(24000.0, strikes, 0.02, 0.14, R, True)
    assert prices.shape == strikes.shape
    assert np.all(np.diff(prices) < 0)  # calls cheaper as the strike rises
    both = black76(24000.0, 24000.0, 0.02, 0.14, R, np.array([True, False]))
    assert both.shape == (2,)


@pytest.mark.parametrize("days", [0.2, 1, 5, 30])
@pytest.mark.parametrize("vix", [11.0, 14.0, 28.0])
def test_put_call_parity_to_the_tick_after_rounding(days, vix):
    f, t = 24137.4, days / 365
    for k in range(20500, 27800, 50):
        c = round_to_tick(_price(f, k, t, vix, True))
        p = round_to_tick(_price(f, k, t, vix, False))
        assert abs((c - p) - math.exp(-R * t) * (f - k)) <= 0.05 + 1e-9, k


def test_price_rises_with_vol_and_with_time():
    vols = np.linspace(0.1, 0.8, 30)
    for call in (True, False):
        for k in (23000.0, 24000.0, 25000.0):
            assert np.all(np.diff(black76(24000.0, k, 7 / 365, vols, 0.0, call)) > 0)
            ts = np.linspace(1, 60, 30) / 365
            assert np.all(np.diff(black76(24000.0, k, ts, 0.15, 0.0, call)) > 0)


def test_atm_nifty_premium_is_realistic():
    for call in (True, False):
        assert 100 <= _price(24000.0, 24000.0, 5 / 365, 14.0, call) <= 250


def test_intrinsic_at_and_after_expiry():
    assert black76(24100.0, 24000.0, 0.0, 0.2, R, True) == pytest.approx(100.0)
    assert black76(24100.0, 24000.0, 0.0, 0.2, R, False) == 0.0
    assert black76(23900.0, 24000.0, -0.01, 0.2, R, False) == pytest.approx(100.0)  # t clamped
    assert black76(24100.0, 24000.0, 0.1, 0.0, 0.0, True) == pytest.approx(100.0)  # no vol


def test_bad_forward_or_strike_is_refused():
    with pytest.raises(ValueError, match="strike"):
        black76(24000.0, 0.0, 0.1, 0.2, R, True)
    with pytest.raises(ValueError, match="vix"):
        implied_vol_from_vix(0.0, 24000.0, 24000.0, 0.1)


def test_time_to_expiry_counts_to_1530_ist_and_never_goes_negative():
    expiry = date(2026, 2, 10)
    assert time_to_expiry(at(expiry, time(9, 15)), expiry) == pytest.approx(6.25 / 24 / 365)
    assert time_to_expiry(at(date(2026, 2, 9), time(15, 30)), expiry) == pytest.approx(1 / 365)
    assert time_to_expiry(at(expiry, time(15, 30)), expiry) == 0.0
    assert time_to_expiry(at(expiry, time(15, 30)) + timedelta(days=3), expiry) == 0.0
    utc = at(expiry, time(9, 15)).astimezone(tz=None)
    assert time_to_expiry(utc, expiry) == pytest.approx(6.25 / 24 / 365)
    with pytest.raises(ValueError, match="naive"):
        time_to_expiry(datetime(2026, 2, 10, 9, 15), expiry)


def test_iv_surface_skew_smile_and_bounds():
    f, t = 24000.0, 7 / 365
    atm = implied_vol_from_vix(14.0, f, f, t)
    assert atm == pytest.approx(0.14, rel=0.1)
    for pct in (0.01, 0.03, 0.06):
        put_side = implied_vol_from_vix(14.0, f * math.exp(-pct), f, t)
        call_side = implied_vol_from_vix(14.0, f * math.exp(pct), f, t)
        assert put_side > atm and put_side > call_side  # OTM puts richer
    wing = implied_vol_from_vix(14.0, f * 1.15, f, t)
    assert wing > implied_vol_from_vix(14.0, f * 1.02, f, t)  # smile lifts the far call wing
    assert implied_vol_from_vix(400.0, 5000.0, f, t) <= MAX_VOL
    assert implied_vol_from_vix(1.0, f, f, t) >= MIN_VOL
    assert implied_vol_from_vix(14.0, f, f, 0.0) == pytest.approx(atm)  # finite at expiry


def test_quote_rounds_outward_to_the_tick_and_brackets_the_price():
    for price in (0.01, 0.05, 0.3, 3.33, 49.97, 151.23, 999.99):
        for m in (-0.1, -0.01, 0.0, 0.02, 0.15):
            bid, ask = option_quote_from_price(price, m)
            assert on_tick(bid) and on_tick(ask) and bid < ask
            assert bid >= 0.05
            if price >= 0.05:
                assert bid <= price <= ask
    assert option_quote_from_price(0.0, 0.0) == (0.0, 0.05)


def test_atm_spread_passes_the_2pct_filter_and_far_cheap_options_fail_it():
    for price in np.linspace(50.05, 800, 60):
        bid, ask = option_quote_from_price(float(price), 0.002)
        assert (ask - bid) / ((ask + bid) / 2) < 0.01, price
    for price, m in ((3.0, -0.08), (8.0, 0.06), (0.8, 0.0), (15.0, -0.09)):
        bid, ask = option_quote_from_price(price, m)
        assert (ask - bid) / ((ask + bid) / 2) > 0.02, (price, m)


def test_quote_refuses_bad_prices():
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="option price"):
            option_quote_from_price(bad, 0.0)


def test_vectorized_rounding_agrees_with_round_to_tick():
    xs = np.concatenate([np.linspace(0, 500, 10007), [0.025, 0.075, 24000.025, 1.1 + 0.05 * 3]])
    got = round_array_to_tick(xs)
    assert all(g == round_to_tick(float(x)) for g, x in zip(got, xs))
