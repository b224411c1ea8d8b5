"""Checks mode: alerts as asset checks on their assets, one subsettable job, batch schedules, concurrent
evaluation where one broken warehouse never stops the others, and the same state machine as jobs mode."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sqlsentinel_dagster import ConfigError, build_definitions
from sqlsentinel_dagster.naming import TAG_ALERT, TAG_STATUS

from .loopback import Receiver, loopback_receiver

WriteAlerts = Callable[..., Path]

FIRING = "SELECT CASE WHEN MAX(error_pct) > 5 THEN 'ALERT' ELSE 'OK' END AS status, MAX(error_pct) AS actual_value, 5 AS threshold, COUNT(*) AS endpoints FROM api_metrics"  # noqa: E501
CALM = "SELECT 'OK' AS status, 12 AS actual_value, 100 AS threshold"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on SQLite in a temporary folder (alert state goes beside it)."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as rec:
        yield rec


def evaluations(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> list[Any]:
    """The check's recorded evaluations (AssetCheckEvaluation), newest first."""
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
    return [r.event.dagster_event.event_specific_data for r in records if r.event and r.event.dagster_event]


def checks_job(defs: dg.Definitions, *keys: dg.AssetCheckKey) -> dg.JobDefinition:
    """``sqlsentinel_checks``, subset to ``keys`` when given (as a launch with a check selection does)."""
    job = defs.resolve_job_def("sqlsentinel_checks")
    return job.get_subset(asset_check_selection=set(keys)) if keys else job


def run_checks(path: Path, instance: dg.DagsterInstance, **kwargs: Any) -> dg.ExecuteInProcessResult:
    """One run of every check of the alerts file at ``path`` (checks mode), failures kept in the result."""
    return checks_job(build_definitions(path, mode="checks")).execute_in_process(
        instance=instance, raise_on_error=False, **kwargs
    )


def key(asset: str, name: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)


ERROR_RATE = key("sqlsentinel/default", "error_rate")


