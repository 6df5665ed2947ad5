"""Transaction costs of an options trade (spec section 8, `[costs]`) and gross/net P&L.

Rupee amounts are rounded to the paisa, half up, component by component, with exact decimal
arithmetic: that is what a contract note shows, and it keeps journal sums free of float noise.
GST is charged on the rounded brokerage + exchange + SEBI. A trade is costed on its aggregate buy
and sell turnover, so it can differ by a paisa from the sum of its orders costed one by one; the
trade's figure is the one of record.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CRORE = Decimal(10_000_000)
PAISA = Decimal("0.01")
SIDES = ("BUY", "SELL")


@dataclass(frozen=True)
class Costs:
    brokerage: float
    stt: float
    exchange: float
    sebi: float
    stamp: float
    gst: float
    total: float


def _d(name: str, x) -> Decimal:
    if x is None or isinstance(x, bool) or not math.isfinite(float(x)) or float(x) < 0:
        raise ValueError(f"{name}: must be a finite number >= 0, got {x!r}")
    return Decimal(repr(float(x)))  # the shortest decimal that is this float: 100.05, not 100.0499..


def _paisa(x: Decimal) -> Decimal:
    return x.quantize(PAISA, rounding=ROUND_HALF_UP)


def _costs(buy_turnover: Decimal, sell_turnover: Decimal, n_orders: int, costs_cfg) -> Costs:
    c = costs_cfg
    pct = lambda key: _d(f"costs.{key}", getattr(c, key)) / 100  # noqa: E731
    brokerage = _paisa(_d("costs.brokerage_per_order", c.brokerage_per_order) * n_orders)
    stt = _paisa(sell_turnover * pct("stt_sell_pct"))
    exchange = _paisa((buy_turnover + sell_turnover) * pct("exchange_txn_pct"))
    sebi = _paisa((buy_turnover + sell_turnover) * _d("costs.sebi_per_crore", c.sebi_per_crore)
                  / CRORE)
    stamp = _paisa(buy_turnover * pct("stamp_duty_buy_pct"))
    gst = _paisa((brokerage + exchange + sebi) * pct("gst_pct"))
    parts = (brokerage, stt, exchange, sebi, stamp, gst)
    return Costs(*(float(p) for p in parts), float(sum(parts)))


def _qty(quantity) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValueError(f"quantity: must be a whole number >= 0, got {quantity!r}")
    return quantity


def order_costs(side: str, premium: float, quantity: int, costs_cfg) -> Costs:
    """Costs of one executed order (brokerage charged once)."""
    if side not in SIDES:
        raise ValueError(f"side: must be BUY or SELL, got {side!r}")
    turnover = _d("premium", premium) * _qty(quantity)
    zero = Decimal(0)
    buy, sell = (turnover, zero) if side == "BUY" else (zero, turnover)
    return _costs(buy, sell, 1, costs_cfg)


def trade_costs(entry_price: float, exit_price: float, quantity: int, cfg,
                n_orders: int = 2) -> Costs:
    """Round-trip costs of a long option: bought at entry, sold at exit, in `n_orders` executed
    orders (more than 2 when partial fills split a leg). `cfg` is a Config or its costs section."""
    if isinstance(n_orders, bool) or not isinstance(n_orders, int) or n_orders < 0:
        raise ValueError(f"n_orders: must be a whole number >= 0, got {n_orders!r}")
    costs_cfg = getattr(cfg, "costs", cfg)
    q = _qty(quantity)
    return _costs(_d("entry_price", entry_price) * q, _d("exit_price", exit_price) * q,
                  n_orders, costs_cfg)


def pnl(entry: float, exit: float, qty: int, costs: Costs | float) -> tuple[float, float]:
    """(gross, net) rupees of a long position, to the paisa."""
    total = costs.total if isinstance(costs, Costs) else costs
    gross = _paisa((_d("exit", exit) - _d("entry", entry)) * _qty(qty))
    net = gross - _paisa(_d("costs", total))
    return float(gross), float(net)
