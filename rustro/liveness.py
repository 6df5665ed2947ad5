"""Did the day close? The answer `status --json` gives cron-based monitors.

A day is expected to reach `closed` (its close journaled) by CLOSE_DEADLINE, a few minutes after
the market's close. Past that instant, a trading day whose journal is not `closed` (the bot died,
hung, or never started) is a missed close. Pure: the caller passes the time and the calendar.
"""
from __future__ import annotations

from datetime import date, datetime, time

from .calendar import TradingCalendar, at

CLOSE_DEADLINE = time(15, 35)


def close_check(state: str | None, day: date, now: datetime,
                calendar: TradingCalendar | None = None) -> dict:
    """`day_status`: closed | open (not closed, deadline not passed) | missed_close | not_started
    | no_trading_day; `missed_close`: True when the close deadline passed without `closed`."""
    trading = (calendar or TradingCalendar()).is_trading_day(day)
    late = now >= at(day, CLOSE_DEADLINE)
    if state == "closed":
        status = "closed"
    elif state is None and not trading:
        status = "no_trading_day"
    elif late:
        status = "missed_close"
    else:
        status = "not_started" if state is None else "open"
    return {"day_status": status, "missed_close": status == "missed_close",
            "close_deadline": f"{day.isoformat()}T{CLOSE_DEADLINE:%H:%M}+05:30"}
