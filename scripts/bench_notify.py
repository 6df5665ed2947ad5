#!/usr/bin/env python3
"""Benchmark: what notifications cost the trading thread.

1. `after_job` with nothing new (the monitor tick's usual case): one indexed journal read.
2. `after_job` telling one event: read, map, redact, enqueue (the send is the sender thread's).
3. The same with a receiver that never answers (every send hangs until its timeout).
4. A whole simulated day with and without [notify] (a local receiver), wall time.

Usage: python scripts/bench_notify.py [--n N]
"""
import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from receiver import Receiver  # noqa: E402  (a local HTTP receiver, tests/receiver.py)

from rustro.clock import IST, VirtualClock  # noqa: E402
from rustro.config import Config, NotifyConfig  # noqa: E402
from rustro.credentials import Secrets  # noqa: E402
from rustro.journal import Journal  # noqa: E402
from rustro.notify import Notifier, RateLimit  # noqa: E402
from rustro.notify_messages import Context  # noqa: E402
from rustro.notify_sender import Sender  # noqa: E402
from rustro.notify_targets import AppriseTarget  # noqa: E402

DAY = date(2026, 10, 14)
SECRETS = Secrets("bench-key-123", "BENCH001", "1234", "JBSWY3DPEHPK3PXP")


def per_call(n: int, mode: str, tell: bool) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp, Receiver(mode) as r:
        j = Journal.open(Path(tmp) / "j.sqlite", VirtualClock(datetime(2026, 10, 14, 9, tzinfo=IST)))
        ncfg = dataclasses.replace(NotifyConfig(), max_per_minute=600, queue_size=100, timeout_sec=1.0)
        n_ = Notifier(ncfg, j, DAY, Context("sim", ("NIFTY",)),
                      Sender([AppriseTarget(r.url, 1.0)], None, ncfg.queue_size), SECRETS.redact)
        n_.limit = RateLimit(10**9, time.monotonic())  # measure the path, not the rate limit
        times = []
        for i in range(n):
            if tell:
                j.record("breaker_tripped", {"breaker": "vix", "reason": f"VIX {i}"}, day=DAY)
            t0 = time.perf_counter()
            n_.after_job("monitor", False)
            times.append(time.perf_counter() - t0)
        n_.sender.close(0.1)
        j.close()
    return times


def sim_day(notify: bool) -> float:
    from rustro.app import run_day
    from rustro.desk import build_desk
    with tempfile.TemporaryDirectory() as tmp, Receiver() as r:
        cfg = Config()
        if notify:
            cfg = dataclasses.replace(cfg, notify=dataclasses.replace(
                NotifyConfig(), urls=(r.url,), heartbeat_url=r.http_url + "/hb"))
        t0 = time.perf_counter()
        run_day(cfg, "sim", Path(tmp) / "j.sqlite", DAY, 42, SECRETS, build_desk=build_desk)
        return time.perf_counter() - t0


def _us(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"median {statistics.median(xs) * 1e6:.0f} us, p99 {xs[int(len(xs) * 0.99) - 1] * 1e6:.0f} us, "
            f"max {xs[-1] * 1e3:.2f} ms")


def main() -> None:
    import logging
    logging.disable(logging.WARNING)  # the hanging case logs every drop
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    print(f"after_job, nothing new ({n} calls): {_us(per_call(n, 'ok', False))}")
    print(f"after_job telling one event, receiver answers ({n} calls): {_us(per_call(n, 'ok', True))}")
    print(f"after_job telling one event, receiver hangs ({n} calls): {_us(per_call(n, 'hang', True))}")
    base = min(sim_day(False) for _ in range(3))
    told = min(sim_day(True) for _ in range(3))
    print(f"simulated day: {base:.2f} s without [notify], {told:.2f} s with (best of 3)")


if __name__ == "__main__":
    main()
