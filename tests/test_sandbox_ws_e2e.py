"""Rehearsal days on Angel's WebSockets against the sandbox, as a user would run them: `rustro.py
sandbox --ws-port` in one process, `rustro.py run --live --clock` with `[ws] enabled` in another.

One day on REST polling and three on sockets run side by side (the same day and seed as
test_sandbox_e2e): a clean socket day must make the same trades as the polling day with far
fewer REST requests; a day whose sockets are dropped every 30 sandbox minutes, with garbage
frames and order updates 20 s late; and a day whose market socket goes silent every other 15
minutes. Each must stay flat at the close with the journal equal to the sandbox's books.

At 200x a sandbox second is 5 ms of wall time, so the socket timings are scaled for the
rehearsal (silence after 60 sandbox seconds, ticks served up to 30 s old); the defaults in
config.toml are for a real day.
"""
import json
import re
import subprocess
import sys

import pytest

from test_sandbox_e2e import (DAY, REPO, Day, _check_day, _env, _free_port,
                              _secrets_from_banner, _wait_ready)

pytest.importorskip("websockets")
# Half test_sandbox_e2e's speed: at 400x a loaded 2-core machine shifts a decision by whole
# market minutes (each durable journal commit is seconds of sandbox time), enough for a polling
# day and a socket day to fill the same entry at different minutes' prices.
SPEED = 200

WS_CONFIG = """
[ws]
enabled = {enabled}
market_url = "ws://127.0.0.1:{port}/smart-stream"
order_url = "ws://127.0.0.1:{port}/smart-order-update"
silence_sec = 60.0
max_tick_age_sec = 30.0
order_poll_sec = 120.0
"""
# name -> (sandbox fault spec, sockets on)
PLANS = {"poll": ("", False), "ws": ("", True),
         "ws_faults": ("ws_drop:1800,ws_garbage:0.02,ws_delay:20", True),
         "ws_silent": ("ws_silence:900", True)}


def _config(dst, port: int, ws_port: int, enabled: bool) -> None:
    url = f"http://127.0.0.1:{port}"
    text = (REPO / "config.toml").read_text()
    text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{url}"', text)
    text = re.sub(r'(?m)^instrument_master_url = .*$',
                  f'instrument_master_url = "{url}/OpenAPI_File/files/OpenAPIScripMaster.json"',
                  text)
    text = text.split("\n[ws]")[0] + WS_CONFIG.format(enabled=str(enabled).lower(), port=ws_port)
    dst.write_text(text)


def _run(base, plans) -> dict:
    started, bots, files = {}, {}, []
    try:
        for name, (faults, enabled) in plans.items():
            d = base / name
            d.mkdir()
            port, ws_port = _free_port(), _free_port()
            _config(d / "config.toml", port, ws_port, enabled)
            args = [sys.executable, str(REPO / "rustro.py"), "sandbox", "--port", str(port),
                    "--ws-port", str(ws_port), "--date", DAY, "--speed", str(SPEED), "--seed",
                    "42", "--clock-file", str(d / "clock.json"), "--db",
                    str(d / "sandbox.sqlite"), "--config", str(d / "config.toml")]
            if faults:
                args += ["--faults", faults]
            out, err = open(d / "sandbox.out", "w"), open(d / "sandbox.err", "w")
            files += [out, err]
            started[name] = (subprocess.Popen(args, cwd=d, env=_env({}), stdout=out, stderr=err),
                             port)
        for name, (proc, port) in started.items():
            d = base / name
            _wait_ready(proc, d / "clock.json", port, d / "sandbox.out")
            creds = _secrets_from_banner((d / "sandbox.out").read_text())
            out, err = open(d / "bot.out", "w"), open(d / "bot.err", "w")
            files += [out, err]
            bots[name] = subprocess.Popen(
                [sys.executable, str(REPO / "rustro.py"), "run", "--live", "--clock",
                 str(d / "clock.json"), "--journal", str(d / "journal.sqlite"), "--config",
                 str(d / "config.toml")], cwd=d, env=_env(creds), stdout=out, stderr=err)
        rcs = {name: bot.wait(timeout=180) for name, bot in bots.items()}
    finally:
        for bot in bots.values():
            if bot.poll() is None:
                bot.kill()
                bot.wait(timeout=15)
        for proc, _ in started.values():
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=15)
        for f in files:
            f.close()
    return {name: Day(name, base / name, rcs[name], started[name][0].returncode,
                      *((base / name / f).read_text() for f in
                        ("sandbox.out", "sandbox.err", "bot.out", "bot.err")))
            for name in plans}


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("ws_e2e"), PLANS)


