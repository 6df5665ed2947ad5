"""Recorded versus replayed decisions of a day, from their two journals, side by side.

A decision is an event of `DECISION_KINDS` (filter values, entry and size decisions, order
intents and their tags, fills, position opening, stops and exits) with the fields that name
broker-side identities left out (the replay's paper broker numbers its orders and fills itself).
An instant inside a decision (the entry-window filter's "now", a stop-out time) is compared by
the recorded job it falls in, at whole seconds (Angel stamps fills to the second): the recorded
bot's clock ran on while a job ran, the replay's stands at the instants of the answers it is
served, so the same decision point is the same job, not the same microsecond. Everything else must be equal, in the same order.
"""
from __future__ import annotations

import bisect
import json
import re
from datetime import date, datetime, time
from itertools import zip_longest
from pathlib import Path

DECISION_KINDS = ("daily_bias", "filter_result", "entry_decision", "size_decision", "order_intent",
                  "fill", "position_opened", "stop_updated", "exit_signal", "position_closed",
                  "entry_abandoned", "halted", "breaker_tripped", "breaker_reset", "data_gap")
# identities the broker assigns, and instants: not decisions
VOLATILE = {"fill_id", "order_id", "broker_order_id", "unique_order_id"}
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?[+-]\d{2}:\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}:\d{2}(\.\d+)?")


def decisions(journal: Path, day: date) -> list[tuple[str, dict]]:
    from .journal import Journal
    marks = ",".join("?" * len(DECISION_KINDS))
    with Journal.open_readonly(journal) as j:
        rows = j.query(f"SELECT kind, payload FROM events WHERE trading_day = ? AND kind IN "
                       f"({marks}) ORDER BY seq", (day.isoformat(), *DECISION_KINDS))
    return [(kind, {k: v for k, v in sorted(json.loads(payload).items()) if k not in VOLATILE})
            for kind, payload in rows]


def by_job(value, day: date, starts: list[datetime]):
    """`value` with every instant replaced by the recorded job it falls in ("job 12")."""
    if isinstance(value, dict):
        return {k: by_job(v, day, starts) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [by_job(v, day, starts) for v in value]
    if isinstance(value, str) and (_INSTANT.fullmatch(value) or _TIME.fullmatch(value)):
        from .clock import IST
        when = (datetime.fromisoformat(value) if "T" in value
                else datetime.combine(day, time.fromisoformat(value), tzinfo=IST))
        # at whole seconds: Angel stamps fills and trades to the second
        when = when.replace(microsecond=0)
        return f"job {bisect.bisect_right(starts, when) - 1}"
    return value


def compare(recorded: Path, replayed: Path, day: date, starts: list[datetime] | None = None
            ) -> tuple[list[tuple], int | None]:
    """(rows (index, recorded, replayed, same), index of the first divergence or None).
    `starts`: the recorded jobs' instants, ascending (instants compare by job)."""
    starts = sorted(t.replace(microsecond=0) for t in starts or [])
    rows, first = [], None
    for i, (a, b) in enumerate(zip_longest(decisions(recorded, day), decisions(replayed, day))):
        same = (a is not None and b is not None and a[0] == b[0]
                and by_job(a[1], day, starts) == by_job(b[1], day, starts))
        rows.append((i, a, b, same))
        if not same and first is None:
            first = i
    return rows, first


def _text(item, width: int) -> str:
    if item is None:
        return "(none)"
    kind, payload = item
    text = f"{kind} {json.dumps(payload, sort_keys=True, default=str)}"
    return text if len(text) <= width else text[:width - 3] + "..."


def render(rows: list[tuple], first: int | None, recorded: Path, replayed: Path,
           width: int = 70) -> str:
    from tabulate import tabulate
    table = tabulate([[i, "" if same else "!=", _text(a, width), _text(b, width)]
                      for i, a, b, same in rows],
                     headers=["#", "", f"recorded ({recorded.name})", f"replayed ({replayed.name})"],
                     tablefmt="simple", disable_numparse=True)
    if first is None:
        verdict = f"identical: {len(rows)} decisions, the same in the same order"
    else:
        _, a, b, _ = rows[first]
        verdict = (f"FIRST DIVERGENCE at decision #{first}:\n  recorded: "
                   f"{_text(a, 10_000)}\n  replayed: {_text(b, 10_000)}")
    return f"{table}\n\n{verdict}\nreplayed journal: {replayed}"
