"""``inhibit: [{upstream: true}]``: while an alert on an asset fires, the alerts on the assets downstream of it (the
deployment's lineage, as Dagster recorded it on the last materializations, from any code location) are held, and
notify once when it resolves. Real SQLite warehouse, loopback webhook, real Dagster runs: the daemon's batch
schedule on a two-location workspace, the checks job in process, and jobs mode's per-alert jobs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.naming import TAG_DECISION, job_name

from .loopback import Receiver, loopback_receiver
from .processes import dagster_daemon, dagster_env, wait_for
from .test_checks import checks_job, key

CHECKS = {
    "raw_late": key("shop/raw_orders", "raw_late"),
    "daily_late": key("shop/orders_daily", "daily_late"),
    "report_late": key("shop/orders_report", "report_late"),
}
"""The alerts of the file below and their checks: raw_orders -> orders_daily -> orders_report in the team's code."""

LATE = "SELECT CASE WHEN late = 1 THEN 'ALERT' ELSE 'OK' END AS status FROM f WHERE asset = '{asset}'"

PIPELINES = """
import dagster as dg

@dg.asset(key=["shop", "raw_orders"])
def raw_orders() -> None:
    return None

@dg.asset(key=["shop", "orders_daily"], deps=[raw_orders])
def orders_daily() -> None:
    return None

@dg.asset(key=["shop", "orders_report"], deps=[orders_daily])
def orders_report() -> None:
    return None

defs = dg.Definitions(assets=[raw_orders, orders_daily, orders_report])
"""
"""The team's code location: three assets in a chain, none of which knows about the alerts."""

MATERIALIZE = """
import dagster as dg
from pipelines import orders_daily, orders_report, raw_orders

with dg.DagsterInstance.get() as instance:
    assert dg.materialize([raw_orders, orders_daily, orders_report], instance=instance).success
"""

_team: dict[str, Any] = {}
exec(PIPELINES, _team)  # the same assets in this process, for the in-process tests
RAW, DAILY, REPORT = _team["raw_orders"], _team["orders_daily"], _team["orders_report"]


@dg.asset(key=["shop", "refunds"], deps=[RAW])
def refunds() -> None:
    """Downstream of raw_orders in code, but never materialized: the instance has no lineage for it."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as rec:
        yield rec


def _alerts(folder: Path, receiver: Receiver, extra: str = "") -> Path:
    """Write the warehouse (every asset late) and the alerts file, downstream alerts listed first; return the
    file's path."""
    with sqlite3.connect(folder / "warehouse.db") as db:
        db.execute("CREATE TABLE f (asset TEXT, late INTEGER)")
        db.executemany("INSERT INTO f VALUES (?, 1)", [("raw",), ("daily",), ("report",), ("refunds",)])
    path = folder / "alerts.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            database: {{url: "sqlite:///warehouse.db"}}
            inhibit:
              - upstream: true
            defaults: {{schedule: "* * * * *", notify: [{{channel: webhook, url: "{receiver.url}"}}]}}
            alerts:
              - {{name: report_late, asset: shop/orders_report, query: "{LATE.format(asset="report")}"}}
              - {{name: daily_late, asset: shop/orders_daily, query: "{LATE.format(asset="daily")}"}}
              - {{name: raw_late, asset: shop/raw_orders, query: "{LATE.format(asset="raw")}"}}
            """
        )
        + extra
    )
    return path


def _late(folder: Path, asset: str, late: bool) -> None:
    with sqlite3.connect(folder / "warehouse.db") as db:
        db.execute("UPDATE f SET late = ? WHERE asset = ?", (int(late), asset))


def _sent(receiver: Receiver) -> list[tuple[str, str]]:
    """(alert, event) of each delivered webhook post, in order."""
    return [(r.body["alert_name"], r.body["event"]) for r in receiver.delivered()]


def _batches(instance: dg.DagsterInstance) -> dict[str, dict[str, dict[str, Any]]]:
    """The recorded check evaluations of the alerts, by run, then by alert: each one's metadata values."""
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for name, check in CHECKS.items():
        for record in instance.event_log_storage.get_asset_check_execution_history(check, limit=100):
            event = record.event.dagster_event if record.event else None
            data = event.event_specific_data if event else None
            if isinstance(data, dg.AssetCheckEvaluation):  # not a planned one still running
                runs.setdefault(record.run_id, {})[name] = {k: v.value for k, v in data.metadata.items()}
    return runs


def _complete(instance: dg.DagsterInstance, raw_decision: str) -> dict[str, dict[str, Any]] | None:
    """The batch that evaluated all three alerts with raw_late's decision ``raw_decision``, if one has."""
    found = [
        batch
        for batch in _batches(instance).values()
        if len(batch) == len(CHECKS) and batch["raw_late"]["decision"] == raw_decision
    ]
    return found[0] if found else None


