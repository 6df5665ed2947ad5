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
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Sequence

from ..calendar import dte
from .strikes import OPTION_TYPES, _fmt, _paise, atm_strike  # noqa: F401  (atm_strike re-exported)

log = logging.getLogger(__name__)

DEFAULT_UNDERLYINGS = ("NIFTY", "BANKNIFTY", "FINNIFTY")
VIX_SYMBOL = "India VIX"
MAX_SKIP_EXAMPLES = 5
_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}

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


class MasterError(Exception):
    """The master (or a cached copy) is unusable for the day: stop before warmup."""


@dataclass(frozen=True, slots=True)
class Instrument:
    token: str
    symbol: str
    name: str                  # underlying, e.g. "NIFTY"; "INDIA VIX" for the VIX row
    exchange: str              # exch_seg: "NSE" for indices, "NFO" for derivatives
    instrument_type: str       # AMXIDX, FUTIDX, OPTIDX
    expiry: date | None
    strike: float | None       # rupees; None unless an option
    option_type: str | None    # "CE" / "PE"; None unless an option
    lot_size: int
    tick_size: float           # rupees; 0.0 for index rows

    @property
    def is_option(self) -> bool:
        return self.option_type is not None


# ---------------------------------------------------------------- parsing raw rows

def parse_expiry(text: str) -> date:
    """'28OCT2025' -> date(2025, 10, 28). Raises ValueError naming the text."""
    try:
        if len(text) != 9:
            raise ValueError
        return date(int(text[5:]), _MONTHS[text[2:5].upper()], int(text[:2]))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"expiry {text!r} is not a DDMMMYYYY date") from None


