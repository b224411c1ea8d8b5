"""Real Dagster processes: `dagster definitions validate`, `dagster job execute` against persistent SQLite and
Postgres instances, and a run launched through the webserver's GraphQL API as the UI's Launch button does."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from sqlsentinel_dagster.naming import TAG_STATUS

from .conftest import REPO, alerts_yaml
from .processes import BIN, dagster_env, free_port, webserver

DAGSTER = str(BIN / "dagster")


@pytest.fixture
def code_location(tmp_path: Path, sqlite_warehouse: Path) -> Path:
    """A definitions file for an alerts file with one firing alert on a SQLite warehouse."""
    (tmp_path / "alerts.yaml").write_text(alerts_yaml("sqlite:///warehouse.db"))
    defs = tmp_path / "defs.py"
    defs.write_text(
        textwrap.dedent(
            f"""
            from sqlsentinel_dagster import build_definitions
            defs = build_definitions({str(tmp_path / "alerts.yaml")!r})
            """
        )
    )
    return defs


def _job_execute(defs: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, "job", "execute", "-f", str(defs), "-j", "sqlsentinel__error_rate"],
        env=dagster_env(home),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=defs.parent,
    )


def _only_run(home: Path) -> dg.DagsterRun:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
    assert len(runs) == 1
    return runs[0]


def test_examples_pass_dagster_definitions_validate() -> None:
    """The demo code location in workspace.yaml loads and validates."""
    result = subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_job_execute_in_a_separate_process_records_the_run_on_a_persistent_sqlite_instance(
    code_location: Path, dagster_home: Path
) -> None:
    """`dagster job execute` runs the alert; the run, its success and its ALERT tag are in DAGSTER_HOME."""
    result = _job_execute(code_location, dagster_home)
    assert result.returncode == 0, result.stdout + result.stderr
    run = _only_run(dagster_home)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags[TAG_STATUS] == "ALERT" and run.tags["sqlsentinel/alert"] == "error_rate"


def test_job_execute_on_postgres_storage(code_location: Path, postgres_home: Path) -> None:
    """With dagster-postgres storage (the pinned SQLAlchemy/psycopg2 pair) the run succeeds and is recorded."""
    result = _job_execute(code_location, postgres_home)
    assert result.returncode == 0, result.stdout + result.stderr
    run = _only_run(postgres_home)
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags[TAG_STATUS] == "ALERT"


@pytest.fixture
def dagster_dev(code_location: Path, dagster_home: Path) -> Iterator[int]:
    """`dagster dev` (webserver + daemon) serving the code location; yields its port."""
    port = free_port()
    (code_location.parent / "workspace.yaml").write_text(
        f"load_from:\n  - python_file:\n      relative_path: {code_location.name}\n      location_name: alerts\n"
    )
    command = [DAGSTER, "dev", "-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"]
    with webserver(command, code_location.parent, dagster_home, 1, port):
        yield port


@pytest.mark.slow
def test_run_launched_through_the_webserver_graphql_api_succeeds(dagster_dev: int, dagster_home: Path) -> None:
    """Launching the job through GraphQL (the Launchpad's mutation) queues a run the daemon executes to success."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster_dev)
    run_id = client.submit_job_execution("sqlsentinel__error_rate", repository_location_name="alerts")
    deadline = time.monotonic() + 180
    status = client.get_run_status(run_id)
    while status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) and time.monotonic() < deadline:
        time.sleep(1)
        status = client.get_run_status(run_id)
    assert status == dg.DagsterRunStatus.SUCCESS, (dagster_home / "webserver.log").read_text()[-3000:]
    query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }"
    payload = {"query": query, "variables": {"id": run_id}}
    tags = requests.post(f"http://127.0.0.1:{dagster_dev}/graphql", json=payload, timeout=10).json()
    shown = {t["key"]: t["value"] for t in tags["data"]["runOrError"]["tags"]}
    assert shown[TAG_STATUS] == "ALERT" and shown["sqlsentinel/severity"] == "warning"


@pytest.mark.slow
def test_ui_resource_view_shows_no_database_url(dagster_dev: int) -> None:
    """The webserver lists the warehouse resource with its description, and nothing in it shows the URL."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
        ... on RepositoryLocation { repositories { allTopLevelResourceDetails {
            name description configuredValues { key value } } } } } } } } }"""
    reply = requests.post(f"http://127.0.0.1:{dagster_dev}/graphql", json={"query": query}, timeout=10).json()
    repo = reply["data"]["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]["repositories"][0]
    resources = {r["name"]: r for r in repo["allTopLevelResourceDetails"]}
    warehouse = resources["sqlsentinel_warehouse__default"]
    assert warehouse["description"].startswith("Warehouse 'default': A warehouse named in an alerts file")
    assert "sqlite://" not in str(resources) and "warehouse.db" not in str(resources)
    assert {"sqlsentinel_state", "sqlsentinel_notifications"} <= set(resources)
