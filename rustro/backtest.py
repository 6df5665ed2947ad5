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

import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from .backtest_run import Task, journal_for, run_cluster, run_local, run_pool
from .config import Config, ConfigError

log = logging.getLogger(__name__)
EXIT_OK, EXIT_CONFIG, EXIT_JOB_ERRORS = 0, 2, 4


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
