"""The paper store's cheap paths: opening a current file skips the DDL, and the opt-in read memo
never answers with state older than the last write, commit, rollback or another connection's commit."""
import sqlite3
from datetime import date

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