def _num(text: Any) -> float | None:
    """Finite float from a master string, else None (float() would accept 'nan' and 'inf')."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        return None
    try:
        x = float(text)
    except (ValueError, OverflowError):  # OverflowError: an int beyond float range
        return None
    return x if math.isfinite(x) else None


def _whole(text: Any) -> int | None:
    """A whole number from a master string ("65") or JSON number, else None (never truncated)."""
    x = _num(text)
    if x is None or not x.is_integer():
        return None
    return int(x)


ROW_MEMO_MAX = 20_000   # a few days of a backtest's rows; a live master's rows mostly miss
_ROW_MEMO: dict[tuple, "Instrument | str | None"] = {}   # row items -> parse (None: not wanted)


class _RowParser:
    """Turns one kept raw row into an Instrument or a skip reason; caches expiry strings."""

    def __init__(self) -> None:
        self._expiry_cache: dict[str, date | None] = {"": None}

    def _expiry(self, text: Any) -> date | None | str:
        if not isinstance(text, str):
            return "bad_expiry"
        try:
            return self._expiry_cache[text]
        except KeyError:
            pass
        try:
            d: date | None | str = parse_expiry(text)
        except ValueError:
            d = "bad_expiry"
        self._expiry_cache[text] = d
        return d

    def __call__(self, row: dict, seg: str, itype: str) -> Instrument | str:
        token = row.get("token")
        if not isinstance(token, str) or not token.strip():
            return "missing_token"
        symbol = row.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            return "missing_symbol"
        expiry = self._expiry(row.get("expiry", ""))
        if isinstance(expiry, str):
            return expiry
        if expiry is None and itype != "AMXIDX":
            return "missing_expiry"
        lot = _whole(row.get("lotsize"))
        if lot is None or lot <= 0:
            return "bad_lot"
        tick = _num(row.get("tick_size"))
        if tick is None or tick < 0:
            return "bad_tick"
        strike = opt = None
        if itype == "OPTIDX":
            raw = row.get("strike")
            if raw is None or raw == "":
                return "missing_strike"
            strike = _num(raw)
            if strike is None or not strike / 100 > 0:  # / 100 after: 5e-324 paise is 0 rupees
                return "bad_strike"
            strike /= 100
            opt = symbol[-2:]
            if opt not in OPTION_TYPES:
                return "bad_option_type"
        name = row.get("name", "")
        return Instrument(token.strip(), symbol, name if isinstance(name, str) else "", seg,
                          itype, expiry, strike, opt, lot, tick / 100)


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
    parse_row = _RowParser()
    kept: list[Instrument] = []
    seen: set[str] = set()
    skipped: dict[str, int] = defaultdict(int)
    examples: dict[str, list[int]] = defaultdict(list)
    total = 0
    memo_get = _ROW_MEMO.get

    def skip(reason: str, i: int) -> None:
        skipped[reason] += 1
        if len(examples[reason]) < MAX_SKIP_EXAMPLES:
            examples[reason].append(i)

    for i, row in enumerate(rows):
        total += 1
        if type(row) is not dict:
            skip("not_an_object", i)
            continue
        try:
            key: tuple | None = (wanted, *row.items())
            inst = memo_get(key, _MISS)
        except TypeError:  # an unhashable value (a list, a dict): never memoized
            key, inst = None, _MISS
        if inst is _MISS:
            inst = _parse_row(row, wanted, parse_row)
            if key is not None:
                _memo_put(key, row, inst)
        if inst is None:
            continue
        if isinstance(inst, str):
            skip(inst, i)
        elif inst.token in seen:
            skip("duplicate_token", i)
        else:
            seen.add(inst.token)
            kept.append(inst)
    master = InstrumentMaster(kept, skipped=dict(skipped),
                              skip_examples={k: list(v) for k, v in examples.items()},
                              rows_total=total)
    if skipped:
        log.warning("instrument master: skipped %s (example row indices %s)",
                    master.skipped, master.skip_examples)
    return master


_MISS = object()


def _memo_put(key: tuple, row: dict, inst) -> None:
    """Remember the parse of `row` (key: the underlyings wanted, then the row's items).

    Day after day a master repeats most of its rows (a backtest parses one a day), and an
    Instrument is immutable. Only rows whose values are all strings are stored (Angel's are):
    a stored row equals another only if the other's values are the same strings, so a 1 can
    never stand in for "1", or True for 1."""
    for v in row.values():
        if type(v) is not str:
            return
    if len(_ROW_MEMO) >= ROW_MEMO_MAX:
        _ROW_MEMO.clear()
    _ROW_MEMO[key] = inst


def _parse_row(row: dict, wanted: frozenset, parse_row: "_RowParser"):
    """None for a row of no interest (another segment, underlying or instrument type), else
    the Instrument or the reason it is skipped."""
    seg = row.get("exch_seg")
    if seg == "NFO":
        name = row.get("name")
        if not isinstance(name, str) or name not in wanted:
            return None
        itype = row.get("instrumenttype")
        if itype != "OPTIDX" and itype != "FUTIDX":
            return None
    elif seg == "NSE":
        itype = row.get("instrumenttype")
        if itype != "AMXIDX":
            return None
    else:
        return None
    return parse_row(row, seg, itype)


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
        for inst in self.instruments:
            if inst.token in self._by_token:
                raise MasterError(f"duplicate token {inst.token} ({inst.symbol} and "
                                  f"{self._by_token[inst.token].symbol})")
            self._by_token[inst.token] = inst
            if inst.instrument_type == "AMXIDX":
                self._indices[inst.symbol.casefold()] = inst
            elif inst.instrument_type == "FUTIDX":
                futures[inst.name].append(inst)
            elif inst.is_option:
                chains[(inst.name, inst.expiry)].append(inst)
                self._contracts[(inst.name, inst.expiry, _paise(inst.strike), inst.option_type)] = inst
        self._futures = {u: sorted(fs, key=lambda f: f.expiry) for u, fs in futures.items()}
        self._chains = {k: sorted(c, key=lambda o: (o.strike, o.option_type)) for k, c in chains.items()}
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


_RECORD_JSON: dict[int, tuple[Instrument, str]] = {}   # id -> (the instrument, kept alive; JSON)


def _record_json(inst: Instrument) -> str:
    hit = _RECORD_JSON.get(id(inst))
    if hit is not None and hit[0] is inst:
        return hit[1]
    text = json.dumps([inst.token, inst.symbol, inst.name, inst.exchange, inst.instrument_type,
                       inst.expiry.isoformat() if inst.expiry else None, inst.strike,
                       inst.option_type, inst.lot_size, inst.tick_size],
                      separators=(",", ":"), allow_nan=False)
    if len(_RECORD_JSON) >= ROW_MEMO_MAX:
        _RECORD_JSON.clear()
    _RECORD_JSON[id(inst)] = (inst, text)
    return text


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
