"""Angel One's instrument master, cut down to what the bot trades, with the lookups it needs.

The raw master is ~150k rows of strings for every segment; we keep NSE index rows (spots, India
VIX) and NFO index futures/options of the configured underlyings, and index them once. Strike and
tick in the master are x100 (paise); here they are rupees. Malformed rows are skipped and counted
by reason rather than crashing the morning sync: one bad row must not stop the day, but a master
with no options for an underlying must (`require_options`).
"""
from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from datetime import date
from json.encoder import encode_basestring_ascii as _encode_str
from operator import attrgetter
from typing import Any, Iterable, Sequence

from ..calendar import dte
from .master_rows import (ROW_MEMO_MAX, Instrument, MasterError, parse_expiry,  # noqa: F401
                          parse_rows)
from .strikes import OPTION_TYPES, _fmt, _paise, atm_strike  # noqa: F401  (atm_strike re-exported)

log = logging.getLogger(__name__)

DEFAULT_UNDERLYINGS = ("NIFTY", "BANKNIFTY", "FINNIFTY")
VIX_SYMBOL = "India VIX"

# Order of to_records() tuples; the journal table is these columns with trading_day first.
INSTRUMENT_COLUMNS = ("token", "symbol", "name", "exchange", "instrument_type", "expiry",
                      "strike", "option_type", "lot_size", "tick_size")
INSTRUMENTS_DDL = """CREATE TABLE IF NOT EXISTS instruments (
    trading_day     TEXT    NOT NULL,
    token           TEXT    NOT NULL,
    symbol          TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    exchange        TEXT    NOT NULL,
    instrument_type TEXT    NOT NULL,
    expiry          TEXT,
    strike          REAL,
    option_type     TEXT,
    lot_size        INTEGER NOT NULL,
    tick_size       REAL    NOT NULL,
    PRIMARY KEY (trading_day, token)
)"""


# Schema 2: one row per day holding the day's records as a JSON array of arrays (a fifth of the
# time and two thirds of the space of a row per instrument), and `instruments` as a view over it,
# so an auditor's SQL reads the same columns as before.
INSTRUMENT_MASTERS_DDL = """CREATE TABLE IF NOT EXISTS instrument_masters (
    trading_day TEXT    PRIMARY KEY,
    instruments INTEGER NOT NULL,
    records     TEXT    NOT NULL   -- JSON: one array per instrument, in INSTRUMENT_COLUMNS order
) WITHOUT ROWID"""
INSTRUMENTS_VIEW = ("CREATE VIEW IF NOT EXISTS instruments AS SELECT m.trading_day AS trading_day, "
                    + ", ".join(f"json_extract(r.value, '$[{i}]') AS {c}"
                                for i, c in enumerate(INSTRUMENT_COLUMNS))
                    + " FROM instrument_masters AS m, json_each(m.records) AS r")
MIGRATE_INSTRUMENTS_TO_MASTERS = [
    INSTRUMENT_MASTERS_DDL,
    "INSERT OR REPLACE INTO instrument_masters SELECT trading_day, COUNT(*), json_group_array("
    f"json_array({', '.join(INSTRUMENT_COLUMNS)})) FROM instruments GROUP BY trading_day",
    "DROP TABLE instruments",
    INSTRUMENTS_VIEW,
]


# ---------------------------------------------------------------- parsing raw rows
def parse_master(rows: Iterable[Any], underlyings: Sequence[str] = DEFAULT_UNDERLYINGS
                 ) -> "InstrumentMaster":
    """Keep NSE AMXIDX rows and NFO FUTIDX/OPTIDX rows of `underlyings`; skip malformed ones.

    Irrelevant rows are rejected on exch_seg/name/instrumenttype before any number is parsed.
    Strike is validated only where it means something (options).
    """
    if isinstance(rows, (str, bytes, dict)) or not hasattr(rows, "__iter__"):
        raise MasterError(f"instrument master must be a list of rows, got {type(rows).__name__}")
    if isinstance(underlyings, str):
        underlyings = (underlyings,)
    wanted = frozenset(u.upper() for u in underlyings)
    kept, skipped, examples, total = parse_rows(rows, wanted)
    master = InstrumentMaster(kept, skipped=skipped, skip_examples=examples, rows_total=total)
    if skipped:
        log.warning("instrument master: skipped %s (example row indices %s)",
                    master.skipped, master.skip_examples)
    return master


