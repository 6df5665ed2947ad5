"""Price paths for the synthetic market: a cheap daily path per year, minute paths per day.

Two levels, so that one date costs one day of minute data, not every earlier minute:
- a *year path* per (seed, underlying, year): each trading day's regime and O/H/L/C, from a loop of
  ~250 steps. A year starts from the previous year's last close (years back to ANCHOR_YEAR are
  tiny), so levels are continuous: open = previous close x (1 + gap).
- a *day path* per (seed, underlying, date): 375 minute bars shaped to hit that day's O/H/L/C
  exactly (a bridge from open to close, then a monotone stretch so its extremes land on the
  day's high and low). The daily bar therefore always equals the aggregate of its minute bars.
Randomness comes from numpy Generators seeded by SHA-256 of the key, never Python's hash().
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, time

import numpy as np

from .base import TICK, round_to_tick
from .options import round_array_to_tick

N_MIN = 375                  # minute bars 09:15 .. 15:29
SESSION_OPEN = time(9, 15)
REGIMES = ("trend_up", "trend_down", "range")
ANCHOR_YEAR = 2018           # paths start here at the target level; earlier dates are refused
REF_DATE = date(2025, 7, 1)  # the `base` levels below hold around this date
GROWTH = 0.10                # long-run drift of the target level per year
VIX_MEAN, VIX_TICK, VIX_MIN, VIX_MAX = 14.0, 0.0025, 9.0, 85.0
SPIKES_PER_YEAR = (2, 4)     # scheduled VIX spike days (peak > 30) per year, inclusive range


@dataclass(frozen=True)
class IndexSpec:
    name: str
    token: str
    symbol: str
    base: float
    strike_step: int
    vol_mult: float
    follow: float  # probability that the day's regime copies NIFTY's


INDICES = {
    "NIFTY": IndexSpec("NIFTY", "99926000", "Nifty 50", 24000.0, 50, 1.0, 1.0),
    "BANKNIFTY": IndexSpec("BANKNIFTY", "99926009", "Nifty Bank", 52000.0, 100, 1.15, 0.7),
    "FINNIFTY": IndexSpec("FINNIFTY", "99926037", "Nifty Fin Service", 24000.0, 50, 1.05, 0.8),
}
VIX_TOKEN, VIX_SYMBOL, VIX_NAME = "99926017", "India VIX", "INDIA VIX"


@dataclass(frozen=True)
class DayScenario:
    """Forces parts of one day (all underlyings) for tests and scenarios; None leaves it to the seed.

    gap_pct / move_pct are the open-vs-previous-close and close-vs-open changes in percent.
    vix_level pins the day's VIX open; vix_spike_at puts the VIX peak (vix_peak, default 35) at that
    minute and makes the index slide into it; no_vix_spike cancels a scheduled spike.
    """
    regime: str | None = None
    gap_pct: float | None = None
    move_pct: float | None = None
    vix_level: float | None = None
    vix_spike_at: time | None = None
    vix_peak: float | None = None
    no_vix_spike: bool = False

    def __post_init__(self):
        if self.regime is not None and self.regime not in REGIMES:
            raise ValueError(f"DayScenario.regime must be one of {REGIMES}, got {self.regime!r}")
        for name in ("gap_pct", "move_pct"):
            v = getattr(self, name)
            if v is not None and not -20.0 < v < 20.0:
                raise ValueError(f"DayScenario.{name} must be a percent in (-20, 20), got {v!r}")
        for name in ("vix_level", "vix_peak"):
            v = getattr(self, name)
            if v is not None and not VIX_MIN <= v <= VIX_MAX:
                raise ValueError(f"DayScenario.{name} must be in [{VIX_MIN}, {VIX_MAX}], got {v!r}")
        if self.vix_spike_at is not None and not 1 <= session_minute(self.vix_spike_at) < N_MIN:
            raise ValueError(f"DayScenario.vix_spike_at must be in 09:16..15:29, got {self.vix_spike_at}")
        if self.vix_spike_at is not None and self.no_vix_spike:
            raise ValueError("DayScenario: vix_spike_at and no_vix_spike contradict each other")


@dataclass(frozen=True)
class Spike:
    minute: int   # path point index: the VIX peaks at 09:15 + minute
    peak: float


@dataclass
class YearPath:
    days: list[date]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    regime: list[str]
    sigma: list[float]  # intraday diffusion (fraction of the open) the minute path uses
    pos: dict[date, int] = field(default_factory=dict)

    def __post_init__(self):
        self.pos = {d: i for i, d in enumerate(self.days)}

    def ohlc(self, d: date) -> tuple[float, float, float, float]:
        i = self.pos[d]
        return self.open[i], self.high[i], self.low[i], self.close[i]


@dataclass(frozen=True)
class DaySeries:
    """One day of minute bars; points[i] is the value at 09:15 + i minutes (points[375] = close)."""
    day: date
    points: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def session_minute(t: time) -> int:
    return (t.hour * 60 + t.minute) - (SESSION_OPEN.hour * 60 + SESSION_OPEN.minute)


def stable_rng(*parts) -> np.random.Generator:
    """A Generator that depends only on `parts` (same in every process and Python version)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def target_level(spec: IndexSpec, d: date) -> float:
    return spec.base * math.exp(GROWTH * (d - REF_DATE).days / 365.25)


