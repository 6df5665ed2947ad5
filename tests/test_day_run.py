"""End to end: `python rustro.py run --sim` as a user runs it, including crashes and restarts."""
import json
import os
import subprocess
import sys
import time as _time

import pytest

from rustro.journal import Journal

from conftest import REPO, run_cli

EXPECTED_PATH = [("none", "pre_open"), ("pre_open", "warmup"), ("warmup", "entry_window"),
                 ("eod_exit", "closed")]


def transitions(path, day="2026-11-20"):
    with Journal.open_readonly(path) as j:
        return [tuple(r) for r in j.query(
            "SELECT ts, src, dst, trigger FROM transitions WHERE trading_day = ? ORDER BY seq", (day,))]


def test_sim_day_runs_and_prints_status(tmp_path):
    j = tmp_path / "journal.sqlite"
    r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", j)
    assert r.returncode == 0, r.stderr
    assert "state closed" in r.stdout and "Timeline" in r.stdout and "P&L" in r.stdout
    rows = transitions(j)
    assert rows[0][1:3] == ("none", "pre_open") and rows[0][0].startswith("2026-11-20T09:00:00+05:30")
    assert rows[1][1:3] == ("pre_open", "warmup") and rows[1][0].startswith("2026-11-20T09:15:00")
    assert rows[-1][1:3] == ("eod_exit", "closed") and rows[-1][0].startswith("2026-11-20T15:30:00")
    assert any(r[2] == "eod_exit" and r[0].startswith("2026-11-20T15:20:00") for r in rows)
    assert ("warmup", "entry_window") in [(r[1], r[2]) for r in rows]
    assert run_cli("journal", "verify", "--journal", j).returncode == 0


def test_holiday_closes_with_reason(tmp_path):
    j = tmp_path / "journal.sqlite"
    r = run_cli("run", "--sim", "--date", "2026-01-26", "--journal", j, "--quiet")
    assert r.returncode == 0, r.stderr
    rows = transitions(j, "2026-01-26")
    assert [(a, b) for _, a, b, _ in rows] == [("none", "pre_open"), ("pre_open", "closed")]
    st = json.loads(run_cli("status", "--journal", j, "--json").stdout)
    assert st["state"] == "closed"
    assert "Republic Day" in st["transitions"][-1]["reason"]


def test_status_json_keys_are_stable(tmp_path):
    j = tmp_path / "journal.sqlite"
    run_cli("run", "--sim", "--date", "2026-11-20", "--journal", j, "--quiet")
    st = json.loads(run_cli("status", "--journal", j, "--json", "--day", "2026-11-20").stdout)
    assert {"day", "state", "transitions", "positions", "orders", "fills", "pnl", "risk"} <= set(st)
    assert st["day"] == "2026-11-20" and st["state"] == "closed"


def test_status_without_journal_says_how_to_create_one(tmp_path):
    r = run_cli("status", "--journal", tmp_path / "none.sqlite")
    assert r.returncode == 3
    assert "rustro.py run" in r.stderr


def test_rerun_of_closed_day_adds_no_transitions(tmp_path):
    j = tmp_path / "journal.sqlite"
    run_cli("run", "--sim", "--date", "2026-11-20", "--journal", j, "--quiet")
    before = transitions(j)
    r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", j, "--quiet")
    assert r.returncode == 0
    assert transitions(j) == before


@pytest.mark.parametrize("kill_after", [1, 2, 3, 5, 8, 11])
def test_sigkill_then_rerun_finishes_the_same_day(tmp_path, kill_after):
    ref = tmp_path / "ref.sqlite"
    run_cli("run", "--sim", "--date", "2026-11-20", "--journal", ref, "--quiet")
    j = tmp_path / "journal.sqlite"
    crashed = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", j, "--quiet",
                      env_extra={"RUSTRO_CRASH_AFTER_EVENTS": str(kill_after)})
    assert crashed.returncode == -9  # really killed mid-day
    r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", j, "--quiet")
    assert r.returncode == 0, r.stderr
    got, want = transitions(j), transitions(ref)
    assert [(a, b, t) for _, a, b, t in got] == [(a, b, t) for _, a, b, t in want]
    assert len(set(got)) == len(got)  # no duplicated transition rows
    with Journal.open_readonly(j) as jj:
        assert jj.day_state(__import__("datetime").date(2026, 11, 20)) == "closed"
        assert len(jj.events(kinds=("recovered",))) == 1
    assert run_cli("journal", "verify", "--journal", j).returncode == 0


