"""`python rustro.py sandbox`: assemble the sandbox, publish its clock, serve until a signal.

The shared clock file is what `run --live --clock FILE` reads (rustro.app.load_clock_file), so the
bot and the sandbox agree on one accelerated virtual day over real HTTP.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..broker import ratelimit as rl
from ..calendar import TradingCalendar, at
from ..clock import AcceleratedClock, Clock, WallClock
from ..config import Config
from ..credentials import Secrets
from .auth import TokenStore, choose_credentials, export_lines
from .faults import FaultPlan, FaultSpec, FaultSpecError, parse_faults
from .limits import RateGate
from .routes import MASTER_PATH, ROUTE_NAMES, Exchange
from .server import SandboxApp, SandboxServer

EXIT_OK, EXIT_USAGE = 0, 2
JITTER_WALL_SEC = 0.02   # wall-time jitter forgiven by the rate gate (scaled by the speed)


@dataclass
class Sandbox:
    app: SandboxApp
    exchange: Exchange
    creds: Secrets

    def close(self) -> None:
        self.exchange.close()


def build_sandbox(cfg: Config, clock: Clock, seed: int, db_path: str | Path,
                  faults: FaultSpec | str = "", creds: Secrets | None = None,
                  calendar: TradingCalendar | None = None, rate_slack: float = 0.0,
                  store: str | Path | None = None) -> Sandbox:
    """Everything behind the HTTP server: market, paper exchange, tokens, rate gate, faults.
    `store`: serve the days recorded or imported in this market-data store, not synthetic ones."""
    from ..market.synthetic import SyntheticMarket
    if isinstance(faults, str):
        faults = parse_faults(faults, ROUTE_NAMES)
    cal = calendar or TradingCalendar.from_config(cfg)
    if store is not None:  # issue 11
        from .recorded import recorded_market
        market = recorded_market(store, clock)
    else:
        market = SyntheticMarket(clock, seed, underlyings=[u.name for u in cfg.underlyings],
                                 calendar=cal)
    exchange = Exchange(cfg, clock, market, cal, db_path, seed, faults.partial_fill_prob,
                        faults.book_lag_sec)
    creds = creds or choose_credentials(Secrets())[0]
    app = SandboxApp(creds, exchange, TokenStore(clock, faults.ag8001_after),
                     RateGate(clock, rl.default_limits(cfg.broker.quote_per_sec), slack=rate_slack),
                     FaultPlan(faults, seed))
    return Sandbox(app, exchange, creds)


def sandbox_day(cal: TradingCalendar, requested: date | None, today: date) -> date:
    """The day to run: the one asked for, else today if it trades, else the next trading day."""
    if requested is not None:
        if not cal.is_trading_day(requested):
            raise ValueError(f"--date {requested} is not a trading day ({cal.closed_reason(requested)})")
        return requested
    return today if cal.is_trading_day(today) else cal.next_trading_day(today)


def write_clock_file(path: str | Path, clock: AcceleratedClock) -> None:
    """{"start", "wall_epoch", "factor"}, written atomically so a reader never sees half of it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"start": clock.start.isoformat(), "wall_epoch": clock.wall_epoch,
                               "factor": clock.factor}))
    os.replace(tmp, path)


def main(cfg: Config, args) -> int:
    cal = TradingCalendar.from_config(cfg)
    try:
        day = sandbox_day(cal, args.date, WallClock().now().date())
        if not args.speed > 0:
            raise ValueError(f"--speed must be > 0, got {args.speed}")
        faults = parse_faults(args.faults, ROUTE_NAMES)
        store = getattr(args, "store", None)
        if store:  # issue 11: a recorded or imported day, which must be in the store
            from .recorded import check_day
            check_day(store, day)
    except (ValueError, FaultSpecError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return EXIT_USAGE
    env = Secrets.from_env()
    creds, from_env = choose_credentials(env)
    clock = AcceleratedClock(at(day, cfg.session.pre_open), args.speed)
    sandbox = build_sandbox(cfg, clock, args.seed, args.db, faults, creds, cal,
                            rate_slack=JITTER_WALL_SEC * args.speed, store=store or None)
    try:
        server = SandboxServer(sandbox.app, args.port)
    except OSError as exc:
        sandbox.close()
        print(f"sandbox: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    sockets = _sockets(sandbox, clock, getattr(args, "ws_port", None))
    if sockets is False:
        server.server_close()
        sandbox.close()
        return EXIT_USAGE
    write_clock_file(args.clock_file, clock)
    source = f"recorded market from {store}" if store else f"seed {args.seed}"
    print(f"sandbox: SmartAPI at {server.url} (market {day} from {cfg.session.pre_open:%H:%M} IST, "
          f"{args.speed:g}x, {source}); clock file {args.clock_file}", flush=True)
    print(f"  bot config: [broker] base_url = \"{server.url}\", instrument_master_url = "
          f"\"{server.url}{MASTER_PATH}\"; then: python rustro.py run --live --clock "
          f"{args.clock_file}", flush=True)
    if from_env:
        print("  credentials: the SMARTAPI_* values from the environment / .env", flush=True)
    else:
        print("  credentials: sandbox defaults; to rehearse, export:", flush=True)
        for line in export_lines(creds):
            print(f"    {line}", flush=True)
    if sockets:
        print(f"  websockets: [ws] market_url = \"{sockets.url}/smart-stream\", order_url = "
              f"\"{sockets.url}/smart-order-update\"", flush=True)
    if not faults.empty:
        print(f"  faults: {args.faults}", flush=True)
    return _serve(server, sandbox, sockets or None)


def _sockets(sandbox: Sandbox, clock, port: int | None):
    """The WebSocket server when --ws-port is given (None if not; False if it cannot start)."""
    if port is None:
        return None
    try:
        from .ws import SocketServer
        return SocketServer(sandbox.app, clock, port)
    except ImportError:
        print("sandbox: --ws-port needs the 'websockets' package: pip install 'rustro[ws]'",
              file=sys.stderr)
    except OSError as exc:
        print(f"sandbox: cannot listen on 127.0.0.1:{port}: {exc.strerror}", file=sys.stderr)
    return False


def _serve(server: SandboxServer, sandbox: Sandbox, sockets=None) -> int:
    stop = threading.Event()
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        if sockets is not None:
            sockets.start()
        while not stop.wait(0.2):
            pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if sockets is not None:
            sockets.stop()
        server.stop()
        sandbox.close()
    # what the bot asked of the sandbox: REST requests per route, WebSocket frames pushed
    print("sandbox: requests " + json.dumps(dict(sorted(sandbox.app.calls.items()))), flush=True)
    if sockets is not None:
        print("sandbox: websocket " + json.dumps(sockets.counts), flush=True)
    print("sandbox: stopped", flush=True)
    return EXIT_OK
