"""The benchmarks still run against the current API (tiny sizes; the figures themselves are not tested)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO


def test_state_latency_benchmark_prints_a_row_per_backend(postgres_url: str) -> None:
    """bench/state_latency.py completes and reports SQLite and Postgres."""
    result = subprocess.run(
        [sys.executable, "bench/state_latency.py", "--iterations", "5", "--postgres-url", postgres_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|")[0].strip() for line in result.stdout.splitlines()[1:]]
    assert rows == ["sqlite", "postgres"]


@pytest.mark.slow
def test_load_benchmark_prints_ratios() -> None:
    """bench/load_definitions.py completes for a tiny size and prints a ratio row."""
    result = subprocess.run(
        [sys.executable, "bench/load_definitions.py", "--sizes", "5", "--repeat", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.splitlines()[-1].split("|")
    assert last[0].strip() == "5" and last[1].strip().endswith("x")


@pytest.mark.slow
def test_run_cost_benchmark_prints_a_row_per_size() -> None:
    """bench/run_cost.py runs a real run-worker process per size and prints the ratio to the smallest."""
    result = subprocess.run(
        [sys.executable, "bench/run_cost.py", "--sizes", "2", "6", "--repeat", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|") for line in result.stdout.splitlines()[1:]]
    assert [row[0].strip() for row in rows] == ["2", "6"]
    assert rows[0][2].strip() == "1.00x"


def test_watch_sensor_benchmark_prints_both_phases_per_storage(postgres_url: str) -> None:
    """bench/watch_sensor.py ticks the watch sensor over a few evaluations on SQLite and Postgres storage."""
    result = subprocess.run(
        [
            sys.executable,
            "bench/watch_sensor.py",
            "--evaluations",
            "60",
            "--checks",
            "6",
            "--postgres-url",
            postgres_url,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [[cell.strip() for cell in line.split("|")[:2]] for line in result.stdout.splitlines()[1:]]
    phases = [row for row in rows if row[1] in ("steady", "backlog")]
    assert phases == [["sqlite", "steady"], ["sqlite", "backlog"], ["postgres", "steady"], ["postgres", "backlog"]]


def test_platform_watch_benchmark_prints_each_pass_per_storage(postgres_url: str) -> None:
    """bench/platform_watch.py ticks the watch sensor's platform rules over a few runs on SQLite and Postgres."""
    result = subprocess.run(
        [
            sys.executable,
            "bench/platform_watch.py",
            *("--runs", "60", "--jobs", "3", "--running", "2", "--instigators", "4", "--ticks", "2"),
            *("--new", "6", "--bursts", "1", "--passes", "1", "--postgres-url", postgres_url),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [[cell.strip() for cell in line.split("|")] for line in result.stdout.splitlines()[1:]]
    passes = [row[:2] for row in rows if len(row) == 11]
    assert passes == [
        [storage, phase]
        for storage in ("sqlite", "postgres")
        for phase in ("steady", "6 new failed runs", "steady, all firing")
    ]
    assert all(row[-2].endswith("x") and row[-1].endswith("x") for row in rows if len(row) == 11)


@pytest.mark.slow
def test_cli_startup_benchmark_prints_a_row_per_command() -> None:
    """bench/cli_startup.py times each command against `python -c pass` (and an earlier commit, if present)."""
    result = subprocess.run(
        [sys.executable, "bench/cli_startup.py", "--repeat", "1"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|")[0].strip() for line in result.stdout.splitlines() if line.count("|") == 4][2:]
    assert rows == [
        "--help",
        "status --database-url",
        "silences --database-url",
        "history --database-url",
        "validate examples/alerts.yaml",
    ]


def test_instances_benchmark_prints_a_row_per_measurement(postgres_url: str) -> None:
    """bench/instances.py completes for 200 instances on SQLite and Postgres and reports both aims."""
    result = subprocess.run(
        [
            sys.executable,
            "bench/instances.py",
            "--instances",
            "200",
            "--changes",
            "10",
            "--repeat",
            "1",
            "--postgres-url",
            postgres_url,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith(("sqlite ", "postgres "))]
    measured = [(row[0].strip(), row[1].strip()) for row in rows]
    what = ["baseline: read + upsert", "first evaluation", "steady state", "10 changed"]
    assert measured == [(backend, w) for backend in ("sqlite", "postgres") for w in what]
    changed = [row[-1] for row in rows if row[1].strip() == "10 changed"]
    assert all("webhook 1 (>= 1) listing 10" in cell for cell in changed)
