"""The paper store's cheap paths: opening a current file skips the DDL, and the opt-in read memo
never answers with state older than the last write, commit, rollback or another connection's commit."""
import sqlite3
from datetime import date, datetime

import pytest

from rustro.broker import paper_store
from rustro.broker.paper_store import SCHEMA_VERSION, PaperStore, PaperStoreError


def tables(path) -> set[str]:
    with sqlite3.connect(path) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master")}


def test_fresh_file_gets_the_whole_schema_and_its_version(tmp_path):
    path = tmp_path / "p.sqlite"
    PaperStore(path).close()
    assert {"schema_version", "orders", "fills", "orders_day", "orders_status", "fills_day"} <= tables(path)
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_current_file_is_reopened_without_running_the_ddl(tmp_path, monkeypatch):
    path = tmp_path / "p.sqlite"
    PaperStore(path).close()
    calls = []
    real = PaperStore._create_schema
    monkeypatch.setattr(PaperStore, "_create_schema", lambda self: calls.append(1) or real(self))
    PaperStore(path).close()
    assert calls == []


def test_half_created_file_is_completed(tmp_path):
    """A crash inside the DDL leaves tables but no version row: the next open finishes the job."""
    path = tmp_path / "p.sqlite"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    PaperStore(path).close()
    assert {"orders", "fills", "fills_day"} <= tables(path)
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_other_schema_version_is_refused(tmp_path):
    path = tmp_path / "p.sqlite"
    PaperStore(path).close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(PaperStoreError, match=f"paper schema version {SCHEMA_VERSION + 1}"):
        PaperStore(path)


# --- the read memo ---------------------------------------------------------------------------
DAY = date(2025, 1, 6)


def order_row(seq: int, status: str = "open") -> dict:
    return {"order_id": f"o{seq}", "seq": seq, "unique_order_id": f"u{seq}",
            "trading_day": DAY.isoformat(), "tag": f"t{seq}", "exchange": "NFO",
            "symbol": "NIFTY25JAN2524000CE", "token": "48223", "side": "BUY",
            "order_type": "LIMIT", "product": "INTRADAY", "variety": "NORMAL",
            "duration": "DAY", "qty": 65, "price": 100.0, "lot_size": 65, "tick_size": 0.05,
            "freeze_qty": 1800, "status": status, "placed_at": "2025-01-06T10:00:00+05:30",
            "eligible_at": "2025-01-06T10:00:00.200000+05:30",
            "updated": "2025-01-06T10:00:00+05:30"}


def fill_row(seq: int, order_seq: int, qty: int = 65) -> dict:
    return {"fill_id": f"f{seq}", "seq": seq, "order_id": f"o{order_seq}",
            "trading_day": DAY.isoformat(), "exchange": "NFO", "symbol": "NIFTY25JAN2524000CE",
            "token": "48223", "product": "INTRADAY", "side": "BUY", "qty": qty, "price": 100.05,
            "time": "2025-01-06T10:00:01+05:30"}


def reads(store: PaperStore) -> tuple:
    """Every memoized read, as plain values."""
    return (store.has_working_orders(), [o["order_id"] for o in store.working_orders()],
            [(o["order_id"], o["status"]) for o in store.orders_on(DAY)],
            [f["fill_id"] for f in store.fills_on(DAY)], store.cash_flows(DAY),
            store.net_by_key(DAY))


def test_memo_sees_every_commit_of_its_own_connection(tmp_path):
    store = PaperStore(tmp_path / "p.sqlite", memo=True)
    assert reads(store) == (False, [], [], [], (0, 0), {})
    with store.transaction():
        store.insert_order(order_row(1))
    assert reads(store)[:3] == (True, ["o1"], [("o1", "open")])
    with store.transaction():
        store.insert_fill(fill_row(1, 1))
        store.update_order("o1", status="complete")
    assert reads(store) == (False, [], [("o1", "complete")], ["f1"], (65 * 10005, 0),
                            {("NFO", "48223", "INTRADAY"): 65})
    store.close()