class TestDefinitionsShape:
    def test_each_alert_is_a_check_on_its_asset_or_on_its_warehouse_asset(self, write_alerts: WriteAlerts) -> None:
        """`asset:` (string or list, also from defaults) picks the asset; without it, sqlsentinel/<database>."""
        path = write_alerts(
            f"""
            databases:
              shop: {{url: "sqlite:///shop.db"}}
              ops: {{url: "sqlite:///ops.db"}}
            defaults: {{database: shop, asset: shop/orders, schedule: "@hourly"}}
            alerts:
              - {{name: "orders late", query: "{CALM}"}}
              - {{name: refunds, query: "{CALM}", asset: [shop, refunds]}}
              - {{name: disk, query: "{CALM}", database: ops, asset: null}}
            """
        )
        repo = build_definitions(path, mode="checks").get_repository_def()
        assert repo.asset_graph.asset_check_keys == {
            key("shop/orders", "orders_late"),
            key("shop/refunds", "refunds"),
            key("sqlsentinel/ops", "disk"),
        }
        warehouse_asset = repo.asset_graph.get(dg.AssetKey(["sqlsentinel", "ops"]))
        assert (warehouse_asset.group_name, warehouse_asset.is_materializable) == ("sqlsentinel", False)
        assert not repo.asset_graph.has(dg.AssetKey(["sqlsentinel", "shop"]))  # every shop alert names its asset
        alert_jobs = [j.name for j in repo.get_all_jobs() if j.name.startswith("sqlsentinel") and "__" in j.name]
        assert alert_jobs == []  # one job for all of them
        assert repo.has_job("sqlsentinel_checks")

    def test_alerts_due_at_the_same_ticks_share_one_schedule_that_requests_exactly_their_checks(
        self, write_alerts: WriteAlerts
    ) -> None:
        """Same cron and timezone: one schedule, one run request with all their checks; others get their own."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///w.db"}}
            alerts:
              - {{name: a, query: "{CALM}", schedule: "*/5 * * * *"}}
              - {{name: b, query: "{CALM}", schedule: "*/5 * * * *"}}
              - {{name: c, query: "{CALM}", schedule: "*/5 * * * *", timezone: Europe/Paris}}
              - {{name: d, query: "{CALM}", schedule: "*/5 * * * *", enabled: false}}
              - {{name: e, query: "{CALM}", asset: shop/orders, on_materialization: true}}
            """
        )
        repo = build_definitions(path, mode="checks").get_repository_def()
        schedules = {s.name: s for s in repo.schedule_defs if s.name.startswith("sqlsentinel_checks__")}
        assert sorted(schedules) == [
            "sqlsentinel_checks__x_5_x_x_x_x__Europe_Paris",
            "sqlsentinel_checks__x_5_x_x_x_x__UTC",
            "sqlsentinel_checks__x_5_x_x_x_x__UTC__stopped",
        ]
        utc = schedules["sqlsentinel_checks__x_5_x_x_x_x__UTC"]
        with dg.build_schedule_context() as context:
            data = utc.evaluate_tick(context)
        [request] = data.run_requests or []
        assert set(request.asset_check_keys or []) == {key("sqlsentinel/default", "a"), key("sqlsentinel/default", "b")}
        assert utc.default_status == dg.DefaultScheduleStatus.RUNNING
        stopped = schedules["sqlsentinel_checks__x_5_x_x_x_x__UTC__stopped"]
        assert stopped.default_status == dg.DefaultScheduleStatus.STOPPED

    def test_two_checks_dagster_would_merge_into_one_are_refused(self, write_alerts: WriteAlerts) -> None:
        """(asset a, alert b_c) and (asset a_b, alert c) share Dagster's output name a_b_c: a named error."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///w.db"}}
            defaults: {{schedule: "@daily"}}
            alerts:
              - {{name: b_c, query: "{CALM}", asset: a}}
              - {{name: c, query: "{CALM}", asset: a_b}}
            """
        )
        with pytest.raises(
            ConfigError, match="alert 'c': its check \\(a_b: c\\) gets the same Dagster name 'a_b_c' as alert 'b_c'"
        ):
            build_definitions(path, mode="checks")

    def test_checks_merge_with_team_definitions_that_define_the_watched_asset(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance, sqlite_warehouse: Path
    ) -> None:
        """A team's own asset and our check on it load together, and the check runs against it."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            alerts:
              - {{name: orders_ok, query: "{CALM}", schedule: "@daily", asset: shop/orders}}
            """
        )

        @dg.asset(key=["shop", "orders"])
        def orders() -> None:
            return None

        merged = dg.Definitions.merge(dg.Definitions(assets=[orders]), build_definitions(path, mode="checks"))
        repo = merged.get_repository_def()
        assert repo.asset_graph.get(dg.AssetKey(["shop", "orders"])).is_materializable
        result = checks_job(merged).execute_in_process(instance=instance)
        assert result.success
        [evaluation] = evaluations(instance, key("shop/orders", "orders_ok"))
        assert evaluation.passed


