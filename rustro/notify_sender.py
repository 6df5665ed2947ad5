"""The one thread that talks to notification services, so the trading loop never waits for them.

The trading thread only `offer`s items: a put into a bounded queue that never blocks (a full queue
drops the item and counts it). A daemon thread takes them in order and sends each with the
targets' own short timeouts; what happened to each send is kept for the trading thread to collect
with `outcomes()` (it journals the failures: journal writes stay on the trading thread). `close`
waits a bounded time for what is queued, then abandons the rest (counted); being a daemon, a thread
stuck in a hanging send never keeps the process alive.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ping:
    """A heartbeat: the trading loop is alive."""
    note: str = "alive"


@dataclass(frozen=True)
class Outcome:
    what: str        # "message" | "heartbeat"
    target: str      # scheme://host of the target, never its full URL
    title: str
    seq: int         # journal event the message told of (0: none)
    ok: bool
    error: str
    took_sec: float


class Sender:
    def __init__(self, targets: list, heartbeat=None, queue_size: int = 100):
        self.targets, self.heartbeat = list(targets), heartbeat
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._outcomes: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self.queue_full = 0      # items dropped because the queue was full (trading thread)
        self.abandoned = 0       # items still queued when close() gave up waiting
        self._thread = threading.Thread(target=self._run, name="rustro-notify", daemon=True)
        self._thread.start()

    # --- the trading thread's side -------------------------------------------------------------
    def offer(self, item) -> bool:
        """Queue a Message or a Ping; never blocks. False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.queue_full += 1
            return False

    def outcomes(self) -> list[Outcome]:
        out = []
        while True:
            try:
                out.append(self._outcomes.get_nowait())
            except queue.Empty:
                return out

    def close(self, wait_sec: float) -> None:
        """Let the thread send what is queued for at most `wait_sec`, then abandon the rest."""
        self._stop.set()
        self._thread.join(wait_sec)
        if self._thread.is_alive():
            self._abandon.set()
            self.abandoned += self._queue.qsize()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # --- the sender thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._abandon.is_set():
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if self._abandon.is_set():
                return
            try:
                self._send(item)
            except Exception:  # never let one bad item end the thread
                log.exception("notification sender: unexpected error")

    def _send(self, item) -> None:
        if isinstance(item, Ping):
            if self.heartbeat is not None:
                self._one("heartbeat", self.heartbeat, "heartbeat", 0, "", item.note)
            return
        for target in self.targets:
            self._one("message", target, item.title, item.seq, item.title, item.body, item.level)

    def _one(self, what, target, title, seq, *args) -> None:
        started = time.monotonic()
        result = target.send(*args)
        self._outcomes.put(Outcome(what, target.label, title, seq, result.ok, result.error,
                                   round(time.monotonic() - started, 3)))