def test_memo_sees_a_write_inside_the_transaction_that_read_before_it(tmp_path):
    store = PaperStore(tmp_path / "p.sqlite", memo=True)
    with store.transaction():
        assert reads(store)[:2] == (False, [])
        store.insert_order(order_row(1))
        assert reads(store)[:2] == (True, ["o1"])
    store.close()


def test_memo_forgets_what_a_rollback_undid(tmp_path):
    store = PaperStore(tmp_path / "p.sqlite", memo=True)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert_order(order_row(1))
            store.insert_fill(fill_row(1, 1))
            assert reads(store)[:4] == (True, ["o1"], [("o1", "open")], ["f1"])  # remembered...
            raise RuntimeError("refused")
    assert reads(store) == (False, [], [], [], (0, 0), {})  # ...and forgotten with the rollback
    store.close()


def test_memo_sees_another_connections_commit_after_sync(tmp_path):
    path = tmp_path / "p.sqlite"
    ours, theirs = PaperStore(path, memo=True), PaperStore(path)
    ours.sync()
    assert reads(ours)[:2] == (False, [])
    with theirs.transaction():
        theirs.insert_order(order_row(1))
        theirs.insert_fill(fill_row(1, 1))
    ours.sync()
    assert reads(ours)[:4] == (True, ["o1"], [("o1", "open")], ["f1"])
    ours.close(), theirs.close()


def test_memo_hands_out_copies(tmp_path):
    store = PaperStore(tmp_path / "p.sqlite", memo=True)
    with store.transaction():
        store.insert_order(order_row(1))
        store.insert_fill(fill_row(1, 1))
    for rows in (store.working_orders(), store.orders_on(DAY), store.fills_on(DAY)):
        rows[0]["qty"] = 1
        rows.append({})
    store.net_by_key(DAY)[("x", "y", "z")] = 5
    assert [o["qty"] for o in store.working_orders()] == [65]
    assert [o["qty"] for o in store.orders_on(DAY)] == [65]
    assert [f["qty"] for f in store.fills_on(DAY)] == [65]
    assert store.net_by_key(DAY) == {("NFO", "48223", "INTRADAY"): 65}
    store.close()


def test_without_memo_every_read_asks_the_file(tmp_path):
    """The sandbox's read-side connection never calls sync(): it must not remember anything."""
    path = tmp_path / "p.sqlite"
    reader, writer = PaperStore(path), PaperStore(path, memo=True)
    assert reads(reader)[:2] == (False, [])
    with writer.transaction():
        writer.insert_order(order_row(1))
    assert reads(reader)[:2] == (True, ["o1"])
    reader.close(), writer.close()


# --- one connection for a backtest ---------------------------------------------------------------
def test_a_backtest_opens_the_paper_store_once_and_closes_it(tmp_path, monkeypatch):
    from rustro.app import run_backtest
    from rustro.config import Config
    from rustro.desk import build_desk
    opened, closed = [], []
    real_init, real_close = PaperStore.__init__, PaperStore.close
    monkeypatch.setattr(PaperStore, "__init__",
                        lambda self, *a, **k: (opened.append(a[0]), real_init(self, *a, **k))[-1])
    monkeypatch.setattr(PaperStore, "close", lambda self: (closed.append(self.path), real_close(self))[-1])
    path = tmp_path / "journal.sqlite"
    results = run_backtest(Config(), path, date(2026, 10, 12), date(2026, 10, 14), 42, build_desk)
    assert len(results) == 3
    assert opened == [tmp_path / "journal.paper.sqlite"] and closed == opened


def test_a_borrowed_store_outlives_its_broker(tmp_path):
    from rustro.broker.paper import PaperBroker
    from rustro.broker.paper_store import StorePool
    from rustro.clock import IST, VirtualClock
    pool = StorePool()
    clock = VirtualClock(datetime(2025, 1, 6, 10, 0, tzinfo=IST))
    brokers = [PaperBroker(tmp_path / "p.sqlite", clock, None, lambda t: None, 1000.0, stores=pool)
               for _ in range(2)]
    assert brokers[0].store is brokers[1].store
    brokers[0].close()
    assert brokers[1].store.has_working_orders() is False  # still open
    pool.close()
    with pytest.raises(sqlite3.ProgrammingError):
        brokers[1].store.has_working_orders()
