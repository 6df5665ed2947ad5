"""The built-in synthetic market: a seeded, clock-bound `MarketData` for sim and backtests.

Deterministic per (seed, date, overrides): every series is generated on demand from numpy
Generators keyed by SHA-256 of (seed, name, date or year) and kept in a small in-memory LRU,
never on disk. See synthetic_paths for how days chain into a continuous multi-year path,
synthetic_cache for the caches shared across markets in a process, and synthetic_bars for candles.

What the clock may see (no look-ahead): path point k of a day is the price at 09:15 + k minutes,
i.e. the close of minute bar k-1. `ltp`/`quote`/`vix` return the point of the last *completed*
minute (the day's open from 09:15:00 exactly), so the price steps once a minute; before 09:15 and on
closed days they return the previous session's close. Quote.ts is that minute's instant.
`candles` returns only bars whose end <= clock.now(); the daily bar (stamped 00:00 IST, as Angel's
API does) appears once the session has closed at 15:30.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np

from ..calendar import TradingCalendar, at
from ..clock import Clock, ist
from .base import ONE_DAY, ONE_HOUR, ONE_MINUTE, TICK, Bar, Quote, round_to_tick  # noqa: F401
from .options import (black76, black76_scalar, implied_vol_from_vix, implied_vol_scalar,
                      option_quote_from_price, round_array_to_tick, time_to_expiry)
from .synthetic_bars import INTERVALS, CandlesMixin  # noqa: F401  (INTERVALS: re-exported)
from .synthetic_promise import _INDEX_BY_TOKEN, PromiseMixin
from .synthetic_cache import (LRU, SHARED_MASTERS, SHARED_OPTIONS, SHARED_SERIES, SHARED_SPIKES,
                              SHARED_YEARS, calendar_id, days_between, listed_rows, year_days)
from .synthetic_contracts import Contract, decode_token, index_rows
from .synthetic_paths import (ANCHOR_YEAR, INDICES, N_MIN, SESSION_OPEN, U_SHAPE, VIX_MEAN, VIX_NAME,
                              VIX_TOKEN, DayScenario, DaySeries, YearPath, follower_year,
                              index_minutes, market_year, spike_schedule, stable_rng,
                              target_level, vix_minutes)

RATE = 0.065                 # carry / discount rate for futures and Black-76
FUT_HALF_SPREAD = 0.00002    # futures quote: half-spread as a fraction of price (>= one tick)
MINUTE_YEARS = 1.0 / (365.0 * 24 * 60)


class UnknownInstrument(LookupError):
    """A token this market does not list (or asked on the wrong exchange)."""


class SyntheticMarket(CandlesMixin, PromiseMixin):
    """MarketData over seeded synthetic NSE indices, India VIX, index futures and options."""

    def __init__(self, clock: Clock, seed: int, underlyings=("NIFTY",),
                 calendar: TradingCalendar | None = None,
                 overrides: dict[date, DayScenario] | None = None,
                 rate: float = RATE, cache_days: int = 8):
        if isinstance(underlyings, str):
            underlyings = (underlyings,)
        for u in underlyings:
            if u not in INDICES:
                raise ValueError(f"SyntheticMarket: unknown underlying {u!r} (known: {sorted(INDICES)})")
        for d, sc in (overrides or {}).items():
            if not isinstance(d, date) or isinstance(d, datetime) or not isinstance(sc, DayScenario):
                raise ValueError(f"SyntheticMarket.overrides: key {d!r} must be a date mapped to a "
                                 f"DayScenario, got {type(sc).__name__}")
        cal = calendar or TradingCalendar()
        for d in overrides or {}:
            if not cal.is_trading_day(d):
                raise ValueError(f"SyntheticMarket.overrides: {d} is not a trading day "
                                 f"({cal.closed_reason(d)})")
        self.clock = clock
        self.seed = int(seed)
        self.underlyings = tuple(underlyings)
        self.cal = cal
        self.overrides = dict(overrides or {})
        self.rate = rate
        self._years: dict[tuple[str, int], YearPath] = {}
        self._first_override_year = min((d.year for d in self.overrides), default=10_000)
        self._cal_key = (frozenset(self.cal.holidays), frozenset(self.cal.special_sessions))
        self._cal_id = calendar_id(self._cal_key)
        self._shared_key = (self.seed, self._cal_id, self.rate)  # prefix of SHARED_SERIES keys
        self._override_years = frozenset(d.year for d in self.overrides)
        self._spikes: dict[int, dict] = {}
        self._series = LRU(6 * cache_days)
        self._options = LRU(512)
        self._t_left = LRU(64)
        self._steps = LRU(64)      # per day (_day_info), and per (token, band, day) (next_change)
        self._resolved: dict = {}   # (exchange, token) -> (kind, name or Contract)
        self._bars = LRU(16)       # full days of minute bars
        self._master: tuple[date, list[dict]] | None = None

    # ------------------------------------------------------------ daily level (cheap)
    def _days_of(self, year: int) -> list[date]:
        """The year's trading days (shared, read-only)."""
        return year_days(self.cal, self._cal_id, year)

    def _trading_days(self, first: date, last: date) -> list[date]:
        """`cal.trading_days(first, last)`, by bisection in the shared per-year lists."""
        return days_between(self.cal, self._cal_id, first, last)

    def _spikes_of(self, year: int) -> dict:
        """The year's VIX spike days (read-only); shared across markets unless it has overrides."""
        spikes = self._spikes.get(year)
        if spikes is None:
            def make():
                return spike_schedule(self.seed, year, self._days_of(year), self.overrides)
            spikes = self._spikes[year] = (
                make() if year in self._override_years
                else SHARED_SPIKES.get_or((self.seed, self._cal_id, year), make))
        return spikes

    def _path(self, name: str, year: int) -> YearPath:
        path = self._years.get((name, year))
        if path is not None:
            return path
        if year < ANCHOR_YEAR:
            raise ValueError(f"synthetic market starts in {ANCHOR_YEAR}; {name} {year} asked")
        for y in range(ANCHOR_YEAR, year + 1):
            if (name, y) not in self._years:
                self._build_year(name, y)
        return self._years[(name, year)]

    def _build_year(self, name: str, y: int) -> None:
        """Year paths depend only on (seed, calendar, earlier years, overrides): years before the
        first override are shared across instances, so short-lived markets start fast."""
        shared = y < self._first_override_year
        names = ("NIFTY", VIX_NAME) if name in ("NIFTY", VIX_NAME) else (name,)
        keys = [(self.seed, self._cal_id, n, y) for n in names]
        if shared and all(k in SHARED_YEARS for k in keys):
            for n, k in zip(names, keys):
                self._years[(n, y)] = SHARED_YEARS[k]
            return
        self._generate_year(name, y)
        if shared:
            for n, k in zip(names, keys):
                SHARED_YEARS.put(k, self._years[(n, y)])

    def _generate_year(self, name: str, y: int) -> None:
        first = date(y, 1, 1)
        if name in ("NIFTY", VIX_NAME):
            prev = ((self._years[("NIFTY", y - 1)].close[-1], self._years[("NIFTY", y - 1)].regime[-1],
                     self._years[(VIX_NAME, y - 1)].close[-1]) if y > ANCHOR_YEAR
                    else (target_level(INDICES["NIFTY"], first), "range", VIX_MEAN))
            nifty, vix = market_year(self.seed, y, self._days_of(y), prev, self.overrides,
                                     self._spikes_of(y))
            self._years[("NIFTY", y)], self._years[(VIX_NAME, y)] = nifty, vix
            return
        spec = INDICES[name]
        last = self._years.get((name, y - 1))
        prev = (last.close[-1], last.regime[-1]) if last else (target_level(spec, first), "range")
        self._years[(name, y)] = follower_year(
            self.seed, spec, y, self._days_of(y), prev, self.overrides, self._spikes_of(y),
            self._path("NIFTY", y), self._path(VIX_NAME, y))

    def daily_ohlc(self, name: str, d: date) -> tuple[float, float, float, float]:
        """(open, high, low, close) of an index ('NIFTY', ..., 'INDIA VIX') on a trading day."""
        self._require_trading(d)
        return self._path(name, d.year).ohlc(d)

    def regime(self, name: str, d: date) -> str:
        """'trend_up' | 'trend_down' | 'range': the hidden regime the day was generated with."""
        self._require_trading(d)
        p = self._path(name, d.year)
        return p.regime[p.pos[d]]

    def _require_trading(self, d: date) -> None:
        if not self.cal.is_trading_day(d):
            raise ValueError(f"{d} is not a trading day ({self.cal.closed_reason(d)})")

    # ------------------------------------------------------------ minute level (per day, cached)
    def _cached(self, lru: LRU, shared: LRU, key: tuple, d: date, make):
        """A day's series from this market's cache, or, for a day before the first override,
        from the process-wide one (the series is then a function of seed, calendar and rate)."""
        if d.year < self._first_override_year:
            return shared.get_or(self._shared_key + key, make)
        return lru.get_or(key, make)

    def _spot_day(self, name: str, d: date) -> DaySeries:
        def make():
            p = self._path(name, d.year)
            i = p.pos[d]
            spike = self._spikes_of(d.year).get(d)
            return index_minutes(self.seed, name, d, p.ohlc(d), p.regime[i], p.sigma[i],
                                 spike.minute if spike else None)
        return self._cached(self._series, SHARED_SERIES, ("spot", name, d), d, make)

    def _vix_day(self, d: date) -> DaySeries:
        return self._cached(self._series, SHARED_SERIES, ("vix", d), d, lambda: vix_minutes(
            self.seed, d, self._path(VIX_NAME, d.year).ohlc(d), self._spot_day("NIFTY", d).points,
            self._spikes_of(d.year).get(d)))

    def _years_left(self, c: Contract, d: date) -> np.ndarray:
        """Time to expiry at each path point of day d (09:15 + k minutes), in years (read-only)."""
        def make():
            t0 = time_to_expiry(at(d, SESSION_OPEN), c.expiry)
            return np.maximum(0.0, t0 - np.arange(N_MIN + 1) * MINUTE_YEARS)
        return self._t_left.get_or((c.expiry, d), make)

    def _future_day(self, c: Contract, d: date) -> DaySeries:
        def make():
            s = self._spot_day(c.underlying, d)
            fac = np.exp(self.rate * self._years_left(c, d))
            mid = (fac[:-1] + fac[1:]) / 2
            pts = round_array_to_tick(s.points * fac)
            o, cl = pts[:-1], pts[1:]
            hi = np.maximum(round_array_to_tick(s.high * mid), np.maximum(o, cl))
            lo = np.minimum(round_array_to_tick(s.low * mid), np.minimum(o, cl))
            lam = 40.0 * U_SHAPE ** 2 * (1.0 if c.expiry == self._near_month(c.underlying, d) else 0.1)
            vol = c.lot_size * (1 + stable_rng(self.seed, c.token, d).poisson(lam))
            return DaySeries(d, pts, o, hi, lo, cl, vol.astype(float))
        return self._cached(self._series, SHARED_SERIES, ("fut", c.token, d), d, make)

    def _near_month(self, underlying: str, d: date) -> date:
        e = self.cal.monthly_expiry(d.year, d.month)
        if e < d:
            e = self.cal.monthly_expiry(d.year + (d.month == 12), d.month % 12 + 1)
        return e

    def _option_prices(self, c: Contract, spot, vix, t):
        fwd = spot * np.exp(self.rate * t)
        iv = implied_vol_from_vix(vix, c.strike, fwd, t)
        raw = black76(fwd, c.strike, t, iv, self.rate, c.kind == "CE")
        return raw, np.where(np.asarray(t) > 0, np.maximum(round_array_to_tick(raw), TICK),
                             round_array_to_tick(raw))

    def _option_theo(self, c: Contract, d: date, k: int) -> tuple[float, float, float]:
        """(spot, years left, Black-76 value) at path point k of day d: `_option_prices` on
        scalars, one price at a time, by the same operations (options.py)."""
        spot = float(self._spot_day(c.underlying, d).points[k])
        t = float(self._years_left(c, d)[k])
        strike = float(c.strike)
        fwd = spot * float(np.exp(self.rate * t))
        iv = implied_vol_scalar(float(self._vix_day(d).points[k]), strike, fwd, t)
        return spot, t, black76_scalar(fwd, strike, t, iv, self.rate, c.kind == "CE")

    def _option_point(self, c: Contract, d: date, k: int) -> float:
        """`_option_day(c, d).points[k]`, without pricing the whole day unless it is made already
        (most options are only quoted a few times, at entry)."""
        key = ("pts", c.token, d)
        pts = (SHARED_OPTIONS.get(self._shared_key + key) if d.year < self._first_override_year
               else self._options.get(key))
        if pts is not None:
            return float(pts[k])
        _, t, raw = self._option_theo(c, d, k)
        px = float(round_array_to_tick(raw))  # the array twin on one value: the same operations
        return max(px, TICK) if t > 0 else px

    def _option_points(self, c: Contract, d: date) -> np.ndarray:
        """The option's path points of day d (its ltp at 09:15 + k minutes), priced without the
        bars' highs and lows, which only its candles need (read-only)."""
        def make():
            return self._option_prices(c, self._spot_day(c.underlying, d).points,
                                       self._vix_day(d).points, self._years_left(c, d))[1]
        return self._cached(self._options, SHARED_OPTIONS, ("pts", c.token, d), d, make)

    def _option_day(self, c: Contract, d: date) -> DaySeries:
        def make():
            s, v = self._spot_day(c.underlying, d), self._vix_day(d)
            t = self._years_left(c, d)
            tm = (t[:-1] + t[1:]) / 2
            up, down = (s.high, s.low) if c.kind == "CE" else (s.low, s.high)
            pts = self._option_points(c, d)
            # one pricing pass for bar highs then lows (each price depends on its own inputs
            # only, so pricing them apart from the points gives the same values)
            _, px = self._option_prices(c, np.concatenate([up, down]), np.concatenate([v.high, v.low]),
                                        np.concatenate([tm, tm]))
            o, cl = pts[:-1], pts[1:]
            hi = np.maximum(px[:N_MIN], np.maximum(o, cl))
            lo = np.minimum(px[N_MIN:], np.minimum(o, cl))
            m = abs(math.log(c.strike / s.points[0]))
            lam = 60.0 * U_SHAPE ** 2 * math.exp(-30.0 * m)
            vol = c.lot_size * (1 + stable_rng(self.seed, c.token, d).poisson(lam))
            return DaySeries(d, pts, o, hi, lo, cl, vol.astype(float))
        return self._cached(self._options, SHARED_OPTIONS, (c.token, d), d, make)

    # ------------------------------------------------------------ token resolution
    def _resolve(self, exchange: str, token: str):
        """(kind, name-or-contract) for a token, checking the exchange segment."""
        key = (exchange, token)
        try:
            return self._resolved[key]
        except KeyError:
            pass
        except TypeError:  # not hashable: refused below as before, never cached
            return self._resolve_new(exchange, token)
        out = self._resolve_new(exchange, token)  # an unknown token raises: not cached
        if len(self._resolved) >= 4096:
            self._resolved.clear()
        self._resolved[key] = out
        return out

    def _resolve_new(self, exchange: str, token: str):
        if token in _INDEX_BY_TOKEN:
            if exchange != "NSE":
                raise UnknownInstrument(f"token {token} is an NSE index, not on exchange {exchange!r}")
            name = _INDEX_BY_TOKEN[token]
            return ("vix", name) if name == VIX_NAME else ("spot", name)
        try:
            c = decode_token(token)
        except ValueError:
            raise UnknownInstrument(f"unknown token {token!r} on exchange {exchange!r}") from None
        if exchange != "NFO":
            raise UnknownInstrument(f"token {token} ({c.symbol}) is on NFO, not {exchange!r}")
        if c.underlying not in self.underlyings:
            raise UnknownInstrument(f"token {token} ({c.symbol}): {c.underlying} is not listed here")
        return ("opt" if c.is_option else "fut"), c

    def _day_series(self, kind: str, ref, d: date) -> DaySeries:
        if kind == "spot":
            return self._spot_day(ref, d)
        if kind == "vix":
            return self._vix_day(d)
        if kind == "fut":
            return self._future_day(ref, d)
        return self._option_day(ref, d)

    def _day_points(self, kind: str, ref, d: date) -> np.ndarray:
        """`_day_series(kind, ref, d).points` (for an option, without pricing its bars)."""
        if kind == "opt":
            return self._option_points(ref, d)
        return self._day_series(kind, ref, d).points

    def _last_day(self, kind: str, ref) -> date | None:
        """Last trading day an instrument has data for (its expiry for derivatives)."""
        if kind in ("spot", "vix"):
            return None
        e = ref.expiry
        return e if self.cal.is_trading_day(e) else self.cal.previous_trading_day(e)

    # ------------------------------------------------------------ MarketData
    def _day_info(self, d: date) -> tuple:
        """(09:15 of d if d trades else None, the previous trading day, the next session's 09:15)."""
        info = self._steps.get(d)
        if info is None:
            info = self._steps.put(d, (at(d, SESSION_OPEN) if self.cal.is_trading_day(d) else None,
                                       self.cal.previous_trading_day(d),
                                       at(self.cal.next_trading_day(d), SESSION_OPEN)))
        return info

    def _as_of(self, now: datetime) -> tuple[date, int]:
        """(trading day, path point) of the latest price known at `now`."""
        d = now.date()
        t0, prev, _ = self._day_info(d)
        if t0 is not None:
            k = math.floor((now - t0).total_seconds() / 60.0)
            if k >= 0:
                return d, min(k, N_MIN)
        return prev, N_MIN

    def _value(self, exchange: str, token: str) -> tuple[str, object, date, int, float]:
        kind, ref = self._resolve(exchange, token)
        d, k = self._as_of(ist(self.clock.now()))
        last = self._last_day(kind, ref)
        if last is not None and d > last:
            d, k = last, N_MIN  # expired: its final settlement value
        if kind == "opt":
            return kind, ref, d, k, self._option_point(ref, d, k)
        return kind, ref, d, k, float(self._day_series(kind, ref, d).points[k])

    def ltp(self, exchange: str, token: str) -> float:
        return self._value(exchange, token)[4]

    def vix(self) -> float:
        return self.ltp("NSE", VIX_TOKEN)

    def quote(self, exchange: str, token: str) -> Quote:
        kind, ref, d, k, px = self._value(exchange, token)
        ts = at(d, SESSION_OPEN) + timedelta(minutes=k)
        if kind in ("spot", "vix"):
            return Quote(token, px, px, px, ts)
        if kind == "fut":
            half = max(TICK, px * FUT_HALF_SPREAD)
            return Quote(token, px, round_to_tick(px - half, TICK, "down"),
                         round_to_tick(px + half, TICK, "up"), ts)
        spot, t, theo = self._option_theo(ref, d, k)
        bid, ask = option_quote_from_price(max(theo, 0.0),
                                           math.log(ref.strike / (spot * math.exp(self.rate * t))))
        return Quote(token, px, bid, ask, ts)

    def instrument_master(self) -> list[dict]:
        """Rows as of today's pre-open: index rows, then futures and options of each underlying.

        Strikes span +-15 % around the previous session's close (the master is published before
        the open, so it never reveals today's prices).
        """
        today = ist(self.clock.now()).date()
        if self._master is None or self._master[0] != today:
            ref_day = self.cal.previous_trading_day(today)
            spots = tuple((u, self._path(u, ref_day.year).ohlc(ref_day)[3]) for u in self.underlyings)

            def make():
                rows = index_rows()
                for u, spot in spots:
                    rows.extend(listed_rows(self.cal, u, today, spot))
                return rows
            self._master = (today, SHARED_MASTERS.get_or((self._cal_key, today, spots), make))
        return list(map(dict, self._master[1]))

    def contracts(self, underlying: str) -> list[Contract]:
        """Today's listed futures and options of one underlying (the master's NFO rows, decoded)."""
        return [decode_token(r["token"]) for r in self.instrument_master()
                if r["exch_seg"] == "NFO" and r["name"] == underlying]
