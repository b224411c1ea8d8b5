"""``watch:`` on the platform through the real ``dagster-daemon`` and ``dagster-webserver``, on Postgres storage,
with the team's jobs, sensor and a fragile code location each in their own code location.

One scenario runs everything at once (the waits overlap): a job whose first attempt fails and whose retry (Dagster's
run retries) succeeds, a run sleeping past ``longer_than``, a sensor that raises until it is fixed, and a code
location broken on reload, then fixed. Each subject reaches the loopback webhook exactly as ``firing`` then
``resolved``.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from .loopback import Receiver, loopback_receiver
from .processes import BIN, dagster_daemon, free_port, graphql, sensor_ticks, wait_for, webserver

TEAM = """
import pathlib
import time
import dagster as dg

HERE = pathlib.Path(__file__).parent


@dg.op
def load_orders(context: dg.OpExecutionContext) -> None:
    if "dagster/retry_number" not in context.run.tags:
        raise RuntimeError("orders table is locked")


@dg.job(tags={"dagster/max_retries": 1, "dagster/retry_strategy": "FROM_FAILURE"})
def nightly_orders() -> None:
    load_orders()


@dg.op
def wait_for_release() -> None:
    # The test releases it (also when it fails); the deadline only bounds an orphaned run. It is far longer than the
    # test's own waits: under load they added up to more than 180 s once, the run ended and its subject resolved.
    deadline = time.monotonic() + 900
    while not (HERE / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.5)


@dg.job
def slow_job() -> None:
    wait_for_release()


