"""A run worker builds only the job it runs, from the compiled file the code server saved, not the whole file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sqlsentinel_dagster.config import load_config
from sqlsentinel_dagster.config.compiled import CompiledConfig, load_compiled, save_compiled

BIN = Path(sys.executable).parent

WORKER = """
import json, sys
import dagster as dg
import sqlsentinel_dagster.definitions.factory as factory
import sqlsentinel_dagster.definitions.resources as resources
from dagster._core.definitions.reconstruct import ReconstructableRepository  # as Dagster's run worker does
from dagster._core.execution.api import execute_run

built = []
build_job = factory.build_job
factory.build_job = lambda alert, *rest: built.append(alert.name) or build_job(alert, *rest)

def no_parsing(*args, **kwargs):
    raise AssertionError("the run worker parsed the alerts file")

resources.load_config = no_parsing
with dg.DagsterInstance.get() as instance:
    recon = ReconstructableRepository.for_file("defs.py", "defs").get_reconstructable_job(sys.argv[1])
    job = recon.get_definition()
    run = instance.create_run_for_job(job_def=job, job_code_origin=recon.get_python_origin())
    result = execute_run(recon, run, instance)
    tags = instance.get_run_by_id(run.run_id).tags
print(json.dumps({"built": built, "success": result.success, "status": tags.get("sqlsentinel/status")}))
"""


@pytest.fixture
def location(tmp_path: Path, sqlite_warehouse: Path) -> dict[str, str]:
    """Three alerts in a code location, a DAGSTER_HOME and a private cache folder; returns the environment."""
    (tmp_path / "alerts.yaml").write_text(
        f'database: {{url: "sqlite:///{sqlite_warehouse}"}}\n'
        'defaults: {schedule: "${SX_CRON:-*/5 * * * *}"}\n'
        "alerts:\n"
        "  - {name: first, query: \"SELECT 'OK' AS status\"}\n"
        "  - {name: second, query: \"SELECT 'ALERT' AS status, 42 AS actual_value\"}\n"
        "  - {name: third, query: \"SELECT 'OK' AS status\"}\n"
    )
    (tmp_path / "defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml')\n"
    )
    (tmp_path / "home").mkdir()
    return {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SQLSENTINEL_CACHE_DIR": str(tmp_path / "cache"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_run_worker_builds_only_its_job_from_the_compiled_file(tmp_path: Path, location: dict[str, str]) -> None:
    """After the code server's load, a run of 'second' neither parses the file nor builds the other jobs."""
    validate = _run([str(BIN / "dagster"), "definitions", "validate", "-f", "defs.py"], tmp_path, location)
    assert validate.returncode == 0, validate.stderr[-2000:]
    assert len(list((tmp_path / "cache").glob("*.compiled"))) == 1
    worker = _run([sys.executable, "-c", WORKER, "sqlsentinel__second"], tmp_path, location)
    assert worker.returncode == 0, worker.stderr[-3000:]
    outcome = json.loads(worker.stdout.strip().splitlines()[-1])
    assert outcome == {"built": ["second"], "success": True, "status": "ALERT"}


def test_run_worker_without_a_compiled_file_parses_the_file_and_still_runs(
    tmp_path: Path, location: dict[str, str]
) -> None:
    """No compiled file (e.g. another machine's cache): the worker falls back to parsing, never fails for it."""
    script = WORKER.replace("resources.load_config = no_parsing", "")
    worker = _run([sys.executable, "-c", script, "sqlsentinel__first"], tmp_path, location)
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert json.loads(worker.stdout.strip().splitlines()[-1])["status"] == "OK"


class TestCompiledFile:
    def test_round_trip_reads_alerts_one_by_one_with_the_same_settings(
        self, location: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The compiled form gives the same alerts as parsing, and reads only those asked for."""
        monkeypatch.setenv("SQLSENTINEL_CACHE_DIR", location["SQLSENTINEL_CACHE_DIR"])
        path = tmp_path / "alerts.yaml"
        parsed = load_config(path, environ={})
        save_compiled(parsed, path.read_bytes())
        compiled = load_compiled(path.resolve(), path.read_bytes(), {})
        assert isinstance(compiled, CompiledConfig)
        assert compiled.alert_names == ["first", "second", "third"]
        assert compiled.alert("second") == parsed.alert("second")
        assert list(compiled._read) == ["second"]
        assert compiled.alerts == parsed.alerts
        assert compiled.file.all_databases() == parsed.file.all_databases()

    def test_other_bytes_a_changed_variable_or_a_damaged_file_mean_parse_again(
        self, location: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A compiled file is used only for the same bytes and the same values of the variables it used."""
        monkeypatch.setenv("SQLSENTINEL_CACHE_DIR", location["SQLSENTINEL_CACHE_DIR"])
        path = tmp_path / "alerts.yaml"
        content = path.read_bytes()
        save_compiled(load_config(path, environ={"SX_CRON": "@hourly"}), content)
        assert load_compiled(path.resolve(), content, {"SX_CRON": "@hourly"}) is not None
        assert load_compiled(path.resolve(), content, {"SX_CRON": "@daily"}) is None
        assert load_compiled(path.resolve(), content, {}) is None
        assert load_compiled(path.resolve(), content + b"\n", {"SX_CRON": "@hourly"}) is None
        [entry] = (tmp_path / "cache").glob("*.compiled")
        entry.write_bytes(entry.read_bytes()[:20])
        assert load_compiled(path.resolve(), content, {"SX_CRON": "@hourly"}) is None

    def test_entries_no_code_server_loaded_for_a_week_are_removed_when_a_new_one_is_written(
        self, location: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An edited file leaves its old compiled versions behind; those idle for a week go, the others stay."""
        monkeypatch.setenv("SQLSENTINEL_CACHE_DIR", location["SQLSENTINEL_CACHE_DIR"])
        cache = Path(location["SQLSENTINEL_CACHE_DIR"])
        path = tmp_path / "alerts.yaml"
        save_compiled(load_config(path, environ={}), path.read_bytes())
        [current] = cache.glob("*.compiled")
        stale, recent = cache / "stale.compiled", cache / "recent.compiled"
        stale.write_bytes(b"x")
        recent.write_bytes(b"x")
        week_ago = time.time() - 8 * 24 * 3600
        os.utime(stale, (week_ago, week_ago))
        os.utime(current, (week_ago, week_ago))
        save_compiled(load_config(path, environ={}), path.read_bytes())  # a code server loads it again: touched
        path.write_text(path.read_text() + "# edited\n")
        save_compiled(load_config(path, environ={}), path.read_bytes())  # a new version is written: prune
        assert not stale.exists()
        assert current.exists() and recent.exists()
        assert len(list(cache.glob("*.compiled"))) == 3

    def test_the_cache_folder_is_private_to_the_user(
        self, location: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The folder is created 0700: nobody else can plant a compiled file."""
        monkeypatch.setenv("SQLSENTINEL_CACHE_DIR", str(tmp_path / "new" / "cache"))
        path = tmp_path / "alerts.yaml"
        save_compiled(load_config(path, environ={}), path.read_bytes())
        assert (tmp_path / "new" / "cache").stat().st_mode & 0o777 == 0o700
