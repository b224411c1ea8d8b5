"""Alerts keep every schedule and sensor however their definitions are built, as the webserver serves them: a
module-level `Definitions`, `Definitions.merge`, a `@dg.definitions` function and `load_from_defs_folder` under
`dagster dev`, in jobs and checks mode; two scaffolded Components under `dg dev`, whose schedules the real daemon
runs. A run worker still builds only the job it runs, however the definitions are built."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from .processes import BIN, dagster_env, free_port, wait_for, webserver

ALERTS = """\
database: {{url: "sqlite:///warehouse.db"}}
alerts:
  - {{name: {prefix}_orders, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *"}}
  - {{name: {prefix}_late, query: "SELECT 'ALERT' AS status", schedule: "@daily", on_materialization: true,
      asset: shop/orders}}
"""

STYLES = {
    "module": """
        from pathlib import Path
        from sqlsentinel_dagster import build_definitions
        defs = build_definitions(Path(__file__).parent / "{alerts}", mode="{mode}")
        """,
    "merge": """
        from pathlib import Path
        import dagster as dg
        from sqlsentinel_dagster import build_definitions

        @dg.asset(key=["shop", "orders"])
        def orders() -> None:
            return None

        defs = dg.Definitions.merge(
            dg.Definitions(assets=[orders]), build_definitions(Path(__file__).parent / "{alerts}", mode="{mode}")
        )
        """,
    "decorator": """
        from pathlib import Path
        import dagster as dg
        from sqlsentinel_dagster import build_definitions

        @dg.definitions
        def defs():
            return build_definitions(Path(__file__).parent / "{alerts}", mode="{mode}")
        """,
}

PROJECT_DEFINITIONS = """
from pathlib import Path
import dagster as dg

@dg.definitions
def defs():
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def _expected(prefix: str, mode: str, namespace: str = "") -> tuple[set[str], set[str]]:
    """The schedules and sensors an alerts file of ``ALERTS`` makes (besides the location's prune schedule)."""
    suffix = f"__{namespace}" if namespace else ""
    if mode == "jobs":
        schedules = {f"sqlsentinel__{prefix}_orders__schedule", f"sqlsentinel__{prefix}_late__schedule"}
    else:
        checks = f"sqlsentinel_checks{suffix}"
        schedules = {f"{checks}__x_5_x_x_x_x__UTC", f"{checks}___daily__UTC"}
    return schedules, {f"sqlsentinel_config{suffix}", f"sqlsentinel_on_materialization{suffix}"}


def _served(location: dict[str, Any]) -> tuple[dict[str, str], dict[str, str], set[str]]:
    assert location["__typename"] == "RepositoryLocation", location.get("message")
    [repository] = location["repositories"]
    schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    return schedules, sensors, {job["name"] for job in repository["jobs"]}


def _project(root: Path, name: str) -> Path:
    """A `dg` project (flat layout) whose definitions load its defs folder."""
    package = root / name
    (package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.0.1"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        f'[tool.dg.project]\nroot_module = "{name}"\n'
    )
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(PROJECT_DEFINITIONS)
    return package / "defs"


def _component(defs: Path, folder: str, mode: str, alerts: str) -> Path:
    (defs / folder).mkdir()
    (defs / folder / "defs.yaml").write_text(
        f"type: sqlsentinel_dagster.SqlAlertsComponent\nattributes:\n  path: alerts.yaml\n  mode: {mode}\n"
    )
    (defs / folder / "alerts.yaml").write_text(alerts)
    return defs / folder


def test_dagster_dev_serves_every_schedule_and_sensor_for_every_way_of_building_definitions(
    tmp_path: Path, dagster_home: Path, sqlite_warehouse: Path
) -> None:
    """Six single-file code locations (module-level, merged, `@dg.definitions`; jobs and checks mode) and a
    project of two components loaded by `load_from_defs_folder`: each serves its alerts' schedules, its sensors
    and one prune schedule, all RUNNING."""
    workspace = []
    for style, source in STYLES.items():
        for mode in ("jobs", "checks"):
            name = f"{style}_{mode}"
            folder = tmp_path / name
            folder.mkdir()
            (folder / "warehouse.db").write_bytes(sqlite_warehouse.read_bytes())
            (folder / "alerts.yaml").write_text(ALERTS.format(prefix=name))
            (folder / "defs.py").write_text(textwrap.dedent(source.format(alerts="alerts.yaml", mode=mode)))
            workspace.append(f"  - python_file: {{relative_path: {name}/defs.py, location_name: {name}}}\n")
    defs = _project(tmp_path / "project", "teams")
    for folder, mode in (("team_jobs", "jobs"), ("team_checks", "checks")):
        component = _component(defs, folder, mode, ALERTS.format(prefix=folder))
        (component / "warehouse.db").write_bytes(sqlite_warehouse.read_bytes())
    workspace.append(
        "  - python_module: {module_name: teams.definitions, location_name: teams, working_directory: project}\n"
    )
    (tmp_path / "workspace.yaml").write_text("load_from:\n" + "".join(workspace))
    port = free_port()
    command = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"]
    with webserver(command, tmp_path, dagster_home, len(workspace), port) as locations:
        for style in STYLES:
            for mode in ("jobs", "checks"):
                schedules, sensors, _ = _served(locations[f"{style}_{mode}"])
                want_schedules, want_sensors = _expected(f"{style}_{mode}", mode)
                assert set(schedules) == want_schedules | {"sqlsentinel_prune__schedule"}, (style, mode)
                assert set(sensors) == want_sensors, (style, mode)
                assert set(schedules.values()) == set(sensors.values()) == {"RUNNING"}
        schedules, sensors, jobs = _served(locations["teams"])
    jobs_schedules, jobs_sensors = _expected("team_jobs", "jobs", "team_jobs")
    checks_schedules, checks_sensors = _expected("team_checks", "checks", "team_checks")
    assert set(schedules) == jobs_schedules | checks_schedules | {"sqlsentinel_prune__schedule"}
    assert set(sensors) == jobs_sensors | checks_sensors
    assert {"sqlsentinel_silence", "sqlsentinel_replay__team_jobs", "sqlsentinel_replay__team_checks"} <= jobs


def test_two_components_under_dg_dev_are_served_and_the_daemon_runs_a_scheduled_alert_of_each(
    tmp_path: Path, sqlite_warehouse: Path
) -> None:
    """`dg dev` on a project with two components (jobs mode, checks mode) serves both files' schedules and
    sensors, and its daemon launches a scheduled run of each file's alerts, which records the alert's status."""
    root = tmp_path / "alerts_project"
    defs = _project(root, "alerts_project")
    every_minute = (
        'database: {{url: "sqlite:///{db}"}}\nalerts:\n  - {{name: {name}, query: "{query}", schedule: "* * * * *"}}\n'
    )
    _component(
        defs,
        "team_a",
        "jobs",
        every_minute.format(db=sqlite_warehouse, name="a_fires", query="SELECT 'ALERT' AS status"),
    )
    _component(
        defs, "team_b", "checks", every_minute.format(db=sqlite_warehouse, name="b_ok", query="SELECT 'OK' AS status")
    )
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    command = [str(BIN / "dg"), "dev", "--port", str(port), "--host", "127.0.0.1"]
    with webserver(command, root, home, 1, port) as locations:
        schedules, sensors, _ = _served(locations["alerts_project"])
        assert set(schedules) == {
            "sqlsentinel__a_fires__schedule",
            "sqlsentinel_checks__team_b__x_x_x_x_x__UTC",
            "sqlsentinel_prune__schedule",
        }
        assert set(sensors) == {"sqlsentinel_config__team_a", "sqlsentinel_config__team_b"}
        with dg.DagsterInstance.from_config(str(home)) as instance:

            def scheduled_runs() -> dict[str, dg.DagsterRun]:
                runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
                return {run.job_name: run for run in runs if "dagster/schedule_name" in run.tags}

            wait_for(lambda: len(scheduled_runs()) == 2, 240, "a scheduled run of each component's alerts")
            runs = scheduled_runs()
    assert runs["sqlsentinel__a_fires"].tags["sqlsentinel/status"] == "ALERT"
    assert runs["sqlsentinel_checks__team_b"].tags["sqlsentinel/status"] == "OK"


WORKER = """
import json, sys
import dagster as dg
import sqlsentinel_dagster.definitions.factory as factory
from dagster._core.definitions.reconstruct import ReconstructableRepository  # as Dagster's run worker does
from dagster._core.execution.api import execute_run

built = []
build_job = factory.build_job
factory.build_job = lambda alert, *rest: built.append(alert.name) or build_job(alert, *rest)
with dg.DagsterInstance.get() as instance:
    recon = ReconstructableRepository.for_file("defs.py", "defs").get_reconstructable_job(sys.argv[1])
    job = recon.get_definition()
    run = instance.create_run_for_job(job_def=job, job_code_origin=recon.get_python_origin())
    result = execute_run(recon, run, instance)
print(json.dumps({"built": built, "success": result.success}))
"""


def test_a_run_worker_of_a_definitions_function_still_builds_only_its_job(
    tmp_path: Path, dagster_home: Path, sqlite_warehouse: Path
) -> None:
    """A `@dg.definitions` function loaded by a run worker (a fresh process that reconstructs) builds the one
    job it runs, not the others: the fix for code servers costs run workers nothing."""
    (tmp_path / "warehouse.db").write_bytes(sqlite_warehouse.read_bytes())
    (tmp_path / "alerts.yaml").write_text(ALERTS.format(prefix="w"))
    (tmp_path / "defs.py").write_text(textwrap.dedent(STYLES["decorator"].format(alerts="alerts.yaml", mode="jobs")))
    worker = subprocess.run(
        [sys.executable, "-c", WORKER, "sqlsentinel__w_late"],
        cwd=tmp_path,
        env=dagster_env(dagster_home, SQLSENTINEL_CACHE_DIR=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert json.loads(worker.stdout.strip().splitlines()[-1]) == {"built": ["w_late"], "success": True}


@pytest.mark.parametrize("reconstruct_first", [False, True])
def test_a_code_server_load_keeps_schedules_after_its_reconstruction(
    reconstruct_first: bool, tmp_path: Path, sqlite_warehouse: Path
) -> None:
    """In one process, an initialization then a reconstruction (a code server) builds everything both times; a
    reconstruction first (a run worker) builds no schedules."""
    (tmp_path / "warehouse.db").write_bytes(sqlite_warehouse.read_bytes())
    (tmp_path / "alerts.yaml").write_text(ALERTS.format(prefix="s"))
    script = textwrap.dedent(
        f"""
        import json
        from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext, DefinitionsLoadType
        from sqlsentinel_dagster import build_definitions
        seen = []
        for load_type in {["RECONSTRUCTION"] if reconstruct_first else ["INITIALIZATION", "RECONSTRUCTION"]!r}:
            DefinitionsLoadContext.set(DefinitionsLoadContext(getattr(DefinitionsLoadType, load_type)))
            seen.append(len(build_definitions("alerts.yaml").schedules or []))
        print(json.dumps(seen))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ([0] if reconstruct_first else [3, 3])