def check_master(rows: Iterable[Any], underlyings: Sequence[str]) -> "InstrumentMaster":
    """`parse_master`, then `require_all`: the master only if it is usable for every underlying."""
    master = parse_master(rows, underlyings)
    master.require_all(underlyings)
    return master


def parse_master_json(data: bytes | str, underlyings: Sequence[str] = DEFAULT_UNDERLYINGS
                      ) -> "InstrumentMaster":
    try:
        rows = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise MasterError(f"instrument master is not valid JSON: {e}") from None
    if not isinstance(rows, list):
        raise MasterError(f"instrument master JSON must be an array, got {type(rows).__name__}")
    return parse_master(rows, underlyings)


# ---------------------------------------------------------------- the indexed master

class InstrumentMaster:
    """The day's kept instruments, indexed by token, spot symbol, underlying and expiry."""

    def __init__(self, instruments: Iterable[Instrument], skipped: dict[str, int] | None = None,
                 skip_examples: dict[str, list[int]] | None = None, rows_total: int | None = None):
        self.instruments: tuple[Instrument, ...] = tuple(instruments)
        self.skipped: dict[str, int] = dict(skipped or {})
        self.skip_examples: dict[str, list[int]] = dict(skip_examples or {})
        self.rows_total = len(self.instruments) if rows_total is None else rows_total
        self._by_token: dict[str, Instrument] = {}
        self._indices: dict[str, Instrument] = {}
        futures: dict[str, list[Instrument]] = defaultdict(list)
        chains: dict[tuple[str, date], list[Instrument]] = defaultdict(list)
        self._contracts: dict[tuple[str, date, int, str], Instrument] = {}
        by_token, contracts = self._by_token, self._contracts
        for inst in self.instruments:
            token, itype = inst.token, inst.instrument_type
            if token in by_token:
                raise MasterError(f"duplicate token {token} ({inst.symbol} and "
                                  f"{by_token[token].symbol})")
            by_token[token] = inst
            if itype == "AMXIDX":
                self._indices[inst.symbol.casefold()] = inst
            elif itype == "FUTIDX":
                futures[inst.name].append(inst)
            elif inst.option_type is not None:
                chains[(inst.name, inst.expiry)].append(inst)
                paise = _PAISE.get(inst.strike)
                if paise is None:
                    if len(_PAISE) >= ROW_MEMO_MAX:
                        _PAISE.clear()
                    paise = _PAISE[inst.strike] = _paise(inst.strike)
                contracts[(inst.name, inst.expiry, paise, inst.option_type)] = inst
        self._futures = {u: sorted(fs, key=attrgetter("expiry")) for u, fs in futures.items()}
        by_strike = attrgetter("strike", "option_type")
        self._chains = {k: sorted(c, key=by_strike) for k, c in chains.items()}
        expiries: dict[str, list[date]] = defaultdict(list)
        for und, exp in sorted(self._chains):
            expiries[und].append(exp)
        self._expiries = dict(expiries)

    def __len__(self) -> int:
        return len(self.instruments)

    # -- lookups

    def by_token(self, token: str) -> Instrument:
        try:
            return self._by_token[str(token)]
        except KeyError:
            raise LookupError(f"token {token!r} is not in the instrument master") from None

    def lot_size(self, token: str) -> int:
        return self.by_token(token).lot_size

    def tick_size(self, token: str) -> float:
        return self.by_token(token).tick_size

    def spot(self, spot_name: str) -> Instrument:
        """The NSE index row whose symbol is `spot_name` (e.g. 'Nifty 50'), case-insensitively."""
        try:
            return self._indices[spot_name.casefold()]
        except KeyError:
            raise LookupError(f"index {spot_name!r} (NSE AMXIDX) is not in the instrument master") \
                from None

    def vix(self) -> Instrument:
        return self.spot(VIX_SYMBOL)

    def near_future(self, underlying: str, today: date) -> Instrument:
        for fut in self._futures.get(underlying.upper(), ()):
            if fut.expiry >= today:
                return fut
        raise LookupError(f"no {underlying} index future expiring on or after {today} in the master")

    def expiries(self, underlying: str) -> list[date]:
        return list(self._expiries.get(underlying.upper(), ()))

    def nearest_expiry(self, underlying: str, today: date, min_dte: int = 1) -> date:
        for e in self._expiries.get(underlying.upper(), ()):
            if dte(today, e) >= min_dte:
                return e
        raise LookupError(f"no {underlying} option expiry with DTE >= {min_dte} from {today} "
                          f"(listed: {[e.isoformat() for e in self.expiries(underlying)]})")

    def chain(self, underlying: str, expiry: date) -> list[Instrument]:
        return list(self._chains.get((underlying.upper(), expiry), ()))

    def option(self, underlying: str, expiry: date, strike: float, option_type: str) -> Instrument:
        try:
            return self._contracts[(underlying.upper(), expiry, _paise(strike), option_type)]
        except KeyError:
            pass
        chain = self._chains.get((underlying.upper(), expiry))
        listed = (f"listed strikes {_fmt(chain[0].strike)}..{_fmt(chain[-1].strike)}" if chain
                  else "no strikes listed for that expiry")
        raise LookupError(f"{underlying} {expiry.isoformat()} {_fmt(strike)} {option_type} "
                          f"is not in the instrument master ({listed})")

    def atm(self, underlying: str, expiry: date, spot: float, option_type: str,
            strike_step: float, offset_steps: int = 0) -> Instrument:
        strike = atm_strike(spot, strike_step, option_type, offset_steps)
        return self.option(underlying, expiry, strike, option_type)

    def require_options(self, underlying: str) -> None:
        self.require_all((underlying,))

    def require_all(self, underlyings: Iterable[str]) -> None:
        """Every underlying must have options; one MasterError names all that have none.

        Call before caching the master anywhere (disk, journal): a master that fails this must
        be read again, never reused for the day.
        """
        if isinstance(underlyings, str):
            underlyings = (underlyings,)
        missing = [u for u in underlyings if not self._expiries.get(u.upper())]
        if missing:
            raise MasterError(f"instrument master has no {', '.join(missing)} options (NFO OPTIDX); "
                              f"rows read {self.rows_total}, kept {len(self)}, "
                              f"skipped {self.skipped or 'none'}")

    # -- journal cache

    def to_records(self) -> list[tuple]:
        """One tuple per instrument in INSTRUMENT_COLUMNS order; expiry as ISO text."""
        return [(i.token, i.symbol, i.name, i.exchange, i.instrument_type,
                 i.expiry.isoformat() if i.expiry else None, i.strike, i.option_type,
                 i.lot_size, i.tick_size) for i in self.instruments]

    def records_json(self) -> str:
        """`to_records` as the JSON text the journal's `instrument_masters` row holds, made of
        one cached fragment per instrument (a backtest writes mostly the same ones every day)."""
        return "[" + ",".join(map(_record_json, self.instruments)) + "]"

    @classmethod
    def from_records_json(cls, text: str) -> "InstrumentMaster":
        try:
            records = json.loads(text)
        except (TypeError, ValueError) as e:
            raise MasterError(f"cached instrument master is not valid JSON: {e}") from None
        if not isinstance(records, list):
            raise MasterError("cached instrument master is not a JSON array")
        return cls.from_records(records)

    @classmethod
    def from_records(cls, records: Iterable[Sequence]) -> "InstrumentMaster":
        return cls(_from_record(n, r) for n, r in enumerate(records))