# ------------------------------------------------------------------ daily (year) paths

def spike_schedule(seed: int, year: int, days: list[date], overrides: dict) -> dict[date, Spike]:
    """Market-wide VIX spike days of a year: a few scheduled ones, then the overrides applied."""
    rng = stable_rng(seed, "VIX-SPIKES", year)
    n = int(rng.integers(SPIKES_PER_YEAR[0], SPIKES_PER_YEAR[1] + 1))
    picks = rng.permutation(len(days))[:n].tolist()
    minutes = rng.integers(20, 330, size=n).tolist()
    peaks = rng.uniform(31.0, 42.0, size=n).tolist()
    out = {days[i]: Spike(m, p) for i, m, p in zip(picks, minutes, peaks)}
    for d, sc in overrides.items():
        if d.year != year:
            continue
        if sc.no_vix_spike:
            out.pop(d, None)
        elif sc.vix_spike_at is not None:
            out[d] = Spike(session_minute(sc.vix_spike_at), sc.vix_peak or 35.0)
    return out


def _next_regime(prev: str, u: float, dev: float) -> str:
    stay = 0.88 if prev == "range" else 0.65
    if u < stay:
        return prev
    v = (u - stay) / (1.0 - stay)
    if prev == "range":
        p_up = min(0.85, max(0.15, 0.5 - 6.0 * dev))  # lean back toward the target level
        return "trend_up" if v < p_up else "trend_down"
    return "range" if v < 0.8 else ("trend_down" if prev == "trend_up" else "trend_up")


def _excursions(b: float, sigma: float, u_hi: float, u_lo: float) -> tuple[float, float]:
    """Max above 0 and min below 0 of a Brownian bridge 0 -> b with variance sigma^2 (inverse CDF)."""
    s2 = sigma * sigma
    up = (b + math.sqrt(b * b - 2.0 * s2 * math.log(u_hi))) / 2.0
    dn = (b - math.sqrt(b * b - 2.0 * s2 * math.log(u_lo))) / 2.0
    return up, dn


