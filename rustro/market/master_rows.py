"""Raw instrument-master rows into Instruments: the row checks, skip reasons and the row memo.

`instruments.parse_master` builds the day's indexed master from what `parse_rows` keeps.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable

from .strikes import OPTION_TYPES

MAX_SKIP_EXAMPLES = 5
_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}


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
_ROW_MEMO: dict[str, tuple[dict, "Instrument | str"]] = {}   # token -> (the row, its parse)


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


def parse_rows(rows: Iterable[Any], wanted: frozenset
               ) -> tuple[list[Instrument], dict[str, int], dict[str, list[int]], int]:
    """(kept instruments, skipped count by reason, example row indices by reason, rows seen)."""
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
        # most of a real master (other segments, stocks, other underlyings) is rejected here,
        # cheaply, before anything is hashed or parsed: we keep NSE indices and the NFO index
        # futures and options of the wanted underlyings
        seg, itype = row.get("exch_seg"), row.get("instrumenttype")
        if seg == "NFO":
            name = row.get("name")
            if (itype != "OPTIDX" and itype != "FUTIDX") or type(name) is not str \
                    or name not in wanted:
                continue
        elif seg != "NSE" or itype != "AMXIDX":
            continue
        token = row.get("token")
        hit = memo_get(token) if type(token) is str else None
        if hit is not None and hit[0] == row:
            inst = hit[1]
        else:
            inst = parse_row(row, seg, itype)
            if type(token) is str:
                _memo_put(token, row, inst)
        if isinstance(inst, str):
            skip(inst, i)
        elif inst.token in seen:
            skip("duplicate_token", i)
        else:
            seen.add(inst.token)
            kept.append(inst)
    return kept, dict(skipped), {k: list(v) for k, v in examples.items()}, total


def _memo_put(token: str, row: dict, inst) -> None:
    """Remember the parse of `row` under its token, with a copy of the row to compare with.

    Day after day a master repeats most of its rows (a backtest parses one a day), and an
    Instrument is immutable. A stored row is used again only for a row equal to it, and only rows
    whose values are all strings are stored (Angel's are): a str equals no int, float, bool or
    None, so a 1 can never stand in for "1", nor True for 1. Looking a row up by its token and
    comparing dicts is a third of the cost of hashing every item of every row."""
    for v in row.values():
        if type(v) is not str:
            return
    if len(_ROW_MEMO) >= ROW_MEMO_MAX:
        _ROW_MEMO.clear()
    _ROW_MEMO[token] = (dict(row), inst)
