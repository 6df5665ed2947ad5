"""The bot's own safety controls, each driven through a whole simulated day (seed 42) and judged
from the journal and the paper broker's file: the kill switch while halted, reconciliation that
fails at start, the daily-loss breaker without VIX, the indicator-history requirement, one
underlying's failure not stopping the others, periodic reconciliation, and a net short at the broker.
"""
import dataclasses
from collections import defaultdict
from datetime import date, datetime, time, timedelta

from rustro import entries
from rustro.app import run_day
from rustro.broker.base import SELL, OrderRequest, TransientError
from rustro.broker.paper import ContractSpec, PaperBroker
from rustro.clock import IST, VirtualClock
from rustro.config import Config, UnderlyingConfig
from rustro.credentials import Secrets
from rustro.desk import build_desk
from rustro.journal import Journal
from rustro.market.base import round_to_tick
from rustro.market.synthetic import SyntheticMarket

from fakes import on_event

DAY = date(2026, 10, 14)  # seed 42: NIFTY entries at 10:15:05 and 13:15:05 (first exit 10:56)
STRICT = {"raise_job_errors": True}  # a job error fails the test instead of being journaled only


def run(path, builder=build_desk, cfg=None, extra=STRICT):
    res = run_day(cfg or Config(), "sim", path, DAY, 42, Secrets(), build_desk=builder, extra=extra)
    assert res.job_errors == 0
    return res


def with_tick(hook, after_build=None):
    """build_desk whose desk calls `hook(svc, tday)` after every monitor step."""
    def build(svc, day, secrets):
        build_desk(svc, day, secrets)
        if after_build is not None:
            after_build(svc)
        desk = svc.desk
        real = desk.on_monitor

        def on_monitor(tday):
            real(tday)
            hook(svc, tday)
        desk.on_monitor = on_monitor
    return build




def sell_behind_the_bots_back(svc, qty: int, tag: str) -> dict:
    """Someone sells `qty` of the bot's open option directly at the (paper) broker, priced 10 %
    under the bid so that it fills at the bid as soon as the broker's latency has passed."""
    h = next(iter(svc.desk.book.holdings.values()))
    q = svc.market.quote(h.pos.exchange, h.pos.token)
    price = round_to_tick(q.bid * 0.9, h.pos.tick_size, "down")
    ack = svc.broker.place_order(OrderRequest(tag, h.pos.exchange, h.pos.symbol, h.pos.token, SELL,
                                              qty, price))
    return {"at": svc.clock.now(), "token": h.pos.token, "symbol": h.pos.symbol,
            "order_id": ack.order_id}


def manual_fills(b, sale) -> list:
    """The hand-placed order's fills (the paper broker matches lazily, on its next call)."""
    return [(f.qty, f.time) for f in b.trade_book() if f.order_id == sale["order_id"]]


def paper_after_close(journal_path):
    clock = VirtualClock(datetime(DAY.year, DAY.month, DAY.day, 15, 35, tzinfo=IST))
    return PaperBroker(journal_path.with_name(journal_path.stem + ".paper.sqlite"), clock,
                       SyntheticMarket(clock, 42), lambda t: ContractSpec(65, 0.05, 1800), 1_000_000)


def running_net(fills) -> dict[str, int]:
    """Lowest net quantity each token reached over the day, fill after fill."""
    net, low = defaultdict(int), {}
    for f in sorted(fills, key=lambda f: (f.time, f.fill_id)):
        net[f.token] += f.qty if f.side == "BUY" else -f.qty
        low[f.token] = min(low.get(f.token, 0), net[f.token])
    return low


def transitions(jj):
    return [(e.ts, e.payload["dst"], e.payload["trigger"], e.payload["reason"])
            for e in jj.events(kinds=("state_changed",))]


def entry_intents(jj):
    return [e for e in jj.events(kinds=("order_intent",)) if e.payload["purpose"] == "entry"]