def test_a_downstream_alert_in_another_code_location_stays_quiet_while_the_upstream_alert_fires_through_the_daemon(
    tmp_path: Path, dagster_home: Path, receiver: Receiver
) -> None:
    """The daemon's every-minute batch pages raw_late alone and holds daily_late and report_late (downstream in the
    team's code location, read from its materializations). Their release, tick after tick, is shown in process
    below: one tick here keeps the suite's minute waits short."""
    _alerts(tmp_path, receiver)
    (tmp_path / "alerts_defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml', mode='checks')\n"
    )
    (tmp_path / "pipelines.py").write_text(PIPELINES)
    (tmp_path / "workspace.yaml").write_text(
        textwrap.dedent(
            """
            load_from:
              - python_file: {relative_path: alerts_defs.py, location_name: alerts, working_directory: .}
              - python_file: {relative_path: pipelines.py, location_name: pipelines, working_directory: .}
            """
        )
    )
    materialize = subprocess.run(
        [sys.executable, "-c", MATERIALIZE],
        cwd=tmp_path,
        env=dagster_env(dagster_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert materialize.returncode == 0, materialize.stderr[-2000:]
    with dagster_daemon(tmp_path, dagster_home), dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        wait_for(lambda: _complete(instance, "first_notification") is not None, 180, "the first batch")
        first = _complete(instance, "first_notification")
        assert first is not None
        assert _sent(receiver) == [("raw_late", "firing")]
        for name in ("daily_late", "report_late"):
            assert first[name]["decision"] == "inhibited", first[name]
            assert first[name]["reason"] == (
                "inhibited firing: inhibited by raw_late, which is firing on upstream asset shop/raw_orders"
            )


REFUNDS = f"""  - {{name: refunds_late, asset: shop/refunds, query: "{LATE.format(asset="refunds")}"}}\n"""


def test_one_batch_evaluates_upstream_alerts_first_and_holds_the_whole_chain_in_process(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    """In one run of sqlsentinel_checks, raw_late is evaluated before daily_late and daily_late before report_late,
    so only raw_late pages while report_late (two levels down) is held too; refunds_late, on an asset never
    materialized, has no lineage and pages; each level is released as the one above it resolves."""
    path = _alerts(tmp_path, receiver, extra=REFUNDS)
    assert dg.materialize([RAW, DAILY, REPORT], instance=instance).success
    job = checks_job(build_definitions(path, mode="checks"))

    def batch() -> dict[str, dict[str, Any]]:
        result = job.execute_in_process(instance=instance)
        order = [e.check_name for e in result.get_asset_check_evaluations()]
        assert order.index("raw_late") < order.index("daily_late") < order.index("report_late")
        return {e.check_name: {k: v.value for k, v in e.metadata.items()} for e in result.get_asset_check_evaluations()}

    first = batch()
    assert {name: first[name]["decision"] for name in first} == {
        "raw_late": "first_notification",
        "daily_late": "inhibited",
        "report_late": "inhibited",
        "refunds_late": "first_notification",
    }
    assert first["report_late"]["reason"] == (
        "inhibited firing: inhibited by raw_late, which is firing on upstream asset shop/raw_orders"
    )
    assert sorted(_sent(receiver)) == [("raw_late", "firing"), ("refunds_late", "firing")]

    _late(tmp_path, "raw", False)
    second = batch()
    assert (second["raw_late"]["decision"], second["daily_late"]["decision"]) == ("resolved", "silence_ended")
    assert second["report_late"]["decision"] == "still_inhibited"
    assert second["report_late"]["reason"] == (
        "firing: still held, inhibited by daily_late, which is firing on upstream asset shop/orders_daily"
    )
    assert _sent(receiver)[2:] == [("raw_late", "resolved"), ("daily_late", "firing")]

    _late(tmp_path, "daily", False)
    third = batch()
    assert (third["daily_late"]["decision"], third["report_late"]["decision"]) == ("resolved", "silence_ended")
    assert _sent(receiver)[4:] == [("daily_late", "resolved"), ("report_late", "firing")]


def test_jobs_mode_holds_the_downstream_alerts_job_while_the_upstream_alerts_job_fires(
    tmp_path: Path, instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    """In jobs mode, raw_late's job pages; daily_late's job, run after it on the same instance, records the
    decision inhibited (run tag and output metadata naming raw_late and its asset) and sends nothing."""
    path = _alerts(tmp_path, receiver)
    assert dg.materialize([RAW, DAILY, REPORT], instance=instance).success
    defs = build_definitions(path)

    def run(alert: str) -> tuple[str, dict[str, Any]]:
        result = defs.resolve_job_def(job_name(alert)).execute_in_process(instance=instance)
        [output] = [e for e in result.all_node_events if e.is_successful_output]
        metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
        run_record = instance.get_run_by_id(result.run_id)
        assert run_record is not None
        return run_record.tags[TAG_DECISION], metadata

    assert run("raw_late")[0] == "first_notification"
    decision, metadata = run("daily_late")
    assert (decision, metadata["decision"]) == ("inhibited", "inhibited")
    assert metadata["reason"] == (
        "inhibited firing: inhibited by raw_late, which is firing on upstream asset shop/raw_orders"
    )
    assert _sent(receiver) == [("raw_late", "firing")]
