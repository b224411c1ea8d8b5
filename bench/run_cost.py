"""Benchmark: CPU of one alert run in jobs mode, with 10 alerts in the file vs thousands.

Run:  .venv/bin/python bench/run_cost.py [--sizes 10 1000 5000] [--repeat 5]

A run worker is a fresh process that imports the code location and rebuilds the job it was asked to run
(Dagster's DefaultRunLauncher starts one per run). For each size this starts such a process, as Dagster does:
``execute_run`` on a ``ReconstructableJob`` (load type RECONSTRUCTION) against a persistent SQLite instance,
after the code server's own load of the same file (load type INITIALIZATION) has run once. It prints the
median CPU seconds (user + system of the child process) of --repeat runs, interleaved across sizes, and the
ratio to the smallest size. The target: 5,000 alerts <= 1.2x 10 alerts.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from load_definitions import write_alerts

WORKER = """
import sys
import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository  # what a run worker reconstructs
from dagster._core.execution.api import execute_run

with dg.DagsterInstance.get() as instance:
    recon = ReconstructableRepository.for_file(sys.argv[1], "defs").get_reconstructable_job("sqlsentinel__alert_0")
    run = instance.create_run_for_job(job_def=recon.get_definition(), job_code_origin=recon.get_python_origin())
    result = execute_run(recon, run, instance)
    assert result.success, "the alert run failed"
"""

SERVER = """
import sys
from dagster._core.definitions.reconstruct import ReconstructableRepository
ReconstructableRepository.for_file(sys.argv[1], "defs").get_definition()
"""


def child_cpu(args: list[str], env: dict[str, str]) -> float:
    """CPU seconds of a child process (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with sqlite3.connect(folder / "warehouse.db") as db:
            db.execute("CREATE TABLE api_metrics (service_id INTEGER, endpoint TEXT, error_pct REAL)")
            db.execute("INSERT INTO api_metrics VALUES (0, '/orders', 1.0)")
        (folder / "home").mkdir()
        (folder / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "DAGSTER_HOME": str(folder / "home"), "DAGSTER_DISABLE_TELEMETRY": "1"}
        files = {}
        for size in args.sizes:
            write_alerts(folder / f"alerts_{size}.yaml", size)
            files[size] = folder / f"defs_{size}.py"
            alerts = str(folder / f"alerts_{size}.yaml")
            files[size].write_text(
                f"from sqlsentinel_dagster import build_definitions\ndefs = build_definitions({alerts!r})\n"
            )
            subprocess.run([sys.executable, "-c", SERVER, str(files[size])], env=env, check=True, cwd=folder)
        samples: dict[int, list[float]] = {size: [] for size in args.sizes}
        for _ in range(args.repeat):
            for size in args.sizes:
                samples[size].append(child_cpu([sys.executable, "-c", WORKER, str(files[size])], env))
        base = statistics.median(samples[args.sizes[0]])
        print(f"{'alerts in file':>14} | {'CPU per run (median)':>20} | {'vs ' + str(args.sizes[0]):>8}")
        for size in args.sizes:
            median = statistics.median(samples[size])
            print(f"{size:>14} | {median:>19.2f}s | {median / base:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
