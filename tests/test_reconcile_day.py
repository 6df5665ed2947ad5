"""Start-up reconciliation through the real path: the bot dies inside a broker call, or someone
trades the account behind its back, and the next start must notice, never guess."""
from datetime import date, datetime

import pytest

from rustro.app import run_day
from rustro.broker.base import BUY, SELL, OrderRequest
from rustro.broker.paper import ContractSpec, PaperBroker
from rustro.clock import IST, VirtualClock
from rustro.config import Config
from rustro.credentials import Secrets
from rustro.desk import build_desk
from rustro.journal import Journal
from rustro.market.synthetic import SyntheticMarket

DAY = date(2026, 10, 14)  # seed 42: an entry at 10:15


class Died(BaseException):
    """The process dies here (not an Exception: no job wrapper may swallow it)."""


def crashing_desk(method: str):
    """build_desk whose broker dies inside `method`, after the broker did the work."""
    def build(svc, day, secrets):
        build_desk(svc, day, secrets)
        broker = svc.desk.broker
        real = getattr(broker, method)

        def dying(*a, **k):
            real(*a, **k)
            raise Died(method)
        setattr(broker, method, dying)
    return build


def run(path, builder=build_desk):
    return run_day(Config(), "sim", path, DAY, 42, Secrets(), build_desk=builder)


def paper(path, at: datetime):
    clock = VirtualClock(at)
    return PaperBroker(path.with_name("journal.paper.sqlite"), clock, SyntheticMarket(clock, 42),
                       lambda t: ContractSpec(65, 0.05, 1800), 1_000_000), clock


def test_missing_ack_is_resolved_by_tag(tmp_path):
    j = tmp_path / "journal.sqlite"
    with pytest.raises(Died):
        run(j, crashing_desk("place_order"))  # placed at the broker, the reply never journaled
    with Journal.open_readonly(j) as jj:
        assert [r[0] for r in jj.query("SELECT status FROM orders")] == ["sent"]
    res = run(j)
    assert res.state == "closed"
    b, _ = paper(j, datetime(2026, 10, 14, 15, 35, tzinfo=IST))
    with b:
        book = b.order_book()
    with Journal.open_readonly(j) as jj:
        first = jj.query("SELECT tag FROM orders ORDER BY created_ts")[0][0]
        assert sum(1 for o in book if o.tag == first) == 1  # never placed twice
        acks = [e.payload for e in jj.events(kinds=("order_ack",)) if e.payload["tag"] == first]
        assert acks[0]["resolved_by"] == "tag"
        assert jj.query("SELECT COUNT(*) FROM positions WHERE status = 'open'")[0][0] == 0


def test_missed_fill_is_journaled_at_restart(tmp_path):
    j = tmp_path / "journal.sqlite"
    with pytest.raises(Died):
        run(j, crashing_desk("trade_book"))  # the order filled; the bot died reading the fills
    with Journal.open_readonly(j) as jj:
        assert jj.query("SELECT COUNT(*) FROM fills")[0][0] == 0
        assert jj.query("SELECT COUNT(*) FROM positions")[0][0] == 0
    run(j)
    b, _ = paper(j, datetime(2026, 10, 14, 15, 35, tzinfo=IST))
    with b:
        broker_fills = {f.fill_id for f in b.trade_book()}
    with Journal.open_readonly(j) as jj:
        assert {r[0] for r in jj.query("SELECT fill_id FROM fills")} == broker_fills
        first = jj.query("SELECT * FROM positions ORDER BY entry_time")[0]
        assert first["status"] == "closed" and first["qty"] == 650
        recovered = jj.events(kinds=("recovered",))[0].seq
        assert [e.seq for e in jj.events(kinds=("fill",))][0] > recovered  # found by the restart


def test_unknown_broker_position_halts_and_reports(tmp_path):
    j = tmp_path / "journal.sqlite"
    b, clock = paper(j, datetime(2026, 10, 14, 9, 0, tzinfo=IST))
    with b:
        token = next(c for c in SyntheticMarket(clock, 42).contracts("NIFTY") if c.kind == "CE").token
        q = b.market.quote("NFO", token)
        b.place_order(OrderRequest("manual-1", "NFO", "X", token, BUY, 65, q.ask))
        clock.advance(1)
        assert b.positions()[0].net_qty == 65  # someone bought behind the bot's back
    res = run(j)
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        rec = jj.events(kinds=("reconciled",))[0].payload
        assert rec["ok"] is False and rec["rows"][0]["verdict"] == "unknown_broker_position"
        trip = jj.events(kinds=("breaker_tripped",))[0].payload
        assert trip["breaker"] == "broker_mismatch"
        assert "halted" in [r[0] for r in jj.query("SELECT dst FROM transitions")]
        intents = [e.payload for e in jj.events(kinds=("order_intent",))]
        assert not [p for p in intents if p["purpose"] == "entry"]  # no entries while halted


