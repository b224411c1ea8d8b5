"""Baseline alerts in real runs: the alert learns from its own recorded values, then a spike fires once with
the band in the message and in the check metadata, is not learned, and resolves when the value is back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from sqlsentinel_dagster import ConfigError, build_definitions, load_config

from .loopback import loopback_receiver

LEARNING = [100, 102, 98, 101, 99]


def _set(warehouse: Path, value: float | None) -> None:
    with sqlite3.connect(warehouse) as db:
        db.execute("DELETE FROM metric")
        db.execute("INSERT INTO metric VALUES (?)", (value,))


def _alerts(tmp_path: Path, url: str, warehouse: Path) -> Path:
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE metric (v REAL)")
    path = tmp_path / "alerts.yaml"
    path.write_text(
        f"""
databases: {{main: {{url: "sqlite:///{warehouse}"}}}}
alerts:
  - name: orders_per_hour
    query: "SELECT v AS actual_value FROM metric"
    schedule: "5 * * * *"
    baseline: {{min_history: 5, history: 1d}}
    notify: [{{channel: webhook, url: "{url}"}}]
"""
    )
    return path


def test_a_spike_after_learning_fires_once_with_the_band_and_resolves(tmp_path: Path) -> None:
    """Five learning runs notify nobody; a steady value is OK; 300 fires once with threshold_low/high and the
    sentence; 310 while firing sends nothing and is not learned; 100 resolves."""
    warehouse = tmp_path / "w.db"
    with loopback_receiver() as receiver, dg.instance_for_test() as instance:
        path = _alerts(tmp_path, receiver.url, warehouse)
        job = build_definitions(path, mode="checks").resolve_job_def("sqlsentinel_checks")

        def run(value: float) -> dg.AssetCheckEvaluation:
            _set(warehouse, value)
            (evaluation,) = job.execute_in_process(instance=instance).get_asset_check_evaluations()
            return evaluation

        learning = [run(value) for value in LEARNING]
        assert all(e.passed for e in learning) and receiver.delivered() == []
        assert learning[-1].metadata["baseline_reason"].value == "learning (4 of 5)"
        steady = run(100)
        assert steady.passed and steady.metadata["threshold_low"].value == pytest.approx(95.552, abs=0.01)
        spike = run(300)
        assert not spike.passed
        assert spike.metadata["threshold_high"].value == pytest.approx(104.448, abs=0.01)
        assert spike.metadata["baseline"].value == 100
        (firing,) = [r.body for r in receiver.delivered()]
        assert firing["event"] == "firing" and firing["actual_value"] == 300
        assert (firing["threshold_low"], firing["baseline"]) == (pytest.approx(95.552, abs=0.01), 100)
        assert firing["expected"] == "300, expected 95.6\N{EN DASH}104.4 (median 100 over the last day)"
        still = run(310)
        assert not still.passed and still.metadata["threshold_high"].value == spike.metadata["threshold_high"].value
        back = run(100)
        assert back.passed
        events = [r.body["event"] for r in receiver.delivered()]
    assert events == ["firing", "resolved"]


def test_a_value_that_is_not_a_number_is_an_evaluation_error(tmp_path: Path) -> None:
    """NULL actual_value: the run records an error naming the alert and what the baseline needs."""
    warehouse = tmp_path / "w.db"
    with loopback_receiver() as receiver, dg.instance_for_test() as instance:
        path = _alerts(tmp_path, receiver.url, warehouse)
        _set(warehouse, None)
        job = build_definitions(path, mode="checks").resolve_job_def("sqlsentinel_checks")
        (evaluation,) = job.execute_in_process(instance=instance, raise_on_error=False).get_asset_check_evaluations()
    error = evaluation.metadata["error"].value
    assert isinstance(error, str) and error.startswith("alert 'orders_per_hour': the baseline needs a numeric")


def test_rows_and_baseline_together_are_refused(tmp_path: Path) -> None:
    """A failed-rows alert's threshold is rows.max: a baseline on it is a located error."""
    path = tmp_path / "alerts.yaml"
    path.write_text(
        'alerts:\n  - {name: a, query: "SELECT 1 AS x", schedule: "@daily", rows: {max: 0}, baseline: {}}\n'
    )
    with pytest.raises(ConfigError, match="rows and baseline cannot be combined"):
        load_config(path, environ={"DATABASE_URL": "sqlite://"})
