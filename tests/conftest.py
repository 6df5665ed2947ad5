import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from rustro.clock import IST, VirtualClock

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def vclock():
    return VirtualClock(datetime(2026, 11, 20, 9, 0, tzinfo=IST))


@pytest.fixture
def journal(tmp_path, vclock):
    from rustro.journal import Journal
    j = Journal.open(tmp_path / "journal.sqlite", vclock)
    yield j
    j.close()


def run_cli(*args, env_extra=None, cwd=REPO, timeout=120):
    """Run `python rustro.py ARGS` in a subprocess with no broker credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTAPI_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(REPO / "rustro.py"), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


DAY = date(2026, 11, 20)  # a Friday, an ordinary trading day
