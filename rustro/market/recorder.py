"""The recorder: in paper and live mode, every market datum the bot receives goes to the store.

`RecordingMarket` wraps the real `MarketData`: it asks the inner source, hands the answer to the
bot unchanged, and only then writes it (with the instant asked and the instant it arrived) to the
`MarketStore`. A failing store never fails or delays a decision: the write's error is caught,
journaled once per failure streak (`market_store_error`, then `market_store_recovered` when a
write succeeds again) and the datum is dropped. Writes join one open SQLite transaction committed
at most every `COMMIT_EVERY_SEC` (wall time) and at the end of the day, so a quote costs no fsync.

The recorder also stores the instant of every job the day runs (`ticks`), which is what
`rustro replay` drives its virtual clock through.
"""
from __future__ import annotations

import logging
import math
import time as _time
from datetime import date
from pathlib import Path
from typing import Callable

from .base import Bar, Quote
from .store import MarketStore, QuoteRow, us

log = logging.getLogger(__name__)
COMMIT_EVERY_SEC = 1.0
VIX_TOKEN = "99926017"   # India VIX on NSE (rustro.broker.angelone.VIX_TOKEN)


class Recorder:
    """Owns the store connection of one run. `journal(kind, payload)` records the run's events."""

    def __init__(self, path: str | Path, clock, day: date, journal: Callable[[str, dict], None]):
        self.path, self.clock, self.day, self.journal = Path(path), clock, day, journal
        self.store: MarketStore | None = None
        self.failing = 0          # writes lost in the current failure streak
        self.written = 0
        self._last_commit = _time.monotonic()
        self._master_day: date | None = None

    # --- writing, never failing -------------------------------------------------------------
    def write(self, fn_name: str, *args) -> None:
        try:
            if self.store is None:
                self.store = MarketStore(self.path)
            getattr(self.store, fn_name)(*args)
            self.written += 1
            if _time.monotonic() - self._last_commit >= COMMIT_EVERY_SEC:
                self.commit()
        except Exception as exc:  # the store is never allowed to fail a trading decision
            self._failed(exc)
            return
        if self.failing:
            self._say("market_store_recovered", {"path": str(self.path),
                                                 "writes_lost": self.failing})
            self.failing = 0

    def commit(self) -> None:
        self._last_commit = _time.monotonic()
        if self.store is not None:
            self.store.commit()

    def _failed(self, exc: Exception) -> None:
        if self.store is not None:
            try:
                self.store.rollback()
            except Exception:
                self.store = None  # reopened by the next write
        if not self.failing:
            self._say("market_store_error", {"path": str(self.path),
                                             "error": f"{type(exc).__name__}: {exc}"})
        self.failing += 1

    def _say(self, kind: str, payload: dict) -> None:
        log.warning("market-data store: %s %s", kind, payload)
        try:
            self.journal(kind, payload)
        except Exception:  # the journal's own failures surface on its next decision write
            log.exception("could not journal %s", kind)

    # --- what is recorded --------------------------------------------------------------------
    def quote(self, row: QuoteRow) -> None:
        self.write("put_quote", row)

    def bars(self, token: str, interval: str, bars: list[Bar], seen: int) -> None:
        self.write("put_bars", token, interval, [
            (int(b.start.timestamp()), b.open, b.high, b.low, b.close, b.volume, None)
            for b in bars], seen)

    def master(self, rows: list[dict]) -> None:
        if self._master_day != self.day:
            self._master_day = self.day
            self.write("put_master", self.day, rows)

    def tick(self, job: str) -> None:
        self.write("put_tick", self.day, self.clock.now(), job)

    def timed(self, run_job: Callable[[str], None]) -> Callable[[str], None]:
        """`run_job` that first records the job's instant, and commits after it if due."""
        def run(job: str) -> None:
            self.tick(job)
            try:
                run_job(job)
            finally:
                if _time.monotonic() - self._last_commit >= COMMIT_EVERY_SEC:
                    try:
                        self.commit()
                    except Exception as exc:
                        self._failed(exc)
        return run

    def close(self) -> None:
        try:
            if self.store is not None:
                self.store.close()
        except Exception as exc:
            self._failed(exc)
        self.store = None


