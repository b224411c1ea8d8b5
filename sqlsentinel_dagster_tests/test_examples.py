"""The demo in examples/: it builds its own warehouse, and it has alerts that fire and alerts that are OK."""

from __future__ import annotations

import runpy
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
from pytest import MonkeyPatch

from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.definitions.resources import AlertStateResource, NotificationsResource
from sqlsentinel_dagster.naming import TAG_STATUS
from sqlsentinel_dagster.state.admin import alert_statuses
from sqlsentinel_dagster.state.store import StateStore

from .conftest import REPO


def test_demo_creates_its_warehouse_and_has_firing_and_ok_alerts(tmp_path: Path) -> None:
    """A fresh copy of examples/ creates warehouse.db on load; the demo alerts evaluate to both ALERT and OK, and
    the per-endpoint error-rate alert fires for /orders only."""
    shutil.copy(REPO / "examples" / "alerts.yaml", tmp_path)
    shutil.copy(REPO / "examples" / "definitions.py", tmp_path)
    defs = runpy.run_path(str(tmp_path / "definitions.py"))["defs"]
    assert (tmp_path / "warehouse.db").exists()
    statuses = {}
    with dg.instance_for_test() as instance:
        for job in defs.get_repository_def().get_all_jobs():
            if not job.name.startswith("sqlsentinel__"):
                continue  # the silence, unsilence and prune jobs
            result = job.execute_in_process(instance=instance)
            run = instance.get_run_by_id(result.run_id)
            assert run is not None
            statuses[job.name] = run.tags[TAG_STATUS]
        states = {s.alert: s.condition for s in alert_statuses(StateStore.from_url(instance_state_url(instance)))}
    assert statuses["sqlsentinel__high_error_rate"] == "ALERT"
    assert statuses["sqlsentinel__orders_volume"] == "OK"
    # the error-rate alert is per endpoint: /orders (7.5%) fires on its own, /users (1%) does not
    assert states['high_error_rate{endpoint="/orders"}'] == "firing"
    assert states['high_error_rate{endpoint="/users"}'] == "inactive"


def test_demo_in_checks_mode_puts_the_orders_alert_on_its_asset(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """SQLSENTINEL_DEMO_MODE=checks: one batched run evaluates every demo alert as a check."""
    shutil.copy(REPO / "examples" / "alerts.yaml", tmp_path)
    shutil.copy(REPO / "examples" / "definitions.py", tmp_path)
    monkeypatch.setenv("SQLSENTINEL_DEMO_MODE", "checks")
    defs = runpy.run_path(str(tmp_path / "definitions.py"))["defs"]
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("sqlsentinel_checks").execute_in_process(instance=instance)
        assert result.success
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [
                dg.AssetCheckKey(dg.AssetKey(["shop", "orders"]), "orders_volume"),
                dg.AssetCheckKey(dg.AssetKey(["sqlsentinel", "default"]), "high_error_rate"),
            ]
        )
    passed = {key.name: record.evaluation.passed for key, record in latest.items()}  # type: ignore[union-attr]
    assert passed == {"orders_volume": True, "high_error_rate": False}


def test_demo_watch_rule_alerts_on_the_team_check(tmp_path: Path) -> None:
    """The demo's `team_checks` rule: an order without an amount fails the team's own check in a real run, and
    the sqlsentinel_watch sensor records the check as firing (the demo's log channel tells the sensor log)."""
    shutil.copy(REPO / "examples" / "alerts.yaml", tmp_path)
    shutil.copy(REPO / "examples" / "definitions.py", tmp_path)
    demo = runpy.run_path(str(tmp_path / "definitions.py"))
    with sqlite3.connect(tmp_path / "warehouse.db") as db:
        db.execute("INSERT INTO orders (order_date, amount) VALUES ('2026-01-02', NULL)")
    defs: dg.Definitions = demo["defs"]
    sensor = defs.resolve_sensor_def("sqlsentinel_watch")
    resources = {"sqlsentinel_state": AlertStateResource(), "sqlsentinel_notifications": NotificationsResource()}
    with dg.instance_for_test() as instance:
        first = dg.build_sensor_context(instance=instance, resources=resources)
        sensor(first)  # the first tick: nothing evaluated yet
        result = dg.materialize([demo["orders"], demo["orders_have_amounts"]], instance=instance)
        (evaluation,) = result.get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.metadata["orders_without_amount"].value == 1
        sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources))
        statuses = {s.alert: s for s in alert_statuses(StateStore.from_url(instance_state_url(instance)))}
    watched = statuses["team_checks:shop/orders:orders_have_amounts"]
    assert (watched.condition, watched.notification_count) == ("firing", 1)
