"""A crash changes nothing: SIGKILL after a sample of the journal's and the paper broker's
commits on a trading day, restarted until it closes, ends with the same trades, fills, P&L and risk
counters as the uninterrupted run; no tag placed twice, no fill lost, never net short.

The full sweep (every commit of both parties) is `python scripts/crashtest.py --all-commits`."""
import subprocess
import sys

from conftest import REPO


def test_kill_at_sampled_commits_of_both_parties_changes_nothing():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "crashtest.py"), "--date", "2026-10-14",
                        "--every", "6", "--kinds", "journal,paper"],
                       capture_output=True, text=True, timeout=600)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0, r.stdout + r.stderr
    done, total = map(int, lines[-1].split()[0].split("/"))
    assert done == total >= 20 and lines[-1].endswith("identical")
    assert "2 trades, 4 fills" in r.stdout  # the reference day really trades
