"""The trading desk: market feed, risk state, order manager and open positions behind the engine's hooks.

Start-up is the same for a clean start and a crash restart (LESSONS 3): rebuild from the journal,
load the day's instruments (cached in the journal), resolve every order the journal left open by
asking the broker, then reconcile positions; any mismatch halts the day with a printed report.
"""
from __future__ import annotations

import logging
from datetime import datetime

from . import entries, exits
from . import machine as m
from .broker.base import BrokerError
from .market.feed import MarketFeed
from .market.instruments import INSTRUMENT_COLUMNS, InstrumentMaster, parse_master
from .orders import OrderManager
from .positions import Position
from .recovery import compare_positions, render_recon
from .risk import RiskState

log = logging.getLogger(__name__)


class Desk:
    def __init__(self, svc, day, market, broker):
        self.svc, self.cfg, self.day = svc, svc.cfg, day
        self.journal, self.clock = svc.journal, svc.clock
        self.market, self.broker = market, broker
        self.om = OrderManager(self.journal, broker, self.clock, self.cfg.orders, day)
        self.risk = RiskState.new(day, self.cfg.risk)
        self.positions: dict[str, Position] = {}
        self.last_price: dict[str, tuple[float, datetime]] = {}
        self.bias: dict[str, dict] = {}
        self.feed: MarketFeed | None = None
        self.capital = float(self.cfg.bot.capital)
        self.pre_open_done = False
        self.warmed_up = False
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
            "open_positions": {"value": len(self.positions), "limit": c.max_positions},
            "breakers": {"vix": r.vix.tripped, "daily_loss": r.daily_loss.tripped,
                         "consecutive_losses": r.consecutive.tripped, "kill_switch": r.kill.tripped,
                         "broker_mismatch": r.mismatch.tripped}})

    def journal_breaker(self, ev) -> None:
        if ev is not None:
            self.rec(f"breaker_{ev.action}", {"breaker": ev.breaker, "reason": ev.reason,
                                              "inputs": ev.inputs})

    # --- start-up --------------------------------------------------------------------------
    def restore(self, rec) -> None:
        """Rebuild in-memory state from the journal (called by the engine at every start)."""
        if rec.risk.get("state"):
            self.risk = RiskState.from_dict(rec.risk["state"], self.cfg.risk)
        for row in rec.open_positions:
            self.positions[row["position_id"]] = exits.position_from_row(row)
        if rec.daily_bias:
            self.bias = {u: p for u, p in rec.daily_bias.items() if u}
        cap = self.journal.events(self.day, kinds=("capital",))
        if cap:
            self.capital = float(cap[-1].payload["capital"])
        if rec.state not in (m.PRE_OPEN, m.CLOSED):
            self.prepare()

    def pre_open(self) -> None:
        self.prepare()

    def prepare(self) -> None:
        """Log in, load instruments, fix capital, resolve open orders, reconcile. Idempotent."""
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
        exits.resolve_pending_orders(self)
        self.reconcile()
        if not self.journal.query("SELECT 1 FROM risk_state WHERE trading_day = ?", (self.day.isoformat(),)):
            self.save_risk()  # so status shows every counter and breaker from the start of the day
        self.pre_open_done = True
        self.align_machine()

    def align_machine(self) -> None:
        """After a restart the facts decide the state: open positions mean managing; a mismatch halts."""
        if self.machine is None:
            return
        if self.positions and self.machine.state == m.ENTRY_WINDOW:
            self.fire("position_opened", "open position recovered from the journal")
        elif not self.positions and self.machine.state == m.MANAGING:
            self.fire("flat", "no open position after recovery")
        if self.halt_reason and self.machine.can("halt"):
            self.halt(self.halt_reason)

    def load_instruments(self) -> InstrumentMaster:
        d = self.day.isoformat()
        cols = ", ".join(INSTRUMENT_COLUMNS)
        rows = self.journal.query(f"SELECT {cols} FROM instruments WHERE trading_day = ?", (d,))
        if rows:
            return InstrumentMaster.from_records([tuple(r) for r in rows])
        names = [u.name for u in self.cfg.underlyings]
        master = parse_master(self.market.instrument_master(), names)
        for name in names:
            master.require_options(name)
        with self.journal.transaction():
            self.journal.conn.executemany(
                f"INSERT OR REPLACE INTO instruments(trading_day, {cols}) VALUES "
                f"(?, {', '.join('?' * len(INSTRUMENT_COLUMNS))})",
                [(d, *r) for r in master.to_records()])
            self.rec("instruments_loaded", {"rows_total": master.rows_total, "kept": len(master),
                                            "skipped": master.skipped})
        return master

    def reconcile(self) -> None:
        try:
            broker_positions = self.broker.positions()
        except BrokerError as exc:
            self.broker_healthy = False
            self.rec("broker_error", {"call": "positions", "error": str(exc)})
            return
        journal_open = [dict(r) for r in self.journal.query(
            "SELECT token, symbol, open_qty FROM positions WHERE trading_day = ? AND status = 'open'",
            (self.day.isoformat(),))]
        rows = compare_positions(journal_open, broker_positions)
        ok = all(r.ok for r in rows)
        self.rec("reconciled", {"ok": ok, "rows": [r.__dict__ for r in rows]})
        if not ok:
            report = render_recon(rows)
            log.error("reconciliation mismatch: trading halted, positions kept and protected\n%s", report)
            self.journal_breaker(self.risk.mismatch.trip("broker positions do not match the journal",
                                                         {"rows": [r.__dict__ for r in rows]}))
            self.halt_reason = "broker mismatch at reconciliation"
            self.save_risk()

    def warmup(self) -> None:
        for u in self.feed.underlyings:
            if u not in self.bias:
                self.bias[u] = entries.daily_bias(self, u)
            self.feed.load_hourly(u)
        self.warmed_up = True

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

    def guarded(self, what: str, fn, *args):
        """Run one market-data step; a broker failure is journaled and skipped, never fatal."""
        try:
            return fn(*args)
        except BrokerError as exc:
            self.rec("broker_error", {"call": what, "error": str(exc)})
            return False

    def on_monitor(self, tday) -> None:
        self.bind(tday)
        if not self.pre_open_done or tday.machine.state in (m.PRE_OPEN, m.WARMUP, m.CLOSED):
            return
        exits.check_breakers(self)
        exits.check_positions(self, hourly=False)

    def end_of_day(self) -> None:
        self.flatten_all("eod")

    def flatten_all(self, reason: str) -> None:
        if reason == "kill_switch" and not self.risk.kill.tripped:
            self.journal_breaker(self.risk.kill.trip("kill switch file present"))
            self.save_risk()
        for pid in list(self.positions):
            exits.close_position(self, pid, reason, [])

    def open_position_count(self) -> int:
        return len(self.positions)

    def day_pnl_net(self) -> float:
        return exits.day_pnl_net(self)

    def day_summary(self) -> dict:
        rows = self.journal.query(
            "SELECT COUNT(*), COALESCE(SUM(net_pnl > 0), 0), COALESCE(SUM(gross_pnl), 0), "
            "COALESCE(SUM(costs), 0), COALESCE(SUM(net_pnl), 0) FROM positions "
            "WHERE trading_day = ? AND status = 'closed'", (self.day.isoformat(),))[0]
        return {"trades": rows[0], "wins": rows[1], "losses": rows[0] - rows[1],
                "gross_pnl": round(rows[2], 2), "costs": round(rows[3], 2), "net_pnl": round(rows[4], 2),
                "open_positions": len(self.positions), "capital": self.capital,
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
    else:
        from .broker.angelone import build_angel
        market, live_broker = build_angel(svc, secrets)
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
        broker = PaperBroker(svc.extra["paper_db"], svc.clock, market, contract, svc.cfg.bot.capital,
                             latency_ms=p.latency_ms, partial_fill_prob=p.partial_fill_prob,
                             seed=svc.extra["seed"])
    desk = Desk(svc, day, market, broker)
    desk_box.append(desk)
    svc.market, svc.broker, svc.desk = market, broker, desk
