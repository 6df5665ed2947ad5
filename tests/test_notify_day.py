"""Acceptance: a whole simulated day (seed 42) with [notify] pointing at a local receiver tells
every listed kind of event, in the order they happened, with no secret: the day start, entry and
exit fills, a job error streak (once) and its end, a crash and the restart, a reconciliation
mismatch with its breaker trip and halt, and the day summary. A hanging receiver delays no job
by as much as one send timeout. And `rustro.py run` wires it all from config.toml."""
import dataclasses
import json
import re

from rustro.app import run_day
from rustro.config import Config, NotifyConfig
from rustro.credentials import Secrets
from rustro.desk import build_desk
from rustro.journal import Journal

from conftest import run_cli
from receiver import Receiver
from test_safety_controls import DAY, sell_behind_the_bots_back

SECRETS = Secrets("day-key-Q7f3Lx", "DAYC0DE9", "8642", "JBSWY3DPEHPK3PXPDAYTOTP")


class SimulatedCrash(BaseException):
    """Not an Exception: no job handler catches it, like a SIGKILL between two jobs."""


def notify_cfg(rcv, **kw) -> Config:
    n = dataclasses.replace(NotifyConfig(), urls=(rcv.url,), timeout_sec=2.0, max_per_minute=600,
                            heartbeat_url=rcv.http_url + "/hb/5f1e2d3c-heartbeat", **kw)
    return dataclasses.replace(Config(), notify=n)


def forced_trouble(state: dict):
    """build_desk that (1) fails the two monitor ticks after the first exit, (2) crashes at the
    12:15 hourly close, (3) sells half the bot's position behind its back after the restart."""
    def build(svc, day, secrets):
        build_desk(svc, day, secrets)
        desk = svc.desk
        real_rec, real_monitor, real_hourly = desk.rec, desk.on_monitor, desk.on_hourly_close

        def rec(kind, payload):
            real_rec(kind, payload)
            if kind == "position_closed" and "failing" not in state:
                state["failing"] = 2

        def on_monitor(tday):
            if state.get("failing", 0) > 0:
                state["failing"] -= 1
                raise RuntimeError("test: forced monitor failure")
            real_monitor(tday)
            if state.get("crashed") and "sold" not in state and len(desk.book) \
                    and tday.machine.state == "managing":
                state["sold"] = sell_behind_the_bots_back(svc, 325, "manual-sell-n")

        def on_hourly_close(tday):
            if svc.clock.now().hour >= 12 and "crashed" not in state:
                state["crashed"] = svc.clock.now()
                raise SimulatedCrash()
            real_hourly(tday)
        desk.rec, desk.on_monitor, desk.on_hourly_close = rec, on_monitor, on_hourly_close
    return build


def head(title: str) -> str:
    """A title without its symbol and amount: 'SELL NIFTY...CE +Rs 5.00' -> 'SELL'."""
    title = re.sub(r" [+-]Rs [\d,.]+$", "", title)
    return title.split(" ")[0] if title.startswith(("BUY ", "SELL ")) else title


def run(cfg, path, builder):
    return run_day(cfg, "sim", path, DAY, 42, SECRETS, build_desk=builder)


