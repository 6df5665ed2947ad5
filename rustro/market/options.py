"""Option pricing for the synthetic market: Black-76, an IV surface from India VIX, bid/ask quotes.

Pure functions, vectorized over numpy arrays, so one day's chain prices in a few array passes.
Black-76 prices off the forward (the near future or spot x carry): that is how NSE index options
are quoted in practice and it makes put-call parity exact, C - P = DF x (F - K).
"""
from __future__ import annotations

import math
from datetime import date, datetime, time

import numpy as np

from ..calendar import at
from ..clock import ist
from .base import TICK, round_to_tick, tick_decimals

YEAR_DAYS = 365.0
EXPIRY_TIME = time(15, 30)  # contracts stop trading and settle at the close

# IV surface: vol = atm x (1 + SKEW x m + SMILE x m^2), m = ln(K/F) / (atm x sqrt(t)), clamped.
ATM_VOL_PER_VIX = 0.95       # ATM IV of short-dated NIFTY options sits a little under VIX
SKEW = -0.08                 # negative: OTM puts (m < 0) richer than OTM calls
SMILE = 0.02                 # curvature: far wings of both sides richer again
MAX_ABS_M = 4.0              # stop the smile running away in far wings
MIN_VOL, MAX_VOL = 0.03, 2.0
MIN_T_FOR_SURFACE = 1.0 / (YEAR_DAYS * 24 * 4)  # 15 minutes: keeps m finite at expiry

# Quote: full spread = mid x (BASE + WING x |ln(K/F)|) + FIXED, then bid down / ask up to the tick.
SPREAD_BASE_PCT = 0.004
SPREAD_WING = 0.25
SPREAD_FIXED = 0.10


def time_to_expiry(now: datetime, expiry: date) -> float:
    """Years of 365 days from `now` to 15:30 IST on the expiry date; 0 at and after expiry."""
    seconds = (at(expiry, EXPIRY_TIME) - ist(now)).total_seconds()
    return max(0.0, seconds / (YEAR_DAYS * 86400.0))


_P = (3.52624965998911e-02, 0.700383064443688, 6.37396220353165, 33.912866078383,
      112.079291497871, 221.213596169931, 220.206867912376)
_Q = (8.83883476483184e-02, 1.75566716318264, 16.064177579207, 86.7807322029461,
      296.564248779674, 637.333633378831, 793.826512519948, 440.413735824752)


def norm_cdf(x):
    """Standard normal CDF, vectorized (Hart 1968 / Cody rational form, ~1e-15 absolute).

    Exactly antisymmetric (N(-x) = 1 - N(x)), which keeps put-call parity exact.
    """
    x = np.asarray(x, dtype=float)
    a = np.abs(x)
    e = np.exp(-0.5 * a * a)
    num = np.zeros_like(a)
    for c in _P:
        num = num * a + c
    den = np.zeros_like(a)
    for c in _Q:
        den = den * a + c
    tail = e * num / den
    if a.size and a.max() >= 7.07106781186547:  # far tails: continued fraction
        cf = a + 0.65
        for k in (4.0, 3.0, 2.0, 1.0):
            cf = a + k / cf
        tail = np.where(a < 7.07106781186547, tail, e / cf / 2.506628274631)
        tail = np.where(a > 37.0, 0.0, tail)
    return np.where(x > 0, 1.0 - tail, tail)


def _out(result, *inputs):
    """A Python float when every input was a scalar, else the array."""
    if all(np.ndim(v) == 0 for v in inputs):
        return float(result)
    return result


def black76(forward, strike, t_years, vol, rate, is_call):
    """Black-76 premium; intrinsic (discounted) when t <= 0 or vol <= 0. Inputs broadcast."""
    f, k, t, v, r = (np.asarray(a, dtype=float) for a in (forward, strike, t_years, vol, rate))
    call = np.asarray(is_call, dtype=bool)
    if np.any(f <= 0) or np.any(k <= 0):
        raise ValueError("black76: forward and strike must be > 0")
    t = np.maximum(t, 0.0)
    df = np.exp(-r * t)
    sd = v * np.sqrt(t)
    live = sd > 0
    safe_sd = np.where(live, sd, 1.0)
    d1 = (np.log(f / k) + 0.5 * safe_sd * safe_sd) / safe_sd
    d2 = d1 - safe_sd
    c = df * (f * norm_cdf(d1) - k * norm_cdf(d2))
    price = np.where(call, c, c - df * (f - k))  # the put by parity: same N(d) values, exact
    intrinsic = df * np.where(call, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))
    price = np.where(live, np.maximum(price, 0.0), intrinsic)
    return _out(price, forward, strike, t_years, vol, rate, is_call)


