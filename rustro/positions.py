"""An open long option position, its stops, and the exit rules (spec section 7) as pure functions.

Stops are kept unrounded so the comparison is the spec's (100 -> 102 -> 105 -> stop 103.425;
103.40 exits); the order manager rounds the order price to the tick. `cfg` may be the whole
Config or just its `exits` section.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, time

from .clock import ist
from .costs import Costs, order_costs, pnl, trade_costs  # noqa: F401  (re-exported)
from .strategy import CE, PE, technical_exit

__all__ = ["Position", "new_position", "StopEvent", "update_premium", "ExitContext", "ExitDecision",
           "exit_reasons", "evaluate_exit", "EXIT_REASONS", "Costs", "order_costs", "trade_costs",
           "pnl"]

EPS = 1e-9  # float tolerance on premium vs a stop/target: 102 reaches 100 * 1.02

MANDATORY = ("eod", "kill_switch", "shutdown")
EXIT_REASONS = MANDATORY + ("vix_breaker", "daily_loss", "hard_stop", "trailing_stop", "target",
                            "technical", "stale_price")


def _exits(cfg):
    return getattr(cfg, "exits", cfg)


@dataclass(frozen=True)
class Position:
    position_id: str
    underlying: str
    option_type: str  # CE | PE (always held long)
    exchange: str
    symbol: str
    token: str
    quantity: int
    entry_price: float
    entry_time: datetime
    lot_size: int
    tick_size: float
    highest: float
    hard_stop: float
    trail_active: bool = False
    trail_stop: float | None = None
    target: float | None = None


def _positive(name: str, x) -> float:
    if x is None or isinstance(x, bool) or not math.isfinite(float(x)) or float(x) <= 0:
        raise ValueError(f"{name}: must be a finite number > 0, got {x!r}")
    return float(x)


def new_position(position_id: str, underlying: str, option_type: str, exchange: str, symbol: str,
                 token: str, quantity: int, entry_price: float, entry_time: datetime,
                 lot_size: int, tick_size: float, cfg) -> Position:
    """A position from its (average) fill price: hard stop and target fixed from entry."""
    x = _exits(cfg)
    if option_type not in (CE, PE):
        raise ValueError(f"option_type: must be CE or PE, got {option_type!r}")
    for name, v in (("quantity", quantity), ("lot_size", lot_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}: must be a whole number > 0, got {v!r}")
    if quantity % lot_size:
        raise ValueError(f"quantity: {quantity} is not a whole number of lots of {lot_size}")
    entry = _positive("entry_price", entry_price)
    _positive("tick_size", tick_size)
    target = entry * (1 + x.target_pct) if x.target_pct > 0 else None
    return Position(position_id, underlying, option_type, exchange, symbol, token, quantity,
                    entry, ist(entry_time), lot_size, float(tick_size), highest=entry,
                    hard_stop=entry * (1 - x.stop_loss_pct), target=target)


@dataclass(frozen=True)
class StopEvent:
    """One `stop_updated` journal row: the trailing stop activated or was raised."""
    kind: str  # "trail_activated" | "trail_raised"
    old_stop: float | None
    new_stop: float
    highest: float
    premium: float


def update_premium(pos: Position, premium: float, cfg) -> tuple[Position, list[StopEvent]]:
    """Track the highest premium and move the trailing stop; the stop is only ever raised."""
    x = _exits(cfg)
    p = _positive("premium", premium)
    highest = max(pos.highest, p)
    events: list[StopEvent] = []
    active, stop = pos.trail_active, pos.trail_stop
    candidate = highest * (1 - x.trail_gap_pct)
    if not active and highest >= pos.entry_price * (1 + x.trail_activate_pct) - EPS:
        active, stop = True, candidate
        events.append(StopEvent("trail_activated", None, stop, highest, p))
    elif active and (stop is None or candidate > stop):
        events.append(StopEvent("trail_raised", stop, candidate, highest, p))
        stop = candidate
    if highest == pos.highest and not events:
        return pos, events
    return replace(pos, highest=highest, trail_active=active, trail_stop=stop), events


@dataclass(frozen=True)
class ExitContext:
    now: datetime
    eod_exit_time: time
    stale_exit_sec: float
    kill_switch: bool = False
    shutdown_flatten: bool = False  # shutting down and exits.flatten_on_shutdown is true
    vix_breaker_tripped: bool = False
    daily_loss_breached: bool = False
    hourly_close: bool = False  # an hourly bar just closed: the technical exit may be checked
    plus_di: float | None = None
    minus_di: float | None = None
    last_price_age_sec: float = 0.0


@dataclass(frozen=True)
class ExitDecision:
    primary: str
    secondary: tuple[str, ...]
    premium: float | None
    values: dict


def exit_reasons(pos: Position, premium: float | None, ctx: ExitContext, cfg) -> list[str]:
    """Every exit reason that holds now, in priority order. `premium` None: no price known."""
    if premium is not None:
        premium = _positive("premium", premium)
    out = []
    if ist(ctx.now).time() >= ctx.eod_exit_time:
        out.append("eod")
    if ctx.kill_switch:
        out.append("kill_switch")
    if ctx.shutdown_flatten:
        out.append("shutdown")
    if ctx.vix_breaker_tripped:
        out.append("vix_breaker")
    if ctx.daily_loss_breached:
        out.append("daily_loss")
    if premium is not None:
        if premium <= pos.hard_stop + EPS:
            out.append("hard_stop")
        if pos.trail_active and pos.trail_stop is not None and premium <= pos.trail_stop + EPS:
            out.append("trailing_stop")
        if pos.target is not None and premium >= pos.target - EPS:
            out.append("target")
    if ctx.hourly_close and technical_exit(pos.option_type, ctx.plus_di, ctx.minus_di):
        out.append("technical")
    if ctx.last_price_age_sec >= ctx.stale_exit_sec:
        out.append("stale_price")
    return out


def evaluate_exit(pos: Position, premium: float | None, ctx: ExitContext,
                  cfg) -> ExitDecision | None:
    """The first true reason wins; the others ride along as `secondary` for the journal."""
    reasons = exit_reasons(pos, premium, ctx, cfg)
    if not reasons:
        return None
    values = {"entry_price": pos.entry_price, "highest": pos.highest, "hard_stop": pos.hard_stop,
              "trail_active": pos.trail_active, "trail_stop": pos.trail_stop,
              "target": pos.target, "now": ist(ctx.now).isoformat(),
              "eod_exit": ctx.eod_exit_time.isoformat(), "plus_di": ctx.plus_di,
              "minus_di": ctx.minus_di, "hourly_close": ctx.hourly_close,
              "last_price_age_sec": ctx.last_price_age_sec, "stale_exit_sec": ctx.stale_exit_sec}
    return ExitDecision(reasons[0], tuple(reasons[1:]), premium, values)
