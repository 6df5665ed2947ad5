"""Notifications and the heartbeat: a journal observer on the trading thread.

After every job (`TradingDay.after_job`) the notifier reads the day's events committed since it
last looked (so an event rolled back never becomes a message), maps each with the pure
`notify_messages.message_for`, applies the per-kind switches, the once-per-streak rule for job
errors and the rate limit, removes any secret, and offers the message to the sender thread: the
trading thread never waits for a service. In the same step it pings the heartbeat every
`heartbeat_minutes`, and journals what the sender reports back (`notify_failed`, `notify_dropped`).
A backtest sends nothing (the notifier is attached only to a run that owns its journal).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from .journal import JournalError
from .notify_messages import Context, Message, message_for
from .notify_sender import Ping, Sender

log = logging.getLogger(__name__)
OWN_KINDS = ("notify_failed", "notify_dropped")


class RateLimit:
    """A token bucket: at most `per_minute` messages in any minute, bursts up to that many."""

    def __init__(self, per_minute: int, now: float):
        self.capacity, self.tokens, self.last = float(per_minute), float(per_minute), now
        self.rate = per_minute / 60.0

    def allow(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class Counts:
    sent_to_queue: int = 0
    switched_off: int = 0
    streak_repeats: int = 0
    rate_limited: int = 0


class Notifier:
    def __init__(self, ncfg, journal, day, ctx: Context, sender: Sender,
                 redact: Callable[[str], str], monotonic: Callable[[], float] = time.monotonic):
        self.cfg, self.journal, self.day, self.ctx = ncfg, journal, day, ctx
        self.sender, self.redact, self.monotonic = sender, redact, monotonic
        self.after_seq = journal.query("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0]
        self.limit = RateLimit(ncfg.max_per_minute, monotonic())
        self.counts = Counts()
        self.streaks: dict[str, int] = {}   # job -> errors in its current streak
        self.last_ping: float | None = None
        self._told = (0, 0)                 # (queue_full, rate_limited) already journaled

    # --- the hook, after every job ----------------------------------------------------------------
    def after_job(self, job: str, failed: bool) -> None:
        """Never raises: a notification problem must not become a job error."""
        try:
            self.poll()
            if not failed and job in self.streaks:
                n = self.streaks.pop(job)
                self._offer(Message("job_errors", f"rustro {self.day}: job {job} ok again",
                                    f"job {job} ran cleanly again after {n} failure(s) in a row"))
            self.heartbeat()
            self.journal_outcomes()
        except Exception:
            log.exception("notifications: unexpected error (trading continues)")

    def poll(self) -> None:
        for ev in self.journal.events(self.day, after_seq=self.after_seq):
            self.after_seq = ev.seq
            msg = message_for(ev, self.ctx)
            if msg is None:
                continue
            if ev.kind == "job_error":
                job = ev.payload.get("job", "")
                self.streaks[job] = self.streaks.get(job, 0) + 1
                if self.streaks[job] > 1:
                    self.counts.streak_repeats += 1
                    continue
            self._offer(msg)

    def _offer(self, msg: Message) -> None:
        if not getattr(self.cfg, msg.switch):
            self.counts.switched_off += 1
            return
        if not self.limit.allow(self.monotonic()):
            self.counts.rate_limited += 1
            return
        clean = Message(msg.switch, self.redact(msg.title), self.redact(msg.body), msg.level, msg.seq)
        if self.sender.offer(clean):
            self.counts.sent_to_queue += 1

    def heartbeat(self) -> None:
        if self.sender.heartbeat is None:
            return
        now = self.monotonic()
        if self.last_ping is None or now - self.last_ping >= self.cfg.heartbeat_minutes * 60:
            self.last_ping = now
            self.sender.offer(Ping())

    def journal_outcomes(self) -> None:
        """The sender's failures and every drop, journaled here, on the trading thread."""
        for out in self.sender.outcomes():
            if out.ok:
                continue
            log.warning("notification %s to %s failed: %s", out.what, out.target, out.error)
            self._rec("notify_failed", {"what": out.what, "target": out.target, "title": out.title,
                                        "event_seq": out.seq, "error": out.error,
                                        "took_sec": out.took_sec})
        told = (self.sender.queue_full, self.counts.rate_limited)
        if told != self._told:
            new = {"queue_full": told[0] - self._told[0], "rate_limited": told[1] - self._told[1]}
            self._told = told
            log.warning("notifications dropped: %s", new)
            self._rec("notify_dropped", new)

    def _rec(self, kind: str, payload: dict) -> None:
        payload = {k: self.redact(v) if isinstance(v, str) else v for k, v in payload.items()}
        try:
            self.journal.record(kind, payload, day=self.day)
        except JournalError as exc:
            log.warning("cannot journal %s: %s", kind, exc)

    def close(self) -> None:
        """At the end of the run: tell what is left, wait for the sender a bounded time (two send
        timeouts: one in flight, one more), journal the outcome. Never raises."""
        try:
            self.poll()
            self.sender.close(2 * self.cfg.timeout_sec)
            self.journal_outcomes()
            if self.sender.abandoned:
                self._rec("notify_dropped", {"unsent_at_exit": self.sender.abandoned})
        except Exception:
            log.exception("notifications: error while closing (ignored)")


def attach(cfg, mode: str, secrets, tday) -> Notifier | None:
    """Build the notifier for a run when `[notify]` asks for anything, and hook it after every
    job of `tday`. None when neither URLs nor a heartbeat URL are configured."""
    n = cfg.notify
    if not n.urls and not n.heartbeat_url:
        return None
    from .notify_targets import AppriseTarget, HeartbeatTarget
    targets = [AppriseTarget(u, n.timeout_sec) for u in n.urls]
    beat = (HeartbeatTarget(n.heartbeat_url, n.heartbeat_method, n.timeout_sec)
            if n.heartbeat_url else None)
    journal, day = tday.journal, tday.day
    last = journal.last_event(day)
    ctx = Context(mode, tuple(u.name for u in cfg.underlyings), last.kind if last else None)
    for r in journal.query("SELECT position_id, symbol, qty FROM positions WHERE trading_day = ?",
                           (day.isoformat(),)):
        ctx.positions[r[0]] = {"symbol": r[1], "quantity": r[2]}
    notifier = Notifier(n, journal, day, ctx, Sender(targets, beat, n.queue_size), secrets.redact)
    tday.after_job.append(notifier.after_job)
    notifier.heartbeat()  # the first ping at start, before any job
    return notifier