def implied_vol_from_vix(vix, strike, forward, t_years):
    """IV (a fraction) for a strike: ATM tracks VIX, OTM puts richer (skew), wings lifted (smile)."""
    v, k, f, t = (np.asarray(a, dtype=float) for a in (vix, strike, forward, t_years))
    if np.any(v <= 0):
        raise ValueError("implied_vol_from_vix: vix must be > 0")
    atm = v / 100.0 * ATM_VOL_PER_VIX
    m = np.log(k / f) / (atm * np.sqrt(np.maximum(t, MIN_T_FOR_SURFACE)))
    m = np.clip(m, -MAX_ABS_M, MAX_ABS_M)
    vol = np.clip(atm * (1.0 + SKEW * m + SMILE * m * m), MIN_VOL, MAX_VOL)
    return _out(vol, vix, strike, forward, t_years)


def spread_width(price, moneyness):
    """Unrounded full bid/ask spread: wider for far strikes (|ln K/F|) and, relatively, cheap ones."""
    if type(price) is float and type(moneyness) is float:  # the same IEEE operations, no arrays
        return price * (SPREAD_BASE_PCT + SPREAD_WING * abs(moneyness)) + SPREAD_FIXED
    p, m = np.asarray(price, dtype=float), np.asarray(moneyness, dtype=float)
    return _out(p * (SPREAD_BASE_PCT + SPREAD_WING * np.abs(m)) + SPREAD_FIXED, price, moneyness)


# --- one price at a time ---------------------------------------------------------------------------
# The synthetic market quotes one option at one minute at a time. These are `norm_cdf`,
# `implied_vol_from_vix` and `black76` on Python floats: the same operations in the same order,
# with exp, log and sqrt still NumPy's ufuncs (so the same kernels as on an array of one), and
# + - * / on floats being the same IEEE double operations as on float64 arrays; np.maximum, np.clip
# and np.where on finite floats become max, min and if. So each returns exactly what its array
# twin returns for a scalar (tests/test_backtest_speed.py checks this bit for bit), ~20x faster.
_np_exp, _np_log, _np_sqrt = np.exp, np.log, np.sqrt


def norm_cdf_scalar(x: float) -> float:
    a = abs(x)
    e = float(_np_exp(-0.5 * a * a))
    num = 0.0
    for c in _P:
        num = num * a + c
    den = 0.0
    for c in _Q:
        den = den * a + c
    tail = e * num / den
    if a >= 7.07106781186547:  # far tails: continued fraction
        cf = a + 0.65
        for k in (4.0, 3.0, 2.0, 1.0):
            cf = a + k / cf
        tail = e / cf / 2.506628274631
        if a > 37.0:
            tail = 0.0
    return 1.0 - tail if x > 0 else tail


def implied_vol_scalar(vix: float, strike: float, forward: float, t_years: float) -> float:
    if vix <= 0:
        raise ValueError("implied_vol_from_vix: vix must be > 0")
    atm = vix / 100.0 * ATM_VOL_PER_VIX
    m = float(_np_log(strike / forward)) / (atm * float(_np_sqrt(max(t_years, MIN_T_FOR_SURFACE))))
    m = min(max(m, -MAX_ABS_M), MAX_ABS_M)
    return min(max(atm * (1.0 + SKEW * m + SMILE * m * m), MIN_VOL), MAX_VOL)


def black76_scalar(forward: float, strike: float, t_years: float, vol: float, rate: float,
                   is_call: bool) -> float:
    f, k = forward, strike
    if f <= 0 or k <= 0:
        raise ValueError("black76: forward and strike must be > 0")
    t = max(t_years, 0.0)
    df = float(_np_exp(-rate * t))
    sd = vol * float(_np_sqrt(t))
    if sd > 0:
        d1 = (float(_np_log(f / k)) + 0.5 * sd * sd) / sd
        d2 = d1 - sd
        c = df * (f * norm_cdf_scalar(d1) - k * norm_cdf_scalar(d2))
        price = c if is_call else c - df * (f - k)  # the put by parity: same N(d) values, exact
        return max(price, 0.0)
    return df * (max(f - k, 0.0) if is_call else max(k - f, 0.0))


def option_quote_from_price(price: float, moneyness: float, tick: float = TICK) -> tuple[float, float]:
    """(bid, ask) around a theoretical `price`; `moneyness` is ln(strike / forward).

    Bid rounds down and ask up to the tick; a live option (price > 0) always bids at least one tick,
    a worthless one shows (0, tick).
    """
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"option price must be a finite number >= 0, got {price!r}")
    if price <= 0:
        return 0.0, tick
    half = spread_width(price, moneyness) / 2
    bid = max(tick, round_to_tick(price - half, tick, "down"))
    ask = max(bid + tick, round_to_tick(price + half, tick, "up"))
    return bid, round_to_tick(ask, tick, "nearest")


def round_array_to_tick(prices, tick: float = TICK):
    """Vectorized nearest-tick rounding with the same representation-noise guard as round_to_tick."""
    # `.round(d)` is what np.round(x, d) calls (without its Python dispatch): the same values
    n = np.floor((np.asarray(prices, dtype=float) / tick).round(6) + 0.5)
    return (n * tick).round(tick_decimals(tick))
