"""Sizing (spec section 6) and the persisted risk breakers (section 9).

Breakers are small state objects in the spirit of freqtrade's protections: each returns a
`BreakerEvent` when it trips or resets (the engine journals it with its inputs) and round-trips
through `to_dict()`/`from_dict()` so a restart restores exactly the state it had.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from .clock import ist

LOT_EPS = 1e-9  # budget/lot_cost 9.999999999999998 is 10 lots, not 9
STOP_OUT_REASONS = frozenset({"hard_stop", "trailing_stop"})  # exits that start the cooldown


# --- sizing -------------------------------------------------------------------------------------

def _finite(name: str, x) -> float:
    if x is None or isinstance(x, bool) or not math.isfinite(float(x)):
        raise ValueError(f"{name}: must be a finite number, got {x!r}")
    return float(x)


def vix_multiplier(vix: float, sizing_cfg) -> float:
    """Piecewise linear through (low, mid, high); flat below low; a step down above high."""
    v, z = _finite("vix", vix), sizing_cfg
    if v < 0:
        raise ValueError(f"vix: must be >= 0, got {vix!r}")
    if v <= z.vix_low:
        return z.vix_low_mult
    if v > z.vix_high:
        return z.vix_extreme_mult
    x0, y0, x1, y1 = ((z.vix_low, z.vix_low_mult, z.vix_mid, z.vix_mid_mult) if v <= z.vix_mid
                      else (z.vix_mid, z.vix_mid_mult, z.vix_high, z.vix_high_mult))
    return y0 + (v - x0) / (x1 - x0) * (y1 - y0)


def dte_multiplier(dte: int, sizing_cfg) -> float:
    if isinstance(dte, bool) or not isinstance(dte, int) or dte < 0:
        raise ValueError(f"dte: must be a whole number of days >= 0, got {dte!r}")
    z = sizing_cfg
    if dte >= z.dte_full:
        return z.dte_full_mult
    if dte >= z.dte_mid:
        return z.dte_mid_mult
    return z.dte_low_mult


@dataclass(frozen=True)
class SizeDecision:
    lots: int
    quantity: int
    budget: float
    vix_mult: float
    dte_mult: float
    lot_size: int
    premium: float
    capped_by: str | None  # None | "max_lots_per_trade" | "freeze_qty"
    reason: str
    capital: float = 0.0
    raw_lots: int = 0
    max_lots: int = 0
    freeze_lots: int = 0


def size_position(capital: float, premium: float, lot_size: int, vix: float, dte: int,
                  freeze_qty: int, cfg) -> SizeDecision:
    """Whole lots that fit the risk budget, capped by config and by the exchange freeze quantity."""
    z = cfg.sizing
    capital, premium = _finite("capital", capital), _finite("premium", premium)
    if premium <= 0:
        raise ValueError(f"premium: must be > 0, got {premium!r}")
    if isinstance(lot_size, bool) or not isinstance(lot_size, int) or lot_size <= 0:
        raise ValueError(f"lot_size: must be a whole number > 0, got {lot_size!r}")
    if isinstance(freeze_qty, bool) or not isinstance(freeze_qty, int) or freeze_qty <= 0:
        raise ValueError(f"freeze_qty: must be a whole number > 0, got {freeze_qty!r}")
    if capital < 0:
        raise ValueError(f"capital: must be >= 0, got {capital!r}")
    vm, dm = vix_multiplier(vix, z), dte_multiplier(dte, z)
    budget = capital * z.base_position_size_pct / 100 * vm * dm
    raw = max(0, math.floor(budget / (premium * lot_size) + LOT_EPS))
    freeze_lots = freeze_qty // lot_size
    lots, capped_by = raw, None
    if lots > z.max_lots_per_trade:
        lots, capped_by = z.max_lots_per_trade, "max_lots_per_trade"
    if lots > freeze_lots:
        lots, capped_by = freeze_lots, "freeze_qty"
    if raw == 0:
        reason = "size below one lot"
    elif lots == 0:
        reason = "freeze quantity below one lot"
    else:
        reason = "ok"
    return SizeDecision(lots, lots * lot_size, round(budget, 2), vm, dm, lot_size, premium,
                        capped_by, reason, capital, raw, z.max_lots_per_trade, freeze_lots)


# --- breakers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BreakerEvent:
    breaker: str
    action: str  # "tripped" | "reset"
    inputs: dict
    reason: str


@dataclass
class VixBreaker:
    """Trips at vix >= spike; resets only below resume (hysteresis: no flapping around one line)."""
    spike: float
    resume: float
    tripped: bool = False
    name = "vix"

    @classmethod
    def from_config(cls, risk_cfg) -> "VixBreaker":
        return cls(risk_cfg.vix_spike, risk_cfg.vix_resume)

    def update(self, vix: float) -> BreakerEvent | None:
        v = _finite("vix", vix)
        inputs = {"vix": v, "vix_spike": self.spike, "vix_resume": self.resume}
        if not self.tripped and v >= self.spike:
            self.tripped = True
            return BreakerEvent(self.name, "tripped", inputs, f"vix {v} >= {self.spike}")
        if self.tripped and v < self.resume:
            self.tripped = False
            return BreakerEvent(self.name, "reset", inputs, f"vix {v} < {self.resume}")
        return None

    def to_dict(self) -> dict:
        return {"tripped": self.tripped}

    @classmethod
    def from_dict(cls, d: dict, risk_cfg) -> "VixBreaker":
        return cls(risk_cfg.vix_spike, risk_cfg.vix_resume, bool(d.get("tripped", False)))


@dataclass
class DailyLossBreaker:
    """Trips when the day's net P&L (realized + unrealized) reaches -limit% of capital; latched."""
    limit_pct: float
    tripped: bool = False
    name = "daily_loss"

    def update(self, day_pnl_net: float, capital: float) -> BreakerEvent | None:
        pnl, cap = _finite("day_pnl_net", day_pnl_net), _finite("capital", capital)
        limit = round(cap * self.limit_pct / 100, 2)
        if self.tripped or pnl > -limit:
            return None
        self.tripped = True
        return BreakerEvent(self.name, "tripped",
                            {"day_pnl_net": pnl, "capital": cap, "limit_pct": self.limit_pct,
                             "limit": -limit}, f"day net P&L {pnl} <= {-limit}")

    def to_dict(self) -> dict:
        return {"tripped": self.tripped}

    @classmethod
    def from_dict(cls, d: dict, risk_cfg) -> "DailyLossBreaker":
        return cls(risk_cfg.daily_loss_limit_pct, bool(d.get("tripped", False)))