class TestRuns:
    def test_evaluation_is_recorded_with_plottable_values_and_the_alert_severity(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance, sqlite_warehouse: Path
    ) -> None:
        """actual_value/threshold are floats (plotted by the UI); critical -> ERROR, warning -> WARN."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            defaults: {{schedule: "*/5 * * * *"}}
            alerts:
              - {{name: error_rate, query: "{FIRING}", severity: critical}}
              - {{name: calm, query: "{CALM}"}}
            """
        )
        result = run_checks(path, instance)
        assert result.success
        [firing] = evaluations(instance, key("sqlsentinel/default", "error_rate"))
        [calm] = evaluations(instance, key("sqlsentinel/default", "calm"))
        assert (firing.passed, firing.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert (calm.passed, calm.severity) == (True, dg.AssetCheckSeverity.WARN)
        assert isinstance(firing.metadata["actual_value"], dg.FloatMetadataValue)
        assert (firing.metadata["actual_value"].value, firing.metadata["threshold"].value) == (7.5, 5.0)
        assert firing.metadata["decision"].value == "first_notification"
        assert firing.metadata["context"].value == {"endpoints": 2}
        assert isinstance(firing.metadata["query_ms"], dg.FloatMetadataValue)
        assert calm.metadata["actual_value"].value == 12.0
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags[TAG_STATUS] == "ALERT"

    def test_a_launch_with_a_check_selection_evaluates_exactly_those_alerts(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance, sqlite_warehouse: Path
    ) -> None:
        """Executing one check (as the UI's Execute does) evaluates that alert only and tags the run with it."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            defaults: {{schedule: "*/5 * * * *"}}
            alerts:
              - {{name: first, query: "{CALM}"}}
              - {{name: second, query: "{CALM}"}}
            """
        )
        defs = build_definitions(path, mode="checks")
        result = checks_job(defs, key("sqlsentinel/default", "second")).execute_in_process(instance=instance)
        assert result.success
        assert len(evaluations(instance, key("sqlsentinel/default", "second"))) == 1
        assert evaluations(instance, key("sqlsentinel/default", "first")) == []
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.tags[TAG_ALERT] == "second"

    def test_a_broken_warehouse_fails_its_alerts_only_and_the_others_still_record_and_notify(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance, sqlite_warehouse: Path, receiver: Receiver
    ) -> None:
        """A warehouse that refuses connections: its check fails with the error, the others are recorded and
        notified, then the run fails naming the broken alert."""
        path = write_alerts(
            f"""
            databases:
              good: {{url: "sqlite:///{sqlite_warehouse}"}}
              down: {{url: "postgresql://nobody@127.0.0.1:1/none"}}
            defaults: {{schedule: "*/5 * * * *", database: good, notify: [{{channel: webhook, url: "{receiver.url}"}}]}}
            alerts:
              - {{name: broken, query: "SELECT 'OK' AS status", database: down}}
              - {{name: fires_1, query: "{FIRING}"}}
              - {{name: fires_2, query: "{FIRING}"}}
              - {{name: calm, query: "{CALM}"}}
            """
        )
        result = run_checks(path, instance)
        assert not result.success
        [broken] = evaluations(instance, key("sqlsentinel/down", "broken"))
        assert broken.passed is False
        assert "alert 'broken'" in broken.metadata["error"].value
        assert "connection" in broken.metadata["error"].value.lower()
        for name in ("fires_1", "fires_2", "calm"):
            assert len(evaluations(instance, key("sqlsentinel/good", name))) == 1
        sent = sorted((r.body["alert_name"], r.body["event"]) for r in receiver.delivered())
        assert sent == [("broken", "error"), ("fires_1", "firing"), ("fires_2", "firing")]
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "1 of 4 alert(s) failed" in (failure.step_failure_data.error.message or "")  # type: ignore[union-attr]

    def test_an_unexpected_error_in_one_alert_costs_only_that_alert_its_result(
        self,
        write_alerts: WriteAlerts,
        instance: dg.DagsterInstance,
        sqlite_warehouse: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A bug hit while evaluating one alert (simulated) is that alert's failed check; the others still land."""
        import sqlsentinel_dagster.definitions.checks_batch as checks

        real = checks.run_cycle

        def buggy(alert: Any, *args: Any) -> Any:
            if alert.name == "unlucky":
                raise ZeroDivisionError("division by zero")
            return real(alert, *args)

        monkeypatch.setattr(checks, "run_cycle", buggy)
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            defaults: {{schedule: "*/5 * * * *"}}
            alerts:
              - {{name: unlucky, query: "{CALM}"}}
              - {{name: fine, query: "{CALM}"}}
            """
        )
        result = run_checks(path, instance)
        assert not result.success
        [unlucky] = evaluations(instance, key("sqlsentinel/default", "unlucky"))
        assert unlucky.passed is False
        assert unlucky.metadata["error"].value == "alert 'unlucky': unexpected ZeroDivisionError: division by zero"
        [fine] = evaluations(instance, key("sqlsentinel/default", "fine"))
        assert fine.passed is True

    def test_a_url_from_a_variable_with_a_missing_driver_is_a_recorded_error_without_the_password(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """${DB_URL} naming a driver that is not installed: the alert's evaluation fails saying so (not a crash),
        and the password in the URL appears nowhere."""
        monkeypatch.setenv("SX_DB_URL", "mssql+pyodbc://alerts:s3cret-pw@warehouse/db")
        path = write_alerts(
            f"""
            database: {{url: "${{SX_DB_URL}}"}}
            alerts:
              - {{name: on_mssql, query: "{CALM}", schedule: "@daily"}}
            """
        )
        result = run_checks(path, instance)
        assert not result.success
        [evaluation] = evaluations(instance, key("sqlsentinel/default", "on_mssql"))
        error = evaluation.metadata["error"].value
        assert "the driver for 'mssql+pyodbc' is not installed (no module 'pyodbc')" in error
        logs = " ".join(str(e.message) for e in instance.all_logs(result.run_id))
        assert "s3cret-pw" not in error + logs

    def test_second_run_follows_the_same_state_machine_as_jobs_mode(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance, sqlite_warehouse: Path, receiver: Receiver
    ) -> None:
        """Still firing at the next run: no second notification; recovered: one resolved notice."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            alerts:
              - {{name: error_rate, query: "{FIRING}", schedule: "*/5 * * * *",
                  notify: [{{channel: webhook, url: "{receiver.url}"}}]}}
            """
        )
        defs = build_definitions(path, mode="checks")
        for _ in range(2):
            assert checks_job(defs).execute_in_process(instance=instance).success
        with sqlite3.connect(sqlite_warehouse) as db:
            db.execute("UPDATE api_metrics SET error_pct = 1")
        assert checks_job(defs).execute_in_process(instance=instance).success
        assert [r.body["event"] for r in receiver.delivered()] == ["firing", "resolved"]
        decisions = [
            e.metadata["decision"].value for e in evaluations(instance, key("sqlsentinel/default", "error_rate"))
        ]
        assert decisions == ["resolved", "already_firing", "first_notification"]

    def test_dry_run_shows_the_decision_and_notifies_no_one(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance, sqlite_warehouse: Path, receiver: Receiver
    ) -> None:
        """dry_run in the run config: evaluations are recorded as checks, nothing is sent or stored as state."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            alerts:
              - {{name: error_rate, query: "{FIRING}", schedule: "*/5 * * * *",
                  notify: [{{channel: webhook, url: "{receiver.url}"}}]}}
            """
        )
        run_config = {"ops": {"sqlsentinel_evaluate_checks": {"config": {"dry_run": True}}}}
        defs = build_definitions(path, mode="checks")
        for _ in range(2):
            assert checks_job(defs).execute_in_process(instance=instance, run_config=run_config).success
        assert receiver.delivered() == []
        decisions = [
            e.metadata["decision"].value for e in evaluations(instance, key("sqlsentinel/default", "error_rate"))
        ]
        assert decisions == [
            "first_notification",
            "first_notification",
        ]  # nothing stored: both runs see a first evaluation


class TestOnMaterialization:
    def test_jobs_mode_sensor_runs_each_watching_alert_job_once_per_burst(
        self, write_alerts: WriteAlerts, instance: dg.DagsterInstance
    ) -> None:
        """First tick: starts watching. Three materializations: one run request per watching alert. Then none."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///w.db"}}
            alerts:
              - {{name: fresh, query: "{CALM}", asset: shop/orders, on_materialization: true}}
              - {{name: scheduled_too, query: "{CALM}", asset: shop/orders, on_materialization: true,
                  schedule: "@daily"}}
              - {{name: other_asset, query: "{CALM}", asset: shop/refunds, on_materialization: true}}
              - {{name: not_watching, query: "{CALM}", asset: shop/orders, schedule: "@daily"}}
            """
        )
        repo = build_definitions(path).get_repository_def()
        assert not repo.has_schedule_def("sqlsentinel__fresh__schedule")  # on materialization only
        sensor = repo.get_sensor_def("sqlsentinel_on_materialization")

        @dg.asset(key=["shop", "orders"])
        def orders() -> None:
            return None

        def tick(cursor: str | None) -> dg.SensorExecutionData:
            with dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repo) as context:
                return sensor.evaluate_tick(context)

        first = tick(None)
        assert first.run_requests == []
        for _ in range(3):
            assert dg.materialize([orders], instance=instance).success
        burst = tick(first.cursor)
        assert sorted(r.job_name or "" for r in burst.run_requests or []) == [
            "sqlsentinel__fresh",
            "sqlsentinel__scheduled_too",
        ]
        assert tick(burst.cursor).run_requests == []