def _index_day(spec: IndexSpec, d: date, prev_close: float, regime: str, vix_open: float,
               draws: tuple, sc: DayScenario | None, spiking: bool, center: float):
    """One day's (open, high, low, close, sigma, move); `center` is where the current range began."""
    z_gap, u_tail, z_move, u_hi, u_lo = draws
    sigma = 0.7 * vix_open / 100.0 / math.sqrt(252.0) * spec.vol_mult
    if sc is not None and sc.gap_pct is not None:
        gap = sc.gap_pct / 100.0
    else:
        gap = max(-0.04, min(0.04, 0.4 * sigma * z_gap * (3.0 if u_tail < 0.05 else 1.0)))
    o = round_to_tick(prev_close * (1.0 + gap), TICK)
    dev = math.log(o / target_level(spec, d))
    if sc is not None and sc.move_pct is not None:
        move = sc.move_pct / 100.0
    else:
        drift = GROWTH / 252.0 - 0.01 * dev
        if spiking and (sc is None or sc.regime is None):
            move = -sigma * (2.0 + abs(z_move))
        elif regime == "trend_up":
            move = sigma * (0.6 + 0.4 * abs(z_move)) + drift
        elif regime == "trend_down":
            move = -sigma * (0.6 + 0.4 * abs(z_move)) + drift
        else:
            move = 0.25 * sigma * z_move - 0.4 * math.log(o / center)  # stay in the range
    c = round_to_tick(o * (1.0 + move), TICK)
    up, dn = _excursions(c - o, (0.55 if regime != "range" else 0.6) * sigma * o, u_hi, u_lo)
    h = max(round_to_tick(o + up, TICK, "up"), round_to_tick(max(o, c) + TICK, TICK))
    lo = min(round_to_tick(o + dn, TICK, "down"), round_to_tick(min(o, c) - TICK, TICK))
    return o, h, lo, c, sigma, move


def _vix_day(prev_close: float, draws: tuple, nifty_move: float, sc: DayScenario | None,
             spike: Spike | None):
    z_open, z_close, u_hi, u_lo, u_spike = draws
    vt = lambda x, how="nearest": round_to_tick(min(VIX_MAX, max(VIX_MIN, x)), VIX_TICK, how)  # noqa: E731
    if sc is not None and sc.vix_level is not None:
        o = vt(sc.vix_level)
        c = vt(o * math.exp(0.01 * z_close))
    else:
        o = vt(prev_close * math.exp(0.025 * z_open))
        pull = 0.1 if o < 20.0 else 0.3  # fear fades fast after a spike
        lc = (math.log(o) + pull * (math.log(VIX_MEAN) - math.log(o)) + 0.05 * z_close
              - 4.0 * nifty_move * min(1.0, 16.0 / o))
        c = vt(math.exp(lc))
    up, dn = _excursions(c - o, 0.04 * o, u_hi, u_lo)
    if spike is not None:
        peak = max(spike.peak, o * 1.15)
        c = vt(peak * (0.6 + 0.15 * u_spike))
        h = vt(peak, "up")
    else:
        h = max(vt(o + up, "up"), vt(max(o, c) + VIX_TICK))
    lo = min(vt(o + dn, "down"), vt(min(o, c) - VIX_TICK))
    return o, h, lo, c


def _index_draws(rng: np.random.Generator, n: int) -> tuple[list, ...]:
    z = rng.standard_normal((2, n))
    u = rng.random((5, n))
    return z[0].tolist(), u[0].tolist(), z[1].tolist(), u[1].tolist(), u[2].tolist(), \
        u[3].tolist(), u[4].tolist()