def test_quantity_mismatch_halts_keeps_protecting(tmp_path):
    j = tmp_path / "journal.sqlite"
    from conftest import run_cli
    crashed = run_cli("run", "--sim", "--date", DAY.isoformat(), "--journal", j, "--quiet",
                      env_extra={"RUSTRO_CRASH_AFTER_KIND": "position_opened"})
    assert crashed.returncode == -9
    with Journal.open_readonly(j) as jj:
        pos = dict(jj.query("SELECT * FROM positions")[0])
        last = jj.last_event(DAY).ts
    b, clock = paper(j, last)
    with b:
        clock.advance(1)
        q = b.market.quote("NFO", pos["token"])
        b.place_order(OrderRequest("manual-2", "NFO", pos["symbol"], pos["token"], SELL, 325, q.bid))
        clock.advance(1)
        assert b.positions()[0].net_qty == 325  # half sold behind the bot's back
    run_day(Config(), "sim", j, DAY, 42, Secrets(), build_desk=build_desk)
    with Journal.open_readonly(j) as jj:
        rec = [e.payload for e in jj.events(kinds=("reconciled",)) if not e.payload["ok"]][0]
        assert rec["rows"][0]["verdict"] == "quantity_mismatch"
        assert rec["rows"][0]["journal_qty"] == 650 and rec["rows"][0]["broker_qty"] == 325
        assert "halted" in [r[0] for r in jj.query("SELECT dst FROM transitions")]
        exits = [e.payload for e in jj.events(kinds=("order_intent",)) if e.payload["purpose"] == "exit"]
        assert exits and exits[0]["qty"] == 325  # protects what the broker really holds
    b, _ = paper(j, datetime(2026, 10, 14, 15, 35, tzinfo=IST))
    with b:
        assert all(p.net_qty == 0 for p in b.positions())  # the broker side ends flat


def _someone_bought(j):
    b, clock = paper(j, datetime(2026, 10, 14, 9, 0, tzinfo=IST))
    with b:
        token = next(c for c in SyntheticMarket(clock, 42).contracts("NIFTY") if c.kind == "CE").token
        q = b.market.quote("NFO", token)
        b.place_order(OrderRequest("manual-1", "NFO", "X", token, BUY, 130, q.ask))
        clock.advance(1)
        assert b.positions()[0].net_qty == 130
    return token


@pytest.mark.parametrize("policy", ["halt", "adopt", "flatten"])
def test_unknown_broker_position_policy(tmp_path, policy):
    """The journal is gone (a fresh file) while the broker holds a long: never reported as zero;
    adopted it is protected and exited by the day's rules, flattened it is exited at once."""
    from dataclasses import replace
    j = tmp_path / "journal.sqlite"
    token = _someone_bought(j)
    cfg = Config(reconcile=replace(Config().reconcile, unknown_positions=policy))
    res = run_day(cfg, "sim", j, DAY, 42, Secrets(), build_desk=build_desk)
    assert res.state == "closed"
    with Journal.open_readonly(j) as jj:
        summary = jj.events(kinds=("day_summary",))[0].payload
        opened = [e.payload for e in jj.events(kinds=("position_opened",)) if e.payload.get("adopted")]
        closed = {r["position_id"]: dict(r) for r in jj.query("SELECT * FROM positions")}
        assert not [e for e in jj.events(kinds=("order_intent",)) if e.payload["purpose"] == "entry"]
    b, _ = paper(j, datetime(2026, 10, 14, 15, 35, tzinfo=IST))
    with b:
        held = sum(p.net_qty for p in b.positions() if p.token == token)
    if policy == "halt":
        assert not opened and held == 130
        assert summary["unmanaged_broker_positions"][token]["broker_qty"] == 130
    else:
        assert len(opened) == 1 and opened[0]["quantity"] == 130 and held == 0
        row = closed[opened[0]["position_id"]]
        assert row["status"] == "closed" and summary["open_positions"] == 0
        assert row["exit_reason"] == ("unknown_position" if policy == "flatten" else row["exit_reason"])
        if policy == "flatten":
            assert row["exit_time"] < "2026-10-14T09:20"  # exited as soon as the market opened
