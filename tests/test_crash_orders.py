"""SIGKILL at every step of the order lifecycle on a trading day, then restart.

Never a duplicate order, never a lost fill: after the restart the journal and the paper broker (a
separate durable party) agree on every order and fill, and both are flat at the close.
"""
from datetime import date, datetime

import pytest

from rustro.broker.paper import ContractSpec, PaperBroker
from rustro.clock import IST, VirtualClock
from rustro.journal import Journal
from rustro.market.synthetic import SyntheticMarket

from conftest import run_cli

DAY = "2026-10-14"  # seed 42: two round trips (10:15 and 13:15 entries)
# event numbers (1-based) on that day: 26 intent, 27 sent, 28 ack, 30 update, 31 fill, 32 opened,
# 40 exit signal, 41 exit intent, 42 exit sent, 44 update, 46 exit fill, 110 second opened, 120 fill
KILL_POINTS = [26, 27, 28, 30, 31, 32, 40, 41, 42, 44, 46, 110, 116, 120]


def broker_view(paper_db):
    clock = VirtualClock(datetime(2026, 10, 14, 15, 35, tzinfo=IST))
    market = SyntheticMarket(clock, 42)
    with PaperBroker(paper_db, clock, market, lambda t: ContractSpec(65, 0.05, 1800), 1_000_000) as b:
        return b.order_book(), b.trade_book(), b.positions()


@pytest.mark.parametrize("kill_after", KILL_POINTS)
def test_kill_and_restart_never_duplicates_or_loses(tmp_path, kill_after):
    j = tmp_path / "journal.sqlite"
    crashed = run_cli("run", "--sim", "--date", DAY, "--journal", j, "--quiet",
                      env_extra={"RUSTRO_CRASH_AFTER_EVENTS": str(kill_after)})
    assert crashed.returncode == -9
    done = run_cli("run", "--sim", "--date", DAY, "--journal", j, "--quiet")
    assert done.returncode == 0, done.stderr
    assert run_cli("journal", "verify", "--journal", j).returncode == 0

    orders, trades, positions = broker_view(tmp_path / "journal.paper.sqlite")
    tags = [o.tag for o in orders]
    assert len(tags) == len(set(tags)), "a tag was placed twice"
    with Journal.open_readonly(j) as jj:
        assert jj.day_state(date.fromisoformat(DAY)) == "closed"
        jorders = {r["tag"]: dict(r) for r in jj.query("SELECT * FROM orders")}
        for o in orders:
            assert o.tag in jorders, f"broker order {o.tag} unknown to the journal"
            row = jorders[o.tag]
            assert (row["broker_order_id"], row["status"], row["filled_qty"]) == (
                o.order_id, o.status, o.filled_qty)
        jfills = {r[0]: (r[1], r[2]) for r in jj.query("SELECT fill_id, qty, price FROM fills")}
        assert jfills == {f.fill_id: (f.qty, f.price) for f in trades}
        assert jj.query("SELECT COUNT(*) FROM positions WHERE status = 'open'")[0][0] == 0
        assert jj.query("SELECT COUNT(*) FROM positions")[0][0] >= 1 or kill_after <= 28
        recovered = jj.events(kinds=("recovered",))
        assert len(recovered) == 1
    assert all(p.net_qty == 0 for p in positions)
