"""build_definitions: one job and one schedule per alert, their names and tags, and real in-process runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap  # test-only: the UI's snapshot
from dagster_shared.serdes import serialize_value

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.naming import TAG_STATUS

from .conftest import alerts_yaml

WriteAlerts = Callable[..., Path]


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance that records runs and tags."""
    with dg.instance_for_test() as inst:
        yield inst


def _run(defs: dg.Definitions, job: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in outputs[0].event_specific_data.metadata.items()}  # type: ignore[union-attr]


class TestDefinitionsShape:
    def test_one_job_and_one_schedule_per_alert_with_predictable_names(self, write_alerts: WriteAlerts) -> None:
        """Jobs are sqlsentinel__<name>, schedules sqlsentinel__<name>__schedule, unsafe characters become _."""
        path = write_alerts(
            """
            database: {url: "sqlite:///w.db"}
            alerts:
              - {name: "orders late", query: "SELECT 'OK' AS status", schedule: "@daily"}
              - {name: error_rate, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", timezone: Europe/Paris}
            """
        )
        repo = build_definitions(path).get_repository_def()
        alert_jobs = sorted(j.name for j in repo.get_all_jobs() if j.name.startswith("sqlsentinel__"))
        assert alert_jobs == ["sqlsentinel__error_rate", "sqlsentinel__orders_late"]
        schedule = repo.get_schedule_def("sqlsentinel__error_rate__schedule")
        assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
            "*/5 * * * *",
            "Europe/Paris",
            "sqlsentinel__error_rate",
        )

    def test_schedules_start_running_when_enabled_and_stopped_when_disabled_or_overridden(
        self, write_alerts: WriteAlerts
    ) -> None:
        """Enabled alerts' schedules start RUNNING; `enabled: false` or `schedule_status: stopped` start STOPPED."""
        path = write_alerts(
            """
            database: {url: "sqlite:///w.db"}
            defaults: {schedule: "@daily"}
            alerts:
              - {name: active, query: "SELECT 'OK' AS status"}
              - {name: disabled, query: "SELECT 'OK' AS status", enabled: false}
              - {name: held, query: "SELECT 'OK' AS status", schedule_status: stopped}
            """
        )
        defs = build_definitions(path)
        status = {
            s.name: s.default_status for s in defs.get_repository_def().schedule_defs if s.name.endswith("__schedule")
        }
        assert status.pop("sqlsentinel_prune__schedule") == dg.DefaultScheduleStatus.RUNNING
        assert status == {
            "sqlsentinel__active__schedule": dg.DefaultScheduleStatus.RUNNING,
            "sqlsentinel__disabled__schedule": dg.DefaultScheduleStatus.STOPPED,
            "sqlsentinel__held__schedule": dg.DefaultScheduleStatus.STOPPED,
        }
        assert defs.resolve_job_def("sqlsentinel__disabled") is not None  # disabled alerts keep their job

    def test_job_carries_description_owners_tags_and_run_tags(self, write_alerts: WriteAlerts) -> None:
        """The job shows the alert's description, owners and tags; runs are tagged with alert and severity."""
        path = write_alerts(
            """
            database: {url: "sqlite:///w.db"}
            alerts:
              - name: orders_late
                description: No orders in the last hour
                query: "SELECT 'OK' AS status"
                schedule: "@hourly"
                severity: critical
                owners: [oncall@example.com, "team:sales"]
                tags: {domain: sales}
            """
        )
        job = build_definitions(path).resolve_job_def("sqlsentinel__orders_late")
        assert job.description == "No orders in the last hour"
        assert list(job.owners or []) == ["oncall@example.com", "team:sales"]
        expected = {"domain": "sales", "sqlsentinel/alert": "orders_late", "sqlsentinel/severity": "critical"}
        assert job.tags == expected and job.run_tags == {**expected, "sqlsentinel/database": "default"}
        assert "SELECT 'OK' AS status" in str(job.metadata["query"].value)

    def test_merges_with_a_teams_own_definitions(self, write_alerts: WriteAlerts, sqlite_warehouse: Path) -> None:
        """The Definitions load alone and merge with a team's own jobs without name clashes."""

        @dg.op
        def error_rate() -> None:
            pass

        @dg.job
        def nightly() -> None:
            error_rate()

        ours = build_definitions(write_alerts(alerts_yaml("sqlite:///warehouse.db")))
        merged = dg.Definitions.merge(dg.Definitions(jobs=[nightly]), ours)
        names = sorted(j.name for j in merged.get_repository_def().get_all_jobs())
        assert names == [
            "nightly",
            "sqlsentinel__error_rate",
            "sqlsentinel_ack",
            "sqlsentinel_prune",
            "sqlsentinel_replay",
            "sqlsentinel_silence",
            "sqlsentinel_test_notify",
            "sqlsentinel_unsilence",
        ]


