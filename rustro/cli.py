"""Command line: run, status, check-config, journal verify|backup, halt, doctor.

Exit codes: 0 ok; 2 bad configuration or usage; 3 journal refused (locked, corrupt, missing, not a
rustro journal, unreadable or read-only, disk full);
4 the day ran but journaled job errors (a login the broker refused is one); 5 the run cannot
start as asked (credentials missing for paper/live, --date outside sim, a bad --clock file);
6 the disk filled mid-day: the reserve was released, positions flattened, the run stopped.
`doctor` exits 1 when any check FAILs (0 with only OK and WARN lines).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from pathlib import Path

EXIT_OK, EXIT_CONFIG, EXIT_JOURNAL, EXIT_JOB_ERRORS, EXIT_BROKER = 0, 2, 3, 4, 5
EXIT_DISK_FULL = 6


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _backtest_args(bt: argparse.ArgumentParser) -> None:
    bt.add_argument("--from", dest="start", type=_date, required=True, help="first day, YYYY-MM-DD")
    bt.add_argument("--to", dest="end", type=_date, required=True, help="last day, YYYY-MM-DD")
    bt.add_argument("--seed", type=int, help="synthetic market seed, default sim.seed")
    bt.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    bt.add_argument("--out", metavar="DIR", help="also write an interactive HTML report in DIR "
                    "(needs plotly: pip install 'rustro[report]')")
    bt.add_argument("--workers", type=_positive, default=1, metavar="N",
                    help="run the days on N processes, each with its own journal <journal>.w<k>")
    bt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (dotted path, TOML value), e.g. risk.max_trades_per_day=2")
    bt.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                    help="run every combination of these values and rank them by net P&L")
    bt.add_argument("--data", default="synthetic", metavar="synthetic|store[:PATH]",
                    help="market data: the synthetic market (default), or the market-data store "
                    "(default <journal>.market.sqlite; see `rustro data`)")
    bt.add_argument("--fill-missing", default="none", choices=("none", "model"),
                    help="a missing option quote in the store: a data gap, no entry (none, default), "
                    "or a Black-76 price from the index and VIX, flagged on every trade (model)")
    bt.add_argument("--cluster", metavar="ADDRESS", help="run the days on an existing Dask cluster, "
                    "e.g. tcp://10.0.0.5:8786 (pip install 'rustro[cluster]')")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rustro", description="Intraday index-options bot for Angel One "
                                "SmartAPI. With no credentials it runs a simulated day (sim).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp, journal=True):
        sp.add_argument("--config", default="config.toml", help="config file (default: config.toml)")
        if journal:
            sp.add_argument("--journal", default=None, help="journal file (default: bot.journal in config)")

    run = sub.add_parser("run", help="run one trading day (sim by default without credentials)")
    common(run)
    modes = run.add_mutually_exclusive_group()
    modes.add_argument("--sim", dest="mode", action="store_const", const="sim",
                       help="synthetic market, paper fills, virtual clock (a day in seconds)")
    modes.add_argument("--paper", dest="mode", action="store_const", const="paper",
                       help="live Angel One data, paper fills")
    modes.add_argument("--live", dest="mode", action="store_const", const="live",
                       help="live Angel One data and real orders")
    run.add_argument("--date", type=_date, help="trading day to simulate (sim only), YYYY-MM-DD")
    run.add_argument("--seed", type=int, help="synthetic market seed (sim), default sim.seed")
    run.add_argument("--quiet", action="store_true", help="do not print the status tables at the end")
    run.add_argument("--clock", metavar="FILE", help="shared accelerated clock file written by "
                     "`rustro sandbox` (rehearse a live day against the local sandbox)")

    bt = sub.add_parser("backtest", help="simulate consecutive trading days on the synthetic market")
    common(bt)
    _backtest_args(bt)

    st = sub.add_parser("status", help="print the day's state, positions, orders, fills, P&L and risk")
    common(st)
    st.add_argument("--day", type=_date, help="trading day, YYYY-MM-DD (default: the latest journaled)")
    st.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    cc = sub.add_parser("check-config", help="validate the config file and print the effective values")
    common(cc, journal=False)

    jv = sub.add_parser("journal", help="journal maintenance")
    jsub = jv.add_subparsers(dest="journal_command", required=True, metavar="ACTION")
    ver = jsub.add_parser("verify", help="integrity check and rebuild every derived table from events")
    common(ver)
    bk = jsub.add_parser("backup", help="copy the journal to PATH (a new file, or a directory) through "
                         "SQLite's online backup API, safe while the bot runs; the copy is verified")
    bk.add_argument("path", metavar="PATH", help="a new file (never overwritten) or an existing directory")
    common(bk)

    sb = sub.add_parser("sandbox", help="serve a local SmartAPI sandbox (synthetic market, paper "
                        "matching) on 127.0.0.1 for rehearsals and end-to-end tests")
    sb.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (default 8765)")
    sb.add_argument("--faults", default="", help="comma-separated KIND:ROUTE:PROB (timeout|5xx|html|"
                    "empty|reject|lost), ag8001_after:N, partial:P, lag:N (books show an order N s "
                    "late), e.g. 'timeout:placeOrder:0.1,lost:*:0.05,ag8001_after:40,lag:2'")
    sb.add_argument("--date", type=_date, help="trading day the sandbox market runs (default: today)")
    sb.add_argument("--speed", type=float, default=1.0, help="virtual seconds per wall second")
    sb.add_argument("--seed", type=int, default=42, help="synthetic market seed")
    sb.add_argument("--store", help="serve the --date recorded or imported in this market-data "
                    "store (rustro data / [store] record) instead of the synthetic market")
    sb.add_argument("--clock-file", default="sandbox.clock.json", help="where the shared clock is written")
    sb.add_argument("--db", default="sandbox.paper.sqlite", help="the sandbox's own order database")
    sb.add_argument("--config", default="config.toml", help="config file (underlyings, freeze qty)")
    sb.add_argument("--ws-port", type=int, default=None, help="also serve Angel's two WebSockets "
                    "(market data, order updates) on this port (0 = any free port); faults "
                    "ws_drop:N, ws_silence:N, ws_garbage:P, ws_delay:N")

    rp = sub.add_parser("replay", help="run a recorded paper or live day again on its recorded "
                        "market data and the paper broker; print recorded vs replayed decisions")
    rp.add_argument("--day", type=_date, required=True, help="the recorded trading day, YYYY-MM-DD")
    rp.add_argument("--journal", required=True, help="the recorded day's journal (only read)")
    rp.add_argument("--store", help="market-data store (default: <journal>.market.sqlite)")
    rp.add_argument("--out", help="the replay's new journal (default <journal>.replay-<day>.sqlite)")
    rp.add_argument("--seed", type=int, help="paper broker seed (default sim.seed)")
    rp.add_argument("--width", type=int, default=70, help="column width of the side-by-side table")
    rp.add_argument("--config", default="config.toml", help="config file (default: config.toml)")

    from .data_cli import add_parser as data_parser  # issue 11
    data_parser(sub, _date)

    halt = sub.add_parser("halt", help="kill switch: the running bot exits all positions and halts")
    common(halt)

    doc = sub.add_parser("doctor", help="check this machine before a trading day (OK / WARN / FAIL "
                         "lines; exit 1 on any FAIL)")
    common(doc)
    dmodes = doc.add_mutually_exclusive_group()
    for name in ("sim", "paper", "live"):
        dmodes.add_argument(f"--{name}", dest="mode", action="store_const", const=name,
                            help=f"check for a {name} day (default: the mode `run` would choose)")
    return p


def _load(args):
    from .config import load_config
    cfg = load_config(args.config)
    given = getattr(args, "journal", None)
    if args.command in ("run", "halt"):  # they write beside the journal: refuse a bad path first
        if given is not None:
            _check_journal_path("--journal", given)
        else:
            _check_journal_path("bot.journal", cfg.bot.journal)
    journal = Path(given) if given else Path(cfg.bot.journal)
    if args.command == "run" and cfg.paper.db:  # relative: beside the journal (app.paper_db_path)
        db = Path(cfg.paper.db)
        _check_journal_path("paper.db", str(db if db.is_absolute() else journal.parent / db))
    return cfg, journal


def _check_journal_path(key: str, text: str) -> None:
    """A journal (or paper db) path `run` or `halt` can use: a file name in an existing directory.
    A bad one is a usage error (exit 2, one line naming --journal, bot.journal or paper.db), raised
    before anything is created; exit 3 stays for a journal opened and refused (locked, corrupt)."""
    from .config import ConfigError
    path = Path(text)
    if not text.strip() or "\0" in text or path.name in ("", ".", ".."):
        raise ConfigError(f"{key}: must name a file, got {text!r}")
    if path.is_dir():
        raise ConfigError(f"{key}: {path} is a directory; name a file inside it")
    if not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        raise ConfigError(f"{key}: directory {path.parent} {what} (create it first), got {text!r}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .config import ConfigError
    from .journal import JournalError
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("transitions", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command in ("status", "journal") and getattr(args, "journal", None):
            # a read-only look at a named journal needs no config (run from any directory)
            if args.command == "status":
                return _status(Path(args.journal), args.day, args.json)
            return _journal_action(args, Path(args.journal))
        if args.command == "doctor":
            return _doctor(args)
        cfg, journal_path = _load(args)
        logging.getLogger().setLevel(cfg.bot.log_level)
        from .credentials import Secrets
        from .logs import setup as setup_logs
        setup_logs(cfg, Secrets.from_env())  # [log] format and level; secrets masked in every line
        if args.command == "data":  # issue 11
            from .data_cli import main as data_main
            return data_main(cfg, journal_path, args)
        if args.command == "replay":  # issue 11
            from .replay import main as replay_main
            return replay_main(cfg, args)
        if args.command == "sandbox":
            from .sandbox import main as sandbox_main
            return sandbox_main(cfg, args)
        if args.command == "backtest":
            return _backtest(cfg, journal_path, args)
        if args.command == "check-config":
            return _check_config(cfg, args.config)
        if args.command == "status":
            return _status(journal_path, args.day, args.json)
        if args.command == "journal":
            return _journal_action(args, journal_path)
        if args.command == "halt":
            kill = journal_path.with_name("KILL")
            try:
                kill.write_text("halt requested from the command line\n")
            except OSError as exc:
                print(f"error: cannot write {kill}: {exc.strerror or exc}", file=sys.stderr)
                return EXIT_CONFIG
            print(f"wrote {kill}: the running bot will exit all positions and halt at its next check")
            return EXIT_OK
        return _run(cfg, journal_path, args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except JournalError as exc:
        print(f"journal error: {exc}", file=sys.stderr)
        return EXIT_JOURNAL


def _check_config(cfg, path) -> int:
    from dataclasses import asdict
    from .calendar import TradingCalendar, coverage_warnings
    from .clock import WallClock
    print(f"{path}: OK")
    from .notify_targets import hide_urls  # a notify URL may hold a token
    print(json.dumps(hide_urls(asdict(cfg)), default=str, indent=2))
    for text in coverage_warnings(TradingCalendar.from_config(cfg), WallClock().now().date()):
        print(f"warning: calendar: {text}", file=sys.stderr)
    return EXIT_OK


def _run(cfg, journal_path: Path, args) -> int:
    from . import report
    from .app import UsageError, choose_mode, run_day
    from .credentials import Secrets
    from .engine import DISK_FULL
    from .journal import Journal
    secrets = Secrets.from_env()
    try:
        mode = choose_mode(args.mode, cfg, secrets)
        if args.date and mode != "sim":
            raise UsageError(f"--date is only for --sim (mode is {mode})")
        from .desk import build_desk
        result = run_day(cfg, mode, journal_path, args.date, args.seed, secrets, build_desk=build_desk,
                         clock_file=args.clock)
    except UsageError as exc:
        print(f"error: {secrets.redact(str(exc))}", file=sys.stderr)
        return EXIT_BROKER
    if not args.quiet:
        with Journal.open_readonly(journal_path) as j:
            print(report.render(report.build_status(j, result.day)))
    if result.shutdown:
        print(f"stopped by {result.shutdown} in state {result.state}", file=sys.stderr)
    if result.shutdown == DISK_FULL:
        return EXIT_DISK_FULL
    return EXIT_JOB_ERRORS if result.job_errors else EXIT_OK


def _backtest(cfg, journal_path: Path, args) -> int:
    from .backtest import main as backtest_main
    _check_journal_path("--journal" if args.journal else "bot.journal", str(journal_path))
    return backtest_main(cfg, journal_path, args)


def _status(journal_path: Path, day: date | None, as_json: bool) -> int:
    import sqlite3
    from . import report
    from .journal import Journal, JournalCorrupt
    with Journal.open_readonly(journal_path) as j:
        try:
            if day is None:
                row = j.query("SELECT MAX(trading_day) FROM events")
                if not row or row[0][0] is None:
                    print(f"journal {journal_path} is empty: run `python rustro.py run` first")
                    return EXIT_OK
                day = date.fromisoformat(row[0][0])
            bad = j.unreadable_events(day)  # the day's events only: status stays fast
            if bad:
                seq, kind, why = bad[0]
                raise JournalCorrupt(f"journal {journal_path}: event #{seq} ({kind}) of {day} is "
                                     f"unreadable: {why}; run `rustro journal verify`")
            status = report.build_status(j, day)
        except (sqlite3.DatabaseError, ValueError) as exc:  # a damaged row the checks did not see
            raise JournalCorrupt(f"journal {journal_path}: cannot build the status of {day}: {exc}; "
                                 f"run `rustro journal verify`") from None
    print(json.dumps(status, default=str, indent=2) if as_json else report.render(status))
    return EXIT_OK


def _doctor(args) -> int:
    from . import doctor
    from .doctor_facts import diagnose
    findings = diagnose(args.config, args.journal, args.mode)
    print(doctor.render(findings))
    return doctor.exit_code(findings)


def _journal_action(args, journal_path: Path) -> int:
    if args.journal_command != "backup":
        return _verify(journal_path)
    from .backup import backup_journal
    r = backup_journal(journal_path, args.path)  # BackupError is a JournalError: exit 3
    print(f"journal {journal_path} backed up to {r.path}: {r.events} events (last #{r.last_seq}), "
          f"{r.bytes} bytes, verified (integrity, application_id) in {r.seconds:.2f} s")
    return EXIT_OK


def _verify(journal_path: Path) -> int:
    from .verify import verify_journal
    problems = verify_journal(journal_path)
    if problems:
        for p in problems:
            label = ("UNREADABLE" if " is unreadable: " in p else
                     "SKIPPED" if p.startswith("derived tables not compared") else "MISMATCH")
            print(f"{label}: {p}")
        print(f"journal error: journal {journal_path} failed verification ({len(problems)} problem(s))",
              file=sys.stderr)
        return EXIT_JOURNAL
    print(f"journal {journal_path}: integrity ok; every derived table matches a rebuild from events")
    return EXIT_OK