@dg.sensor(job=nightly_orders, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def orders_sensor() -> dg.SkipReason:
    if (HERE / "sensor_broken").exists():
        raise KeyError("orders_feed")
    return dg.SkipReason("nothing new")


defs = dg.Definitions(jobs=[nightly_orders, slow_job], sensors=[orders_sensor])
"""

FRAGILE = "import dagster as dg\n\ndefs = dg.Definitions()\n"
BROKEN = 'raise RuntimeError("fragile is broken: missing settings module")\n'

LAUNCH = """mutation($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RELOAD = """mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename ... on WorkspaceLocationEntry { locationOrLoadError { __typename } } } }"""

SUBJECTS = {
    "failed_runs:job:nightly_orders": "failed run, then its retry succeeds",
    "slow_runs:job:slow_job": "a run longer than 10s, then it ends",
    "automation:sensor:orders_sensor": "a sensor that raises, then ticks again",
    "locations:location:fragile": "a code location broken on reload, then fixed",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as rec:
        yield rec


@contextlib.contextmanager
def _released(directory: Path) -> Iterator[None]:
    """Releases the slow run on the way out, passed or failed, so it does not outlive the test."""
    try:
        yield
    finally:
        (directory / "release").touch()


def _launch(port: int, job: str) -> str:
    selector = {"repositoryLocationName": "team", "repositoryName": "__repository__", "jobName": job}
    reply = graphql(port, LAUNCH, {"params": {"selector": selector, "runConfigData": {}}})["launchPipelineExecution"]
    assert reply["__typename"] == "LaunchRunSuccess", reply
    return str(reply["run"]["runId"])


def _reload(port: int, name: str) -> Any:
    return graphql(port, RELOAD, {"name": name})["reloadRepositoryLocation"]


def test_failed_slow_and_retried_runs_failing_ticks_and_broken_locations_notify_once_and_resolve(
    tmp_path: Path, postgres_home: Path, receiver: Receiver
) -> None:
    """Through the daemon: each of the four subjects fires once and resolves once, and nothing else is sent."""
    home = postgres_home
    with (home / "dagster.yaml").open("a") as config:
        config.write("run_retries:\n  enabled: true\n")
    port = free_port()
    hook = f'[{{channel: webhook, url: "{receiver.url}"}}]'
    (tmp_path / "alerts.yaml").write_text(
        textwrap.dedent(
            f"""
            watch_interval: 5s
            defaults: {{notify: {hook}}}
            watch:
              - {{name: failed_runs, runs: {{jobs: "nightly_*"}}}}
              - {{name: slow_runs, runs: {{jobs: slow_job, longer_than: 10s}}}}
              - {{name: automation, ticks: {{sensors: "orders_*"}}}}
              - {{name: locations, code_locations: {{names: "fragile", webserver: "http://127.0.0.1:{port}"}}}}
            """
        )
    )
    (tmp_path / "alerts_defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml')\n"
    )
    (tmp_path / "team.py").write_text(TEAM)
    (tmp_path / "fragile.py").write_text(FRAGILE)
    (tmp_path / "sensor_broken").touch()
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n"
        + "".join(
            f"  - python_file: {{relative_path: {file}.py, location_name: {name}, working_directory: .}}\n"
            for file, name in (("alerts_defs", "alerts"), ("team", "team"), ("fragile", "fragile"))
        )
    )
    command = [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]

    def sent(name: str) -> list[str]:
        return [r.body["event"] for r in receiver.delivered() if r.body["alert_name"] == name]

    with (
        webserver(command, tmp_path, home, locations=3, port=port),
        dagster_daemon(tmp_path, home),
        dg.DagsterInstance.from_config(str(home)) as instance,
        _released(tmp_path),
    ):
        wait_for(lambda: sensor_ticks(instance, "sqlsentinel_watch") >= 1, 120, "the watch sensor's first tick")
        failed_run = _launch(port, "nightly_orders")
        slow_run = _launch(port, "slow_job")
        (tmp_path / "fragile.py").write_text(BROKEN)
        assert _reload(port, "fragile")["locationOrLoadError"]["__typename"] == "PythonError"
        for name, what in SUBJECTS.items():
            wait_for(lambda name=name: "firing" in sent(name), 180, f"{name} firing ({what})")
        wait_for(lambda: sent("failed_runs:job:nightly_orders") == ["firing", "resolved"], 120, "the retry resolving")
        firing = {r.body["alert_name"]: r.body for r in receiver.delivered() if r.body["event"] == "firing"}
        assert (
            f"run {failed_run[:8]} of job nightly_orders failed"
            in firing["failed_runs:job:nightly_orders"]["description"]
        )
        assert "orders table is locked" in firing["failed_runs:job:nightly_orders"]["description"]
        assert slow_run[:8] in firing["slow_runs:job:slow_job"]["description"]
        assert "KeyError" in firing["automation:sensor:orders_sensor"]["description"]
        assert "fragile is broken" in firing["locations:location:fragile"]["description"]
        retries = instance.get_runs(dg.RunsFilter(job_name="nightly_orders"))
        assert sorted(r.status.value for r in retries) == ["FAILURE", "SUCCESS"]  # the retry succeeded

        ticks = sensor_ticks(instance, "sqlsentinel_watch")
        wait_for(lambda: sensor_ticks(instance, "sqlsentinel_watch") >= ticks + 2, 60, "two more watch ticks")
        runs = [(r.job_name, r.run_id[:8], r.status.value) for r in instance.get_runs()]  # says why, if it fails
        sent_all = [(r.body["alert_name"], r.body["event"]) for r in receiver.delivered()]
        still = [name for name in SUBJECTS if not name.startswith("failed_runs")]
        assert all(sent(name) == ["firing"] for name in still), (sent_all, runs)  # still failing: not sent twice

        (tmp_path / "sensor_broken").unlink()
        (tmp_path / "release").touch()
        (tmp_path / "fragile.py").write_text(FRAGILE)
        assert _reload(port, "fragile")["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for name in SUBJECTS:
            wait_for(lambda name=name: sent(name) == ["firing", "resolved"], 120, f"{name} resolved")
        ticks = sensor_ticks(instance, "sqlsentinel_watch")
        wait_for(lambda: sensor_ticks(instance, "sqlsentinel_watch") >= ticks + 1, 60, "one more watch tick")
    assert sorted((r.body["alert_name"], r.body["event"]) for r in receiver.delivered()) == sorted(
        (name, event) for name in SUBJECTS for event in ("firing", "resolved")
    )
