#!/usr/bin/env python3
"""Benchmark: tick arrival -> exit order sent, on the sandbox, with `[ws] enabled`.

For each day, `rustro.py sandbox --ws-port` runs in a subprocess (its own clock, at --speed) and
the bot runs in this process on the same clock file, exactly as `run --live --clock` does, with
sockets on. Tight exits (stop 0.3 %, target 0.3 %) and relaxed entry filters over NIFTY, BANKNIFTY
and FINNIFTY make the day trade often, and nearly every exit is decided on a socket tick.

Measured, per exit decided on a tick: from the instant the bot's socket thread received the
frame (the earliest urgent frame behind the wake) to the instant the trading thread hands the
SELL to the broker client (placeOrder about to go out). That span holds the wake of the driver,
the drain, the stop evaluation, the journal commits of the exit signal and intent (durable, as
in live) and the order's validation. Printed: samples, median, p90 and worst in ms, and the REST
requests the sandbox served. Figures only: nothing here asserts a speed.

Usage: python scripts/bench_ws.py [--dates 2026-10-14,2026-10-15] [--speed 200]
"""
import argparse
import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

EXTRA = """
[ws]
enabled = true
market_url = "ws://127.0.0.1:{ws}/smart-stream"
order_url = "ws://127.0.0.1:{ws}/smart-order-update"
silence_sec = 60.0
max_tick_age_sec = 30.0
order_poll_sec = 120.0

[[underlyings]]
name = "BANKNIFTY"
spot_name = "Nifty Bank"
strike_step = 100
freeze_qty = 900

[[underlyings]]
name = "FINNIFTY"
spot_name = "Nifty Fin Service"
strike_step = 50
freeze_qty = 1800
"""
TIGHT = {"stop_loss_pct": "0.003", "target_pct": "0.003", "trail_activate_pct": "0.5",
         "max_trades_per_day": "60", "reentry_cooldown_min": "0", "use_vwap_filter": "false",
         "hourly_adx_threshold": "5.0", "daily_adx_threshold": "5.0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, port: int, ws_port: int) -> None:
    text = (REPO / "config.toml").read_text().split("\n[ws]")[0]
    url = f"http://127.0.0.1:{port}"
    text = re.sub(r'(?m)^base_url = .*$', f'base_url = "{url}"', text)
    text = re.sub(r'(?m)^instrument_master_url = .*$',
                  f'instrument_master_url = "{url}/OpenAPI_File/files/OpenAPIScripMaster.json"',
                  text)
    for key, value in TIGHT.items():
        text = re.sub(rf'(?m)^{key} = \S+', f"{key} = {value}", text)
    path.write_text(text + EXTRA.format(ws=ws_port))


def run_day(d: Path, day: str, speed: float) -> tuple[list[float], str]:
    from rustro.app import run_day as bot_day
    from rustro.broker.base import SELL
    from rustro.config import load_config
    from rustro.credentials import Secrets
    from rustro.desk import build_desk
    port, ws_port = free_port(), free_port()
    write_config(d / "config.toml", port, ws_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTAPI_")}
    out = open(d / "sandbox.out", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "rustro.py"), "sandbox", "--port",
                             str(port), "--ws-port", str(ws_port), "--date", day, "--speed",
                             str(speed), "--clock-file", str(d / "clock.json"), "--db",
                             str(d / "sandbox.sqlite"), "--config", str(d / "config.toml")],
                            cwd=d, env=env, stdout=out, stderr=subprocess.DEVNULL)
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 30
        while not re.search(r"export SMARTAPI_TOTP_SECRET", (d / "sandbox.out").read_text()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("sandbox did not start:\n" + (d / "sandbox.out").read_text())
            time.sleep(0.05)
        found = dict(re.findall(r"export SMARTAPI_([A-Z_]+)=(\S+)",
                                (d / "sandbox.out").read_text()))
        secrets = Secrets(found["API_KEY"], found["CLIENT_CODE"], found["MPIN"],
                          found["TOTP_SECRET"])

        def measured_desk(svc, day_, secrets_):
            build_desk(svc, day_, secrets_)
            hub, broker = svc.extra["stream"], svc.broker
            place = broker.place_order

            def timed(req):
                if req.side == SELL and hub.reacting and hub.trigger_mono is not None:
                    latencies.append((time.monotonic() - hub.trigger_mono) * 1000)
                return place(req)
            broker.place_order = timed

        cfg = load_config(d / "config.toml")
        bot_day(cfg, "live", d / "journal.sqlite", None, None, secrets,
                build_desk=measured_desk, clock_file=str(d / "clock.json"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        out.close()
    m = re.search(r"sandbox: requests (\{.*\})", (d / "sandbox.out").read_text())
    return latencies, m.group(1) if m else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", default="2026-10-14,2026-10-15,2026-10-16")
    ap.add_argument("--speed", type=float, default=200.0)
    ap.add_argument("--keep", help="keep each day's journal and sandbox files in this directory")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for day in args.dates.split(","):
            date.fromisoformat(day)
            d = Path(tmp) / day
            d.mkdir()
            got, requests = run_day(d, day, args.speed)
            samples += got
            print(f"{day}: {len(got)} exits on a tick; REST requests {requests}", flush=True)
    if not samples:
        raise SystemExit("no exit was decided on a tick")
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
    print(f"tick arrival -> exit order sent: {len(samples)} samples, median "
          f"{statistics.median(samples):.1f} ms, p90 {p90:.1f} ms, worst {samples[-1]:.1f} ms "
          f"(speed {args.speed:g}x)")


if __name__ == "__main__":
    main()
