"""When the virtual driver may skip a monitor tick: the desk's state a tick reads, and the next
instant at which that tick could act otherwise (used by TradingDay.job_monitor, VirtualClock only)."""
from __future__ import annotations

import math
from datetime import datetime

from . import guards
from .calendar import at


def next_change(desk, now: datetime | None) -> tuple[datetime | None, tuple]:
    """`(until, state)` for the virtual driver's skipping of idle monitor ticks (scheduler.py).

    `state` is what a monitor tick reads of the desk and may change, leaving out the as-of
    timestamps (`last_fresh`, a holding's `last_price_at`) and `next_reconcile`, which `until`
    never passes (a tick that just reconciled is repeated by the next, which does not).
    `until` is the earliest instant after `now` at which a tick run on this state could act
    otherwise than one at `now`: the next change the market promises of what the tick reads
    (flat, that is only the VIX, and only its leaving the band in which the VIX breaker stays
    as it is and the price is valid; with positions, any price), the next reconciliation
    (unless neither the broker's state version nor the holdings changed since the last one,
    which it would then only repeat), and EOD while positions are open. It is None, and nothing is skipped, while anything moves on
    the clock alone: a working or unknown order, an exit to (re)send, a failing feed or
    quote, a reconciliation retry, a market that promises nothing, or before pre-open.
    `now=None` gives the state only. The engine skips only after a tick that journaled
    nothing and left `state` as it found it (TradingDay.job_monitor)."""
    b, r = desk.book, desk.risk
    state = (desk.machine.state if desk.machine is not None else None, desk.pre_open_done,
             desk.warmed_up, desk.reconciled, desk.halt_reason, desk.capital, desk.broker_healthy,
             tuple((pid, h.pos, h.open_qty, h.last_price, h.exiting, h.exit_value)
                   for pid, h in b.holdings.items()), b.realized_net, b.closed,
             r.to_dict(), len(desk.ex.orders), tuple(desk.gap_open), tuple(desk.to_flatten),
             tuple(desk.quote_failing), desk.feed_failing_since is not None, len(desk.shorts),
             len(desk.duplicates), len(desk.unmanaged), desk.reconcile_failures)
    promise = getattr(desk.market, "next_change", None)
    if (now is None or promise is None or desk.machine is None or not desk.pre_open_done
            or desk.feed is None or desk.next_reconcile is None or desk.reconcile_failures
            or desk.to_flatten or desk.quote_failing or desk.feed_failing_since is not None
            or "feed" in desk.gap_open or desk.ex.live()
            or any(h.exiting or h.open_qty <= 0 for h in b.holdings.values())):
        return None, state
    if len(b):  # stops, trails and P&L read the option quotes: any change of the market
        until = promise(now)
        eod = at(desk.day, desk.cfg.session.eod_exit)
        if until is not None and now < eod:
            until = min(until, eod)
    else:  # flat: a tick reads the VIX, and acts only if the VIX breaker would move
        band = (r.vix.resume, math.inf) if r.vix.tripped else (math.ulp(0.0), r.vix.spike)
        until = promise(now, {desk.feed.vix_instrument.token: band})
    if until is None:
        return None, state
    if desk.recon_basis is not None and desk.recon_basis == guards.reconcile_basis(desk):
        return until, state   # a reconciliation now would only repeat the last one's answer
    return min(until, desk.next_reconcile), state
