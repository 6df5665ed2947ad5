"""A journal event as read back (`Event`), and the JSON its payload is stored as."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import Enum
from typing import Any

from .journal_errors import JournalCorrupt


@dataclass(frozen=True)
class Event:
    seq: int
    ts: datetime
    trading_day: date
    kind: str
    payload: dict


def _default(o: Any) -> Any:
    if isinstance(o, (datetime, date, time)):
        return o.isoformat()
    if isinstance(o, Enum):
        return o.value
    if hasattr(o, "__dataclass_fields__"):
        return {k: getattr(o, k) for k in o.__dataclass_fields__}
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(f"journal payload value of type {type(o).__name__} is not serializable: {o!r}")


# json.dumps(payload, default=_default, sort_keys=True, allow_nan=False) builds this same encoder on
# every call; one built once writes the same text for less (the journal dumps every event).
_ENCODER = json.JSONEncoder(default=_default, sort_keys=True, allow_nan=False)


def dumps(payload: dict) -> str:
    return _ENCODER.encode(payload)


def _strings(obj):
    """Every string in a JSON value, keys included: a secret is text, never a number."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _event(row) -> Event:
    try:
        payload = json.loads(row[4])
        if not isinstance(payload, dict):
            raise ValueError("payload is not a JSON object")
        return Event(row[0], datetime.fromisoformat(row[1]), date.fromisoformat(row[2]), row[3], payload)
    except (ValueError, TypeError) as exc:
        raise JournalCorrupt(f"journal event #{row[0]} ({row[3]}) is unreadable: {exc}; "
                             f"run `rustro journal verify`") from None