def test_random_time_sigkill_with_accelerated_clock(tmp_path):
    """Real kills at wall-clock moments on a day running 3000x wall time, then a clean finish."""
    cfg = tmp_path / "fast.toml"
    cfg.write_text((REPO / "config.toml").read_text().replace("speed = 0.0", "speed = 3000.0"))
    j = tmp_path / "journal.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTAPI_")}
    for delay in (1.5, 2.0):
        p = subprocess.Popen([sys.executable, str(REPO / "rustro.py"), "run", "--sim", "--date",
                              "2026-11-20", "--config", cfg, "--journal", j, "--quiet"], cwd=REPO,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _time.sleep(delay)
        p.kill()
        assert p.wait() == -9
    r = run_cli("run", "--sim", "--date", "2026-11-20", "--config", cfg, "--journal", j, "--quiet")
    assert r.returncode == 0, r.stderr
    rows = transitions(j)
    got = [(a, b) for _, a, b, _ in rows]
    assert got[0] == ("none", "pre_open") and got[-1] == ("eod_exit", "closed")
    assert ("pre_open", "warmup") in got and got.count(("none", "pre_open")) == 1
    assert len(set(rows)) == len(rows)
    assert run_cli("journal", "verify", "--journal", j).returncode == 0


def test_second_concurrent_run_refuses(tmp_path, vclock):
    j = tmp_path / "journal.sqlite"
    holder = Journal.open(j, vclock)  # a bot is running on this journal
    try:
        r = run_cli("run", "--sim", "--date", "2026-11-20", "--journal", j, "--quiet")
        assert r.returncode == 3
        assert "in use by another rustro process" in r.stderr
        assert holder.events() == []
    finally:
        holder.close()


def test_two_processes_second_refuses(tmp_path):
    cfg = tmp_path / "slow.toml"
    cfg.write_text((REPO / "config.toml").read_text().replace("speed = 0.0", "speed = 5000.0"))
    j = tmp_path / "journal.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTAPI_")}
    first = subprocess.Popen([sys.executable, str(REPO / "rustro.py"), "run", "--sim", "--date",
                              "2026-11-20", "--config", cfg, "--journal", j, "--quiet"], cwd=REPO,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = _time.time() + 10
        while not j.exists() and _time.time() < deadline:
            _time.sleep(0.05)
        _time.sleep(0.3)
        second = run_cli("run", "--sim", "--date", "2026-11-20", "--config", cfg, "--journal", j,
                         "--quiet")
        assert second.returncode == 3 and "in use" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert first.returncode == 0  # SIGTERM: journaled shutdown, clean exit
    with Journal.open_readonly(j) as jj:
        shutdown = jj.events(kinds=("shutdown",))
        assert shutdown and shutdown[0].payload["signal"] == "SIGTERM"


def test_live_without_credentials_exits_5_naming_what_is_missing(tmp_path):
    j = tmp_path / "journal.sqlite"
    r = run_cli("run", "--live", "--journal", j)
    assert r.returncode == 5
    assert "SMARTAPI_API_KEY" in r.stderr and "SMARTAPI_TOTP_SECRET" in r.stderr
    assert not j.exists()


def test_no_credentials_means_sim(tmp_path):
    j = tmp_path / "journal.sqlite"
    r = run_cli("run", "--date", "2026-01-26", "--journal", j, "--quiet")
    assert r.returncode == 0
    with Journal.open_readonly(j) as jj:
        assert jj.events(kinds=("state_changed",))[0].payload["reason"] == "sim run"
