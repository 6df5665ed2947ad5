"""Where backtest days run: a task (consecutive days of one combination) on one journal, in this
process (`run_local`), on a local process pool (`run_pool`) or on a Dask cluster (`run_cluster`),
and what the report reads back from each day's journal (`read_day`). `rustro.backtest` plans the
tasks and prints the report.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .config import Config, ConfigError


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


def pool_context():
    """fork while this process runs a single thread, else spawn.

    A forked worker starts with rustro imported (a spawned one spends ~0.3 s importing it). It is
    safe only when no other thread can hold a lock (logging's, a queue's) across the fork; the
    backtest command opens no journal or database before its workers start."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def run_pool(tasks: list[Task], workers: int, on_done) -> tuple[list[dict], str | None]:
    """On `workers` processes, each with its own journal slot; results as they complete."""
    ctx = pool_context()
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
        proc = subprocess.run([sys.executable, "-c", "from rustro.backtest_run import _child; _child()",
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
