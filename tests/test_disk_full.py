"""Disk full mid-day: nothing unjournaled is sent, the reserved space is released, the position is
flattened with its events journaled, and the run stops with its own exit code."""
from datetime import date, datetime

from rustro.app import run_day
from rustro.broker.paper import ContractSpec, PaperBroker
from rustro.clock import IST, VirtualClock
from rustro.config import Config
from rustro.credentials import Secrets
from rustro.journal import Journal
from rustro.market.synthetic import SyntheticMarket

from fakes import on_event

DAY = date(2026, 10, 14)  # seed 42: an entry at 10:15


def fill_the_disk(svc):
    """From now on SQLite cannot grow the journal, until the reserve is released."""
    j = svc.journal
    pages = j.conn.execute("PRAGMA page_count").fetchone()[0]
    j.conn.execute(f"PRAGMA max_page_count = {pages}")
    real = j.release_reserve

    def release():
        j.conn.execute("PRAGMA max_page_count = 1073741823")  # the freed space can be used
        svc.extra["released"] = True
        return real()
    j.release_reserve = release


def test_disk_full_flattens_then_stops(tmp_path):
    j = tmp_path / "journal.sqlite"
    extra = {}
    res = run_day(Config(), "sim", j, DAY, 42, Secrets(), extra=extra,
                  build_desk=on_event("stop_updated", fill_the_disk))
    assert res.shutdown == "disk full"
    with Journal.open_readonly(j) as jj:
        full = jj.events(kinds=("disk_full",))
        assert len(full) == 1 and "full" in full[0].payload["error"]
        assert jj.query("SELECT COUNT(*) FROM positions WHERE status = 'open'")[0][0] == 0
        jfills = {r[0] for r in jj.query("SELECT fill_id FROM fills")}
        tags = {r[0] for r in jj.query("SELECT tag FROM orders")}
    clock = VirtualClock(datetime(2026, 10, 14, 15, 35, tzinfo=IST))
    with PaperBroker(tmp_path / "journal.paper.sqlite", clock, SyntheticMarket(clock, 42),
                     lambda t: ContractSpec(65, 0.05, 1800), 1_000_000) as b:
        assert all(p.net_qty == 0 for p in b.positions())            # flattened
        assert {f.fill_id for f in b.trade_book()} == jfills           # no fill lost
        assert {o.tag for o in b.order_book()} <= tags                 # nothing unjournaled sent


def test_a_run_stopped_by_a_full_disk_exits_6(monkeypatch, tmp_path):
    import rustro.app as app
    from rustro import cli
    monkeypatch.setattr(app, "run_day", lambda *a, **k: app.RunResult(DAY, "managing", 10, 0, "disk full"))
    code = cli.main(["run", "--sim", "--date", "2026-10-14", "--journal", str(tmp_path / "j.sqlite"),
                     "--quiet"])
    assert code == 6
