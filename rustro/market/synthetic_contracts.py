"""The synthetic market's contracts: deterministic tokens, listings and master rows.

Derivative tokens encode the contract, "U YYMMDD SSSSSS T" (underlying code, expiry, strike in
rupees, 0=FUT 1=CE 2=PE), so they are unique, stable for a contract's life and decodable without a
table. Rows follow the real OpenAPIScripMaster.json exactly: every value a string, strike x100 with
six decimals, tick in paise, expiry DDMMMYYYY upper case.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property

from ..calendar import TradingCalendar
from .synthetic_paths import INDICES, VIX_NAME, VIX_SYMBOL, VIX_TOKEN

_CODES = {"NIFTY": "1", "BANKNIFTY": "2", "FINNIFTY": "3"}
_NAMES = {v: k for k, v in _CODES.items()}
_KINDS = {"FUT": "0", "CE": "1", "PE": "2"}
_KIND_OF = {v: k for k, v in _KINDS.items()}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
LOT_SIZES_NEW = {"NIFTY": 65, "BANKNIFTY": 30, "FINNIFTY": 60}  # contracts expiring 2026 onward
LOT_SIZES_OLD = {"NIFTY": 75, "BANKNIFTY": 35, "FINNIFTY": 65}
NEW_LOTS_FROM = date(2026, 1, 1)
STRIKE_BAND = 0.15        # strikes listed within +-15 % of the reference spot
NIFTY_WEEKLIES = 4        # NIFTY option expiries: the next 4 weeklies plus the next 2 monthlies
OPTION_MONTHLIES = 2
FUTURE_MONTHLIES = 3


@dataclass(frozen=True)
class Contract:
    underlying: str
    expiry: date
    kind: str          # FUT, CE, PE
    strike: int = 0    # rupees; 0 for futures

    @cached_property  # computed once per object (a frozen dataclass: fields never change)
    def token(self) -> str:
        e = self.expiry
        return (f"{_CODES[self.underlying]}{e.year % 100:02d}{e.month:02d}{e.day:02d}"
                f"{self.strike:06d}{_KINDS[self.kind]}")

    @property
    def is_option(self) -> bool:
        return self.kind != "FUT"

    @cached_property
    def symbol(self) -> str:
        ddmmmyy = f"{self.expiry.day:02d}{MONTHS[self.expiry.month - 1]}{self.expiry.year % 100:02d}"
        tail = "FUT" if self.kind == "FUT" else f"{self.strike}{self.kind}"
        return f"{self.underlying}{ddmmmyy}{tail}"

    @property
    def lot_size(self) -> int:
        table = LOT_SIZES_NEW if self.expiry >= NEW_LOTS_FROM else LOT_SIZES_OLD
        return table[self.underlying]


def decode_token(token: str) -> Contract:
    """The contract a derivative token stands for; ValueError naming the token if it is not one."""
    bad = ValueError(f"token {token!r} is not a synthetic NFO contract token")
    if not isinstance(token, str) or len(token) != 14 or not token.isdigit():
        raise bad
    name, kind = _NAMES.get(token[0]), _KIND_OF.get(token[13])
    if name is None or kind is None:
        raise bad
    try:
        expiry = date(2000 + int(token[1:3]), int(token[3:5]), int(token[5:7]))
    except ValueError:
        raise bad from None
    strike = int(token[7:13])
    if (kind == "FUT") != (strike == 0) or strike % INDICES[name].strike_step:
        raise bad
    return Contract(name, expiry, kind, strike)


def _expiry_text(d: date) -> str:
    return f"{d.day:02d}{MONTHS[d.month - 1]}{d.year}"


def index_rows() -> list[dict]:
    rows = [_row(s.token, s.symbol, s.name, "", "0.000000", "1", "AMXIDX", "NSE", "0.000000")
            for s in INDICES.values()]
    rows.append(_row(VIX_TOKEN, VIX_SYMBOL, VIX_NAME, "", "0.000000", "1", "AMXIDX", "NSE", "0.000000"))
    return rows


def contract_row(c: Contract) -> dict:
    strike = "-1.000000" if c.kind == "FUT" else f"{c.strike * 100:.6f}"
    return _row(c.token, c.symbol, c.underlying, _expiry_text(c.expiry), strike, str(c.lot_size),
                "FUTIDX" if c.kind == "FUT" else "OPTIDX", "NFO", "5.000000")


def _row(token, symbol, name, expiry, strike, lotsize, itype, seg, tick) -> dict:
    return {"token": token, "symbol": symbol, "name": name, "expiry": expiry, "strike": strike,
            "lotsize": lotsize, "instrumenttype": itype, "exch_seg": seg, "tick_size": tick}


def monthly_expiries(cal: TradingCalendar, today: date, n: int) -> list[date]:
    """The next `n` monthly expiries on or after `today`."""
    out, y, m = [], today.year, today.month
    while len(out) < n:
        e = cal.monthly_expiry(y, m)
        if e >= today:
            out.append(e)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def option_expiries(cal: TradingCalendar, underlying: str, today: date) -> list[date]:
    months = monthly_expiries(cal, today, OPTION_MONTHLIES)
    if underlying != "NIFTY":
        return months
    weeklies = cal.expiries(underlying, today, months[-1])[:NIFTY_WEEKLIES]
    return sorted(set(weeklies) | set(months))


def listed_strikes(underlying: str, spot: float) -> list[int]:
    step = INDICES[underlying].strike_step
    lo = int(spot * (1 - STRIKE_BAND) // step + 1) * step
    hi = int(spot * (1 + STRIKE_BAND) // step) * step
    return list(range(lo, hi + step, step))


def listed_keys(cal: TradingCalendar, underlying: str, today: date, spot: float
                ) -> list[tuple[str, date, str, int]]:
    """The (underlying, expiry, kind, strike) of every contract `listed_contracts` lists, in its
    order (cheap: no Contract objects)."""
    out = [(underlying, e, "FUT", 0) for e in monthly_expiries(cal, today, FUTURE_MONTHLIES)]
    strikes = listed_strikes(underlying, spot)
    for e in option_expiries(cal, underlying, today):
        for k in strikes:
            out.append((underlying, e, "CE", k))
            out.append((underlying, e, "PE", k))
    return out


def listed_contracts(cal: TradingCalendar, underlying: str, today: date, spot: float) -> list[Contract]:
    """Futures, then options (by expiry, strike, CE before PE), listed on `today` around `spot`."""
    return [Contract(*k) for k in listed_keys(cal, underlying, today, spot)]
