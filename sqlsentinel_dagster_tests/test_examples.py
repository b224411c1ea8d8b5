"""The demo in examples/: it builds its own warehouse, and it has alerts that fire and alerts that are OK."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

import dagster as dg

from sqlsentinel_dagster.naming import TAG_STATUS

from .conftest import REPO


def test_demo_creates_its_warehouse_and_has_firing_and_ok_alerts(tmp_path: Path) -> None:
    """A fresh copy of examples/ creates warehouse.db on load; the demo alerts evaluate to both ALERT and OK."""
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
    assert statuses["sqlsentinel__high_error_rate"] == "ALERT"
    assert statuses["sqlsentinel__orders_volume"] == "OK"