@dataclass
class ConsecutiveLossBreaker:
    """Counts losing trades in a row (net < 0); any non-losing trade resets the count. Latched."""
    limit: int
    count: int = 0
    tripped: bool = False
    name = "consecutive_losses"

    def record(self, net_pnl: float) -> BreakerEvent | None:
        pnl = _finite("net_pnl", net_pnl)
        self.count = self.count + 1 if pnl < 0 else 0
        if self.tripped or self.count < self.limit:
            return None
        self.tripped = True
        return BreakerEvent(self.name, "tripped",
                            {"count": self.count, "limit": self.limit, "last_net_pnl": pnl},
                            f"{self.count} losing trades in a row >= {self.limit}")

    def to_dict(self) -> dict:
        return {"count": self.count, "tripped": self.tripped}

    @classmethod
    def from_dict(cls, d: dict, risk_cfg) -> "ConsecutiveLossBreaker":
        return cls(risk_cfg.consecutive_loss_limit, int(d.get("count", 0)),
                   bool(d.get("tripped", False)))


@dataclass
class LatchBreaker:
    """Tripped by an operator or a check; stays tripped until reset explicitly."""
    tripped: bool = False
    reason: str = ""
    name = "latch"

    def trip(self, reason: str, inputs: dict | None = None) -> BreakerEvent | None:
        if self.tripped:
            return None
        self.tripped, self.reason = True, reason
        return BreakerEvent(self.name, "tripped", dict(inputs or {}), reason)

    def reset(self, reason: str) -> BreakerEvent | None:
        if not self.tripped:
            return None
        self.tripped, self.reason = False, ""
        return BreakerEvent(self.name, "reset", {}, reason)

    def to_dict(self) -> dict:
        return {"tripped": self.tripped, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict, risk_cfg=None) -> "LatchBreaker":
        return cls(bool(d.get("tripped", False)), str(d.get("reason", "")))


