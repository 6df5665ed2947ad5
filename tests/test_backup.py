"""Journal backups: online (a writer commits throughout), verified, never overwriting; at the close."""
import hashlib
import os
import sqlite3
import subprocess
import sys
import time as _time
from datetime import date

import pytest

from rustro.backup import BackupError, backup_journal, close_backup_path, prune
from rustro.journal import Journal, NotAJournal
from rustro.journal_open import APPLICATION_ID
from rustro.verify import verify_journal

from conftest import REPO, run_cli
from test_journal_bad_input import corrupt_marker, journal_with_marked_event

WRITER = """
import sys
from pathlib import Path
from rustro.clock import WallClock
from rustro.journal import Journal
j = Journal.open(sys.argv[1], WallClock())
stop, n = Path(sys.argv[2]), 0
Path(sys.argv[3]).write_text("ready")
while not stop.exists():
    with j.transaction():          # two events per commit: a copy holds both or neither
        j.record("test_tick", {"n": n, "pad": "x" * 2000})
        j.record("test_tock", {"n": n})
    n += 1
j.close()
print(n)
"""


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def events_of(path):
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT seq, kind, json_extract(payload, '$.n') FROM events ORDER BY seq").fetchall()
    finally:
        c.close()


def test_backups_taken_while_another_process_commits_are_whole_and_verified(tmp_path):
    src = tmp_path / "journal.sqlite"
    stop, ready = tmp_path / "stop", tmp_path / "ready"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(stop), str(ready)],
                              env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    try:
        deadline = _time.monotonic() + 30
        while not ready.exists() and _time.monotonic() < deadline:
            _time.sleep(0.02)
        _time.sleep(0.2)
        results = []
        for i in range(5):
            results.append(backup_journal(src, tmp_path / f"copy{i}.sqlite"))
            _time.sleep(0.1)
    finally:
        stop.write_text("stop")
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0, "the writer must never be blocked into failing by a backup"
    commits = int(out.strip())
    counts = [r.events for r in results]
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0  # taken while it grew
    for r in results:
        rows = events_of(r.path)
        assert [seq for seq, _, _ in rows] == list(range(1, len(rows) + 1))  # no hole
        assert len(rows) % 2 == 0 and rows[-1][1] == "test_tock"            # whole commits only
        assert r.last_seq == len(rows) == r.events
        c = sqlite3.connect(r.path)
        assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        c.close()
        assert verify_journal(r.path) == []
        assert not (tmp_path / f"{r.path.name}.partial").exists()
    assert len(events_of(src)) == 2 * commits  # and the source lost nothing


def test_an_existing_destination_is_never_overwritten(tmp_path, vclock):
    src = tmp_path / "journal.sqlite"
    with Journal.open(src, vclock) as j:
        j.record("vix", {"value": 14.0})
    dest = tmp_path / "keep.sqlite"
    dest.write_bytes(b"precious")
    link = tmp_path / "dangling.sqlite"
    link.symlink_to(tmp_path / "nowhere")
    for target in (dest, link):
        with pytest.raises(BackupError, match="already exists: refusing to overwrite"):
            backup_journal(src, target)
    assert dest.read_bytes() == b"precious" and not (tmp_path / "nowhere").exists()
    r = run_cli("journal", "backup", dest, "--journal", src)
    assert r.returncode == 3 and "keep.sqlite already exists" in r.stderr
    assert dest.read_bytes() == b"precious"


def test_a_directory_gets_a_new_file_named_after_the_journal(tmp_path, vclock):
    src = tmp_path / "journal.sqlite"
    with Journal.open(src, vclock) as j:
        j.record("vix", {"value": 14.0})
    out = tmp_path / "backups"
    out.mkdir()
    r = run_cli("journal", "backup", out, "--journal", src)
    assert r.returncode == 0, r.stderr
    made = list(out.iterdir())
    assert len(made) == 1 and made[0].name.startswith("journal-") and made[0].suffix == ".sqlite"
    assert f"backed up to {made[0]}: 1 events" in r.stdout and "verified" in r.stdout
    with Journal.open_readonly(made[0]) as copy:
        assert [e.payload for e in copy.events(kinds=("vix",))] == [{"value": 14.0}]


