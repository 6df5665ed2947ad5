"""rustro backtest as a user runs it: parallel days identical to serial ones, --set / --sweep studies,
a Dask cluster, the progress bar; and the pieces (override parsing, journal naming) alone."""
import io
import json
import os
import pty
import select
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from rustro.backtest import Task, chunk_size, journal_for, scratch_paths
from rustro.backtest_study import (apply_override, build_study, configure, parse_value, parse_values,
                                   split_assignment, to_raw)
from rustro.config import Config, ConfigError, parse_config
from rustro.journal import Journal
from rustro.progress import Progress

from conftest import REPO, run_cli

# 2026-10-05 .. 16: ten trading days, five trades (two on the 14th, one loss on the 15th)
TWO_WEEKS = ("--from", "2026-10-05", "--to", "2026-10-16")
DAYS = ["2026-10-05", "2026-10-06", "2026-10-07", "2026-10-08", "2026-10-09", "2026-10-12", "2026-10-13",
        "2026-10-14", "2026-10-15", "2026-10-16"]


# --- overrides and grids ---------------------------------------------------------------------
def test_values_are_toml_literals_or_bare_words():
    assert parse_value("2") == 2 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value('"adopt"') == "adopt" and parse_value("adopt") == "adopt"
    assert parse_value("[0.25, 0.5]") == [0.25, 0.5] and parse_value("14:00") == "14:00"
    assert parse_values("1,2,3") == [1, 2, 3] and parse_values("halt, adopt") == ["halt", "adopt"]
    assert parse_values("[1, 2], [3]") == [[1, 2], [3]] and parse_values('"a,b", "c"') == ["a,b", "c"]
    assert split_assignment("underlyings[0].strike_step=100", "--set") == ("underlyings.0.strike_step", "100")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        split_assignment("risk..x=1", "--set")


def test_config_round_trips_and_overrides_apply():
    assert parse_config(to_raw(Config())) == Config()
    cfg = configure(Config(), {"risk.max_trades_per_day": 2, "underlyings.0.strike_step": 100,
                               "session.entry_end": "14:00", "orders.ladder_pct": [0.5, 1.0],
                               "orders.ladder_backoff_sec": [0, 2]})
    assert cfg.risk.max_trades_per_day == 2 and cfg.underlyings[0].strike_step == 100
    assert cfg.session.entry_end.hour == 14 and cfg.orders.ladder_pct == (0.5, 1.0)
    raw = {"a": [1]}
    with pytest.raises(ConfigError, match=r"^a\.3: no such item"):
        apply_override(raw, "a.3", 1)
    with pytest.raises(ConfigError, match=r"^a\.0\.x: a\.0 is a value, not a table"):
        apply_override(raw, "a.0.x", 1)


def test_study_errors_name_the_key_and_the_option():
    def error(sets=(), sweeps=()):
        with pytest.raises(ConfigError) as exc:
            build_study(Config(), list(sets), list(sweeps))
        return str(exc.value)
    assert error(["risk.max_trades_per_day=0"]) == \
        "risk.max_trades_per_day: must be > 0, got 0 (from --set risk.max_trades_per_day=0)"
    assert error(["risk.max_trade_per_day=2"]).startswith(
        "risk.max_trade_per_day: unknown key; did you mean 'max_trades_per_day'?")
    assert error(["rsk.x=1"]).startswith("rsk: unknown key; did you mean 'risk'?")
    assert error(sweeps=["exits.stop_loss_pct=0.1,1.5"]) == \
        "exits.stop_loss_pct: must be < 1, got 1.5 (from the combination exits.stop_loss_pct=1.5)"
    assert error(sweeps=["filters.rsi_oversold=20,75", "filters.rsi_overbought=70,80"]).endswith(
        "got 75.0 (from the combination filters.rsi_oversold=75, filters.rsi_overbought=70)")
    # each fine alone, wrong together; and right together though one alone is not
    assert error(["filters.rsi_oversold=65", "filters.rsi_overbought=60"]).endswith(
        "(from --set filters.rsi_oversold=65 --set filters.rsi_overbought=60)")
    _, [combo] = build_study(Config(), ["filters.rsi_oversold=75", "filters.rsi_overbought=80"], [])
    assert (combo.cfg.filters.rsi_oversold, combo.cfg.filters.rsi_overbought) == (75, 80)

    assert error(["sim.seed=1"], ["sim.seed=2,3"]).startswith("sim.seed: given twice")


