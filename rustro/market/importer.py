"""`rustro data import DIR`: minute bars from CSV (or Parquet, with pyarrow) into the store.

One file per instrument, named by its trading symbol as in Angel's instrument master
(`NIFTY20OCT2625000CE.csv`, `Nifty 50.csv`, `India VIX.csv`), with a header and these columns:

    timestamp,open,high,low,close,volume,oi
    2026-10-14 09:15,25010.5,25022.0,25001.1,25020.0,0,

- timestamp: the minute bar's start in IST, `YYYY-MM-DD HH:MM` (seconds :00 and an offset of
  +05:30 are accepted), within the session 09:15..15:29, strictly ascending;
- open, high, low, close: finite numbers > 0 with low <= open, close <= high;
- volume: a whole number >= 0; oi: a whole number >= 0, or empty (indices have none).

Every file is validated row by row before anything is written: any error (named by file, row
number counting the header as row 1, and column) rejects the whole import. A good import is
idempotent: the same bars imported again are the same rows. The session-aligned hourly and
daily bars of each imported day are stored too (a backtest then reads them directly). The trading symbol is looked up in
the store's contract directory (the instrument masters it holds: `data download` or a recorded
day stores them), else among the indices below.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path

from ..clock import IST
from .base import ONE_MINUTE
from .store import MarketStore
from .stored import put_derived

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "oi")
SESSION = (time(9, 15), time(15, 29))
IST_OFFSET = timedelta(hours=5, minutes=30)
# Angel's index tokens (NSE), for stores that hold no master yet
KNOWN_INDEX = {"Nifty 50": "99926000", "India VIX": "99926017", "Nifty Bank": "99926009",
               "Nifty Fin Service": "99926037"}


class ImportError_(ValueError):
    """A file we refuse, naming file, row and column."""


@dataclass
class Checked:
    path: Path
    symbol: str
    token: str
    rows: list[tuple] = field(default_factory=list)


def parquet_available() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _records(path: Path):
    """(row number, dict of column -> text) for a CSV, or a Parquet file read through pyarrow."""
    if path.suffix.lower() == ".parquet":
        if not parquet_available():
            raise ImportError_(f"{path.name}: Parquet needs pyarrow (pip install 'rustro[parquet]'); "
                               f"or convert it to CSV")
        import pyarrow.parquet as pq
        table = pq.read_table(path)
        names = table.column_names
        _header(path, names)
        for i, rec in enumerate(table.to_pylist(), start=2):
            yield i, {k: "" if v is None else (v.isoformat(sep=" ") if isinstance(v, datetime)
                                              else str(v)) for k, v in rec.items()}
        return
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ImportError_(f"{path.name}: empty file (expected the header {','.join(COLUMNS)})")
        _header(path, [h.strip() for h in header])
        names = [h.strip() for h in header]
        for i, values in enumerate(reader, start=2):
            if not values:
                continue
            if len(values) != len(names):
                raise ImportError_(f"{path.name} row {i}: {len(values)} values, expected "
                                   f"{len(names)} ({','.join(names)})")
            yield i, dict(zip(names, (v.strip() for v in values)))


def _header(path: Path, names: list[str]) -> None:
    if list(names) != list(COLUMNS):
        raise ImportError_(f"{path.name} row 1: header {','.join(names)!r}; expected exactly "
                           f"{','.join(COLUMNS)}")


def _timestamp(text: str, where: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ImportError_(f"{where} column timestamp: {text!r} is not YYYY-MM-DD HH:MM") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=IST)
    elif dt.utcoffset() != IST_OFFSET:
        raise ImportError_(f"{where} column timestamp: {text!r} is not IST (+05:30)")
    if dt.second or dt.microsecond:
        raise ImportError_(f"{where} column timestamp: {text!r} is not the start of a minute")
    if not SESSION[0] <= dt.time() <= SESSION[1]:
        raise ImportError_(f"{where} column timestamp: {text!r} is outside the session "
                           f"{SESSION[0]:%H:%M}..{SESSION[1]:%H:%M}")
    return dt.astimezone(IST)


def _number(text: str, col: str, where: str, whole: bool = False, positive: bool = True) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ImportError_(f"{where} column {col}: {text!r} is not a number") from None
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        raise ImportError_(f"{where} column {col}: {text!r} must be {'> 0' if positive else '>= 0'}")
    if whole and v != int(v):
        raise ImportError_(f"{where} column {col}: {text!r} is not a whole number")
    return v


def check_file(path: Path, store: MarketStore) -> Checked:
    """The file's bars, fully validated (ImportError_ naming file, row and column otherwise)."""
    symbol = path.stem
    row = store.contract_by_symbol(symbol)
    token = str(row["token"]) if row else KNOWN_INDEX.get(symbol)
    if token is None:
        raise ImportError_(f"{path.name}: trading symbol {symbol!r} is in no instrument master in "
                           f"the store (run `rustro data download` or record a day first)")
    out = Checked(path, symbol, token)
    last: datetime | None = None
    for i, rec in _records(path):
        where = f"{path.name} row {i}"
        ts = _timestamp(rec["timestamp"], where)
        if last is not None and ts <= last:
            raise ImportError_(f"{where} column timestamp: {rec['timestamp']!r} is not after the "
                               f"previous row's {last:%Y-%m-%d %H:%M}")
        o, h, lo, c = (_number(rec[k], k, where) for k in ("open", "high", "low", "close"))
        if h < lo:
            raise ImportError_(f"{where} column high: {rec['high']!r} is below low {rec['low']!r}")
        for k, v in (("open", o), ("close", c)):
            if not lo <= v <= h:
                raise ImportError_(f"{where} column {k}: {rec[k]!r} is outside [low, high]")
        vol = _number(rec["volume"], "volume", where, whole=True, positive=False)
        oi = (None if rec["oi"] == "" else
              _number(rec["oi"], "oi", where, whole=True, positive=False))
        out.rows.append((int(ts.timestamp()), o, h, lo, c, vol, oi))
        last = ts
    if not out.rows:
        raise ImportError_(f"{path.name}: no bars after the header")
    return out


def import_dir(directory: Path, store: MarketStore) -> list[Checked]:
    """Validate every file of `directory`, then (only if all are good) write them in one
    transaction. Returns what was imported."""
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.suffix.lower() in (".csv", ".parquet"))
    if not files:
        raise ImportError_(f"{directory}: no .csv or .parquet file")
    checked = [check_file(p, store) for p in files]
    try:
        for c in checked:
            store.put_bars(c.token, ONE_MINUTE, c.rows)
            put_derived(store, c.token, c.rows)
        store.commit()
    except BaseException:
        store.rollback()
        raise
    return checked