def market_year(seed: int, year: int, days: list[date], prev: tuple, overrides: dict,
                spikes: dict[date, Spike]) -> tuple[YearPath, YearPath]:
    """NIFTY and India VIX together: VIX opens from its previous close and reacts to NIFTY's move.

    `prev` is (nifty close, nifty regime, vix close) of the previous year's last day.
    """
    spec = INDICES["NIFTY"]
    z_gap, u_tail, z_move, u_hi, u_lo, u_reg, _ = _index_draws(stable_rng(seed, "NIFTY", year), len(days))
    rv = stable_rng(seed, VIX_NAME, year)
    vz, vu = rv.standard_normal((2, len(days))).tolist(), rv.random((3, len(days))).tolist()
    close, regime, vclose = prev
    center = close
    nifty = YearPath(days, [], [], [], [], [], [])
    vix = YearPath(days, [], [], [], [], [], [])
    for j, d in enumerate(days):
        sc = overrides.get(d)
        spike = spikes.get(d)
        vix_open_guess = sc.vix_level if sc is not None and sc.vix_level else vclose
        if sc is not None and sc.regime is not None:
            regime = sc.regime
        elif spike is not None:
            regime = "trend_down"
        else:
            regime = _next_regime(regime, u_reg[j], math.log(close / target_level(spec, d)))
        if regime != "range" or j == 0 or nifty.regime[j - 1] != "range":
            center = close  # a range is anchored where it began
        o, h, lo, c, sigma, move = _index_day(
            spec, d, close, regime, vix_open_guess,
            (z_gap[j], u_tail[j], z_move[j], u_hi[j], u_lo[j]), sc, spike is not None, center)
        _append(nifty, o, h, lo, c, regime, sigma)
        vo, vh, vl, vc = _vix_day(vclose, (vz[0][j], vz[1][j], vu[0][j], vu[1][j], vu[2][j]),
                                  move, sc, spike)
        _append(vix, vo, vh, vl, vc, "", 0.0)
        close, vclose = c, vc
    return nifty, vix


def follower_year(seed: int, spec: IndexSpec, year: int, days: list[date], prev: tuple,
                  overrides: dict, spikes: dict[date, Spike], nifty: YearPath,
                  vix: YearPath) -> YearPath:
    """BANKNIFTY / FINNIFTY: own randomness, regime often copied from NIFTY, vol from India VIX."""
    z_gap, u_tail, z_move, u_hi, u_lo, u_reg, u_follow = _index_draws(
        stable_rng(seed, spec.name, year), len(days))
    close, regime = prev
    center = close
    out = YearPath(days, [], [], [], [], [], [])
    for j, d in enumerate(days):
        sc = overrides.get(d)
        if sc is not None and sc.regime is not None:
            regime = sc.regime
        elif d in spikes:
            regime = "trend_down"
        elif u_follow[j] < spec.follow:
            regime = nifty.regime[j]
        else:
            regime = _next_regime(regime, u_reg[j], math.log(close / target_level(spec, d)))
        if regime != "range" or j == 0 or out.regime[j - 1] != "range":
            center = close
        o, h, lo, c, sigma, _ = _index_day(spec, d, close, regime, vix.open[j],
                                           (z_gap[j], u_tail[j], z_move[j], u_hi[j], u_lo[j]),
                                           sc, d in spikes, center)
        _append(out, o, h, lo, c, regime, sigma)
        close = c
    return out


def _append(p: YearPath, o, h, lo, c, regime, sigma) -> None:
    p.open.append(o)
    p.high.append(h)
    p.low.append(lo)
    p.close.append(c)
    p.regime.append(regime)
    p.sigma.append(sigma)


# ------------------------------------------------------------------ minute (day) paths

def _u_shape(n: int = N_MIN) -> np.ndarray:
    """Intraday volatility profile: high at the open, a quiet middle, a lift into the close."""
    i = np.arange(n)
    w = 1.0 + 1.6 * np.exp(-i / 20.0) + 0.9 * np.exp(-(n - 1 - i) / 25.0)
    return w / np.sqrt(np.mean(w * w))


U_SHAPE = _u_shape()
_FRAC = np.arange(N_MIN + 1) / N_MIN
_OU_KERNEL = (1.0 - 0.04) ** np.arange(N_MIN)  # range days: 4 %/minute pull back to the mean


def _bridge(inc: np.ndarray, start: float, end: float) -> np.ndarray:
    p = np.empty(N_MIN + 1)
    p[0] = 0.0
    np.cumsum(inc, out=p[1:])
    return start + p + _FRAC * (end - start - p[-1])


