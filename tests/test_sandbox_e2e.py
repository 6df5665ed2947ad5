"""End to end, exactly as a user would: `rustro.py sandbox` in one process, `rustro.py run --live
--clock` in another, a whole accelerated trading day over real HTTP, then the journal and the
sandbox's books must agree to the fill.

Two days run side by side (a clean one and one with injected faults) to keep the file near a
minute: 2026-10-14 with seed 42 trades twice in sim. At SPEED the 09:00-15:30 day takes ~59 s.
"""
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest

REPO = Path(__file__).resolve().parent.parent
DAY = "2026-10-14"
SPEED = 400
FAULTS = "empty:placeOrder:0.3,5xx:getOrderBook:0.1,html:quote:0.05,ag8001_after:60,partial:0.5"
MASTER = "/OpenAPI_File/files/OpenAPIScripMaster.json"
# Non-default credentials for the clean day, given to the sandbox through the environment.
ENV_SECRETS = {"SMARTAPI_API_KEY": "e2e-key-7Qm2", "SMARTAPI_CLIENT_CODE": "E2E90210",
               "SMARTAPI_MPIN": "e2eQ", "SMARTAPI_TOTP_SECRET": pyotp.random_base32()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTAPI_")}
    env.update(extra)
    return env


def _config(src: Path, dst: Path, port: int) -> None:
    """config.toml with the broker pointed at the sandbox (and nothing else changed)."""
    url = f"http://127.0.0.1:{port}"
    text, n = re.subn(r'(?m)^base_url = .*$', f'base_url = "{url}"', src.read_text())
    text, m = re.subn(r'(?m)^instrument_master_url = .*$',
                      f'instrument_master_url = "{url}{MASTER}"', text)
    assert (n, m) == (1, 1), "config.toml no longer has [broker] base_url / instrument_master_url"
    dst.write_text(text)


def _wait_ready(proc, clock_file: Path, port: int, out: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sandbox exited early:\n{out.read_text()}"
        if clock_file.exists():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"sandbox not ready after {timeout}s:\n{out.read_text()}")


@dataclass
class Day:
    dir: Path
    bot_rc: int
    sandbox_rc: int
    sandbox_out: str
    sandbox_err: str
    bot_out: str
    bot_err: str

    def journal(self, sql, args=()):
        with sqlite3.connect(self.dir / "journal.sqlite") as c:
            return c.execute(sql, args).fetchall()

    def sandbox(self, sql, args=()):
        with sqlite3.connect(self.dir / "sandbox.sqlite") as c:
            return c.execute(sql, args).fetchall()


def _start(d: Path, faults: str, env_secrets: dict | None):
    d.mkdir()
    port = _free_port()
    _config(REPO / "config.toml", d / "config.toml", port)
    args = [sys.executable, str(REPO / "rustro.py"), "sandbox", "--port", str(port), "--date", DAY,
            "--speed", str(SPEED), "--seed", "42", "--clock-file", str(d / "clock.json"),
            "--db", str(d / "sandbox.sqlite"), "--config", str(d / "config.toml")]
    if faults:
        args += ["--faults", faults]
    out, err = open(d / "sandbox.out", "w"), open(d / "sandbox.err", "w")
    proc = subprocess.Popen(args, cwd=d, env=_env(env_secrets or {}), stdout=out, stderr=err)
    return proc, port, (out, err)


def _secrets_from_banner(text: str) -> dict:
    """The `export SMARTAPI_...=...` lines the sandbox printed for a user to copy."""
    found = dict(re.findall(r"export (SMARTAPI_[A-Z_]+)=(\S+)", text))
    assert len(found) == 4, text
    return found


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Run the clean day and the faulty day at the same time; results once both are done."""
    base = tmp_path_factory.mktemp("e2e")
    plans = {"clean": ("", ENV_SECRETS), "faults": (FAULTS, None)}
    started = {name: _start(base / name, faults, secrets)
               for name, (faults, secrets) in plans.items()}
    bots = {}
    try:
        for name, (proc, port, files) in started.items():
            d = base / name
            _wait_ready(proc, d / "clock.json", port, d / "sandbox.out")
            creds = plans[name][1] or _secrets_from_banner((d / "sandbox.out").read_text())
            bots[name] = subprocess.Popen(
                [sys.executable, str(REPO / "rustro.py"), "run", "--live", "--clock",
                 str(d / "clock.json"), "--journal", str(d / "journal.sqlite"),
                 "--config", str(d / "config.toml")],
                cwd=d, env=_env(creds), stdout=open(d / "bot.out", "w"),
                stderr=open(d / "bot.err", "w"))
        rcs = {name: bot.wait(timeout=150) for name, bot in bots.items()}
    finally:
        for bot in bots.values():
            if bot.poll() is None:
                bot.kill()
        for proc, _, files in started.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            for f in files:
                f.close()
    return {name: Day(base / name, rcs[name], started[name][0].returncode,
                      *((base / name / f).read_text() for f in
                        ("sandbox.out", "sandbox.err", "bot.out", "bot.err")))
            for name in plans}


def _check_day(day: Day) -> None:
    """What must hold after any rehearsal, faults or not."""
    assert day.bot_rc == 0, day.bot_err[-3000:]
    assert day.sandbox_rc == 0 and "sandbox: stopped" in day.sandbox_out, day.sandbox_err[-2000:]
    assert day.journal("SELECT state FROM day_state WHERE trading_day = ?", (DAY,)) == [("closed",)]
    # flat on both sides
    assert day.journal("SELECT position_id FROM positions WHERE status != 'closed' "
                       "OR open_qty != 0") == []
    assert day.sandbox("SELECT token, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) AS net "
                       "FROM fills GROUP BY token HAVING net != 0") == []
    # the journal's orders and fills are the sandbox's, exactly
    journal_orders = day.journal("SELECT tag, broker_order_id, side, qty, filled_qty, status "
                                 "FROM orders WHERE trading_day = ? ORDER BY tag", (DAY,))
    sandbox_orders = day.sandbox("SELECT tag, order_id, side, qty, filled_qty, status FROM orders "
                                 "WHERE trading_day = ? ORDER BY tag", (DAY,))
    assert journal_orders == sandbox_orders
    journal_fills = day.journal("SELECT fill_id, broker_order_id, side, qty, price FROM fills "
                                "WHERE trading_day = ? ORDER BY fill_id", (DAY,))
    sandbox_fills = day.sandbox("SELECT fill_id, order_id, side, qty, price FROM fills "
                                "WHERE trading_day = ? ORDER BY fill_id", (DAY,))
    assert journal_fills == sandbox_fills
    # no tag was ever placed twice
    assert day.sandbox("SELECT tag FROM orders GROUP BY tag HAVING COUNT(*) > 1") == []
    # and the bot really traded: at least one entry and one exit filled
    filled = dict(day.journal("SELECT purpose, SUM(filled_qty) FROM orders WHERE trading_day = ? "
                              "GROUP BY purpose", (DAY,)))
    assert filled.get("entry", 0) > 0 and filled.get("exit", 0) == filled["entry"]
    assert day.journal("SELECT COUNT(*) FROM positions WHERE status = 'closed'")[0][0] >= 1


def test_clean_rehearsal_day_matches_the_sandbox_books(days):
    day = days["clean"]
    _check_day(day)
    assert "credentials: the SMARTAPI_* values from the environment" in day.sandbox_out
    for value in ENV_SECRETS.values():
        assert value not in day.sandbox_out + day.sandbox_err
        assert value not in day.bot_out + day.bot_err
    assert "sandbox fault" not in day.sandbox_err
    assert day.journal("SELECT COUNT(*) FROM events WHERE kind = 'login'")[0][0] == 1


def test_faulty_rehearsal_day_still_flat_consistent_and_never_double_placed(days):
    day = days["faults"]
    _check_day(day)
    assert f"faults: {FAULTS}" in day.sandbox_out
    injected = re.findall(r"sandbox fault: (\S+) on (\S+)", day.sandbox_err)
    assert ("empty", "placeOrder") in injected   # seeded: the second placeOrder loses its reply
    assert {("5xx", "getOrderBook"), ("html", "quote")} & set(injected)
    # the lost reply was resolved from the order book by tag, never by sending again
    assert day.journal("SELECT COUNT(*) FROM events WHERE kind = 'broker_error' "
                       "AND json_extract(payload, '$.error') = 'AmbiguousOrder' "
                       "AND json_extract(payload, '$.resolved') = 1")[0][0] >= 1
    # tokens died every 60 calls and the bot refreshed and carried on
    assert day.journal("SELECT COUNT(*) FROM events WHERE kind = 'token_refreshed'")[0][0] >= 5
    # partial fills happened and were journaled fill by fill
    assert day.sandbox("SELECT order_id FROM fills GROUP BY order_id HAVING COUNT(*) > 1") != []
