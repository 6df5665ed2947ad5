"""When the virtual driver may skip a monitor tick: the desk's state a tick reads, and the next
instant at which that tick could act otherwise (used by TradingDay.job_monitor, VirtualClock only)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from . import guards
from .calendar import at
from .costs import trade_costs
from .positions import EPS


def next_change(desk, now: datetime | None) -> tuple[datetime | None, tuple]:
    """`(until, state)` for the virtual driver's skipping of idle monitor ticks (scheduler.py).

    `state` is what a monitor tick reads of the desk and may change, leaving out the as-of
    timestamps (`last_fresh`, a holding's `last_price_at`) and `next_reconcile`.
    `until` is the earliest instant after `now` at which a tick run on this state could act
    otherwise than one at `now`: the next change the market promises of what the tick reads
    (flat, that is only the VIX, and only its leaving the band in which the VIX breaker stays
    as it is and the price is valid; with one position, the VIX so, or its premium leaving
    its `quiet_band`, until a minute before EOD; else any price), the next reconciliation
    (unless neither the broker's state version nor the holdings changed since the last one,
    which it would then only repeat), and EOD while positions are open. It is None, and
    nothing is skipped, while anything moves on the clock alone: a working or unknown order,
    an exit to (re)send, a failing feed or quote, a reconciliation retry, a market that
    promises nothing, or before pre-open. `now=None` gives the state only. The engine skips
    only after a tick that journaled nothing and left `state` as it found it
    (TradingDay.job_monitor)."""
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
    vix_band = (r.vix.resume, math.inf) if r.vix.tripped else (math.ulp(0.0), r.vix.spike)
    if len(b):  # stops, trails and P&L read the option quotes
        eod = at(desk.day, desk.cfg.session.eod_exit)
        last_mark = eod - timedelta(minutes=1)  # the EOD exit reads the mark of the last minute
        quiet = quiet_band(desk) if now < last_mark else None
        if quiet is None:  # any change of the market
            until = promise(now)
        else:  # only the held option's leaving its quiet band, or the VIX breaker's moving
            until = promise(now, {quiet[0]: quiet[1:], desk.feed.vix_instrument.token: vix_band})
            until = None if until is None else min(until, last_mark)
        if until is not None and now < eod:
            until = min(until, eod)
    else:  # flat: a tick reads the VIX, and acts only if the VIX breaker would move
        until = promise(now, {desk.feed.vix_instrument.token: vix_band})
    if until is None:
        return None, state
    if desk.recon_basis is not None and desk.recon_basis == guards.reconcile_basis(desk):
        return until, state   # a reconciliation now would only repeat the last one's answer
    return min(until, desk.next_reconcile), state


def quiet_band(desk) -> tuple[str, float, float] | None:
    """(token, lo, hi): while the one held option's premium stays in [lo, hi), a monitor tick does
    nothing but mark it. Outside: a new high (the highest and the trail move), the hard or
    trailing stop, the target, or a price at which the day's net P&L could reach the daily-loss
    limit (bounded with the costs of a sale at the highest, which no price in the band exceeds).
    None, and no promise, with more than one holding or a trail the next tick would move anyway.
    The ticks in the band mark prices nobody reads before the next tick that runs: the daily-loss
    breaker reads the previous tick's mark, which is in the band either way."""
    if len(desk.book.holdings) != 1:
        return None
    (h,) = desk.book.holdings.values()
    pos, x = h.pos, desk.cfg.exits
    if pos.trail_active:
        if pos.trail_stop is None or pos.highest * (1 - x.trail_gap_pct) > pos.trail_stop:
            return None
        floor = max(pos.hard_stop, pos.trail_stop) + EPS
    elif pos.highest >= pos.entry_price * (1 + x.trail_activate_pct) - EPS:
        return None
    else:
        floor = pos.hard_stop + EPS
    hi = math.nextafter(pos.highest, math.inf)
    if pos.target is not None:
        hi = min(hi, pos.target - EPS)
    limit = round(desk.capital * desk.risk.daily_loss.limit_pct / 100, 2)
    costs = trade_costs(pos.entry_price, pos.highest, h.open_qty, desk.cfg).total
    # net(p) >= (p - entry) * qty - costs, to the paisa: above this no price breaches the limit
    breach = pos.entry_price + (costs - limit - desk.book.realized_net + 0.02) / h.open_qty
    lo = math.nextafter(max(floor, breach), math.inf)
    return (pos.token, lo, hi) if lo < hi else None