# --- 1. kill switch while halted ---------------------------------------------------------------
def test_kill_switch_is_honoured_while_halted_with_an_open_position(tmp_path):
    j = tmp_path / "journal.sqlite"
    marks = {}

    def tick(svc, tday):
        desk, now = svc.desk, svc.clock.now()
        if "halted" not in marks and len(desk.book) and tday.machine.state == "managing":
            desk.halt("test: halted with the position open")
            marks["halted"] = now
        elif "halted" in marks and "kill" not in marks:
            assert tday.machine.state == "halted" and len(desk.book) == 1
            svc.kill_file.write_text("stop")
            marks["kill"] = now

    res = run(j, with_tick(tick))
    assert res.state == "closed"
    assert marks["kill"] - marks["halted"] == timedelta(seconds=5)
    with Journal.open_readonly(j) as jj:
        trips = [e for e in jj.events(kinds=("breaker_tripped",)) if e.payload["breaker"] == "kill_switch"]
        assert len(trips) == 1
        kill_at = trips[0].ts
        assert marks["kill"] < kill_at <= marks["kill"] + timedelta(seconds=5)  # the next tick
        before = [t for t in transitions(jj) if t[0] <= kill_at]
        assert before[-1][1] == "halted" and before[-1][3] == "test: halted with the position open"
        sig = jj.events(kinds=("exit_signal",))
        assert [e.payload["primary"] for e in sig] == ["kill_switch"] and sig[0].ts == kill_at
        pos = jj.query("SELECT status, exit_reason, exit_time FROM positions")
        assert [(r["status"], r["exit_reason"]) for r in pos] == [("closed", "kill_switch")]
        assert datetime.fromisoformat(pos[0]["exit_time"]) < kill_at + timedelta(seconds=30)
        assert [e for e in entry_intents(jj) if e.ts > marks["halted"]] == []
    with paper_after_close(j) as b:
        assert all(p.net_qty == 0 for p in b.positions())


# --- 2. reconciliation at start fails ----------------------------------------------------------
def failing_positions(until: time | None):
    """after_build: broker.positions raises until `until` (None: all day)."""
    def patch(svc):
        broker, clock = svc.broker, svc.clock
        real = broker.positions

        def positions():
            if until is None or clock.now().time() < until:
                raise TransientError("positions: gateway timeout")
            return real()
        broker.positions = positions
    return patch


def reconcile_errors(jj):
    return [e for e in jj.events(kinds=("broker_error",)) if e.payload["call"] == "reconcile"]


def test_reconciliation_never_succeeding_halts_at_entry_start(tmp_path):
    j = tmp_path / "journal.sqlite"
    res = run(j, with_tick(lambda svc, tday: None, failing_positions(None)))
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        errs = reconcile_errors(jj)
        delays = [e.payload["retry_in_sec"] for e in errs]
        assert delays[:6] == [5, 10, 20, 40, 60, 60] and set(delays[5:]) == {60}
        assert errs[0].ts.time() == time(9, 0)
        for a, b in zip(errs[1:], errs[2:]):  # each retry waits the backoff the previous one named
            assert b.ts - a.ts == timedelta(seconds=a.payload["retry_in_sec"])
        assert jj.events(kinds=("reconciled",)) == []
        reason = "reconciliation with the broker has not succeeded: no entries"
        halts = [e for e in jj.events(kinds=("halted",))]
        assert [h.payload["reason"] for h in halts] == [reason] and halts[0].ts.time() == time(10, 0)
        assert [t[1:3] for t in transitions(jj) if t[0].time() == time(10, 0)] == [
            ("entry_window", "open_entries"), ("halted", "halt")]
        assert "resume" not in [t[2] for t in transitions(jj)]
        assert entry_intents(jj) == [] and jj.events(kinds=("entry_decision",)) == []


def test_reconciliation_succeeding_late_resumes_entries(tmp_path):
    j = tmp_path / "journal.sqlite"
    res = run(j, with_tick(lambda svc, tday: None, failing_positions(time(10, 5))))
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        errs = reconcile_errors(jj)
        assert errs and all(e.ts.time() < time(10, 5) for e in errs)
        halt = jj.events(kinds=("halted",))[0]
        assert halt.payload["reason"] == "reconciliation with the broker has not succeeded: no entries"
        rec = jj.events(kinds=("reconciled",))[0]
        assert rec.payload["ok"] is True and time(10, 5) <= rec.ts.time() < time(10, 6)
        resume = [t for t in transitions(jj) if t[2] == "resume"]
        assert len(resume) == 1 and resume[0][0] == rec.ts and resume[0][1] == "entry_window"
        assert resume[0][3] == "reconciliation with the broker succeeded"
        assert not [e for e in jj.events(kinds=("entry_decision", "order_intent")) if e.ts < rec.ts]
        first = entry_intents(jj)[0]
        assert first.ts.time() == time(10, 15, 5)  # the day's first signal is traded after all