class TestRuns:
    def test_firing_alert_run_succeeds_and_shows_status_values_and_context(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """A firing alert's run records ALERT, the value, threshold and context, and tags the run ALERT."""
        defs = build_definitions(write_alerts(alerts_yaml("sqlite:///warehouse.db")))
        result = _run(defs, "sqlsentinel__error_rate", instance)
        assert result.success
        metadata = _metadata(result)
        assert (metadata["status"], metadata["actual_value"], metadata["threshold"]) == ("ALERT", 7.5, 5)
        assert metadata["context"] == {"endpoints": 2}
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags[TAG_STATUS] == "ALERT" and run.tags["sqlsentinel/alert"] == "error_rate"

    def test_ok_alert_run_is_tagged_ok(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """Below the threshold the run succeeds with status OK on the run's tags."""
        defs = build_definitions(write_alerts(alerts_yaml("sqlite:///warehouse.db", threshold=50)))
        result = _run(defs, "sqlsentinel__error_rate", instance)
        run = instance.get_run_by_id(result.run_id)
        assert result.success and run is not None and run.tags[TAG_STATUS] == "OK"

    def test_failing_query_fails_the_run_naming_alert_and_database_error(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """A missing table fails the run with the alert, the database and the error, and tags it ERROR."""
        defs = build_definitions(write_alerts(alerts_yaml("sqlite:///warehouse.db", table="missing_table")))
        result = _run(defs, "sqlsentinel__error_rate", instance)
        failure = result.failure_data_for_node("sqlsentinel_evaluate__default")
        assert not result.success and failure is not None
        assert failure.error is not None
        assert (
            "alert 'error_rate': query on database 'default' failed: no such table: missing_table"
            in failure.error.message
        )
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags[TAG_STATUS] == "ERROR"

    def test_contract_violation_fails_the_run_showing_the_columns(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """A query without a status column fails the run and the message lists the columns it returned."""
        path = write_alerts(
            """
            database: {url: "sqlite:///warehouse.db"}
            alerts:
              - {name: no_status, query: "SELECT endpoint, error_pct FROM api_metrics", schedule: "@daily"}
            """
        )
        result = _run(build_definitions(path), "sqlsentinel__no_status", instance)
        failure = result.failure_data_for_node("sqlsentinel_evaluate__default")
        assert failure is not None and failure.error is not None
        assert "the query returned columns: endpoint, error_pct" in failure.error.message

    def test_several_named_databases_each_get_a_resource(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, tmp_path: Path, instance: dg.DagsterInstance
    ) -> None:
        """Each alert queries the warehouse it names; an empty second warehouse gives a table error there."""
        (tmp_path / "empty.db").touch()
        query = "SELECT 'ALERT' AS status FROM api_metrics LIMIT 1"
        path = write_alerts(
            f"""
            databases:
              main: {{url: "sqlite:///warehouse.db"}}
              empty: {{url: "sqlite:///{tmp_path / "empty.db"}"}}
            defaults: {{schedule: "@daily"}}
            alerts:
              - {{name: on_main, database: main, query: "{query}"}}
              - {{name: on_empty, database: empty, query: "{query}"}}
            """
        )
        defs = build_definitions(path)
        assert _run(defs, "sqlsentinel__on_main", instance).success
        failure = _run(defs, "sqlsentinel__on_empty", instance).failure_data_for_node("sqlsentinel_evaluate__empty")
        assert failure is not None and failure.error is not None
        assert "query on database 'empty' failed: no such table: api_metrics" in failure.error.message


class TestSecrets:
    def test_database_password_never_reaches_definitions_snapshot_or_event_log(
        self, write_alerts: WriteAlerts, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
    ) -> None:
        """A password from ${VAR} (or written inline) is in neither the UI snapshot nor the failed run's events."""
        monkeypatch.setenv("SX_TEST_DB_PASSWORD", "EnvSecret-7f3a")
        path = write_alerts(
            """
            databases:
              from_env: {url: "postgresql://alerts:${SX_TEST_DB_PASSWORD}@127.0.0.1:1/w?connect_timeout=2"}
              inline: {url: "postgresql://alerts:InlineSecret-91bc@127.0.0.1:1/w?connect_timeout=2"}
            defaults: {schedule: "@daily"}
            alerts:
              - {name: env_pw, database: from_env, query: "SELECT 'OK' AS status"}
              - {name: inline_pw, database: inline, query: "SELECT 'OK' AS status"}
            """
        )
        defs = build_definitions(path)
        snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
        assert "EnvSecret-7f3a" not in snapshot and "InlineSecret-91bc" not in snapshot
        for job in ("sqlsentinel__env_pw", "sqlsentinel__inline_pw"):
            result = _run(defs, job, instance)
            assert not result.success
            logs = "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))
            assert "query on database" in logs
            assert "EnvSecret-7f3a" not in logs and "InlineSecret-91bc" not in logs

    def test_unset_secret_variable_fails_the_run_naming_the_variable(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance
    ) -> None:
        """A ${VAR} that is unset when the run executes fails the run with the variable's name."""
        path = write_alerts(alerts_yaml("postgresql://a:${SX_TEST_SURELY_UNSET_PW}@127.0.0.1/w"))
        result = _run(build_definitions(path), "sqlsentinel__error_rate", instance)
        failure = result.failure_data_for_node("sqlsentinel_evaluate__default")
        assert failure is not None and failure.error is not None
        assert "environment variable 'SX_TEST_SURELY_UNSET_PW' is not set" in failure.error.message
        assert "alert 'error_rate'" in failure.error.message


class TestStateInRuns:
    def test_dry_run_shows_the_decision_without_changing_state(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """A Launchpad dry run reports what it would do; the next real run still makes the first notification."""
        defs = build_definitions(write_alerts(alerts_yaml("sqlite:///warehouse.db", extra="notify: [{channel: log}]")))
        job = defs.resolve_job_def("sqlsentinel__error_rate")
        dry = job.execute_in_process(
            instance=instance, run_config={"ops": {"sqlsentinel_evaluate__default": {"config": {"dry_run": True}}}}
        )
        metadata = _metadata(dry)
        assert (metadata["decision"], metadata["reason"], metadata["dry_run"]) == (
            "first_notification",
            "firing: first notification",
            True,
        )
        assert metadata["notifications"] == []
        run = instance.get_run_by_id(dry.run_id)
        assert run is not None and run.tags["sqlsentinel/decision"] == "dry_run:first_notification"
        real = _metadata(job.execute_in_process(instance=instance))
        assert real["decision"] == "first_notification"
        assert real["notifications"] == [
            {"channel": "0:log", "event": "firing", "outcome": "delivered", "attempts": 1, "error": None}
        ]

    def test_silence_and_unsilence_jobs_take_typed_config(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """The silence job stores a silence that suppresses the alert's next run; unsilence ends it."""
        defs = build_definitions(write_alerts(alerts_yaml("sqlite:///warehouse.db", extra="notify: [{channel: log}]")))
        config = {"alert": "error_rate", "duration": "1h", "author": "ana", "reason": "maintenance window"}
        silenced = defs.resolve_job_def("sqlsentinel_silence").execute_in_process(
            instance=instance, run_config={"ops": {"sqlsentinel_silence_op": {"config": config}}}
        )
        assert silenced.success
        run = _metadata(_run(defs, "sqlsentinel__error_rate", instance))
        assert run["decision"] == "suppressed" and run["reason"].startswith("suppressed firing: silenced by ana until ")
        unsilenced = defs.resolve_job_def("sqlsentinel_unsilence").execute_in_process(
            instance=instance, run_config={"ops": {"sqlsentinel_unsilence_op": {"config": {"target": "error_rate"}}}}
        )
        assert unsilenced.success
        assert _metadata(_run(defs, "sqlsentinel__error_rate", instance))["decision"] == "silence_ended"

    def test_silence_job_refuses_a_silence_without_reason(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """A silence without a reason fails the run with the reason it was refused."""
        defs = build_definitions(write_alerts(alerts_yaml("sqlite:///warehouse.db")))
        config = {"alert": "error_rate", "duration": "1h", "author": "ana", "reason": " "}
        result = defs.resolve_job_def("sqlsentinel_silence").execute_in_process(
            instance=instance, run_config={"ops": {"sqlsentinel_silence_op": {"config": config}}}, raise_on_error=False
        )
        failure = result.failure_data_for_node("sqlsentinel_silence_op")
        assert failure is not None and failure.error is not None
        assert "cannot silence: a reason is required" in failure.error.message

    def test_query_error_is_recorded_as_error_state(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance
    ) -> None:
        """A failing query fails the run but is recorded: the decision notifies an error after error_after."""
        path = write_alerts(alerts_yaml("sqlite:///warehouse.db", table="missing", extra="error_after: 2"))
        defs = build_definitions(path)
        first = _run(defs, "sqlsentinel__error_rate", instance)
        second = _run(defs, "sqlsentinel__error_rate", instance)
        decisions = [instance.get_run_by_id(r.run_id).tags["sqlsentinel/decision"] for r in (first, second)]  # type: ignore[union-attr]
        assert decisions == ["error_pending", "error"] and not first.success and not second.success
