"""The journal refuses what it must not write or cannot read, with exit 3 and a message that says why:
another program's SQLite file, a corrupted event, a read-only file or directory, a second bot through
another path, a journal from another rustro version, a full disk."""
import errno
import hashlib
import sqlite3
from datetime import datetime

import pytest

import rustro.journal as jmod
from rustro.clock import IST, VirtualClock
from rustro.journal import (APPLICATION_ID, SCHEMA_VERSION, Journal, JournalCorrupt, JournalError,
                            JournalFull, JournalLocked, NotAJournal)
from rustro.verify import verify_journal

from conftest import DAY, run_cli

PRE_OPEN = {"src": "none", "dst": "pre_open", "trigger": "start"}


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sidecars(path):
    return [p.name for p in (path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))
            if p.exists()]


def foreign_db(path, events_table=True):
    c = sqlite3.connect(path)
    c.execute("PRAGMA journal_mode=WAL")
    if events_table:
        c.execute("CREATE TABLE events(id INTEGER PRIMARY KEY, name TEXT, at TEXT)")
        c.executemany("INSERT INTO events(name, at) VALUES (?, ?)", [("a", "x"), ("b", "y")])
    else:
        c.execute("CREATE TABLE t(x)")
    c.commit()
    c.close()
    assert sidecars(path) == []
    return digest(path)


# --- 1. another program's SQLite file is not a journal ------------------------------------------
def test_foreign_db_with_events_table_is_refused_untouched(tmp_path, vclock):
    path = tmp_path / "other.sqlite"
    before = foreign_db(path)
    with pytest.raises(NotAJournal, match="not a rustro journal"):
        Journal.open(path, vclock)
    with pytest.raises(NotAJournal):
        Journal.open_readonly(path)
    assert digest(path) == before and sidecars(path) == []
    c = sqlite3.connect(path)
    assert [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["events"]
    c.close()


def test_paper_broker_db_as_journal_is_refused_untouched(tmp_path, vclock):
    from rustro.broker.paper_store import PaperStore
    path = tmp_path / "j.paper.sqlite"
    PaperStore(path).close()
    before = digest(path)
    with pytest.raises(NotAJournal, match="not a rustro journal"):
        Journal.open(path, vclock)
    assert digest(path) == before and sidecars(path) == []


def test_sqlite_file_without_tables_is_not_claimed(tmp_path, vclock):
    path = tmp_path / "blank.sqlite"
    c = sqlite3.connect(path)
    c.execute("PRAGMA user_version = 7")  # a header page, no tables: still somebody else's file
    c.close()
    before = digest(path)
    with pytest.raises(NotAJournal):
        Journal.open(path, vclock)
    assert digest(path) == before


def test_cli_run_on_foreign_db_exits_3_and_leaves_it(tmp_path):
    path = tmp_path / "other.sqlite"
    before = foreign_db(path)
    r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", path, "--quiet")
    assert r.returncode == 3, r.stderr
    assert "not a rustro journal" in r.stderr and "Traceback" not in r.stderr
    assert digest(path) == before and sidecars(path) == []


def test_empty_and_missing_files_become_journals(tmp_path, vclock):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    for path in (empty, tmp_path / "new.sqlite"):
        with Journal.open(path, vclock) as j:
            j.record("state_changed", PRE_OPEN)
        c = sqlite3.connect(path)
        assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        c.close()


def test_old_journal_without_application_id_is_ours_and_migrated(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock) as j:
        j.record("state_changed", PRE_OPEN)
    c = sqlite3.connect(path)  # what a journal written before the id existed looks like
    c.execute("PRAGMA application_id = 0")
    c.execute("PRAGMA user_version = 0")
    c.commit()
    c.close()
    with Journal.open_readonly(path) as j:  # read-only: readable as it is
        assert j.day_state(DAY) == "pre_open"
    with Journal.open(path, vclock) as j:
        assert j.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert j.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [e.kind for e in j.events(DAY)] == ["state_changed"]


def test_a_failed_creation_leaves_no_half_made_journal(tmp_path, vclock, monkeypatch):
    path = tmp_path / "j.sqlite"
    real_migrate = jmod._migrate

    def dies(conn, version, verified):  # a crash inside the first transaction of a new journal
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE events(x)")
        raise KeyboardInterrupt
    monkeypatch.setattr(jmod, "_migrate", dies)
    with pytest.raises(KeyboardInterrupt):
        Journal.open(path, vclock)
    assert not path.exists() and not (tmp_path / "j.sqlite.new").exists()
    (tmp_path / "j.sqlite.new").write_bytes(b"left by a SIGKILL during creation")
    monkeypatch.setattr(jmod, "_migrate", real_migrate)
    with Journal.open(path, vclock) as j:
        j.record("state_changed", PRE_OPEN)
    assert not (tmp_path / "j.sqlite.new").exists()


def test_not_sqlite_and_directory_are_refused(tmp_path, vclock):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 100)
    before = digest(text)
    with pytest.raises(JournalCorrupt, match="refusing to trade"):
        Journal.open(text, vclock)
    assert digest(text) == before
    with pytest.raises(JournalError, match="is a directory"):
        Journal.open(tmp_path, vclock)


