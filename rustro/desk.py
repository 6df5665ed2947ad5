"""The trading desk: the components behind the engine's hooks, and the flows between them.

Components, each owning its state: `PositionBook` (fed only by fills), `Execution` (every order's
machine, ladders and tag look-ups), `RiskState` (breakers and counters), `MarketFeed`, and the pure
strategy. The desk wires them: it rebuilds them from the journal at start (the only time the
journal is read), routes execution outcomes to the entry and exit flows, and asks the engine's
machine to move. Start-up is the same for a clean start and a crash restart (LESSONS 3).
"""
from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from datetime import datetime

from . import entries, exits, guards
from . import machine as m
from . import order_machine as om
from .book import PositionBook
from .broker.base import BUY, BrokerError
from .execution import Execution
from .market.feed import MarketFeed
from .market.instruments import InstrumentMaster, MasterError, check_master
from .orders import order_tag
from .recovery import restore_desk
from .risk import RiskState

log = logging.getLogger(__name__)
PIPELINE_ERRORS = (BrokerError, LookupError, ValueError, ArithmeticError)


class Desk:
    def __init__(self, svc, day, market, broker):
        self.svc, self.cfg, self.day = svc, svc.cfg, day
        self.journal, self.clock = svc.journal, svc.clock
        self.market, self.broker = market, broker
        self.book = PositionBook()
        self.ex = Execution(self.journal, broker, self.clock, self.cfg.orders, day, self.book.held,
                            bid_for=lambda o: exits.bid_for_order(self, o))
        self.risk = RiskState.new(day, self.cfg.risk)
        self.bias: dict[str, dict] = {}
        self.decided: set[str] = set()              # entry tags already decided today
        self.signal_bar: dict[str, datetime] = {}   # entry tag -> its hourly bar's start
        self.feed: MarketFeed | None = None
        self.capital = float(self.cfg.bot.capital)
        self.pre_open_done = self.warmed_up = self.reconciled = False
        self.next_reconcile: datetime | None = None
        self.reconcile_failures = 0
        self.last_recon: list = []
        self.recon_basis: tuple | None = None   # what the last reconciliation compared (idle.py)
        self.entry_done: set[str] = set()           # entry tags whose outcome was acted on
        self.shorts: set[str] = set()               # tokens found short at the broker
        self.duplicates: set[str] = set()           # broker order ids found under a tag twice
        self.unmanaged: dict[str, dict] = {}        # broker longs left alone (policy "halt")
        self.to_flatten: set[str] = set()           # adopted to be exited once the market is open
        self.halt_reason: str | None = None
        self.gap_open: set[str] = set()    # underlyings with a bar gap; "feed" when prices stop
        self.last_fresh: datetime | None = None
        self.feed_failing_since: datetime | None = None
        self.quote_failing: dict[str, datetime] = {}  # option token -> first failed quote
        self.broker_healthy = True
        self.machine = None

    # --- journal helpers -------------------------------------------------------------------
    def rec(self, kind: str, payload: dict) -> None:
        self.journal.record(kind, payload, day=self.day)

    def save_risk(self) -> None:
        r, c = self.risk, self.cfg.risk
        self.rec("risk_state", {
            "state": r.to_dict(),
            "daily_loss_used": {"value": round(self.day_pnl_net(), 2),
                                "limit": -round(self.capital * c.daily_loss_limit_pct / 100, 2)},
            "consecutive_losses": {"value": r.consecutive_losses, "limit": c.consecutive_loss_limit},
            "trades_today": {"value": r.trades_today, "limit": c.max_trades_per_day},
            "open_positions": {"value": len(self.book), "limit": c.max_positions},
            "breakers": {"vix": r.vix.tripped, "daily_loss": r.daily_loss.tripped,
                         "consecutive_losses": r.consecutive.tripped, "kill_switch": r.kill.tripped,
                         "broker_mismatch": r.mismatch.tripped}})

    def journal_breaker(self, ev) -> None:
        if ev is not None:
            self.rec(f"breaker_{ev.action}", {"breaker": ev.breaker, "reason": ev.reason,
                                              "inputs": ev.inputs})

    @contextmanager
    def decision(self):
        """One journal commit for everything a decision implies; if it cannot commit (a full disk),
        the book, the risk counters and the day machine are put back as they were."""
        book, risk = copy.deepcopy(self.book.__dict__), self.risk.to_dict()
        state = self.machine.state if self.machine is not None else None
        try:
            with self.journal.transaction():
                yield
        except BaseException:
            self.book.__dict__.update(book)
            self.risk = RiskState.from_dict(risk, self.cfg.risk)
            if state is not None and self.machine.state != state:
                self.machine.restore(state)
            raise

    def decide(self, payload: dict) -> None:
        if payload.get("tag"):
            self.decided.add(payload["tag"])
        self.rec("entry_decision", payload)

    # --- start-up --------------------------------------------------------------------------
    def restore(self, rec) -> None:
        """Rebuild every component from the journal (called by the engine at every start)."""
        restore_desk(self, rec)
        if rec.state not in (m.PRE_OPEN, m.CLOSED):
            self.prepare()

    def pre_open(self) -> None:
        self.prepare()

    def prepare(self) -> None:
        """Log in, load instruments, fix capital, reconcile. Idempotent; orders the journal left
        working are resumed by their machines on the next tick, never cancelled for the restart."""
        if self.pre_open_done:
            return
        self.broker.login()
        master = self.load_instruments()
        self.feed = MarketFeed(self.market, self.clock, self.cfg, master, self.day)
        if not self.journal.events(self.day, kinds=("capital",)):
            if self.svc.mode != "sim":
                self.capital = float(self.broker.funds().available_cash)
            self.rec("capital", {"capital": self.capital, "source": "config" if self.svc.mode == "sim"
                                 else "broker funds at pre-open"})
        self.pre_open_done = True
        self.settle_orders()
        self.resume_outcomes()
        guards.reconcile(self)
        if not self.journal.query("SELECT 1 FROM risk_state WHERE trading_day = ?", (self.day.isoformat(),)):
            self.save_risk()  # so status shows every counter and breaker from the start of the day
        self.align_machine()

    def align_machine(self) -> None:
        """After a restart the facts decide the state: open positions mean managing; a mismatch halts."""
        if self.machine is None:
            return
        if len(self.book) and self.machine.state == m.ENTRY_WINDOW:
            self.fire("position_opened", "open position recovered from the journal")
        elif not len(self.book) and self.machine.state == m.MANAGING and not self.ex.live(purpose="entry"):
            self.fire("flat", "no open position after recovery")
        if self.halt_reason and self.machine.can("halt"):
            self.halt(self.halt_reason)

    def load_instruments(self) -> InstrumentMaster:
        """The day's master: the journal's copy while it serves every configured underlying, else
        a fresh one, cached only once it has options for all of them (`check_master`)."""
        d = self.day.isoformat()
        names = [u.name for u in self.cfg.underlyings]
        rows = self.journal.query("SELECT records FROM instrument_masters WHERE trading_day = ?", (d,))
        if rows:
            try:
                cached = InstrumentMaster.from_records_json(rows[0][0])
                cached.require_all(names)
                return cached
            except MasterError as exc:  # another config's copy, or one cached before this check
                self.rec("instruments_stale", {"reason": str(exc)})
        master = check_master(self.market.instrument_master(), names)  # raises: nothing cached
        with self.journal.transaction():
            self.journal.conn.execute("INSERT OR REPLACE INTO instrument_masters VALUES (?, ?, ?)",
                                      (d, len(master), master.records_json()))
            self.rec("instruments_loaded", {"rows_total": master.rows_total, "kept": len(master),
                                            "skipped": master.skipped})
        return master

    def warmup(self) -> None:
        try:
            for u in self.feed.underlyings:
                if u not in self.bias:
                    self.bias[u] = entries.daily_bias(self, u)
                self.feed.load_hourly(u)
            self.warmed_up = True
        finally:
            self.journal_data_errors()

    def journal_data_errors(self) -> None:
        """Market-data rows the feed refused (a bad candle is skipped, so it is a missing bar)."""
        if self.feed is not None:
            for row in self.feed.drain_rejected():
                self.rec("data_error", row)

    # --- engine hooks ----------------------------------------------------------------------
    def bind(self, tday) -> None:
        self.machine = tday.machine

    def on_hourly_close(self, tday) -> None:
        self.bind(tday)
        if not self.pre_open_done or not self.warmed_up or tday.machine.state in (m.PRE_OPEN, m.CLOSED):
            return
        for u in self.feed.underlyings:
            self.guarded(f"bars {u}", entries.refresh_bars, self, u)
        exits.check_positions(self, hourly=True)
        if tday.machine.state in (m.ENTRY_WINDOW, m.MANAGING):
            for u in self.feed.underlyings:
                if self.guarded(f"entry {u}", entries.consider, self, u) is False:
                    self.rec("entry_decision", {"underlying": u, "allowed": False,
                                                "reason": "market data unavailable"})

    def missed_hourly_close(self, tday) -> None:
        """At a restart: the latest closed hourly bar not yet decided is decided now, while it is
        still the latest (positions are not re-checked: their hourly rule ran on time or not at all)."""
        self.bind(tday)
        if not (self.warmed_up and tday.machine.state in (m.ENTRY_WINDOW, m.MANAGING)):
            return
        for u in self.feed.underlyings:
            view = self.feed.hourly_view(u)
            if view is None or view.bar_start.date() != self.day:
                continue  # yesterday's last bar is never today's signal
            tag = order_tag(self.day, u, BUY, view.bar_start.isoformat(), "entry", 0,
                            self.cfg.orders.order_tag_len)
            if tag not in self.decided and self.ex.known(tag) is None:
                self.guarded(f"entry {u}", entries.consider, self, u)

    def guarded(self, what: str, fn, *args):
        """One underlying's step; its failure is journaled and the others go on."""
        try:
            return fn(*args)
        except PIPELINE_ERRORS as exc:
            self.rec("broker_error" if isinstance(exc, BrokerError) else "pipeline_error",
                     {"call": what, "error": f"{type(exc).__name__}: {exc}"})
            return False
        finally:
            self.journal_data_errors()

    def on_monitor(self, tday) -> None:
        self.bind(tday)
        if not self.pre_open_done or tday.machine.state == m.CLOSED:
            return
        self.settle_orders()
        if guards.reconcile_due(self):
            guards.reconcile(self)
        if tday.machine.state in (m.PRE_OPEN, m.WARMUP):
            return
        guards.check_breakers(self)
        for pid in [p for p in self.to_flatten if p in self.book]:
            exits.close_position(self, pid, "unknown_position", [])
        self.to_flatten.clear()
        exits.check_positions(self, hourly=False)

    def settle_orders(self) -> None:
        """One execution step, and what its outcomes mean for positions."""
        for out in self.ex.step():
            o = out.order
            if o.purpose == "exit" and out.new_fill_qty > 0:
                exits.on_exit_fills(self, o, out.new_fill_qty, out.new_fill_value)
            elif o.purpose == "entry" and out.became_terminal and o.position_id not in self.book:
                entries.on_entry_final(self, o)
            elif o.purpose == "exit" and out.became_terminal:
                exits.on_exit_final(self, o)
        for pid in self.book.ids():
            if self.book.get(pid).open_qty <= 0:
                exits.finish(self, pid)  # sold out, books not closed yet (a failed commit retried)

    def resume_outcomes(self) -> None:
        """Outcomes a crash left unacted on: a final entry without its position or abandonment, an
        exit concluded never placed (a sold-out position is closed by every settle_orders)."""
        for o in list(self.ex.orders.values()):
            if o.purpose == "entry" and o.terminal and o.tag not in self.entry_done:
                entries.on_entry_final(self, o)
            elif o.purpose == "exit" and o.state == om.NEVER_PLACED:
                exits.on_exit_final(self, o)

    def end_of_day(self) -> None:
        for o in self.ex.live(purpose="entry"):
            self.ex.cancel(o, "end of day")
        self.flatten_all("eod")

    def flatten_all(self, reason: str) -> None:
        if reason == "kill_switch" and not self.risk.kill.tripped:
            with self.journal.transaction():
                self.journal_breaker(self.risk.kill.trip("kill switch file present"))
                self.save_risk()
        if reason in ("kill_switch", "shutdown"):
            for o in self.ex.live(purpose="entry"):
                self.ex.cancel(o, reason)
        exits.flatten(self, reason)

    def open_position_count(self) -> int:
        return len(self.book)

    def day_pnl_net(self) -> float:
        return exits.day_pnl_net(self)

    def available_cash(self) -> float:
        try:
            cash = self.broker.funds().available_cash
            self.broker_healthy = True
            return cash
        except BrokerError as exc:
            self.broker_healthy = False
            self.rec("broker_error", {"call": "funds", "error": str(exc)})
            return 0.0

    def short_detected(self, token: str, symbol: str, qty: int, why: str) -> None:
        """A net short must never exist: say so (once per symbol), trip the mismatch breaker and
        halt entries; buying it back is left to the owner (the bot never trades what it did not)."""
        if token in self.shorts:
            return
        self.shorts.add(token)
        self.rec("short_position", {"token": token, "symbol": symbol, "net_qty": qty, "reason": why})
        with self.journal.transaction():
            self.journal_breaker(self.risk.mismatch.trip(f"short position in {symbol}", {"net_qty": qty}))
            self.save_risk()
        self.halt_reason = f"short position in {symbol}"
        self.halt(self.halt_reason)

    def day_summary(self) -> dict:
        rows = self.journal.query(
            "SELECT COUNT(*), COALESCE(SUM(net_pnl > 0), 0), COALESCE(SUM(gross_pnl), 0), "
            "COALESCE(SUM(costs), 0), COALESCE(SUM(net_pnl), 0) FROM positions "
            "WHERE trading_day = ? AND status = 'closed'", (self.day.isoformat(),))[0]
        return {"trades": rows[0], "wins": rows[1], "losses": rows[0] - rows[1],
                "gross_pnl": round(rows[2], 2), "costs": round(rows[3], 2), "net_pnl": round(rows[4], 2),
                "open_positions": len(self.book), "capital": self.capital,
                "working_orders": len(self.ex.live()),
                "unmanaged_broker_positions": self.unmanaged,
                "bias": {u: b.get("bias") for u, b in self.bias.items()}}

    # --- machine moves ---------------------------------------------------------------------
    def fire(self, trigger: str, reason: str) -> None:
        if self.machine is not None and self.machine.can(trigger):
            self.machine.fire(trigger, reason)

    def halt(self, reason: str) -> None:
        if self.machine is not None and self.machine.can("halt"):
            self.rec("halted", {"reason": reason})
            self.fire("halt", reason)


