"""`rustro backtest`: run trading days through the real bot (`app.run_backtest`, a chunk of
consecutive days per task, each day the full `run_day`), read each day's closed trades and entry
decisions back from its journal, and report (`backtest_report`, `backtest_html`).

Days are independent (capital is `bot.capital` every day; it does not compound), so they can run
in any order and on any process; results are always merged in (combination, day) order, which
makes the report the same whatever ran where.

- `--workers 1` (default): in this process, on `--journal` (as `run --sim` would);
- `--workers N`: a process pool; worker k writes its own journal `<stem>.w<k><suffix>` (a journal
  has a single writer);
- `--set` / `--sweep`: each combination i writes `<stem>.s<i>[.w<k>]<suffix>`;
- `--cluster ADDRESS`: the same tasks on an existing Dask cluster; each runs in a subprocess of
  its Dask worker (a real main thread, for the bot's signal handlers) on a throw-away journal.

The scratch journals (`.w<k>`, `.s<i>`) are replaced at each run; `--journal` itself is kept.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from .config import Config, ConfigError

log = logging.getLogger(__name__)
EXIT_OK, EXIT_CONFIG, EXIT_JOB_ERRORS = 0, 2, 4


@dataclass(frozen=True)
class Task:
    """Consecutive trading days of one combination, run by `app.run_backtest` on one journal."""
    combo: int
    days: tuple[date, ...]
    cfg: Config
    seed: int | None
    journal: str  # the --journal path; the task's own file is journal_for(task, slot)
    tag: str = ""  # "" for a plain run, "s<i>" for combination i of a study
    store: str = ""  # "" = the synthetic market; else the market-data store's path (--data)
    fill_missing: str = "none"  # --fill-missing: "model" prices a missing option quote


def journal_for(task: Task, slot: int | None) -> Path:
    base = Path(task.journal)
    parts = [p for p in (task.tag, None if slot is None else f"w{slot}") if p]
    if not parts:
        return base
    return base.with_name(f"{base.stem}.{'.'.join(parts)}{base.suffix or '.sqlite'}")


# --- a run of days ----------------------------------------------------------------------------
def run_task(task: Task, journal_path: Path) -> list[dict]:
    """Run the task's days on `journal_path` (app.run_backtest: it stops after a day ended by a
    signal) and return, per day run, what the report needs from the journal."""
    from .app import run_backtest
    from .desk import build_desk
    if task.store:  # issue 11: the days on recorded or imported data
        from .data_desk import StoreDesk
        build_desk = StoreDesk(task.store, task.fill_missing)
    results = run_backtest(task.cfg, journal_path, task.days[0], task.days[-1], task.seed, build_desk)
    read = read_days(journal_path, [r.day for r in results])
    return [{"combo": task.combo, **day, "job_errors": r.job_errors, "shutdown": r.shutdown}
            for r, day in zip(results, read)]


def read_days(journal_path: Path, days: list[date]) -> list[dict]:
    from .journal import Journal
    if not days:
        return []
    with Journal.open_readonly(journal_path) as j:
        return [read_day(j, day) for day in days]


def read_day(j, day: date) -> dict:
    """One day from an open journal: closed trades, positions left open, entry decisions."""
    d = day.isoformat()
    trades = [{"day": r[0], "position_id": r[1], "underlying": r[2], "option_type": r[3],
               "symbol": r[4], "qty": r[5], "entry_time": r[6], "entry_price": r[7],
               "exit_time": r[8], "exit_price": r[9], "exit_reason": r[10], "gross": r[11],
               "costs": r[12], "net": r[13]} for r in j.query(
        "SELECT trading_day, position_id, underlying, option_type, symbol, qty, entry_time, "
        "entry_price, exit_time, exit_price, exit_reason, gross_pnl, costs, net_pnl FROM positions "
        "WHERE trading_day = ? AND status = 'closed' ORDER BY entry_time, position_id", (d,))]
    modeled = {r[0] for r in j.query(  # --fill-missing model priced these contracts (issue 11)
        "SELECT json_extract(payload, '$.symbol') FROM events WHERE trading_day = ? AND "
        "kind = 'quote_modeled'", (d,))}
    for t in trades:
        t["modeled"] = t["symbol"] in modeled
    still_open = j.query("SELECT COUNT(*) FROM positions WHERE trading_day = ? AND status != 'closed'",
                         (d,))[0][0]
    decided = j.query("SELECT json_extract(payload, '$.allowed'), json_extract(payload, '$.failed') "
                      "FROM events WHERE trading_day = ? AND kind = 'entry_decision' ORDER BY seq", (d,))
    filters = [r[0] for r in j.query(
        "SELECT DISTINCT json_extract(payload, '$.name') FROM events "
        "WHERE trading_day = ? AND kind = 'filter_result' ORDER BY 1", (d,))]
    state = j.day_state(day)
    decisions, blocked = {"allowed": 0, "blocked": 0, "no_signal": 0}, {}
    for allowed, failed in decided:
        failed = json.loads(failed) if failed else []
        kind = "allowed" if allowed else "blocked" if failed else "no_signal"
        decisions[kind] += 1
        for name in failed:
            blocked[name] = blocked.get(name, 0) + 1
    return {"day": d, "state": state, "open_positions": still_open, "trades": trades,
            "decisions": decisions, "blocked": blocked, "filters": filters}


# --- where the days run -------------------------------------------------------------------------
_SLOT: int | None = None


def _init_worker(slots, log_level: int) -> None:
    """A pool process: take a journal slot; ignore SIGINT between days (a day being run handles it
    itself and ends by flattening, then the pool is shut down by the parent)."""
    global _SLOT
    _SLOT = slots.get()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("rustro").setLevel(log_level)


def _pool_task(task: Task) -> list[dict]:
    return run_task(task, journal_for(task, _SLOT))


def _stopped(days: list[dict]) -> str | None:
    return next((d["shutdown"] for d in days if d["shutdown"]), None)


def run_local(tasks: list[Task], on_done, slot: int | None = None) -> tuple[list[dict], str | None]:
    """In this process, one task after the other; a day stopped by a signal ends the run."""
    out: list[dict] = []
    try:
        for task in tasks:
            out += run_task(task, journal_for(task, slot))
            on_done(len(out))
            if _stopped(out):
                return out, _stopped(out)
    except KeyboardInterrupt:  # between two days
        return out, "SIGINT"
    return out, None


def run_pool(tasks: list[Task], workers: int, on_done) -> tuple[list[dict], str | None]:
    """On `workers` processes, each with its own journal slot; results as they complete."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads or locks
    slots = ctx.SimpleQueue()
    for k in range(workers):
        slots.put(k)
    level = logging.getLogger("rustro").getEffectiveLevel()
    pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(slots, level))
    results: dict = {}
    stopped = None
    try:
        futures = [pool.submit(_pool_task, t) for t in tasks]
        try:
            for fut in cf.as_completed(futures):
                results[fut] = fut.result()
                on_done(sum(map(len, results.values())))
                stopped = _stopped(results[fut])
                if stopped:
                    break
        except KeyboardInterrupt:
            stopped = "SIGINT"
        for fut in futures:
            fut.cancel()
        for fut in cf.wait(futures).done:  # days already running finish (or end by their SIGINT)
            if not fut.cancelled() and fut not in results and fut.exception() is None:
                results[fut] = fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [d for days in results.values() for d in days], stopped