class KillSwitch(LatchBreaker):
    """`rustro.py halt` or a KILL file: exit all and halt."""
    name = "kill_switch"


class MismatchBreaker(LatchBreaker):
    """Journal and broker disagree at reconciliation: halt, keep positions protected."""
    name = "broker_mismatch"


def in_cooldown(last_stopout_at: datetime | None, now: datetime, minutes: int) -> bool:
    """True while now < last stop-out + minutes (at exactly `minutes` later, entries are allowed)."""
    if last_stopout_at is None:
        return False
    return ist(now) < ist(last_stopout_at) + timedelta(minutes=minutes)


# --- the bundle ---------------------------------------------------------------------------------

@dataclass
class RiskState:
    """All breakers and the day's counters; one object for the engine to persist and restore."""
    trading_day: date
    vix: VixBreaker
    daily_loss: DailyLossBreaker
    consecutive: ConsecutiveLossBreaker
    kill: KillSwitch
    mismatch: MismatchBreaker
    trades_today: int = 0
    last_stopout: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def new(cls, trading_day: date, risk_cfg) -> "RiskState":
        return cls(trading_day, VixBreaker.from_config(risk_cfg),
                   DailyLossBreaker(risk_cfg.daily_loss_limit_pct),
                   ConsecutiveLossBreaker(risk_cfg.consecutive_loss_limit),
                   KillSwitch(), MismatchBreaker())

    def new_day(self, trading_day: date, risk_cfg) -> "RiskState":
        """Day counters and day breakers start fresh; the VIX breaker (market condition, with
        hysteresis) and operator latches (kill switch, broker mismatch) carry over until reset."""
        nxt = RiskState.new(trading_day, risk_cfg)
        nxt.vix.tripped, nxt.kill, nxt.mismatch = self.vix.tripped, self.kill, self.mismatch
        return nxt

    @property
    def halted(self) -> bool:
        """No new entries and flatten: daily loss, kill switch or broker mismatch."""
        return self.daily_loss.tripped or self.kill.tripped or self.mismatch.tripped

    def entry_blockers(self) -> list[str]:
        """Names of every tripped breaker that blocks new entries."""
        return [b.name for b in (self.vix, self.daily_loss, self.consecutive, self.kill,
                                 self.mismatch) if b.tripped]

    @property
    def consecutive_losses(self) -> int:
        return self.consecutive.count

    def record_entry(self) -> None:
        self.trades_today += 1

    def record_close(self, underlying: str, net_pnl: float, exit_reason: str,
                     at: datetime) -> list[BreakerEvent]:
        if exit_reason in STOP_OUT_REASONS:
            self.last_stopout[underlying] = ist(at)
        ev = self.consecutive.record(net_pnl)
        return [ev] if ev else []

    def last_stopout_at(self, underlying: str) -> datetime | None:
        return self.last_stopout.get(underlying)

    def to_dict(self) -> dict[str, Any]:
        return {"trading_day": self.trading_day.isoformat(), "vix": self.vix.to_dict(),
                "daily_loss": self.daily_loss.to_dict(), "consecutive": self.consecutive.to_dict(),
                "kill": self.kill.to_dict(), "mismatch": self.mismatch.to_dict(),
                "trades_today": self.trades_today,
                "last_stopout": {k: v.isoformat() for k, v in self.last_stopout.items()}}

    @classmethod
    def from_dict(cls, d: dict, risk_cfg) -> "RiskState":
        try:
            return cls(date.fromisoformat(d["trading_day"]),
                       VixBreaker.from_dict(d.get("vix", {}), risk_cfg),
                       DailyLossBreaker.from_dict(d.get("daily_loss", {}), risk_cfg),
                       ConsecutiveLossBreaker.from_dict(d.get("consecutive", {}), risk_cfg),
                       KillSwitch.from_dict(d.get("kill", {})),
                       MismatchBreaker.from_dict(d.get("mismatch", {})),
                       int(d.get("trades_today", 0)),
                       {k: ist(datetime.fromisoformat(v))
                        for k, v in d.get("last_stopout", {}).items()})
        except KeyError as exc:
            raise ValueError(f"risk state: missing key {exc.args[0]!r}") from None
