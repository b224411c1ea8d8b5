"""Instance alerts in real Dagster runs: a job per alert (status tag, metadata table) and a check per alert
(failed when any instance fires, plotted counts), on SQLite and PostgreSQL warehouses."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.naming import TAG_STATUS
from sqlsentinel_dagster.state.admin import alert_statuses
from sqlsentinel_dagster.state.store import StateStore

from .conftest import drop_table
from .test_checks import evaluations, key, run_checks

WriteAlerts = Callable[..., Path]
QUERY = (
    "SELECT endpoint, CASE WHEN error_pct > 5 THEN 'ALERT' ELSE 'OK' END AS status, "
    "error_pct AS actual_value, 5 AS threshold FROM {table}"
)


def _alerts(url: str, table: str = "api_metrics", extra: str = "") -> str:
    return f"""
database: {{url: "{url}"}}
receivers:
  ops: {{channel: log}}
alerts:
  - name: error_rate_by_endpoint
    query: "{QUERY.format(table=table)}"
    schedule: "*/5 * * * *"
    instances: {{by: [endpoint]{extra}}}
    notify: [ops]
"""


def _run(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("sqlsentinel__error_rate_by_endpoint")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in outputs[0].event_specific_data.metadata.items()}  # type: ignore[union-attr]


def _statuses(instance: dg.DagsterInstance) -> dict[str, Any]:
    return {s.alert: s for s in alert_statuses(StateStore.from_url(instance_state_url(instance)))}


class TestJobsMode:
    def test_run_is_tagged_with_the_worst_instance_and_lists_the_firing_ones(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """/orders fires and /users does not: the run is tagged ALERT, its metadata counts 2 instances and 1
        firing, and its table names /orders with its value; each instance has its own state."""
        result = _run(build_definitions(write_alerts(_alerts(f"sqlite:///{sqlite_warehouse}"))), instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags[TAG_STATUS] == "ALERT"
        metadata = _metadata(result)
        assert (metadata["instances"], metadata["firing_instances"]) == (2, 1)
        assert "/orders | 7.5 | 5" in metadata["firing"] and "/users" not in metadata["firing"]
        assert metadata["decision"] == "instances" and metadata["reason"].startswith("1 of 2 instances firing")
        states = _statuses(instance)
        assert states['error_rate_by_endpoint{endpoint="/orders"}'].condition == "firing"
        assert states['error_rate_by_endpoint{endpoint="/users"}'].condition == "inactive"
        assert states['error_rate_by_endpoint{endpoint="/orders"}'].instance_of == "error_rate_by_endpoint"

    def test_a_recovered_instance_resolves_alone_and_the_run_turns_ok(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """Once /orders recovers, the next run resolves it (one resolved notification) and is tagged OK."""
        defs = build_definitions(write_alerts(_alerts(f"sqlite:///{sqlite_warehouse}")))
        assert _run(defs, instance).success
        with sqlite3.connect(sqlite_warehouse) as db:
            db.execute("UPDATE api_metrics SET error_pct = 1 WHERE endpoint = '/orders'")
        second = _run(defs, instance)
        run = instance.get_run_by_id(second.run_id)
        assert run is not None and run.tags[TAG_STATUS] == "OK"
        assert [(n["event"], n["outcome"]) for n in _metadata(second)["notifications"]] == [("resolved", "delivered")]
        assert _statuses(instance)['error_rate_by_endpoint{endpoint="/orders"}'].condition == "inactive"

    def test_a_cut_result_warns_on_the_run_which_still_succeeds(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """Two rows with max: 1: the run succeeds, keeps one instance and says the result was cut."""
        defs = build_definitions(write_alerts(_alerts(f"sqlite:///{sqlite_warehouse}", extra=", max: 1")))
        result = _run(defs, instance)
        assert result.success
        metadata = _metadata(result)
        assert metadata["instances"] == 1 and "instances.max = 1" in metadata["warning"]
        assert sum(1 for name in _statuses(instance) if "{" in name) == 1

    def test_a_query_error_fails_the_run_and_resolves_no_instance(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """After the table is dropped the run fails tagged ERROR, and /orders is still firing."""
        defs = build_definitions(write_alerts(_alerts(f"sqlite:///{sqlite_warehouse}")))
        assert _run(defs, instance).success
        with sqlite3.connect(sqlite_warehouse) as db:
            db.execute("DROP TABLE api_metrics")
        failed = _run(defs, instance)
        run = instance.get_run_by_id(failed.run_id)
        assert not failed.success and run is not None and run.tags[TAG_STATUS] == "ERROR"
        assert _statuses(instance)['error_rate_by_endpoint{endpoint="/orders"}'].condition == "firing"

    def test_the_replay_job_replays_each_instance_and_sums_them(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """After two runs, sqlsentinel_replay on the alert lists both instances in its table and JSON, and its
        note sums their notifications (1 firing now; a 1-minute reminder proposed changes nothing yet)."""
        defs = build_definitions(write_alerts(_alerts(f"sqlite:///{sqlite_warehouse}")))
        for _ in range(2):
            assert _run(defs, instance).success
        config = {"alert": "error_rate_by_endpoint", "repeat_interval": "1m", "days": 1}
        result = defs.resolve_job_def("sqlsentinel_replay").execute_in_process(
            instance=instance, run_config={"ops": {"sqlsentinel_replay_op": {"config": config}}}
        )
        assert result.success
        metadata = _metadata(result)
        assert [r["alert"] for r in metadata["replay_json"]] == [
            'error_rate_by_endpoint{endpoint="/orders"}',
            'error_rate_by_endpoint{endpoint="/users"}',
        ]
        assert "2 instances replayed; notifications 1 under the current settings" in metadata["replay"]


class TestChecksMode:
    def test_one_check_per_alert_fails_while_an_instance_fires_with_plotted_counts(
        self, write_alerts: WriteAlerts, postgres_url: str, metrics_table: str, instance: dg.DagsterInstance
    ) -> None:
        """On a PostgreSQL warehouse: one check for the alert, failed, with instances=3 and firing_instances=2
        as numbers the UI plots, and a table naming both firing endpoints."""
        table = metrics_table
        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {table} (endpoint TEXT, error_pct REAL)")
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES ('/a', 9), ('/b', 8), ('/c', 1)")
        try:
            path = write_alerts(_alerts(postgres_url, table))
            assert run_checks(path, instance).success
        finally:
            drop_table(postgres_url, table)
        [evaluation] = evaluations(instance, key("sqlsentinel/default", "error_rate_by_endpoint"))
        assert not evaluation.passed
        assert isinstance(evaluation.metadata["instances"], dg.IntMetadataValue)
        assert (evaluation.metadata["instances"].value, evaluation.metadata["firing_instances"].value) == (3, 2)
        table_text = evaluation.metadata["firing"].value
        assert "/a" in table_text and "/b" in table_text and "/c" not in table_text


class TestManyInstances:
    def test_sixty_notifications_are_counted_on_the_run_not_listed_one_by_one(
        self, write_alerts: WriteAlerts, tmp_path: Path, instance: dg.DagsterInstance
    ) -> None:
        """60 endpoints firing at once: the run's metadata counts them (one entry, count 60, delivered) and its
        table lists every firing endpoint; the state has 60 firing instances."""
        warehouse = tmp_path / "many.db"
        with sqlite3.connect(warehouse) as db:
            db.execute("CREATE TABLE api_metrics (endpoint TEXT, error_pct REAL)")
            db.executemany("INSERT INTO api_metrics VALUES (?, 9)", [(f"/e{i:02d}",) for i in range(60)])
        result = _run(build_definitions(write_alerts(_alerts(f"sqlite:///{warehouse}"))), instance)
        assert result.success
        metadata = _metadata(result)
        assert metadata["notifications"] == [
            {"channel": "0:log", "event": "firing", "outcome": "delivered", "count": 60}
        ]
        assert metadata["firing_instances"] == 60 and all(f"/e{i:02d}" in metadata["firing"] for i in range(60))
        firing = [s for s in _statuses(instance).values() if s.instance_of and s.condition == "firing"]
        assert len(firing) == 60