# --- 3. daily loss without VIX ---------------------------------------------------------------
def test_daily_loss_breaker_trips_while_the_vix_fetch_fails(tmp_path):
    j = tmp_path / "journal.sqlite"
    cfg = Config()
    cfg = dataclasses.replace(cfg, risk=dataclasses.replace(cfg.risk, daily_loss_limit_pct=0.01))

    def break_vix(svc):
        def vix():
            raise TransientError("vix: empty body from quote")
        svc.market.vix = vix

    res = run(j, on_event("position_opened", break_vix), cfg=cfg)
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        opened = jj.events(kinds=("position_opened",))
        assert len(opened) == 1
        vix_errs = [e for e in jj.events(kinds=("broker_error",)) if e.payload["call"] == "vix"]
        assert vix_errs and vix_errs[0].ts >= opened[0].ts
        trips = [e for e in jj.events(kinds=("breaker_tripped",)) if e.payload["breaker"] == "daily_loss"]
        assert len(trips) == 1 and trips[0].ts >= vix_errs[0].ts
        assert trips[0].ts - opened[0].ts <= timedelta(seconds=10)
        assert trips[0].payload["inputs"]["day_pnl_net"] <= trips[0].payload["inputs"]["limit"] == -100.0
        assert jj.events(kinds=("vix",)) == []  # no VIX value was ever seen after the position opened
        pos = jj.query("SELECT status, exit_reason FROM positions")
        assert [(r["status"], r["exit_reason"]) for r in pos] == [("closed", "daily_loss")]
        assert any(h.payload["reason"].startswith("daily loss limit") for h in jj.events(kinds=("halted",)))
        assert len(entry_intents(jj)) == 1  # no second entry after the breaker


# --- 4. indicator history -----------------------------------------------------------------------
def test_indicator_history_bars_is_enforced(tmp_path):
    j = tmp_path / "journal.sqlite"
    cfg = Config()
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, indicator_history_bars=5000))
    res = run(j, cfg=cfg)
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        decisions = [e.payload for e in jj.events(kinds=("entry_decision",))]
        assert len(decisions) == 6  # one per hourly close from 10:15 to 15:15
        for d in decisions:
            assert d["allowed"] is False and d["bars"] < 5000
            assert d["reason"] == f"indicator history: {d['bars']} closed hourly bars < 5000"
        assert jj.events(kinds=("order_intent",)) == [] and jj.events(kinds=("hourly_signal",)) == []


# --- 5. one underlying's failure --------------------------------------------------------------
def test_one_underlyings_exception_does_not_stop_the_others(tmp_path, monkeypatch):
    j = tmp_path / "journal.sqlite"
    cfg = dataclasses.replace(Config(), underlyings=(
        UnderlyingConfig(), UnderlyingConfig("BANKNIFTY", "Nifty Bank", 100, 600)))
    real = entries.consider

    def consider(desk, u):
        if u == "NIFTY":
            raise ValueError("NIFTY: indicator input is NaN")
        return real(desk, u)
    monkeypatch.setattr(entries, "consider", consider)
    res = run(j, cfg=cfg)
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        errs = jj.events(kinds=("pipeline_error",))
        assert len(errs) == 6  # every hourly close from 10:15 to 15:15
        assert all(e.payload == {"call": "entry NIFTY", "error": "ValueError: NIFTY: indicator input is NaN"}
                   for e in errs)
        decisions = jj.events(kinds=("entry_decision",))
        by_ts = defaultdict(dict)
        for d in decisions:
            by_ts[d.ts][d.payload["underlying"]] = d.payload
        for e in errs:
            assert by_ts[e.ts]["NIFTY"]["reason"] == "market data unavailable"
            assert "BANKNIFTY" in by_ts[e.ts]  # decided at the same close despite NIFTY's failure
        assert {d.payload["underlying"] for d in decisions if d.ts not in {e.ts for e in errs}} == set()
        assert all(e.payload["underlying"] == "BANKNIFTY" for e in jj.events(kinds=("hourly_signal",)))
        assert all(p["underlying"] == "BANKNIFTY" for p in jj.query("SELECT underlying FROM positions"))


