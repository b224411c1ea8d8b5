"""SqlAlertsComponent on a real `dg` project: listed by `dg list components`, scaffolded by `dg scaffold defs`,
checked by `dg check defs` (our file:line problems included), listed by `dg list defs`, launched by `dg launch`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from sqlsentinel_dagster.naming import TAG_STATUS

DG = str(Path(sys.executable).parent / "dg")
COMPONENT = "sqlsentinel_dagster.SqlAlertsComponent"


def _dg(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1", "DAGSTER_HOME": str(project / "home"), **env}
    return subprocess.run([DG, *args], cwd=project, env=environment, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty `dg` project (flat layout) with a defs folder and a DAGSTER_HOME."""
    root = tmp_path / "alerts_project"
    package = root / "alerts_project"
    (package / "defs").mkdir(parents=True)
    (root / "home").mkdir()
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "alerts_project"
            version = "0.0.1"

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "alerts_project"
            """
        )
    )
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            from dagster import definitions, load_from_defs_folder


            @definitions
            def defs():
                return load_from_defs_folder(path_within_project=Path(__file__).parent)
            """
        )
    )
    return root


def test_dg_lists_the_component_with_its_description(project: Path) -> None:
    """The entry point registers the component: `dg list components` shows it."""
    result = _dg(project, "list", "components", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    listed = {entry["key"]: entry["summary"] for entry in json.loads(result.stdout)["items"]}
    assert listed[COMPONENT].startswith("SQL alerts from an alerts.yaml file")


@pytest.mark.slow
def test_scaffolded_component_checks_lists_and_runs(project: Path) -> None:
    """`dg scaffold defs` writes defs.yaml and a starter alerts.yaml that pass `dg check defs`, appear in
    `dg list defs`, and run with `dg launch`, recording the alert's status."""
    scaffold = _dg(project, "scaffold", "defs", COMPONENT, "my_alerts", "--database-url", "sqlite:///warehouse.db")
    assert scaffold.returncode == 0, scaffold.stderr[-2000:]
    folder = project / "alerts_project" / "defs" / "my_alerts"
    assert {p.name for p in folder.iterdir()} >= {"defs.yaml", "alerts.yaml"}
    check = _dg(project, "check", "defs")
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    listed = _dg(project, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    jobs = {job["name"] for job in json.loads(listed.stdout)["jobs"]}
    assert "sqlsentinel__my_alerts_always_ok" in jobs
    launch = _dg(project, "launch", "--job", "sqlsentinel__my_alerts_always_ok")
    assert launch.returncode == 0, launch.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(project / "home")) as instance:
        [run] = instance.get_runs()
        assert run.tags[TAG_STATUS] == "OK"


def test_checks_mode_attribute_gives_asset_checks(project: Path) -> None:
    """`mode: checks` in defs.yaml: the alerts are asset checks evaluated by the component's checks job, named
    after its folder."""
    assert _dg(project, "scaffold", "defs", COMPONENT, "checked", "--mode", "checks").returncode == 0
    listed = _dg(project, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    data = json.loads(listed.stdout)
    assert {job["name"] for job in data["jobs"]} >= {"sqlsentinel_checks__checked"}
    assert "checked_always_ok" in json.dumps(data.get("asset_checks", data))


@pytest.mark.slow
def test_two_scaffolded_components_check_and_list_with_their_own_schedules_and_sensors(project: Path) -> None:
    """One component per team, one in jobs mode and one in checks mode: `dg check defs` passes and `dg list defs`
    shows both teams' alerts with their schedules, and each file's sensors under its folder's name."""
    assert _dg(project, "scaffold", "defs", COMPONENT, "team_a").returncode == 0
    assert _dg(project, "scaffold", "defs", COMPONENT, "team_b", "--mode", "checks").returncode == 0
    check = _dg(project, "check", "defs")
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    listed = _dg(project, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    data = json.loads(listed.stdout)
    assert {"sqlsentinel__team_a_always_ok", "sqlsentinel_checks__team_b"} <= {job["name"] for job in data["jobs"]}
    schedules = {schedule["name"] for schedule in data["schedules"]}
    assert {"sqlsentinel__team_a_always_ok__schedule", "sqlsentinel_checks__team_b___hourly__UTC"} <= schedules
    assert {"sqlsentinel_config__team_a", "sqlsentinel_config__team_b"} <= {s["name"] for s in data["sensors"]}
    assert "team_b_always_ok" in json.dumps(data["asset_checks"])


@pytest.mark.slow
def test_an_alert_name_used_by_two_components_is_refused_naming_both_files(project: Path) -> None:
    """Alert names key the alert's state: the second file's copy is a problem at its file and line that names
    the first file, and `dg check defs` fails with it."""
    assert _dg(project, "scaffold", "defs", COMPONENT, "team_a").returncode == 0
    assert _dg(project, "scaffold", "defs", COMPONENT, "team_b").returncode == 0
    first = project / "alerts_project" / "defs" / "team_a" / "alerts.yaml"
    second = project / "alerts_project" / "defs" / "team_b" / "alerts.yaml"
    second.write_text(second.read_text().replace("team_b_always_ok", "team_a_always_ok"))
    check = _dg(project, "check", "defs")
    assert check.returncode != 0
    output = check.stdout + check.stderr
    assert f"{second}:9 alert 'team_a_always_ok': an alert of this name is already defined in {first}:9" in output


def test_dg_check_defs_reports_our_problems_at_file_and_line(project: Path) -> None:
    """A broken alerts.yaml fails `dg check defs` with every problem at alerts.yaml:<line>."""
    assert _dg(project, "scaffold", "defs", COMPONENT, "broken").returncode == 0
    alerts = project / "alerts_project" / "defs" / "broken" / "alerts.yaml"
    alerts.write_text(alerts.read_text().replace('"@hourly"', '"every hour"').replace("channel: log", "channel: slak"))
    check = _dg(project, "check", "defs")
    assert check.returncode != 0
    output = check.stdout + check.stderr
    assert f"{alerts}:" in output
    assert "invalid cron expression 'every hour'" in output
    assert "unknown channel 'slak'" in output


def test_secrets_are_passed_as_variables_read_in_the_run(
    tmp_path: Path, sqlite_warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """smtp_password: ${VAR} reaches NotificationsResource as an EnvVar (read when a run starts): neither the
    resource nor the definitions' snapshot hold the value."""
    from dagster._core.remote_representation.external_data import RepositorySnap  # test-only: the UI's snapshot
    from dagster.components.testing.utils import component_defs
    from dagster_shared.serdes import serialize_value

    import sqlsentinel_dagster.definitions.components.sql_alerts.component as module
    from sqlsentinel_dagster import SqlAlertsComponent

    monkeypatch.setenv("SX_SMTP_PASSWORD", "hunter2-secret")
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(
        f'database: {{url: "sqlite:///{sqlite_warehouse}"}}\n'
        "alerts:\n  - {name: a, query: \"SELECT 'OK' AS status\", schedule: '@daily'}\n"
    )
    seen: dict[str, object] = {}
    real = module.build_definitions

    def spy(path: Path, **kwargs: object) -> dg.Definitions:
        seen.update(kwargs)
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "build_definitions", spy)
    component = SqlAlertsComponent(path=str(alerts), smtp_password="${SX_SMTP_PASSWORD}", smtp_host="localhost")
    defs = component_defs(component=component)
    password = seen["notifications"].smtp_password  # type: ignore[attr-defined]
    assert isinstance(password, dg.EnvVar) and password.env_var_name == "SX_SMTP_PASSWORD"
    assert "hunter2-secret" not in serialize_value(RepositorySnap.from_def(defs.get_repository_def()))


@pytest.mark.slow
def test_a_template_in_a_secret_attribute_is_refused_by_dg_check(project: Path) -> None:
    """{{ env.X }} in smtp_password would be rendered into the definitions: `dg check defs` refuses it."""
    assert _dg(project, "scaffold", "defs", COMPONENT, "mailing").returncode == 0
    defs_yaml = project / "alerts_project" / "defs" / "mailing" / "defs.yaml"
    defs_yaml.write_text(defs_yaml.read_text() + '  smtp_password: "{{ env.SX_SMTP_PASSWORD }}"\n')
    check = _dg(project, "check", "defs", SX_SMTP_PASSWORD="hunter2-secret")
    assert check.returncode != 0
    assert "write secrets as ${VAR}" in check.stdout + check.stderr