def _shape(points, ex_hi, ex_lo, o, h, lo, c, tick, day: date, volume) -> DaySeries:
    """Bars from path points plus intra-minute excursions, stretched so the day hits (h, lo)."""
    bh = np.maximum(points[:-1], points[1:]) + ex_hi
    bl = np.minimum(points[:-1], points[1:]) - ex_lo
    top, bot = max(o, c), min(o, c)
    up = (h - top) / (bh.max() - top)
    dn = (bot - lo) / (bot - bl.min())

    # points, bar highs and bar lows stretched and rounded in one pass (elementwise: the same
    # values as three passes)
    x = np.concatenate([points, bh, bl])
    x = round_array_to_tick(
        np.where(x > top, top + (x - top) * up, np.where(x < bot, bot - (bot - x) * dn, x)), tick)
    n = len(points)
    pts = x[:n]
    bo, bc = pts[:-1], pts[1:]
    hi = np.maximum(x[n:2 * n - 1], np.maximum(bo, bc))
    low = np.minimum(x[2 * n - 1:], np.minimum(bo, bc))
    return DaySeries(day, pts, bo, hi, low, bc, volume)


def index_minutes(seed: int, name: str, day: date, ohlc: tuple, regime: str, sigma: float,
                  shock_minute: int | None) -> DaySeries:
    """Spot minute bars (volume 0): random walk, or mean-reverting on range days, into the close."""
    o, h, lo, c = ohlc
    z = stable_rng(seed, name, day).standard_normal((3, N_MIN))
    sd = sigma * o / math.sqrt(N_MIN) * U_SHAPE
    inc = sd * z[0]
    if regime == "range":
        inc = np.diff(np.convolve(1.4 * inc, _OU_KERNEL)[:N_MIN], prepend=0.0)
    if shock_minute is not None:  # slide into a VIX spike
        n = min(15, shock_minute)
        inc[shock_minute - n:shock_minute] -= 2.0 * sigma * o / n
    pts = _bridge(inc, o, c)
    return _shape(pts, (np.abs(z[1]) + 0.05) * 0.4 * sd, (np.abs(z[2]) + 0.05) * 0.4 * sd,
                  o, h, lo, c, TICK, day, np.zeros(N_MIN))


def vix_minutes(seed: int, day: date, ohlc: tuple, nifty_points: np.ndarray,
                spike: Spike | None) -> DaySeries:
    """India VIX minute bars: rises when NIFTY falls; on a spike day peaks at the spike minute."""
    o, h, lo, c = ohlc
    z = stable_rng(seed, VIX_NAME, day).standard_normal((3, N_MIN))
    sd = 0.035 / math.sqrt(N_MIN) * U_SHAPE
    inc = -4.0 * np.diff(np.log(nifty_points)) + sd * z[0]
    lp = _bridge(inc, 0.0, 0.0)
    if spike is not None:
        k, amp = spike.minute, math.log(h / o)
        ramp = min(20, k)
        i = np.arange(N_MIN + 1)
        lp += np.where(i <= k, np.clip((i - (k - ramp)) / ramp, 0.0, 1.0),
                       0.6 + 0.4 * np.exp(-(i - k) / 30.0)) * amp
    lp += _FRAC * (math.log(c / o) - lp[-1])
    pts = o * np.exp(lp)
    ex_hi, ex_lo = (np.abs(z[1]) + 0.05) * 0.4 * sd * o, (np.abs(z[2]) + 0.05) * 0.4 * sd * o
    if spike is not None:  # the peak must be the day's highest value, at exactly that minute
        k = spike.minute
        pts[k] = 1.001 * (np.maximum(pts[:-1], pts[1:]) + ex_hi).max()
        ex_hi[k - 1] = ex_hi[k] = 0.0
    return _shape(pts, ex_hi, ex_lo, o, h, lo, c, VIX_TICK, day, np.zeros(N_MIN))