def sell_then_stop(sale: dict, qty: int, tag: str):
    """A tick hook: once the bot holds a position, sell `qty` behind its back; stop at 11:30."""
    def tick(svc, tday):
        if not sale and len(svc.desk.book) and tday.machine.state == "managing":
            sale.update(sell_behind_the_bots_back(svc, qty, tag))
        elif svc.clock.now().time() >= time(11, 30):
            tday.request_shutdown("test: seen enough")  # keeps the test short; flattens again
    return tick


# --- 6. periodic reconciliation ----------------------------------------------------------------
def test_periodic_reconciliation_finds_a_sale_behind_the_bots_back(tmp_path):
    j = tmp_path / "journal.sqlite"
    sale = {}

    res = run(j, with_tick(sell_then_stop(sale, 325, "manual-sell-1")))
    assert res.shutdown == "test: seen enough" and res.state == "halted"
    interval = Config().orders.reconcile_interval_sec
    with Journal.open_readonly(j) as jj:
        bad = [e for e in jj.events(kinds=("reconciled",)) if not e.payload["ok"]]
        assert bad and sale["at"] < bad[0].ts <= sale["at"] + timedelta(seconds=interval)
        seen = bad[0].ts
        row = bad[0].payload["rows"][0]
        assert (row["verdict"], row["journal_qty"], row["broker_qty"]) == ("quantity_mismatch", 650, 325)
        trips = [e for e in jj.events(kinds=("breaker_tripped",)) if e.payload["breaker"] == "broker_mismatch"]
        assert len(trips) == 1 and trips[0].ts == bad[0].ts
        halts = [t for t in transitions(jj) if t[1] == "halted"]
        assert halts and halts[0][0] == bad[0].ts and halts[0][3] == "broker mismatch at reconciliation"
        assert [e for e in entry_intents(jj) if e.ts > bad[0].ts] == []
        exits = [e for e in jj.events(kinds=("order_intent",)) if e.payload["purpose"] == "exit"]
        assert exits and all(e.ts > seen for e in exits)  # the exit came later, while halted
        assert sum(e.payload["qty"] for e in exits) == 325  # only what the broker still held
        assert jj.events(kinds=("shutdown",))[0].payload["open_positions"] == 1  # the journal's 325
        assert not jj.events(kinds=("short_position",))
    with paper_after_close(j) as b:
        fills = b.trade_book()
        assert [q for q, _ in manual_fills(b, sale)] == [325]
        assert manual_fills(b, sale)[0][1] <= seen
        assert min(running_net(fills).values()) == 0  # never a net short, fill after fill
        assert all(p.net_qty == 0 for p in b.positions())
        assert sum(f.qty for f in fills if f.side == SELL) == 650  # 325 by hand + 325 by the bot


# --- 7. a net short at the broker ----------------------------------------------------------------
def test_a_net_short_at_the_broker_is_detected_and_halts(tmp_path):
    j = tmp_path / "journal.sqlite"
    sale = {}

    res = run(j, with_tick(sell_then_stop(sale, 650 + 65, "manual-short-1")))
    assert res.shutdown == "test: seen enough" and res.state == "halted"
    interval = Config().orders.reconcile_interval_sec
    with Journal.open_readonly(j) as jj:
        shorts = jj.events(kinds=("short_position",))
        assert shorts and sale["at"] < shorts[0].ts <= sale["at"] + timedelta(seconds=interval)
        seen = shorts[0].ts
        assert shorts[0].payload["token"] == sale["token"] and shorts[0].payload["net_qty"] == -65
        trips = [e for e in jj.events(kinds=("breaker_tripped",)) if e.payload["breaker"] == "broker_mismatch"]
        assert len(trips) == 1 and trips[0].ts == shorts[0].ts
        assert trips[0].payload["reason"] == f"short position in {sale['symbol']}"
        halts = [t for t in transitions(jj) if t[1] == "halted"]
        assert halts and halts[0][0] == shorts[0].ts
        assert [e for e in entry_intents(jj) if e.ts > shorts[0].ts] == []
        assert [e.payload["primary"] for e in jj.events(kinds=("exit_signal",))] == ["trailing_stop"]
        # ...yet the bot never sells into the short: the broker holds nothing long to protect
        assert [e for e in jj.events(kinds=("order_intent",)) if e.payload["side"] == SELL] == []
    with paper_after_close(j) as b:
        assert [q for q, _ in manual_fills(b, sale)] == [715]
        assert manual_fills(b, sale)[0][1] <= seen
        assert [(p.token, p.net_qty) for p in b.positions() if p.net_qty] == [(sale["token"], -65)]