def build_desk(svc, day, secrets) -> None:
    """Wire market data and broker for the mode; the one place the mode is looked at."""
    from .broker.paper import ContractSpec, PaperBroker
    names = [u.name for u in svc.cfg.underlyings]
    if svc.mode == "sim":
        from .market.synthetic import SyntheticMarket
        market = SyntheticMarket(svc.clock, svc.extra["seed"], underlyings=names,
                                 calendar=svc.calendar, overrides=svc.extra.get("scenarios"))
        broker_market = market
    else:
        from .broker.angelone import build_angel
        from .market import recorder  # issue 11: paper and live record what they receive
        market, live_broker = build_angel(svc, secrets)
        if svc.cfg.ws.enabled:  # [ws]: ticks (and, live, order updates) over WebSockets
            from .stream import attach_stream
            market = attach_stream(svc, day, market, live_broker.session, svc.mode == "live")
        market, broker_market = recorder.attach(svc, day, market)  # what the bot receives, either way
    desk_box: list[Desk] = []

    def contract(token: str) -> ContractSpec:
        d = desk_box[0]
        inst = d.feed.master.by_token(token)
        freeze = svc.cfg.underlying(inst.name).freeze_qty if inst.name in names else 0
        return ContractSpec(inst.lot_size, inst.tick_size, freeze)

    if svc.mode == "live":
        broker = live_broker
    else:
        p = svc.cfg.paper
        broker = PaperBroker(svc.extra["paper_db"], svc.clock, broker_market, contract,
                             svc.cfg.bot.capital,
                             latency_ms=p.latency_ms, partial_fill_prob=p.partial_fill_prob,
                             seed=svc.extra["seed"], allow_short=p.allow_short,
                             short_margin_per_unit=p.short_margin_per_unit, book_lag_sec=p.book_lag_sec,
                             stores=svc.extra.get("paper_stores"))  # a backtest's, kept open
    desk = Desk(svc, day, market, broker)
    desk_box.append(desk)
    if svc.extra.get("stream") is not None:
        svc.extra["stream"].bind(desk)
    svc.market, svc.broker, svc.desk = market, broker, desk