def run_task_isolated(task: Task) -> list[dict]:
    """A Dask task: the day in a child process (run_day installs signal handlers, which only the
    main thread may do; Dask runs tasks on worker threads) on a journal in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="rustro-bt-") as tmp:
        src, dst = Path(tmp, "task.pickle"), Path(tmp, "result.pickle")
        src.write_bytes(pickle.dumps(task))
        proc = subprocess.run([sys.executable, "-c", "from rustro.backtest import _child; _child()",
                               str(src), str(dst)], cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0 or not dst.exists():
            raise RuntimeError(f"backtest days {task.days[0]}..{task.days[-1]} failed "
                               f"(exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return pickle.loads(dst.read_bytes())


def _child() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    task = pickle.loads(src.read_bytes())
    result = run_task(task, src.with_name("journal.sqlite"))
    dst.write_bytes(pickle.dumps(result))


def run_cluster(tasks: list[Task], address: str, on_done) -> tuple[list[dict], str | None]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ConfigError("--cluster needs Dask: pip install 'rustro[cluster]'") from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"--cluster: cannot reach the Dask scheduler at {address}: {exc}") from None
    out: list[dict] = []
    with client:
        futures = client.map(run_task_isolated, tasks, pure=False)
        try:
            for fut in as_completed(futures):
                out += fut.result()
                on_done(len(out))
        except KeyboardInterrupt:
            client.cancel(futures)
            return out, "SIGINT"
    return out, None


# --- scratch journals ---------------------------------------------------------------------------
def clear_scratch(paths: list[Path]) -> None:
    """Remove a previous run's scratch journals (and their paper-broker files) so every day is
    simulated anew; a scratch journal another process holds is refused (exit 3)."""
    import fcntl
    from .journal import JournalLocked
    for path in paths:
        real = Path(os.path.realpath(path))
        lock = real.with_name(real.name + ".lock")
        if lock.exists():
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalLocked(f"journal {path} is in use by another rustro process") from None
            finally:
                os.close(fd)
        paper = real.with_name(real.stem + ".paper.sqlite")
        for f in (real, paper):
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(f) + suffix).unlink(missing_ok=True)


def scratch_paths(tasks: list[Task], workers: int) -> list[Path]:
    slots = [None] if workers == 1 else list(range(workers))
    seen = {journal_for(t, s) for t in tasks for s in slots}
    return sorted(p for p in seen if p != Path(tasks[0].journal)) if tasks else []


# --- the command ---------------------------------------------------------------------------------
def plan(cfg: Config, journal_path: Path, args) -> tuple[dict, list, list[Task]]:
    """(the --set overrides, the combinations, every (combination, day) task in that order)."""
    from .backtest_study import build_study
    from .calendar import TradingCalendar
    from .data_desk import data_source
    overrides, combos = build_study(cfg, args.set or [], args.sweep or [])
    if args.seed is not None and "sim.seed" in {*overrides, *combos[0].values}:
        raise ConfigError("sim.seed: set both by --seed and by --set/--sweep; give one")
    study = bool(args.set or args.sweep)
    scratch = study or args.workers > 1 or bool(args.cluster)
    tasks = []
    for c in combos:
        # a scratch journal keeps its paper broker beside it, never in a shared paper.db
        ccfg = replace(c.cfg, paper=replace(c.cfg.paper, db="")) if scratch else c.cfg
        days = TradingCalendar.from_config(ccfg).trading_days(args.start, args.end)
        size = chunk_size(len(days), CLUSTER_SHARE if args.cluster else args.workers)
        for i in range(0, len(days), size):
            tasks.append(Task(c.index, tuple(days[i:i + size]), ccfg, args.seed, str(journal_path),
                              f"s{c.index}" if study else "", *data_source(cfg, journal_path, args)))
    return overrides, combos, tasks


MAX_CHUNK_DAYS = 10  # days per task at most: progress and load balance stay fine-grained
CLUSTER_SHARE = 4  # a cluster's size is not known here: chunk as for this many workers


def chunk_size(days: int, workers: int) -> int:
    """Days per task: about 8 tasks per worker, 1 to MAX_CHUNK_DAYS days each. Each task runs
    its days with one `run_backtest` call (one journal opening); any chunking gives the same
    report, since days are independent."""
    return max(1, min(MAX_CHUNK_DAYS, -(-days // (workers * 8))))


def execute(tasks: list[Task], args, progress) -> tuple[list[dict], str | None]:
    def on_done(n: int) -> None:
        progress.update(n)

    if args.cluster:
        return run_cluster(tasks, args.cluster, on_done)
    clear_scratch(scratch_paths(tasks, args.workers))
    if args.workers > 1 and len(tasks) > 1:
        return run_pool(tasks, min(args.workers, len(tasks)), on_done)
    return run_local(tasks, on_done, None if args.workers == 1 else 0)


def main(cfg: Config, journal_path: Path, args) -> int:
    from . import backtest_report as br
    from .progress import Progress
    if args.end < args.start:
        print(f"error: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return EXIT_CONFIG
    if args.cluster and args.workers != 1:
        print("error: --workers is for this machine; with --cluster the Dask cluster's workers run "
              "the days", file=sys.stderr)
        return EXIT_CONFIG
    out_dir = _out_dir(args.out)
    overrides, combos, tasks = plan(cfg, journal_path, args)
    progress = Progress(sum(len(t.days) for t in tasks),
                        unit="days" if len(combos) == 1 else "days (all combinations)")
    rustro_log = logging.getLogger("rustro")
    old_level = rustro_log.level
    if progress.enabled:  # the day-by-day INFO lines would tear the bar; the journal has them
        rustro_log.setLevel(logging.WARNING)
    try:
        outcomes, stopped = execute(tasks, args, progress)
    finally:
        progress.close()
        rustro_log.setLevel(old_level)
    outcomes.sort(key=lambda o: (o["combo"], o["day"]))
    if stopped:
        print(f"stopped by {stopped} after {len(outcomes)} of {progress.total} days", file=sys.stderr)
    seed = (args.seed if args.seed is not None else
            "swept" if "sim.seed" in combos[0].values else combos[0].cfg.sim.seed)
    meta = {"from": args.start.isoformat(), "to": args.end.isoformat(), "seed": seed,
            "overrides": overrides, "stopped_by": stopped}
    reports = []
    for c in combos:
        days = [o for o in outcomes if o["combo"] == c.index]
        trades = [t for o in days for t in o["trades"]]
        cseed = args.seed if args.seed is not None else c.cfg.sim.seed
        reports.append(br.build_report({**meta, "seed": cseed}, days, trades, c.cfg.bot.capital))
    if args.sweep:
        _print_sweep(meta, combos, reports, args, out_dir)
    else:
        _print_single(reports[0], args, out_dir)
    return EXIT_JOB_ERRORS if any(o.get("job_errors") for o in outcomes) else EXIT_OK


def _out_dir(text: str | None) -> Path | None:
    if not text:
        return None
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out: {path} is a file; name a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create {path}: {exc.strerror or exc}") from None
    return path


def _html_note(write, out_dir: Path | None, name: str) -> str:
    """Write the HTML report if asked and possible; the line the text report ends with."""
    from . import backtest_html
    from .backtest_report import REPORT_HINT
    if out_dir is None:
        return ""
    if not backtest_html.available():
        return f"HTML report not written: plotly is not installed ({REPORT_HINT})"
    return f"HTML report: {write(out_dir / name)}"


def _print_single(rep: dict, args, out_dir: Path | None) -> None:
    from . import backtest_html
    from .backtest_report import render_text
    note = _html_note(lambda p: backtest_html.write_report(rep, p), out_dir, "backtest.html")
    if args.json:
        print(json.dumps(rep, indent=2, default=str))
        if note:
            print(note, file=sys.stderr)
        return
    s = rep["summary"]
    print(render_text(rep))
    print(f"\n{s['days']} trading days, {s['trades']} trades, net {s['net']:.2f}")
    if note:
        print(note)


def _print_sweep(meta: dict, combos: list, reports: list[dict], args, out_dir: Path | None) -> None:
    from . import backtest_html
    from .backtest_report import render_sweep, sweep_rows
    rows = sweep_rows([(c.values, r) for c, r in zip(combos, reports)])
    note = _html_note(lambda p: backtest_html.write_sweep(rows, reports, meta, p), out_dir, "sweep.html")
    if args.json:
        print(json.dumps({"range": {k: meta[k] for k in ("from", "to", "seed")},
                          "overrides": meta["overrides"], "stopped_by": meta["stopped_by"],
                          "keys": list(combos[0].values),
                          "combinations": rows}, indent=2, default=str))
        if note:
            print(note, file=sys.stderr)
        return
    print(render_sweep(rows, meta))
    if note:
        print(note)