_PAISE: dict = {}  # strike (rupees, a float; masters repeat a few hundred) -> whole paise
_RECORD_JSON: dict[int, tuple[Instrument, str]] = {}   # id -> (the instrument, kept alive; JSON)


def _record_json(inst: Instrument) -> str:
    hit = _RECORD_JSON.get(id(inst))
    if hit is not None and hit[0] is inst:
        return hit[1]
    text = _record_text(inst)
    if len(_RECORD_JSON) >= ROW_MEMO_MAX:
        _RECORD_JSON.clear()
    _RECORD_JSON[id(inst)] = (inst, text)
    return text


def _record_text(inst: Instrument) -> str:
    """`json.dumps([...to_records() fields], separators=(",", ":"), allow_nan=False)`, written
    out for the usual field types: the same encoder for strings, repr for floats and ints (as json
    does), in about half the time (a backtest encodes each day's newly listed contracts). Pinned to
    json.dumps by a test; anything unusual goes to json.dumps itself."""
    token, symbol, name, exch, itype, expiry, strike, opt, lot, tick = (
        inst.token, inst.symbol, inst.name, inst.exchange, inst.instrument_type, inst.expiry,
        inst.strike, inst.option_type, inst.lot_size, inst.tick_size)
    if not (type(token) is str and type(symbol) is str and type(name) is str and type(exch) is str
            and type(itype) is str and type(lot) is int and type(tick) is float
            and math.isfinite(tick) and (opt is None or type(opt) is str)
            and (strike is None or (type(strike) is float and math.isfinite(strike)))):
        return json.dumps([token, symbol, name, exch, itype, expiry.isoformat() if expiry else None,
                           strike, opt, lot, tick], separators=(",", ":"), allow_nan=False)
    enc = _encode_str
    return (f"[{enc(token)},{enc(symbol)},{enc(name)},{enc(exch)},{enc(itype)},"
            f"{enc(expiry.isoformat()) if expiry else 'null'},"
            f"{'null' if strike is None else float.__repr__(strike)},"
            f"{'null' if opt is None else enc(opt)},{int.__repr__(lot)},{float.__repr__(tick)}]")