class RecordingMarket:
    """A `MarketData` that records every answer of `inner` (see the module docstring)."""

    def __init__(self, inner, recorder: Recorder, channel: str = "desk"):
        self.inner, self.recorder, self.channel = inner, recorder, channel
        self.clock = recorder.clock

    def __getattr__(self, name):  # drain_rejected, register_symbol... of the inner source
        return getattr(self.inner, name)

    def view(self, channel: str) -> "RecordingMarket":
        """The same recorder for another asker (the paper broker's own quotes)."""
        return RecordingMarket(self.inner, self.recorder, channel)

    def instrument_master(self) -> list[dict]:
        rows = self.inner.instrument_master()
        self.recorder.master(rows)
        return rows

    def _ask(self, kind: str, token: str, call):
        """`call()`'s answer, recorded; a failed call is recorded as `<kind>_error` (so a replay
        fails at the same point) and re-raised unchanged."""
        asked = self.clock.now()
        try:
            answer = call()
        except Exception:
            arrived = us(self.clock.now())
            self.recorder.quote(QuoteRow(token, us(asked), self.channel, kind + "_error",
                                         arrived, 0.0, 0.0, 0.0, arrived))
            raise
        arrived = us(self.clock.now())
        if isinstance(answer, Quote):
            prices, ts = (answer.ltp, answer.bid, answer.ask), us(answer.ts)
        else:
            prices, ts = (answer, answer, answer), arrived
        if all(isinstance(p, (int, float)) and math.isfinite(p) for p in prices):
            # a non-finite price is refused by the feed; it is not data to replay
            self.recorder.quote(QuoteRow(token, us(asked), self.channel, kind, arrived,
                                         *map(float, prices), ts))
        return answer

    def ltp(self, exchange: str, token: str) -> float:
        return self._ask("ltp", token, lambda: self.inner.ltp(exchange, token))

    def vix(self) -> float:
        return self._ask("vix", VIX_TOKEN, self.inner.vix)

    def quote(self, exchange: str, token: str) -> Quote:
        return self._ask("quote", token, lambda: self.inner.quote(exchange, token))

    def candles(self, exchange: str, token: str, interval: str, start, end) -> list[Bar]:
        bars = self.inner.candles(exchange, token, interval, start, end)
        self.recorder.bars(token, interval, bars, us(self.clock.now()))
        return bars


def attach(svc, day: date, market):
    """(market for the desk, market for the paper broker): both recording when `[store] record`
    is on (paper and live), else `market` itself. The recorder is kept in svc.extra."""
    if not svc.cfg.store.record:
        return market, market
    from .store import default_store_path
    path = default_store_path(svc.journal.path, svc.cfg.store.path)
    rec = Recorder(path, svc.clock, day, lambda kind, p: svc.journal.record(kind, p, day=day))
    svc.extra["recorder"] = rec
    desk_market = RecordingMarket(market, rec, "desk")
    return desk_market, desk_market.view("broker")


def watch_jobs(svc, tday) -> None:
    """Record the instant of each job `tday` runs (app.run_day calls this once)."""
    rec = svc.extra.get("recorder")
    if rec is not None:
        rec.tick("startup")  # the instant the day's start-up (recovery, catch-up) begins
        tday.run_job = rec.timed(tday.run_job)


def finish(svc) -> None:
    """Close the recorder and any store a replay or a stored backtest day opened."""
    extra = svc.extra if svc is not None else {}
    if extra.get("recorder") is not None:
        extra["recorder"].close()
    if extra.get("store_conn") is not None:
        extra.pop("store_conn").close()
