"""Benchmark: how fast the ``sqlsentinel`` command starts, against ``python -c pass`` and against an earlier commit.

Run:  .venv/bin/python bench/cli_startup.py [--before REF] [--repeat 7]

For each command it starts a fresh process ``--repeat`` times (interleaved with the baselines) and prints the
median wall time, its ratio to ``python -c pass``, and the same command at ``--before`` (default: the last
commit before the package imported its names lazily), checked out in a temporary git worktree and run from
there. The state commands run against a state database with one alert recorded; ``validate`` checks a cron,
which loads Dagster's parser on purpose. The aim: ``--help`` under 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = "2381886"
"""The last commit before the layout work: importing the package imported Dagster and the Component."""

# How each version starts its command line: the entry point moved from cli to cli.main.
ENTRY = {
    "now": "from sqlsentinel_dagster.cli.main import main; main()",
    "before": "from sqlsentinel_dagster.cli import main; main()",
}


def commands(state_url: str) -> dict[str, list[str]]:
    """The command lines measured, by label."""
    return {
        "--help": ["--help"],
        "status --database-url": ["status", "--database-url", state_url],
        "silences --database-url": ["silences", "--database-url", state_url],
        "history --database-url": ["history", "--database-url", state_url],
        "validate examples/alerts.yaml": ["validate", str(REPO / "examples" / "alerts.yaml")],
    }


def seconds(argv: list[str], cwd: Path, source: Path) -> float:
    """Wall time of one process running ``argv`` with the package found at ``source``."""
    started = time.perf_counter()
    subprocess.run(
        argv,
        cwd=cwd,
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        capture_output=True,
        check=False,
        timeout=120,
    )
    return time.perf_counter() - started


def state_database(folder: Path) -> str:
    """A SQLite state database with one alert evaluated."""
    sys.path.insert(0, str(REPO))
    from sqlsentinel_dagster.state.model import Outcome, StateSettings
    from sqlsentinel_dagster.state.silences import AlertLabels
    from sqlsentinel_dagster.state.store import StateStore

    url = f"sqlite:///{folder / 'state.db'}"
    store = StateStore.from_url(url)
    store.record(AlertLabels(name="orders_late"), Outcome("ALERT", actual_value=7.0), StateSettings(), {}, {}, None)
    store.engine.dispose()
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="The commit to compare with.")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = folder / "before"
        added = subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.before], cwd=REPO, capture_output=True, text=True
        )
        if added.returncode != 0:  # e.g. a shallow clone without that commit: measure now only
            print(f"no worktree of {args.before} ({added.stderr.strip()[:200]}): the 'before' column is empty")
        try:
            lines = commands(state_database(folder))
            python = [sys.executable]
            baseline = [seconds([*python, "-c", "pass"], folder, REPO) for _ in range(args.repeat)]
            print(f"python -c pass: {statistics.median(baseline):.3f} s (median of {args.repeat})")
            print("command                        | now     | x pass | before  | now/before")
            print("-------------------------------|---------|--------|---------|-----------")
            for label, argv in lines.items():
                now, before = [], []
                for _ in range(args.repeat):
                    now.append(seconds([*python, "-c", ENTRY["now"], *argv], folder, REPO))
                    if added.returncode == 0:
                        before.append(seconds([*python, "-c", ENTRY["before"], *argv], folder, old))
                n = statistics.median(now)
                b = f"{statistics.median(before):.3f} s | {n / statistics.median(before):.2f}x" if before else "- | -"
                print(f"{label:<30} | {n:.3f} s | {n / statistics.median(baseline):5.1f}x | {b}")
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)], cwd=REPO, check=False, capture_output=True
            )


if __name__ == "__main__":
    main()