def requests_made(day: Day) -> dict:
    """REST requests per route, as the sandbox counted them (printed at its stop)."""
    m = re.search(r"sandbox: requests (\{.*\})", day.sandbox_out)
    assert m, day.sandbox_out[-2000:]
    return json.loads(m.group(1))


def pushed(day: Day) -> dict:
    m = re.search(r"sandbox: websocket (\{.*\})", day.sandbox_out)
    assert m, day.sandbox_out[-2000:]
    return json.loads(m.group(1))


def trades(day: Day) -> list:
    """What was traded: every order's tag, side, symbol and filled quantity, and each closed
    position's exit reason."""
    orders = day.journal("SELECT tag, side, symbol, filled_qty FROM orders WHERE trading_day = ? "
                         "AND filled_qty > 0 ORDER BY tag", (DAY,))
    exits = day.journal("SELECT symbol, exit_reason FROM positions WHERE trading_day = ? "
                        "ORDER BY position_id", (DAY,))
    return [orders, exits]


def test_socket_day_makes_the_same_trades_as_polling_with_far_fewer_rest_requests(days):
    poll, ws = days["poll"], days["ws"]
    _check_day(poll)
    _check_day(ws)
    assert trades(ws) == trades(poll)
    rest_poll, rest_ws = sum(requests_made(poll).values()), sum(requests_made(ws).values())
    print(f"\n[ws e2e] REST requests: polling {rest_poll}, sockets {rest_ws}; "
          f"polling {requests_made(poll)}; sockets {requests_made(ws)}; pushed {pushed(ws)}")
    assert rest_ws * 3 < rest_poll, (rest_ws, rest_poll)
    assert pushed(ws)["ticks"] > 1000 and pushed(ws)["orders"] >= 4
    assert pushed(poll)["connections"] == 0
    # the clean day never lost its sockets, and the trading loop was woken by them
    assert ws.events("ws_down") == [] and ws.events("ws_frame_error") == []


def test_dropped_sockets_garbage_and_late_order_updates_still_protect_and_match_the_books(days):
    day = days["ws_faults"]
    _check_day(day)
    assert {("ws_drop", "socket"), ("ws_garbage", "frame")} <= day.injected()
    downs = day.events("ws_down")
    assert {d["socket"] for d in downs} == {"market", "orders"}
    assert len(day.events("ws_up")) >= len(downs)
    assert day.events("ws_frame_error")
    # dropped while a position was open: it was still exited by the bot (flat, books equal)
    opens = day.journal("SELECT entry_time, exit_time FROM positions WHERE trading_day = ?",
                        (DAY,))
    down_times = [ts for (ts,) in day.journal(
        "SELECT ts FROM events WHERE trading_day = ? AND kind = 'ws_down'", (DAY,))]
    assert any(a <= t <= b for t in down_times for a, b in opens), (down_times, opens)


def test_silent_market_socket_falls_back_to_rest_and_comes_back(days):
    day, ws = days["ws_silent"], days["ws"]
    _check_day(day)
    downs = [d for d in day.events("ws_down") if d["socket"] == "market"]
    assert downs and all("no tick" in d["reason"] for d in downs)
    assert any(u["socket"] == "market" for u in day.events("ws_up"))
    # REST served while the socket was silent: more requests than the clean socket day
    assert sum(requests_made(day).values()) > sum(requests_made(ws).values())
    assert trades(day) == trades(days["poll"])