def _from_record(n: int, rec: Sequence) -> Instrument:
    if len(rec) != len(INSTRUMENT_COLUMNS):
        raise MasterError(f"instrument record {n}: expected {len(INSTRUMENT_COLUMNS)} columns "
                          f"{INSTRUMENT_COLUMNS}, got {len(rec)}")
    v = dict(zip(INSTRUMENT_COLUMNS, rec))
    col = "token"
    try:
        for col in ("token", "symbol", "name", "exchange", "instrument_type"):
            if not isinstance(v[col], str) or (col == "token" and not v[col]):
                raise ValueError
        col = "expiry"
        expiry = None if v["expiry"] is None else date.fromisoformat(v["expiry"])
        col = "strike"
        strike = None if v["strike"] is None else float(v["strike"])
        if strike is not None and not (math.isfinite(strike) and strike > 0):
            raise ValueError
        col = "option_type"
        if v["option_type"] not in (None, *OPTION_TYPES) or (v["option_type"] is None) != (strike is None):
            raise ValueError
        col = "lot_size"
        if isinstance(v["lot_size"], bool) or int(v["lot_size"]) != v["lot_size"] \
                or v["lot_size"] <= 0:
            raise ValueError
        col = "tick_size"
        tick = float(v["tick_size"])
        if not (math.isfinite(tick) and tick >= 0):
            raise ValueError
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise MasterError(f"instrument record {n} (token {rec[0]!r}): bad {col} {v[col]!r}") from None
    return Instrument(v["token"], v["symbol"], v["name"], v["exchange"], v["instrument_type"],
                      expiry, strike, v["option_type"], int(v["lot_size"]), tick)
