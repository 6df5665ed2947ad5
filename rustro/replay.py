"""`rustro replay --day D --journal J`: run a recorded paper or live day again, decision for decision.

The same `TradingDay` and `Desk` (day machine, strategy, risk, order manager) run on a
VirtualClock with the paper broker, into a NEW journal (`<J>.replay-<D>.sqlite`, never J). Market
data comes from the day's recording in the market-data store (rustro/market/stored.py):

- the clock is driven through the recorded job instants (`ticks`): each recorded job runs at the
  instant the recorded bot ran it, and nothing else runs;
- during a job, each call is answered by the answer the recorded bot got to the same call in the
  same job, in the order it got them, and the virtual clock moves on to the instant that answer
  was asked: nothing is served before the clock has reached the instant it was asked;
- a call the recorded job did not make is answered as of the clock (the latest answer before);
- the paper broker gets the quotes the recorded paper broker got; on a live day (where the
  exchange priced the fills) the exchange's price at each recorded fill (`exchange_fills`),
  else the desk's quotes as of the clock.

Then the two journals' decisions are printed side by side (`replay_compare`) with the first
divergence; the exit code is 1 if there is one.
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from .calendar import TradingCalendar, at
from .clock import VirtualClock
from .data_desk import paper_desk, stored_market
from .engine import Services, TradingDay
from .journal import Journal
from .market.store import MarketStore, StoreError

log = logging.getLogger(__name__)
EXIT_OK, EXIT_DIVERGED, EXIT_USAGE = 0, 1, 2


class ReplayError(RuntimeError):
    """A replay that cannot run as asked (no recording of the day, the journal as output...)."""


@dataclass
class ReplayResult:
    journal: Path
    state: str
    jobs: int
    starts: list[datetime]  # the recorded jobs' instants


def replay_path(journal: Path, day: date) -> Path:
    return journal.with_name(f"{journal.stem}.replay-{day.isoformat()}{journal.suffix or '.sqlite'}")


def _fresh(path: Path) -> None:
    """The replay's journal and paper books are rebuilt each run."""
    for f in (path, path.with_name(path.stem + ".paper.sqlite")):
        for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
            Path(str(f) + suffix).unlink(missing_ok=True)


def catch_up_end(ticks: list[tuple[datetime, str]], i: int, session) -> int:
    """Index of the first tick after the start-up at `i` that start-up's catch-up did not run
    (the phases already due at start-up were recorded right after it)."""
    start, j = ticks[i][0], i + 1
    while (j < len(ticks) and ticks[j][1] in TradingDay.PHASES
           and at(start.date(), getattr(session, ticks[j][1])) <= start):
        j += 1
    return j


def exchange_fills(journal: Path, day: date, ticks: list[tuple[datetime, str]]) -> list[QuoteRow]:
    """A live day's fills as the exchange's prices at those instants, for the paper broker.

    On a live day the exchange priced the fills, and its prices reached the bot only as fills:
    each becomes a broker answer (bid = ask = the fill price) at the fill's instant. Angel stamps
    fills to the second: a fill stamped within the second before the job that learned of it
    started is placed at that job's start (it may have happened in either)."""
    from .market.store import QuoteRow, us
    from .journal import Journal
    starts = [t for t, _ in ticks]
    out = []
    with Journal.open_readonly(journal) as j:
        rows = j.query("SELECT token, price, ts, (SELECT e.ts FROM events e WHERE e.kind = 'fill' "
                       "AND json_extract(e.payload, '$.fill_id') = f.fill_id) FROM fills f "
                       "WHERE trading_day = ?", (day.isoformat(),))
    for token, price, when, learned in rows:
        at_ = datetime.fromisoformat(when)
        if learned:
            i = bisect.bisect_right(starts, datetime.fromisoformat(learned)) - 1
            if i >= 0 and at_ < starts[i] < at_ + timedelta(seconds=1):
                at_ = starts[i]
        out.append(QuoteRow(token, us(at_), "broker", "quote", us(at_), price, price, price, us(at_)))
    return out


def replay_day(cfg, store_path: Path, day: date, out: Path, seed: int,
               recorded: Path | None = None) -> ReplayResult:
    store = MarketStore(store_path, readonly=True)
    try:
        ticks = store.ticks(day)
    finally:
        store.close()
    if not ticks:
        raise ReplayError(f"the market-data store {store_path} holds no recorded day {day} "
                          f"(record it with [store] record = true in paper or live)")
    _fresh(out)
    clock = VirtualClock(ticks[0][0])
    journal = Journal.open(out, clock, reserve_mb=0)
    svc = Services(cfg=cfg, clock=clock, journal=journal, calendar=TradingCalendar.from_config(cfg),
                   mode="paper", kill_file=None,
                   extra={"seed": seed, "paper_db": out.with_name(out.stem + ".paper.sqlite")})
    try:
        market = stored_market(svc, day, store_path)
        broker_market = market.view("broker")
        if not any(k[2] == "broker" for k in market.s.quotes) and recorded is not None:
            broker_market.add_answers(exchange_fills(recorded, day, ticks))
        paper_desk(svc, day, market, broker_market)
        tday = TradingDay(svc, day)
        jobs = _drive(tday, market, clock, ticks, cfg.session)
        return ReplayResult(out, tday.machine.state, jobs, [t for t, _ in ticks])
    finally:
        from .market.recorder import finish
        finish(svc)
        if svc.broker is not None:
            svc.broker.close()
        journal.close()


def _drive(tday: TradingDay, market, clock: VirtualClock, ticks, session) -> int:
    """Run the recorded jobs at their recorded instants (see the module docstring)."""
    ran, i = 0, 0
    while i < len(ticks) and not tday.done:
        when, job = ticks[i]
        nxt = i + 1
        if job == "startup":
            nxt = catch_up_end(ticks, i, session)
        hi = ticks[nxt][0] if nxt < len(ticks) else when + timedelta(days=1)
        if when > clock.now():
            clock.set(when)
        market.begin_window(when, hi)
        if job == "startup":
            tday.startup()
        elif job in TradingDay.PHASES:
            if job not in tday.phases_run:
                tday.phases_run.add(job)
                tday.run_job(job)
        else:
            tday.run_job(job)
        ran += 1
        i = nxt if job == "startup" else i + 1
    return ran


def main(cfg, args) -> int:
    from .market.store import default_store_path
    from .replay_compare import compare, render
    journal = Path(args.journal)
    store = Path(args.store) if args.store else default_store_path(journal, cfg.store.path)
    out = Path(args.out) if args.out else replay_path(journal, args.day)
    try:
        if not journal.is_file():
            raise ReplayError(f"--journal {journal}: no such journal")
        if out.resolve() == journal.resolve():
            raise ReplayError("--out: the replay never writes the recorded journal; name another file")
        seed = cfg.sim.seed if args.seed is None else args.seed
        result = replay_day(cfg, store, args.day, out, seed, recorded=journal)
    except (ReplayError, StoreError) as exc:
        print(f"replay: {exc}", file=__import__("sys").stderr)
        return EXIT_USAGE
    rows, first = compare(journal, result.journal, args.day, result.starts)
    print(render(rows, first, journal, result.journal, width=args.width))
    return EXIT_DIVERGED if first is not None else EXIT_OK