def test_sources_that_cannot_be_backed_up_leave_nothing(tmp_path, vclock):
    foreign = tmp_path / "other.sqlite"
    c = sqlite3.connect(foreign)
    c.execute("CREATE TABLE t(x)")
    c.close()
    with pytest.raises(NotAJournal):
        backup_journal(foreign, tmp_path / "a.sqlite")
    with pytest.raises(BackupError, match="no journal at"):
        backup_journal(tmp_path / "missing.sqlite", tmp_path / "b.sqlite")
    damaged = tmp_path / "damaged.sqlite"
    journal_with_marked_event(damaged, vclock)
    with pytest.raises(BackupError, match="directory .*nodir does not exist"):
        backup_journal(damaged, tmp_path / "nodir" / "c.sqlite")
    corrupt_marker(damaged)
    with pytest.raises(BackupError, match=r"event #2 \(vix\) is unreadable"):
        backup_journal(damaged, tmp_path / "d.sqlite")
    left = {p.name for p in tmp_path.iterdir()}
    assert not {n + s for n in ("a", "b", "d") for s in (".sqlite", ".sqlite.partial")} & left


def test_close_backup_names_and_retention(tmp_path):
    j = tmp_path / "journal.sqlite"
    day = date(2026, 10, 14)
    assert close_backup_path(tmp_path, j, day).name == "journal-2026-10-14.sqlite"
    (tmp_path / "journal-2026-10-14.sqlite").write_text("x")
    assert close_backup_path(tmp_path, j, day).name == "journal-2026-10-14-2.sqlite"
    for name in ("journal-2026-10-14-2.sqlite", "journal-2026-10-13.sqlite", "journal-2026-10-15.sqlite",
                 "journal-2026-10-12.sqlite", "other-2026-01-01.sqlite", "journal-notes.txt"):
        (tmp_path / name).write_text("x")
    assert prune(tmp_path, j, 0) == []
    gone = prune(tmp_path, j, 3)
    assert sorted(p.name for p in gone) == ["journal-2026-10-12.sqlite", "journal-2026-10-13.sqlite"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "journal-2026-10-14-2.sqlite", "journal-2026-10-14.sqlite", "journal-2026-10-15.sqlite",
        "journal-notes.txt", "other-2026-01-01.sqlite"]


def write_config(path, body):
    path.write_text(body)
    return path


def test_each_close_makes_a_verified_backup_and_keeps_the_newest(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    cfg = write_config(tmp_path / "c.toml", '[journal]\nbackup_dir = "backups"\nbackup_keep = 2\n')
    j = tmp_path / "journal.sqlite"
    for day in ("2026-10-13", "2026-10-14", "2026-10-15"):
        r = run_cli("run", "--sim", "--date", day, "--journal", j, "--config", cfg, "--quiet")
        assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in backups.iterdir()) == ["journal-2026-10-14.sqlite",
                                                         "journal-2026-10-15.sqlite"]
    with Journal.open_readonly(j) as jj:
        done = jj.events(kinds=("journal_backup",))
        assert [e.trading_day.isoformat() for e in done] == ["2026-10-13", "2026-10-14", "2026-10-15"]
        assert done[-1].payload["pruned"] == ["journal-2026-10-13.sqlite"]
        last_close = jj.query("SELECT MAX(seq) FROM events WHERE kind = 'state_changed'")[0][0]
    with Journal.open_readonly(backups / "journal-2026-10-15.sqlite") as copy:
        assert copy.day_state(date(2026, 10, 15)) == "closed"  # taken after the close
        assert copy.query("SELECT MAX(seq) FROM events")[0][0] == last_close == done[-1].payload["last_seq"]
    assert verify_journal(backups / "journal-2026-10-15.sqlite") == []


def test_a_failed_close_backup_is_journaled_and_the_day_still_closes(tmp_path):
    cfg = write_config(tmp_path / "c.toml", '[journal]\nbackup_dir = "no-such-dir"\n')
    j = tmp_path / "journal.sqlite"
    r = run_cli("run", "--sim", "--date", "2026-10-14", "--journal", j, "--config", cfg, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "journal backup at the close failed" in r.stderr
    with Journal.open_readonly(j) as jj:
        assert jj.day_state(date(2026, 10, 14)) == "closed"
        failed = jj.events(kinds=("journal_backup_failed",))
        assert len(failed) == 1 and "no-such-dir" in failed[0].payload["error"]
        assert jj.events(kinds=("job_error",)) == []
    assert run_cli("journal", "verify", "--journal", j).returncode == 0


def test_a_backtest_makes_no_close_backups(tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    cfg = write_config(tmp_path / "c.toml", '[journal]\nbackup_dir = "backups"\n')
    r = run_cli("backtest", "--from", "2026-10-13", "--to", "2026-10-14", "--journal",
                tmp_path / "bt.sqlite", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert list(backups.iterdir()) == []
