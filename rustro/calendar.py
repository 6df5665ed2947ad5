"""NSE trading days, session instants and expiry dates.

The holiday table is data (rustro/data/holidays.toml, plus config overrides). Expiry dates derived
here are for `sim` and a sanity check only: live and paper take expiries from the instrument master.
Days-to-expiry (DTE) is in calendar days: expiry date minus trading date.
"""
from __future__ import annotations

import tomllib
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources

from .clock import IST

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TUESDAY_FROM = date(2025, 9, 1)  # NSE moved NIFTY/BANKNIFTY/FINNIFTY expiries to Tuesday
WEEKLY_UNDERLYINGS = ("NIFTY",)   # weekly contracts still listed; the others are monthly only


@lru_cache(maxsize=1)
def shipped_holidays() -> dict[date, str]:
    text = resources.files("rustro").joinpath("data/holidays.toml").read_text(encoding="utf-8")
    out: dict[date, str] = {}
    for year in tomllib.loads(text).values():
        for day, name in year.items():
            out[date.fromisoformat(day)] = name
    return out


@lru_cache(maxsize=1)
def shipped_years() -> frozenset[int]:
    """The years holidays.toml has a table for: the years whose holidays are known."""
    text = resources.files("rustro").joinpath("data/holidays.toml").read_text(encoding="utf-8")
    return frozenset(int(year) for year in tomllib.loads(text))


class TradingCalendar:
    def __init__(self, extra_holidays=(), extra_trading_days=(), holidays: dict | None = None):
        self.holidays = dict(shipped_holidays() if holidays is None else holidays)
        for d in extra_holidays:
            self.holidays.setdefault(d, "holiday (config calendar.extra_holidays)")
        self.special_sessions = set(extra_trading_days)
        # A year is known when its holiday list was given: a table in holidays.toml (or the dates
        # passed in), or at least one calendar.extra_holidays day in it (the user took it over).
        known = shipped_years() if holidays is None else {d.year for d in holidays}
        self.known_years = frozenset(known) | {d.year for d in extra_holidays}

    @classmethod
    def from_config(cls, cfg) -> "TradingCalendar":
        return cls(cfg.calendar.extra_holidays, cfg.calendar.extra_trading_days)

    def closed_reason(self, d: date) -> str | None:
        """Why the market is shut on `d`, or None on a trading day."""
        if d in self.special_sessions:
            return None
        if d in self.holidays:
            return f"NSE holiday: {self.holidays[d]}"
        if d.weekday() >= 5:
            return f"weekend ({WEEKDAY_NAMES[d.weekday()]})"
        return None

    def covers(self, d: date) -> bool:
        """Whether the holidays of `d`'s year are known; outside them every weekday looks open."""
        return d.year in self.known_years

    def unknown_years(self, start: date, end: date) -> list[int]:
        """The years in [start, end] without holiday data, ascending."""
        return [y for y in range(start.year, end.year + 1) if y not in self.known_years]

    def is_trading_day(self, d: date) -> bool:
        return self.closed_reason(d) is None

    def next_trading_day(self, d: date) -> date:
        d += timedelta(days=1)
        while not self.is_trading_day(d):
            d += timedelta(days=1)
        return d

    def previous_trading_day(self, d: date) -> date:
        d -= timedelta(days=1)
        while not self.is_trading_day(d):
            d -= timedelta(days=1)
        return d

    def trading_days(self, start: date, end: date) -> list[date]:
        """Trading days in [start, end]."""
        out, d = [], start
        while d <= end:
            if self.is_trading_day(d):
                out.append(d)
            d += timedelta(days=1)
        return out

    # --- expiries -------------------------------------------------------------------------
    def _shift_to_trading(self, d: date) -> date:
        return d if self.is_trading_day(d) else self.previous_trading_day(d)

    @staticmethod
    def expiry_weekday(d: date) -> int:
        return 1 if d >= TUESDAY_FROM else 3  # Tuesday from Sep 2025, Thursday before

    def monthly_expiry(self, year: int, month: int) -> date:
        """Last expiry weekday of the month, moved back over holidays."""
        nxt = date(year + (month == 12), month % 12 + 1, 1)
        d = nxt - timedelta(days=1)
        while d.weekday() != self.expiry_weekday(d):
            d -= timedelta(days=1)
        return self._shift_to_trading(d)

    def expiries(self, underlying: str, start: date, end: date) -> list[date]:
        """Listed expiry dates in [start, end] (after the holiday shift), ascending."""
        out: set[date] = set()
        if underlying in WEEKLY_UNDERLYINGS:
            d = start - timedelta(days=7)
            while d <= end + timedelta(days=7):
                if d.weekday() == self.expiry_weekday(d):
                    out.add(self._shift_to_trading(d))
                d += timedelta(days=1)
        y, m = start.year, start.month
        while date(y, m, 1) <= end + timedelta(days=31):
            out.add(self.monthly_expiry(y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return sorted(e for e in out if start <= e <= end)

    def next_expiry(self, underlying: str, today: date, min_dte: int = 0) -> date:
        """Nearest listed expiry with DTE >= min_dte."""
        for e in self.expiries(underlying, today, today + timedelta(days=70)):
            if dte(today, e) >= min_dte:
                return e
        raise LookupError(f"no {underlying} expiry within 70 days of {today}")  # pragma: no cover


def dte(today: date, expiry: date) -> int:
    return (expiry - today).days


def at(d: date, t: time) -> datetime:
    """The IST instant of wall time `t` on trading date `d`."""
    return datetime.combine(d, t, tzinfo=IST)


def unknown_year_warning(d: date) -> str:
    """What to tell the user about a day whose year has no holiday data."""
    return (f"no NSE holiday data for {d.year}: every weekday of it looks like a trading day; add "
            f"the year's holidays to rustro/data/holidays.toml or calendar.extra_holidays")


COVERAGE_DAYS = 30  # check-config and doctor look this far ahead for a year without holidays


def coverage_warnings(cal: TradingCalendar, today: date, days: int = COVERAGE_DAYS) -> list[str]:
    """One warning per year of [today, today + days] without holiday data."""
    return [unknown_year_warning(date(y, 1, 1)) for y in cal.unknown_years(today, today + timedelta(days=days))]


def require_known_year(cal: TradingCalendar, d: date, mode: str, allow_unknown_year: bool) -> None:
    """`run --live` trades real money only on a day whose holidays are known (a holiday taken for
    a trading day would log in, and send orders, into a closed market)."""
    if mode == "live" and not cal.covers(d) and not allow_unknown_year:
        from .config import ConfigError
        raise ConfigError(f"calendar.allow_unknown_year: {unknown_year_warning(d)}; run --live "
                          f"refuses {d} (set calendar.allow_unknown_year = true to trade it anyway)")
