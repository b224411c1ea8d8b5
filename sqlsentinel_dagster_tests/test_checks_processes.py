"""Checks mode with real processes: overlapping batched runs on Postgres storage notify exactly once, and a
materialization made in another code location triggers the alert's check through the real daemon."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest

from .loopback import Receiver, loopback_receiver
from .processes import BIN, create_storage, dagster_daemon, dagster_env, sensor_ticks, wait_for
from .test_checks import evaluations, key

ALERTS = 12
SENSOR = "sqlsentinel_on_materialization"
QUERY = (
    "SELECT CASE WHEN error_pct > 5 THEN 'ALERT' ELSE 'OK' END AS status, error_pct AS actual_value FROM api_metrics"
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as rec:
        yield rec


def _warehouse(folder: Path, error_pct: float) -> None:
    with sqlite3.connect(folder / "warehouse.db") as db:
        db.execute("CREATE TABLE api_metrics (endpoint TEXT, error_pct REAL)")
        db.execute("INSERT INTO api_metrics VALUES ('/orders', ?)", (error_pct,))


def test_overlapping_batched_runs_notify_each_alert_exactly_once(
    tmp_path: Path, postgres_home: Path, receiver: Receiver
) -> None:
    """Two batch runs of the same firing alerts, started together as separate processes on Postgres storage:
    every alert is recorded twice as a check evaluation and notified once."""
    _warehouse(tmp_path, 7.5)
    alerts = "\n".join(f'  - {{name: alert_{i}, query: "{QUERY}"}}' for i in range(ALERTS))
    (tmp_path / "alerts.yaml").write_text(
        f'database: {{url: "sqlite:///warehouse.db"}}\n'
        f'defaults: {{schedule: "* * * * *", notify: [{{channel: webhook, url: "{receiver.url}"}}]}}\n'
        f"alerts:\n{alerts}\n"
    )
    (tmp_path / "defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml', mode='checks')\n"
    )
    create_storage(postgres_home)  # before the processes open it together
    command = [str(BIN / "dagster"), "job", "execute", "-f", "defs.py", "-j", "sqlsentinel_checks"]

    def execute(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=tmp_path, env=dagster_env(postgres_home), capture_output=True, text=True, timeout=300
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(execute, range(2)))
    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    firing = sorted(r.body["alert_name"] for r in receiver.delivered() if r.body["event"] == "firing")
    assert firing == sorted(f"alert_{i}" for i in range(ALERTS))
    with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
        for i in range(ALERTS):
            decisions = sorted(
                e.metadata["decision"].value for e in evaluations(instance, key("sqlsentinel/default", f"alert_{i}"))
            )
            assert decisions == ["already_firing", "first_notification"]


PRODUCER = """
import dagster as dg

@dg.asset(key=["shop", "orders"])
def orders() -> None:
    return None

defs = dg.Definitions(assets=[orders])
"""


BURST = """
import dagster as dg
from producer import orders

with dg.DagsterInstance.get() as instance:
    for _ in range(3):
        assert dg.materialize([orders], instance=instance).success
"""


def test_materialization_in_another_code_location_evaluates_the_alert_once_per_burst(
    tmp_path: Path, dagster_home: Path, receiver: Receiver
) -> None:
    """The daemon's sqlsentinel_on_materialization sensor sees materializations of shop/orders made by another
    code location and launches one check run for the burst; the check evaluation lands on shop/orders."""
    _warehouse(tmp_path, 7.5)
    (tmp_path / "alerts.yaml").write_text(
        textwrap.dedent(
            f"""
            database: {{url: "sqlite:///warehouse.db"}}
            alerts:
              - name: orders_fresh
                query: "{QUERY}"
                asset: shop/orders
                on_materialization: true
                notify: [{{channel: webhook, url: "{receiver.url}"}}]
            """
        )
    )
    (tmp_path / "alerts_defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml', mode='checks')\n"
    )
    (tmp_path / "producer.py").write_text(PRODUCER)
    (tmp_path / "workspace.yaml").write_text(
        textwrap.dedent(
            """
            load_from:
              - python_file: {relative_path: alerts_defs.py, location_name: alerts, working_directory: .}
              - python_file: {relative_path: producer.py, location_name: pipelines, working_directory: .}
            """
        )
    )
    check = key("shop/orders", "orders_fresh")
    with dagster_daemon(tmp_path, dagster_home), dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        wait_for(lambda: sensor_ticks(instance, SENSOR) >= 1, 120, "the sensor's first tick")
        # a burst: three materializations in one process, a second or so apart, well inside a sensor tick (three
        # `dagster asset materialize` processes take 12-18 s together, which a 15 s tick can fall between)
        materialize = subprocess.run(
            [sys.executable, "-c", BURST],
            cwd=tmp_path,
            env=dagster_env(dagster_home),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert materialize.returncode == 0, materialize.stderr[-2000:]
        wait_for(lambda: len(evaluations(instance, check)) >= 1, 180, "the check evaluation")
        ticks = sensor_ticks(instance, SENSOR)
        wait_for(
            lambda: sensor_ticks(instance, SENSOR) >= ticks + 2,
            120,
            "two more sensor ticks",
        )
        [evaluation] = evaluations(instance, check)  # one burst, one evaluation
        assert evaluation.passed is False
        assert evaluation.metadata["actual_value"].value == 7.5
        runs = instance.get_runs(dg.RunsFilter(job_name="sqlsentinel_checks"))
        assert len(runs) == 1 and runs[0].tags["sqlsentinel/trigger"] == "materialization"
    assert [r.body["event"] for r in receiver.delivered()] == ["firing"]