def test_sweep_grid_is_the_product_in_order():
    overrides, combos = build_study(Config(), ["risk.max_positions=1"],
                                    ["risk.max_trades_per_day=1,2", "exits.trail_gap_pct=0.01,0.02,0.03"])
    assert overrides == {"risk.max_positions": 1}
    assert [c.values for c in combos][:4] == [
        {"risk.max_trades_per_day": 1, "exits.trail_gap_pct": 0.01},
        {"risk.max_trades_per_day": 1, "exits.trail_gap_pct": 0.02},
        {"risk.max_trades_per_day": 1, "exits.trail_gap_pct": 0.03},
        {"risk.max_trades_per_day": 2, "exits.trail_gap_pct": 0.01}]
    assert len(combos) == 6 and all(c.cfg.risk.max_positions == 1 for c in combos)
    assert combos[5].cfg.risk.max_trades_per_day == 2 and combos[5].cfg.exits.trail_gap_pct == 0.03


def test_journal_names():
    t = Task(0, (date(2026, 10, 14),), Config(), None, "/x/demo.sqlite")
    assert journal_for(t, None) == Path("/x/demo.sqlite") and journal_for(t, 2) == Path("/x/demo.w2.sqlite")
    s = Task(3, (date(2026, 10, 14),), Config(), None, "/x/demo.sqlite", "s3")
    assert journal_for(s, None) == Path("/x/demo.s3.sqlite")
    assert journal_for(s, 1) == Path("/x/demo.s3.w1.sqlite")
    assert scratch_paths([t], 1) == [] and scratch_paths([t, s], 2) == [
        Path(p) for p in ("/x/demo.s3.w0.sqlite", "/x/demo.s3.w1.sqlite", "/x/demo.w0.sqlite",
                          "/x/demo.w1.sqlite")]


def test_chunks_of_days():
    assert chunk_size(5, 1) == 1 and chunk_size(20, 1) == 3 and chunk_size(20, 2) == 2
    assert chunk_size(245, 1) == 10 and chunk_size(245, 2) == 10 and chunk_size(245, 8) == 4
    assert chunk_size(0, 3) == 1


# --- the progress bar --------------------------------------------------------------------------
class TTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_after_the_delay():
    now = [0.0]
    out = TTY()
    p = Progress(10, stream=out, delay=2.0, clock=lambda: now[0])
    now[0] = 1.0
    p.update(1)
    assert out.getvalue() == ""  # a short run stays silent
    now[0] = 6.0
    p.update(3)
    assert out.getvalue().startswith("\rbacktest 3/10 days [#######-----------------]  30%")
    assert out.getvalue().endswith("0:06 elapsed, ETA 0:14")  # 6 s for 3 days: 14 s for 7 more
    p.close()
    assert out.getvalue().endswith("\n")
    pipe = io.StringIO()
    q = Progress(10, stream=pipe, delay=0, clock=lambda: now[0])
    q.update(5)
    q.close()
    assert pipe.getvalue() == ""


