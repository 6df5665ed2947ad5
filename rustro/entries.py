"""Entries: daily bias at warmup; on each hourly close, signal -> filters -> size -> order -> position.

Every step is journaled with the values it saw. A decision is made once per (underlying, signal bar):
its entry order tag is derived from them, so a re-run of the same hourly close after a crash finds
the tag already journaled and does nothing twice.
"""
from __future__ import annotations

import logging
from datetime import datetime

from . import strategy
from .broker.base import BUY, BrokerError, OrderRequest
from .market.base import round_to_tick
from .orders import order_tag
from .positions import new_position
from .risk import size_position

log = logging.getLogger(__name__)


def daily_bias(desk, u: str) -> dict:
    bars = desk.feed.daily_bars(u)
    decision = strategy.daily_bias([b.high for b in bars], [b.low for b in bars],
                                   [b.close for b in bars], desk.cfg)
    payload = {"underlying": u, **decision.__dict__,
               "last_daily_bar": bars[-1].start.date() if bars else None}
    desk.rec("daily_bias", payload)
    return payload


def refresh_bars(desk, u: str) -> None:
    """Journal newly closed hourly bars; a missing bar is a data gap, backfilled or kept open."""
    f = desk.feed.underlyings[u]
    for b in desk.feed.refresh_hourly(u):
        desk.rec("bar_closed", {"underlying": u, "token": f.spot.token, "interval": "ONE_HOUR",
                                "start": b.start, "open": b.open, "high": b.high, "low": b.low,
                                "close": b.close, "volume": b.volume})
    missing = desk.feed.missing_hourly(u, desk.clock.now())
    if missing:
        desk.rec("data_gap", {"underlying": u, "missing": missing, "action": "backfill"})
        desk.gap_open.add(u)
        desk.feed.load_hourly(u)
        missing = desk.feed.missing_hourly(u, desk.clock.now())
    if missing:
        desk.rec("data_gap", {"underlying": u, "missing": missing, "action": "entries blocked"})
    elif u in desk.gap_open:
        desk.gap_open.discard(u)
        desk.rec("data_healed", {"underlying": u})


def consider(desk, u: str) -> None:
    view = desk.feed.hourly_view(u)
    bias = desk.bias.get(u, {}).get("bias", strategy.NO_TRADE)
    if view is None:
        desk.rec("entry_decision", {"underlying": u, "allowed": False, "reason": "no hourly bars"})
        return
    tag = order_tag(desk.day, u, BUY, view.bar_start.isoformat(), "entry", 0, desk.cfg.orders.order_tag_len)
    if desk.om.known(tag) is not None or desk.journal.query(
            "SELECT 1 FROM events WHERE trading_day = ? AND kind = 'entry_decision' AND "
            "json_extract(payload, '$.tag') = ?", (desk.day.isoformat(), tag)):
        return  # this signal bar was already decided (a re-run after a restart)
    align = strategy.hourly_alignment_from_values(bias, view.adx, view.plus_di, view.minus_di, desk.cfg)
    desk.rec("hourly_signal", {"underlying": u, "bar_start": view.bar_start, "close": view.close,
                               "bias": bias, "aligned": align.aligned, "adx": view.adx,
                               "plus_di": view.plus_di, "minus_di": view.minus_di, "rsi": view.rsi,
                               "ema": view.ema, "reason": align.reason})
    if bias not in (strategy.CE, strategy.PE) or not align.aligned:
        desk.rec("entry_decision", {"underlying": u, "tag": tag, "allowed": False,
                                    "reason": f"no signal: bias {bias}, {align.reason}"})
        return
    _evaluate_and_enter(desk, u, bias, view, align, tag)


