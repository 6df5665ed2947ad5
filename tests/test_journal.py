import sqlite3
import pytest

from rustro.journal import Journal, JournalCorrupt, JournalError, JournalLocked, SCHEMA_VERSION
from rustro.verify import verify_journal

from conftest import DAY


def test_settings_wal_full_and_schema_version(journal):
    assert journal.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert journal.query("SELECT value FROM meta WHERE key='schema_version'")[0][0] == str(SCHEMA_VERSION)


def test_record_appends_and_reopen_reads_back(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock) as j:
        s1 = j.record("vix", {"value": 14.2})
        s2 = j.record("state_changed", {"src": "none", "dst": "pre_open", "trigger": "start"})
        assert s2 == s1 + 1
    with Journal.open(path, vclock) as j:
        evs = j.events(DAY)
        assert [e.kind for e in evs] == ["vix", "state_changed"]
        assert evs[0].payload == {"value": 14.2}
        assert evs[0].ts.utcoffset().total_seconds() == 5.5 * 3600
        assert j.day_state(DAY) == "pre_open"


def test_event_and_projection_commit_together(journal):
    # an order_ack for an unknown order cannot be applied: the event must not be stored either
    with pytest.raises(ValueError, match="no order with tag"):
        journal.record("order_ack", {"tag": "nope", "order_id": "1", "unique_order_id": "u"})
    assert journal.events(DAY) == []


def test_transaction_groups_events_atomically(journal):
    with pytest.raises(RuntimeError):
        with journal.transaction():
            journal.record("vix", {"value": 1})
            journal.record("vix", {"value": 2})
            raise RuntimeError("crash inside")
    assert journal.events(DAY) == []


def test_duplicate_fill_is_refused(journal):
    intent = {"tag": "t1", "purpose": "entry", "exchange": "NFO", "symbol": "X", "token": "1",
              "side": "BUY", "qty": 65, "price": 100.0}
    journal.record("order_intent", intent)
    fill = {"fill_id": "f1", "tag": "t1", "symbol": "X", "token": "1", "side": "BUY", "qty": 65,
            "price": 100.0}
    journal.record("fill", fill)
    with pytest.raises(sqlite3.IntegrityError):
        journal.record("fill", fill)
    assert len(journal.events(DAY, kinds=("fill",))) == 1


def test_second_writer_refused(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock):
        with pytest.raises(JournalLocked, match="in use by another rustro process"):
            Journal.open(path, vclock)
    Journal.open(path, vclock).close()  # released on close


def test_corrupt_file_refused(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(JournalCorrupt, match="refusing to trade"):
        Journal.open(path, vclock)


def test_damaged_pages_refused(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock) as j:
        for i in range(300):
            j.record("vix", {"value": i, "pad": "x" * 200})
        j.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    for off in range(4096 * 2 + 100, min(len(data), 4096 * 6), 7):
        data[off] = 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt):
        Journal.open(path, vclock)


def test_secret_never_journaled(tmp_path, vclock):
    with Journal.open(tmp_path / "j.sqlite", vclock, forbidden=("S3CRET-MPIN",)) as j:
        with pytest.raises(JournalError, match="refusing to journal a secret") as exc:
            j.record("login", {"note": "pin S3CRET-MPIN"})
        assert "S3CRET" not in str(exc.value)
        assert j.events() == []


def test_readonly_missing_journal_says_how_to_create(tmp_path):
    with pytest.raises(JournalError, match="rustro.py run"):
        Journal.open_readonly(tmp_path / "none.sqlite")


def test_newer_schema_refused(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    Journal.open(path, vclock).close()
    c = sqlite3.connect(path)
    c.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    c.commit()
    c.close()
    with pytest.raises(JournalError, match=rf"written by a newer rustro \(schema 99 > {SCHEMA_VERSION}\): upgrade rustro"):
        Journal.open(path, vclock)


def test_verify_detects_tampered_derived_table(tmp_path, vclock):
    path = tmp_path / "j.sqlite"
    with Journal.open(path, vclock) as j:
        j.record("state_changed", {"src": "none", "dst": "pre_open", "trigger": "start"})
    assert verify_journal(path) == []
    c = sqlite3.connect(path)
    c.execute("UPDATE day_state SET state='managing'")
    c.commit()
    c.close()
    problems = verify_journal(path)
    assert problems and "day_state" in problems[0]


def test_audit_views_exist(journal):
    names = {r[0] for r in journal.query("SELECT name FROM sqlite_master WHERE type='view'")}
    assert {"v_transitions", "v_trades", "v_daily_pnl", "v_orders", "v_decisions", "v_breakers"} <= names


def test_short_secret_is_not_found_inside_numbers_but_is_in_text(tmp_path, vclock):
    with Journal.open(tmp_path / "j.sqlite", vclock, forbidden=("1234",)) as j:
        j.record("filter_result", {"value": 64.9123456, "qty": 1234, "tag": "a1234b"})  # no false alarm
        with pytest.raises(JournalError, match="refusing to journal a secret"):
            j.record("login", {"note": "mpin 1234 sent"})
        with pytest.raises(JournalError):
            j.record("login", {"1234": "as a key"})
        assert len(j.events()) == 1


def test_redact_short_and_long_secrets():
    from rustro.credentials import Secrets
    s = Secrets(api_key="APIKEY-LONG-123", client_code="A1234567", mpin="1234", totp_secret="JBSWY3DPEHPK3PXP")
    text = "key APIKEY-LONG-123 client A1234567 mpin 1234 price 64.9123456 totp JBSWY3DPEHPK3PXP"
    out = s.redact(text)
    assert "APIKEY" not in out and "A1234567" not in out and "JBSWY3" not in out
    assert "mpin ***" in out and "64.9123456" in out