# --- 2. a corrupted event ----------------------------------------------------------------------
def corrupt_marker(path, marker=b'"marker": "CORRUPT-ME"', new=b"#"):
    """Flip the ':' after "marker" in the event's stored JSON: the page stays well formed."""
    data = bytearray(path.read_bytes())
    at = data.index(marker)
    data[at + len(b'"marker"')] = new[0]
    path.write_bytes(bytes(data))
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # SQLite sees nothing wrong
    c.close()


def journal_with_marked_event(path, vclock):
    with Journal.open(path, vclock) as j:
        j.record("state_changed", PRE_OPEN)
        seq = j.record("vix", {"marker": "CORRUPT-ME", "value": 14.2})
        j.record("vix", {"value": 14.3})
    return seq


def test_verify_reports_the_unreadable_event(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    seq = journal_with_marked_event(path, vclock)
    corrupt_marker(path)
    problems = verify_journal(path)
    assert problems and f"event #{seq} (vix)" in problems[0]
    r = run_cli("journal", "verify", "--journal", path)
    assert r.returncode == 3, r.stderr
    assert f"event #{seq} (vix)" in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_open_refuses_a_journal_with_an_unreadable_event(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    seq = journal_with_marked_event(path, vclock)
    corrupt_marker(path)
    with pytest.raises(JournalCorrupt, match=f"event #{seq} \\(vix\\)"):
        Journal.open(path, vclock)


def test_open_checks_today_even_when_already_verified(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    seq = journal_with_marked_event(path, vclock)
    Journal.open(path, vclock).close()  # verified up to here: a restart later today
    corrupt_marker(path)
    with pytest.raises(JournalCorrupt, match=f"event #{seq}"):
        Journal.open(path, vclock)


def test_invalid_utf8_in_a_payload_is_an_unreadable_event(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    seq = journal_with_marked_event(path, vclock)
    corrupt_marker(path, marker=b'"CORRUPT-ME"', new=b"\xff")  # the opening quote becomes 0xFF
    with pytest.raises(JournalCorrupt, match=f"event #{seq}"):
        Journal.open(path, vclock)
    assert any(f"event #{seq}" in p for p in verify_journal(path))


def test_cli_run_refuses_a_corrupted_event(tmp_path):
    path = tmp_path / "j.sqlite"
    journal_with_marked_event(path, VirtualClock(datetime(2026, 11, 19, 9, 0, tzinfo=IST)))
    corrupt_marker(path)
    r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", path, "--quiet")
    assert r.returncode == 3, r.stderr
    assert "event #2" in r.stderr and "Traceback" not in r.stderr


def test_status_on_a_day_with_a_corrupted_event_exits_3(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock) as j:
        j.record("state_changed", PRE_OPEN)
        j.record("breaker_tripped", {"breaker": "daily_loss", "reason": "x", "marker": "CORRUPT-ME"})
    corrupt_marker(path)
    r = run_cli("status", "--journal", path)
    assert r.returncode == 3, r.stderr
    assert "event #2" in r.stderr and "Traceback" not in r.stderr


# --- 3. read-only file or directory -------------------------------------------------------------
def test_unwritable_directory_is_a_journal_error(vclock):
    with pytest.raises(JournalError, match="(?i)permission denied|read-only|cannot"):
        Journal.open("/sys/rustro-test-journal.sqlite", vclock)
    r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", "/sys/rustro-test.sqlite",
                "--quiet")
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and "rustro-test.sqlite" in r.stderr


def test_missing_directory_is_a_journal_error(tmp_path, vclock):
    with pytest.raises(JournalError, match="directory"):
        Journal.open(tmp_path / "nope" / "j.sqlite", vclock)


def test_read_only_journal_file_is_a_journal_error(tmp_path, vclock, monkeypatch):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock) as j:
        j.record("state_changed", PRE_OPEN)
    real_connect = jmod._connect

    def ro_connect(p, readonly):  # as if chmod 444 bit (root ignores it): SQLite opens read-only
        return real_connect(p, readonly=True)
    monkeypatch.setattr(jmod, "_connect", ro_connect)
    with pytest.raises(JournalError, match="read-only"):
        Journal.open(path, vclock)


def test_unreadable_journal_is_a_journal_error(tmp_path, vclock, monkeypatch):
    path = tmp_path / "j.sqlite"
    Journal.open(path, vclock).close()
    real = sqlite3.connect

    def denied(*a, **k):  # as if chmod 000 bit
        raise sqlite3.OperationalError("unable to open database file")
    monkeypatch.setattr(jmod.sqlite3, "connect", denied)
    with pytest.raises(JournalError, match="cannot"):
        Journal.open_readonly(path)
    with pytest.raises(JournalError, match="cannot"):
        Journal.open(path, vclock)
    monkeypatch.setattr(jmod.sqlite3, "connect", real)


# --- 4. one journal, two paths ------------------------------------------------------------------
def test_second_writer_through_a_symlink_is_refused(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    link = tmp_path / "link.sqlite"
    link.symlink_to(path)
    with Journal.open(path, vclock):
        with pytest.raises(JournalLocked):
            Journal.open(link, vclock)
    with Journal.open(link, vclock):  # a new journal created through the link: same lock
        with pytest.raises(JournalLocked):
            Journal.open(path, vclock)


def test_second_writer_through_another_relative_path_is_refused(tmp_path, vclock, monkeypatch):
    (tmp_path / "dir").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "dir")
    monkeypatch.chdir(tmp_path / "dir")
    with Journal.open("./j.sqlite", vclock):
        for other in ("../dir/j.sqlite", tmp_path / "alias" / "j.sqlite", "j.sqlite"):
            with pytest.raises(JournalLocked):
                Journal.open(other, vclock)


def test_second_process_through_a_symlink_is_refused(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    link = tmp_path / "link.sqlite"
    link.symlink_to(path)
    with Journal.open(path, vclock):
        r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", link, "--quiet")
    assert r.returncode == 3, r.stderr
    assert "in use by another rustro process" in r.stderr


# --- 5. say what is wrong -----------------------------------------------------------------------
def test_status_and_verify_on_a_missing_journal(tmp_path):
    for cmd in (("status",), ("journal", "verify")):
        r = run_cli(*cmd, "--journal", tmp_path / "none.sqlite")
        assert r.returncode == 3, r.stderr
        assert f"no journal at {tmp_path / 'none.sqlite'}" in r.stderr
        assert "migrate" not in r.stderr


def test_status_and_verify_on_an_empty_file(tmp_path):
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"")
    for cmd in (("status",), ("journal", "verify")):
        r = run_cli(*cmd, "--journal", path)
        assert r.returncode == 3 and "no journal at" in r.stderr and "migrate" not in r.stderr


def test_future_schema_says_upgrade(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    Journal.open(path, vclock).close()
    c = sqlite3.connect(path)
    c.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    c.execute("PRAGMA user_version = 99")
    c.commit()
    c.close()
    msg = f"written by a newer rustro (schema 99 > {SCHEMA_VERSION}): upgrade rustro"
    for cmd in (("status",), ("journal", "verify")):
        r = run_cli(*cmd, "--journal", path)
        assert r.returncode == 3 and msg in r.stderr and "migrate" not in r.stderr, r.stderr
    with pytest.raises(JournalError, match=r"schema 99 > \d+\): upgrade rustro"):
        Journal.open(path, vclock)


def test_older_schema_says_run_once_to_migrate(tmp_path, vclock, monkeypatch):
    path = tmp_path / "j.sqlite"
    Journal.open(path, vclock).close()
    monkeypatch.setattr(jmod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(JournalError, match="older schema.*run `rustro run` once to migrate"):
        Journal.open_readonly(path)
    Journal.open(path, vclock).close()  # the writer migrates
    Journal.open_readonly(path).close()


def test_status_with_journal_needs_no_config(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock) as j:
        j.record("state_changed", PRE_OPEN)
    elsewhere = tmp_path / "empty-dir"
    elsewhere.mkdir()
    r = run_cli("status", "--journal", path, "--json", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert '"state": "pre_open"' in r.stdout
    assert run_cli("journal", "verify", "--journal", path, cwd=elsewhere).returncode == 0


# --- 6. disk full -------------------------------------------------------------------------------
def fill_up(journal):
    pages = journal.conn.execute("PRAGMA page_count").fetchone()[0]
    journal.conn.execute(f"PRAGMA max_page_count = {pages}")  # no room for one more page


def test_disk_full_is_journalfull_and_nothing_half_written(journal):
    journal.record("state_changed", PRE_OPEN)
    fill_up(journal)
    with pytest.raises(JournalFull, match="database or disk is full"):
        journal.record("vix", {"value": 1, "pad": "x" * 50_000})
    assert not journal.conn.in_transaction
    assert [e.kind for e in journal.events(DAY)] == ["state_changed"]
    journal.conn.execute("PRAGMA max_page_count = 1000000")  # room again: the journal still works
    journal.record("vix", {"value": 2})
    assert [e.kind for e in journal.events(DAY)] == ["state_changed", "vix"]


def test_disk_full_inside_a_group_rolls_back_the_whole_group(journal):
    journal.record("state_changed", PRE_OPEN)
    fill_up(journal)
    with pytest.raises(JournalFull):
        with journal.transaction():
            journal.record("state_changed", {"src": "pre_open", "dst": "warmup", "trigger": "t"})
            try:
                journal.record("vix", {"value": 1, "pad": "x" * 50_000})
            except JournalFull:
                pass  # a caller that swallows it must not commit half the group
            with pytest.raises(JournalFull):
                journal.record("vix", {"value": 3})
            journal.conn.execute("INSERT INTO meta VALUES ('stray', 'x')")  # a raw write of the group
    assert [e.kind for e in journal.events(DAY)] == ["state_changed"]
    assert journal.query("SELECT * FROM meta WHERE key = 'stray'") == []
    assert journal.day_state(DAY) == "pre_open"
    journal.conn.execute("PRAGMA max_page_count = 1000000")
    journal.record("vix", {"value": 2})


def test_enospc_from_the_os_is_journalfull(journal, monkeypatch):
    def boom(conn, ev):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(jmod.projection, "apply", boom)
    with pytest.raises(JournalFull, match="No space left"):
        journal.record("risk_state", {"value": 1})  # a kind with a projection: apply runs
    monkeypatch.undo()
    assert journal.events(DAY) == [] and not journal.conn.in_transaction


def test_reserve_file_created_kept_and_released(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    res = tmp_path / "j.sqlite.reserve"
    with Journal.open(path, vclock, reserve_mb=2) as j:
        assert j.reserve_path == res
        assert res.stat().st_size == 2 * 1024 * 1024
        assert res.stat().st_blocks * 512 >= 2 * 1024 * 1024  # real blocks, not a sparse file
    ino = res.stat().st_ino
    with Journal.open(path, vclock, reserve_mb=2) as j:
        assert res.stat().st_ino == ino  # kept
        assert j.release_reserve() == 2 * 1024 * 1024
        assert not res.exists()
        assert j.release_reserve() == 0
        j.record("vix", {"value": 1})
    with Journal.open(path, vclock) as j:  # reserve_mb=0: no reserve made
        assert not res.exists()
    assert jmod.reserve(path, 1) == res and res.stat().st_size == 1024 * 1024


def test_reserve_that_does_not_fit_is_journalfull(tmp_path, vclock, monkeypatch):
    def no_space(fd, off, size):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(jmod.os, "posix_fallocate", no_space)
    with pytest.raises(JournalFull, match="reserve"):
        Journal.open(tmp_path / "j.sqlite", vclock, reserve_mb=4)
    assert not (tmp_path / "j.sqlite.reserve").exists()
    Journal.open(tmp_path / "j.sqlite", vclock).close()  # the lock was released
