"""Entries: daily bias at warmup; on each hourly close, signal -> filters -> size -> order; a
position opens from the entry order's fills once that order is final.

A decision is made once per (underlying, signal bar): its entry order tag is derived from them,
and an allowed decision commits together with its order intent, so a crash can never leave a
decision without its order or an order without its decision. An entry the broker never received
(both books prove it) is sent again under the same tag while its signal still holds.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from . import machine as m
from . import strategy
from .broker.base import BUY, BrokerError, OrderRequest
from .market.base import round_to_tick
from .orders import ladder_prices, order_tag
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
    if tag in desk.decided or desk.ex.known(tag) is not None:
        return  # this signal bar was already decided (a re-run after a restart)
    need = desk.cfg.data.indicator_history_bars
    if view.bars < need:
        desk.decide({"underlying": u, "tag": tag, "allowed": False, "bars": view.bars,
                     "reason": f"indicator history: {view.bars} closed hourly bars < {need}"})
        return
    align = strategy.hourly_alignment_from_values(bias, view.adx, view.plus_di, view.minus_di, desk.cfg)
    desk.rec("hourly_signal", {"underlying": u, "bar_start": view.bar_start, "close": view.close,
                               "bias": bias, "aligned": align.aligned, "adx": view.adx,
                               "plus_di": view.plus_di, "minus_di": view.minus_di, "rsi": view.rsi,
                               "ema": view.ema, "reason": align.reason})
    if bias not in (strategy.CE, strategy.PE) or not align.aligned:
        desk.decide({"underlying": u, "tag": tag, "allowed": False,
                     "reason": f"no signal: bias {bias}, {align.reason}"})
        return
    _evaluate_and_enter(desk, u, bias, view, align, tag)


def _context(desk, u, bias, view, align, q, premium, size, vix, now) -> strategy.EntryContext:
    fut, vwap = desk.feed.future_vwap(u) if desk.cfg.filters.use_vwap_filter else (None, None)
    cash = desk.available_cash()
    entries_in_flight = len(desk.ex.live(purpose="entry"))
    return strategy.EntryContext(
        now=now, bias=bias, aligned=align.aligned, rsi=view.rsi, close=view.close, ema=view.ema,
        future_price=fut, vwap=vwap, vix=vix, vix_breaker_tripped=desk.risk.vix.tripped,
        open_positions=len(desk.book) + entries_in_flight,
        has_position_in_underlying=desk.book.has_underlying(u) or any(
            o.underlying == u for o in desk.ex.live(purpose="entry")),
        trades_today=desk.risk.trades_today + entries_in_flight, day_pnl_net=desk.day_pnl_net(),
        capital=desk.capital, consecutive_losses=desk.risk.consecutive_losses,
        last_stopout_at=desk.risk.last_stopout_at(u), bid=q.bid, ask=q.ask, available_cash=cash,
        premium=premium, quantity=size.quantity,
        data_gap_open=bool({u, "feed"} & desk.gap_open),
        broker_healthy=desk.broker_healthy and desk.reconciled,
        halted=desk.risk.halted or desk.machine.state == m.HALTED)


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
    results = strategy.entry_filters(_context(desk, u, bias, view, align, q, premium, size, vix, now), cfg)
    for r in results:
        desk.rec("filter_result", {"underlying": u, "tag": tag, **r.__dict__})
    failed = [r.name for r in results if not r.passed]
    if size.lots <= 0:
        failed.append("size")
    decision = {"underlying": u, "tag": tag, "allowed": not failed, "failed": failed,
                "option": inst.symbol, "lots": size.lots, "quantity": size.quantity,
                "premium": premium, "reason": "all filters passed" if not failed
                else f"blocked by {', '.join(failed)}" + (f" ({size.reason})" if size.lots <= 0 else "")}
    if failed:
        desk.decide(decision)
        return
    price = round_to_tick(q.ask if q.ask > 0 else q.ltp, inst.tick_size, "up")
    req = OrderRequest(tag=tag, exchange=inst.exchange, symbol=inst.symbol, token=inst.token, side=BUY,
                       qty=size.quantity, price=price)
    desk.decided.add(tag)
    desk.signal_bar[tag] = view.bar_start
    desk.ex.submit(req, "entry", tag, u, inst.tick_size,
                   decision=("entry_decision", {**decision, "signal_bar": view.bar_start}))
    if desk.ex.known(tag).state == "rejected":
        desk.entry_done.add(tag)
        desk.rec("entry_abandoned", {"underlying": u, "tag": tag, "status": "rejected",
                                     "text": "refused by the broker"})


# --- the entry order's outcome --------------------------------------------------------------
def on_entry_final(desk, order) -> None:
    """A final entry order: its fills become a protected position, or it is resent or abandoned."""
    desk.entry_done.add(order.tag)
    if order.filled_qty > 0:
        inst = desk.feed.master.by_token(order.req.token)
        when = datetime.fromisoformat(order.first_fill_ts) if order.first_fill_ts else desk.clock.now()
        open_position(desk, order.underlying, inst.option_type, inst, order.tag, order.filled_qty,
                      order.avg_price, when)
        return
    if order.state == "never_placed":
        why = signal_still_valid(desk, order)
        if why is None:
            desk.entry_done.discard(order.tag)
            desk.ex.resend(order, "the broker never received it; its signal still holds")
            return
        desk.rec("entry_abandoned", {"underlying": order.underlying, "tag": order.tag,
                                     "status": order.state, "text": f"never placed; not resent: {why}"})
        return
    desk.rec("entry_abandoned", {"underlying": order.underlying, "tag": order.tag, "status": order.state,
                                 "text": "not filled within the entry ladder"})


def signal_still_valid(desk, order) -> str | None:
    """None when an entry may still be sent for its signal, else why not."""
    now = desk.clock.now()
    bar = desk.signal_bar.get(order.tag)
    if bar is None or now >= bar + timedelta(hours=2) + timedelta(seconds=desk.cfg.session.bar_ready_grace_sec):
        return "its hourly bar is no longer the latest"
    if desk.machine.state not in (m.ENTRY_WINDOW, m.MANAGING) or desk.risk.entry_blockers():
        return f"entries are closed (state {desk.machine.state}, breakers {desk.risk.entry_blockers()})"
    if now.time() >= desk.cfg.session.entry_end:
        return "the entry window has ended"
    try:
        q = desk.market.quote(order.req.exchange, order.req.token)
    except (BrokerError, LookupError, ValueError) as exc:  # no price, no proof the signal holds
        return f"no quote ({type(exc).__name__})"
    top = ladder_prices(order.first_price, desk.cfg.orders.ladder_pct, BUY, order.tick)[-1]
    ask = q.ask if q.ask > 0 else q.ltp
    if ask > top:
        return f"ask {ask} above the ladder's last price {top}"
    return None


def open_position(desk, u, option_type, inst, position_id, qty, avg_price, entry_time) -> None:
    """Position, trade count and the day machine's move: one commit."""
    pos = new_position(position_id, u, option_type, inst.exchange, inst.symbol, inst.token, qty,
                       round(avg_price, 4), entry_time, inst.lot_size, inst.tick_size, desk.cfg)
    with desk.decision():
        desk.rec("position_opened", {**pos.__dict__, "entry_time": pos.entry_time})
        desk.book.open(pos, desk.clock.now())
        desk.risk.record_entry()
        desk.save_risk()
        desk.fire("position_opened", f"{inst.symbol} x{qty} @ {avg_price}")