def _evaluate_and_enter(desk, u, bias, view, align, tag) -> None:
    cfg, feed, now = desk.cfg, desk.feed, desk.clock.now()
    spot = feed.spot_price(u)
    inst, dte = feed.option_for(u, bias, spot)
    q = feed.quote(inst)
    premium = q.ask if q.ask > 0 else q.ltp
    vix = feed.vix()
    size = size_position(desk.capital, premium, inst.lot_size, vix, dte,
                         feed.underlyings[u].freeze_qty, cfg)
    desk.rec("size_decision", {"underlying": u, "tag": tag, "symbol": inst.symbol, "dte": dte,
                               "vix": vix, **size.__dict__})
    fut, vwap = feed.future_vwap(u) if cfg.filters.use_vwap_filter else (None, None)
    try:
        cash = desk.broker.funds().available_cash
        desk.broker_healthy = True
    except BrokerError as exc:
        desk.broker_healthy, cash = False, 0.0
        desk.rec("broker_error", {"call": "funds", "error": str(exc)})
    ctx = strategy.EntryContext(
        now=now, bias=bias, aligned=align.aligned, rsi=view.rsi, close=view.close, ema=view.ema,
        future_price=fut, vwap=vwap, vix=vix, vix_breaker_tripped=desk.risk.vix.tripped,
        open_positions=len(desk.positions),
        has_position_in_underlying=any(p.underlying == u for p in desk.positions.values()),
        trades_today=desk.risk.trades_today, day_pnl_net=desk.day_pnl_net(), capital=desk.capital,
        consecutive_losses=desk.risk.consecutive_losses, last_stopout_at=desk.risk.last_stopout_at(u),
        bid=q.bid, ask=q.ask, available_cash=cash, premium=premium, quantity=size.quantity,
        data_gap_open=bool({u, "feed"} & desk.gap_open), broker_healthy=desk.broker_healthy,
        halted=desk.risk.halted or desk.machine.state == "halted")
    results = strategy.entry_filters(ctx, cfg)
    for r in results:
        desk.rec("filter_result", {"underlying": u, "tag": tag, **r.__dict__})
    failed = [r.name for r in results if not r.passed]
    if size.lots <= 0:
        failed.append("size")
    desk.rec("entry_decision", {"underlying": u, "tag": tag, "allowed": not failed, "failed": failed,
                                "option": inst.symbol, "lots": size.lots, "quantity": size.quantity,
                                "premium": premium, "reason": "all filters passed" if not failed
                                else f"blocked by {', '.join(failed)}" +
                                (f" ({size.reason})" if size.lots <= 0 else "")})
    if not failed:
        enter(desk, u, bias, inst, q, size.quantity, tag, view.bar_start)


def enter(desk, u, option_type, inst, quote, qty, tag, bar_start) -> None:
    price = round_to_tick(quote.ask if quote.ask > 0 else quote.ltp, inst.tick_size, "up")
    req = OrderRequest(tag=tag, exchange=inst.exchange, symbol=inst.symbol, token=inst.token, side=BUY,
                       qty=qty, price=price)
    order = desk.om.submit(req, "entry", tag, u)
    result = desk.om.work_entry(req, order, inst.tick_size) if order is not None else desk.om.result(tag, None)
    if result.filled_qty <= 0:
        desk.rec("entry_abandoned", {"underlying": u, "tag": tag, "status": result.status,
                                     "text": result.text or "not filled within the entry ladder"})
        return
    first_fill = datetime.fromisoformat(result.fills[0]["ts"]) if result.fills else desk.clock.now()
    open_position(desk, u, option_type, inst, tag, result.filled_qty, result.avg_price, first_fill)


def open_position(desk, u, option_type, inst, position_id, qty, avg_price, entry_time) -> None:
    pos = new_position(position_id, u, option_type, inst.exchange, inst.symbol, inst.token, qty,
                       round(avg_price, 4), entry_time, inst.lot_size, inst.tick_size, desk.cfg)
    desk.rec("position_opened", {**pos.__dict__, "entry_time": pos.entry_time})
    desk.positions[position_id] = pos
    desk.last_price[position_id] = (avg_price, desk.clock.now())
    desk.risk.record_entry()
    desk.save_risk()
    desk.fire("position_opened", f"{inst.symbol} x{qty} @ {avg_price}")