def test_a_day_tells_every_kind_in_order_without_secrets(tmp_path):
    path, state = tmp_path / "journal.sqlite", {}
    with Receiver() as r:
        cfg = notify_cfg(r)
        try:
            run(cfg, path, forced_trouble(state))
            raise AssertionError("the forced crash did not happen")
        except SimulatedCrash:
            pass
        res = run(cfg, path, forced_trouble(state))
        assert res.state == "closed" and "sold" in state
        msgs = r.messages()
        pings = [q for q in r.requests if q["method"] == "GET"]
    got = [(m["title"].split(": ", 1)[1], m["message"]) for m in msgs]
    heads = [head(t) for t, _ in got]
    assert heads == [
        "day start (sim)", "BUY", "SELL",                       # the morning's trade
        "job monitor failed", "job monitor ok again",           # a streak of two: told once
        "restarted",                                            # after the crash at 12:15
        "BUY",                                                  # the afternoon's entry
        "broker mismatch", "breaker broker_mismatch tripped", "HALTED",  # the sale behind its back
        "broker mismatch",  # the bot sold what the broker still held; the journal keeps 325 open
        "day summary",
    ], got
    bodies = dict(zip(heads, (b for _, b in got)))  # the last of each head
    assert bodies["day start (sim)"] == ("sim day 2026-10-14: capital Rs 1,000,000.00 (config); "
                                         "underlyings NIFTY")
    assert bodies["restarted"].startswith("restarted after a crash")
    assert "journal 650, broker 325 (quantity_mismatch)" in got[7][1]
    assert "journal 325, broker 0 (missing_at_broker)" in got[10][1]
    assert re.fullmatch(r"entry filled: BUY NIFTY\S+CE x650 @ \d+\.\d\d \(NIFTY CE entry\); "
                        r"stop \d+\.\d\d", got[1][1])
    assert re.fullmatch(r"exit filled: SELL NIFTY\S+ x650 @ \d+\.\d\d, reason \w+; P&L net [+-]Rs .*",
                        got[2][1])
    assert bodies["day summary"].startswith("day 2026-10-14 closed (sim): 1 trade(s), 1 won")
    assert bodies["day summary"].endswith("1 position(s) STILL OPEN")
    text = json.dumps(msgs)
    for value in (SECRETS.api_key, SECRETS.client_code, SECRETS.mpin, SECRETS.totp_secret):
        assert value not in text
    assert len(pings) >= 2 and all(p["path"] == "/hb/5f1e2d3c-heartbeat" for p in pings)  # each run
    with Journal.open_readonly(path) as j:
        assert j.query("SELECT COUNT(*) FROM events WHERE kind LIKE 'notify_%'")[0][0] == 0


def test_a_hanging_receiver_delays_no_job(tmp_path):
    """Every send hangs until its 2 s timeout; the day's longest job (journaled in day_summary)
    stays far below one timeout, and the run's end waits at most two timeouts for the sender."""
    import time
    path = tmp_path / "journal.sqlite"
    with Receiver("hang") as r:
        t0 = time.monotonic()
        res = run(notify_cfg(r), path, build_desk)
        took = time.monotonic() - t0
    assert res.state == "closed"
    with Journal.open_readonly(path) as j:
        longest = j.events(kinds=("day_summary",))[0].payload["longest_job"]
        failed = [e.payload for e in j.events(kinds=("notify_failed",))]
        dropped = [e.payload for e in j.events(kinds=("notify_dropped",))]
    print(f"\n[notify] hanging receiver: longest job {longest['wall_sec'] * 1000:.1f} ms "
          f"({longest['job']}), whole run {took:.2f} s")
    assert longest["wall_sec"] < 2.0 / 2  # half a send timeout: generous for this machine
    assert failed and all(f["target"] in ("json://127.0.0.1", "http://127.0.0.1") for f in failed)
    assert any(d.get("unsent_at_exit") for d in dropped)


def test_cli_run_sends_from_config_toml_with_secrets_in_the_env(tmp_path):
    env = {"SMARTAPI_API_KEY": SECRETS.api_key, "SMARTAPI_CLIENT_CODE": SECRETS.client_code,
           "SMARTAPI_MPIN": SECRETS.mpin, "SMARTAPI_TOTP_SECRET": SECRETS.totp_secret}
    with Receiver() as r:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[notify]\nurls = ["{r.url}"]\nheartbeat_url = "{r.http_url}/hb/abcdef12"\n'
                       f'[log]\nformat = "json"\n')
        res = run_cli("run", "--sim", "--date", DAY, "--quiet", "--config", cfg,
                      "--journal", tmp_path / "j.sqlite", env_extra=env, cwd=tmp_path)
        titles = [m["title"] for m in r.messages()]
        paths = [q["path"] for q in r.requests if q["method"] == "GET"]
    assert res.returncode == 0, res.stderr
    assert titles[0] == "rustro 2026-10-14: day start (sim)" and "day summary" in titles[-1]
    assert paths and paths[0] == "/hb/abcdef12"
    lines = [json.loads(line) for line in res.stderr.splitlines()]  # every line one JSON object
    assert {line["level"] for line in lines} <= {"INFO", "WARNING"} and lines
    for value in env.values():
        assert value not in res.stderr + res.stdout + str(r.requests)