# --- end to end --------------------------------------------------------------------------------
def backtest(tmp_path, *args, name="j.sqlite"):
    r = run_cli("backtest", *args, "--journal", tmp_path / name, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_parallel_days_print_the_same_report(tmp_path):
    serial = backtest(tmp_path, *TWO_WEEKS, "--seed", "42", name="serial.sqlite")  # tasks of 2 days
    parallel = backtest(tmp_path, *TWO_WEEKS, "--seed", "42", "--workers", "3", name="par.sqlite")  # 1 day
    assert parallel == serial  # byte for byte
    assert "10 trading days, 5 trades, net 13676.69" in serial  # the journal's v_daily_pnl sums
    assert "max drawdown                 1,403.76 (0.14 %)" in serial
    workers = sorted(tmp_path.glob("par.w?.sqlite"))
    assert {p.name for p in workers} <= {"par.w0.sqlite", "par.w1.sqlite", "par.w2.sqlite"}
    days = []  # each day ran once, in one worker's journal
    for path in workers:
        with Journal.open_readonly(path) as j:
            days += [r[0] for r in j.query("SELECT trading_day FROM day_state")]
    assert sorted(days) == DAYS
    assert not (tmp_path / "par.sqlite").exists()  # the parallel days wrote only their own journals
    again = json.loads(backtest(tmp_path, *TWO_WEEKS, "--workers", "2", "--json", name="par.sqlite"))
    assert again["summary"]["trades"] == 5 and again["summary"]["net"] == 13676.69
    assert [d["day"] for d in again["days"]] == DAYS


def test_workers_fork_only_from_a_single_threaded_process(monkeypatch):
    """A forked worker starts with rustro imported; with another thread running (it could hold a
    lock across the fork) the pool spawns fresh interpreters instead."""
    from rustro import backtest_run
    monkeypatch.setattr(backtest_run.threading, "active_count", lambda: 1)
    assert backtest_run.pool_context().get_start_method() == "fork"
    monkeypatch.setattr(backtest_run.threading, "active_count", lambda: 2)
    assert backtest_run.pool_context().get_start_method() == "spawn"


def test_set_and_sweep_on_one_day(tmp_path):
    day = ("--from", "2026-10-14", "--to", "2026-10-14")
    one = backtest(tmp_path, *day, "--set", "risk.max_trades_per_day=1")
    assert "--set risk.max_trades_per_day=1" in one and "1 trading days, 1 trades" in one
    assert (tmp_path / "j.s0.sqlite").exists() and not (tmp_path / "j.sqlite").exists()
    # a scratch journal is replaced, not resumed: the same file now holds the day with two trades
    two = backtest(tmp_path, *day, "--set", "risk.max_trades_per_day=2")
    assert "1 trading days, 2 trades" in two
    sweep = json.loads(backtest(tmp_path, *day, "--sweep", "risk.max_trades_per_day=1,2", "--json",
                                "--workers", "2"))
    assert sweep["keys"] == ["risk.max_trades_per_day"]
    rows = [(r["rank"], r["values"]["risk.max_trades_per_day"], r["trades"]) for r in sweep["combinations"]]
    assert rows == [(1, 2, 2), (2, 1, 1)]  # ranked by net: the second trade of the day made money
    assert sweep["combinations"][0]["net"] == 9235.6
    text = backtest(tmp_path, *day, "--sweep", "risk.max_trades_per_day=1,2")
    lines = text.splitlines()
    assert lines[0] == "Sweep 2026-10-14 .. 2026-10-14, seed 42: 2 combinations, ranked by net P&L"
    assert lines[-2].split()[:4] == ["1", "2", "9,235.60", "2"]


@pytest.mark.parametrize("args, message", [
    (["--set", "risk.max_trades_per_day=0"],
     "config error: risk.max_trades_per_day: must be > 0, got 0 (from --set risk.max_trades_per_day=0)"),
    (["--sweep", "underlyings.0.strike_step=50,75"],
     "config error: underlyings[0].strike_step: must be a multiple of NIFTY's listed strike interval 50"),
    (["--set", "nope"], "config error: --set 'nope': expected KEY=VALUE"),
    (["--seed", "1", "--sweep", "sim.seed=1,2"], "config error: sim.seed: set both by --seed"),
    (["--workers", "0"], "argument --workers: must be a whole number >= 1"),
    (["--workers", "2", "--cluster", "tcp://127.0.0.1:1"], "error: --workers is for this machine"),
])
def test_bad_study_options_exit_2(tmp_path, args, message):
    r = run_cli("backtest", "--from", "2026-10-14", "--to", "2026-10-14", "--journal", tmp_path / "j.sqlite",
                *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and list(tmp_path.iterdir()) == []


def test_cluster_without_dask_says_how_to_get_it(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; from rustro.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "backtest", "--from", "2026-10-14", "--to", "2026-10-14",
                        "--journal", str(tmp_path / "j.sqlite"), "--cluster", "tcp://127.0.0.1:1"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pip install 'rustro[cluster]'" in r.stderr


def test_dask_cluster_runs_the_same_days(tmp_path):
    distributed = pytest.importorskip("distributed")
    local = backtest(tmp_path, "--from", "2026-10-13", "--to", "2026-10-15", name="local.sqlite")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = backtest(tmp_path, "--from", "2026-10-13", "--to", "2026-10-15", "--cluster",
                          cluster.scheduler_address, name="remote.sqlite")
    assert remote == local
    assert not list(tmp_path.glob("remote*"))  # the cluster's journals are its workers' scratch


def test_progress_bar_on_a_terminal_hides_the_day_logs(tmp_path):
    code = ("import sys; import rustro.progress as p; p.Progress.DELAY = 0; from rustro.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code, "backtest", "--from", "2026-10-12", "--to",
                             "2026-10-14", "--journal", str(tmp_path / "j.sqlite"), "--workers", "2"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=slave, text=False)
    os.close(slave)
    err = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        try:
            chunk = os.read(master, 4096) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        err += chunk
    out = proc.stdout.read().decode()
    assert proc.wait(timeout=120) == 0
    os.close(master)
    text = err.decode()
    assert "backtest 3/3 days [########################] 100%" in text and "ETA 0:00" in text
    assert "->" not in text  # no "pre_open -> warmup" lines tearing the bar
    assert "3 trading days, 3 trades" in out