def adopt_position(desk, broker_pos, why: str) -> str | None:
    """Journal a broker long we did not open as a protected position; None (and the reason
    journaled) when it cannot be: not an option of the day's master, or not whole lots."""
    try:
        inst = desk.feed.master.by_token(broker_pos.token)
        price = broker_pos.buy_avg if broker_pos.buy_avg > 0 else broker_pos.ltp
        pos = new_position(f"adopted-{broker_pos.token}-{desk.clock.now():%H%M%S}", inst.name, inst.option_type, inst.exchange,
                           inst.symbol, inst.token, int(broker_pos.net_qty), round(price, 4),
                           desk.clock.now(), inst.lot_size, inst.tick_size, desk.cfg)
    except (LookupError, ValueError) as exc:
        desk.rec("adopt_refused", {"token": broker_pos.token, "symbol": broker_pos.symbol,
                                   "net_qty": broker_pos.net_qty, "reason": str(exc)})
        return None
    with desk.decision():
        desk.rec("position_opened", {**pos.__dict__, "entry_time": pos.entry_time, "adopted": why})
        desk.book.open(pos, desk.clock.now())
        desk.entry_done.add(pos.position_id)
        desk.save_risk()
        desk.fire("position_opened", f"adopted {inst.symbol} x{pos.quantity} @ {price}")
    return pos.position_id
