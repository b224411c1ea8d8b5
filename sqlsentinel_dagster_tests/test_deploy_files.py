"""The deployment files under examples/deploy/, checked as far as this machine can (no Kubernetes cluster, no Docker
engine): every YAML file parses, the Helm values validate against the chart's own values schema (a copy, with its
provenance in examples/deploy/helm/README.md), the alerts files they serve load, and the compose services' commands
start as plain local processes on the local Postgres and serve the code location."""

from __future__ import annotations

import copy
import json
import os
import runpy
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import pytest
import requests
import sqlalchemy as sa
import yaml
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

from sqlsentinel_dagster import load_config
from sqlsentinel_dagster.naming import TAG_DATABASE

from .conftest import REPO
from .processes import BIN, LOCATIONS, dagster_env, free_port, graphql, wait_for

DEPLOY = REPO / "examples" / "deploy"
HELM = DEPLOY / "helm"
COMPOSE = DEPLOY / "compose"
APP = "/opt/dagster/app"
"""Where the compose image keeps the code location (Dockerfile's WORKDIR)."""

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _configmap_alerts(tmp_path: Path) -> Path:
    """The alerts file of alerts-configmap.yaml, written where it is mounted in the pod (here: in tmp_path)."""
    (configmap,) = yaml.safe_load_all((HELM / "alerts-configmap.yaml").read_text(encoding="utf-8"))
    path = tmp_path / "alerts" / "alerts.yaml"
    path.parent.mkdir()
    path.write_text(configmap["data"]["alerts.yaml"], encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------------------
# (1) every file parses


@pytest.mark.parametrize("path", YAML_FILES, ids=[p.relative_to(DEPLOY).as_posix() for p in YAML_FILES])
def test_every_yaml_file_parses(path: Path) -> None:
    """Each YAML file under examples/deploy/ parses (every document of it) into mappings."""
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents and all(isinstance(doc, dict) for doc in documents), documents


def test_the_deploy_folder_has_the_files_the_docs_name() -> None:
    """The Helm values, ConfigMap and schema copy, and the compose file with its image and instance files exist."""
    names = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file()}
    assert {
        "helm/values.yaml",
        "helm/alerts-configmap.yaml",
        "helm/values.schema.json",
        "helm/chart-values.yaml",
        "helm/definitions.py",
        "helm/Dockerfile",
        "compose/docker-compose.yaml",
        "compose/Dockerfile",
        "compose/dagster.yaml",
        "compose/workspace.yaml",
        "compose/definitions.py",
        "compose/alerts.yaml",
    } <= names


@pytest.mark.parametrize("dockerfile", [HELM / "Dockerfile", COMPOSE / "Dockerfile"], ids=["helm", "compose"])
def test_dockerfiles_copy_files_that_exist_and_are_not_ignored(dockerfile: Path) -> None:
    """Every COPY source exists in the build context (the repository root) and is let through by the Dockerfile's
    own .dockerignore, so `docker build` would find it (the build itself needs an engine, absent here)."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    sources = [s for line in text.splitlines() if line.startswith("COPY ") for s in line.split()[1:-1]]
    assert sources
    allowed = [
        line[1:].rstrip("/")
        for line in (dockerfile.parent / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for source in sources:
        assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}: no such file in the build context"
        assert source.rstrip("/") in allowed, f"{source} is excluded by Dockerfile.dockerignore"


# ---------------------------------------------------------------------------------------------------------------------
# (2) the Helm values against the chart's values schema


def helm_merge(chart: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file over the chart's values: maps merge key by key, null removes a key,
    anything else (a list too) replaces the chart's value."""
    merged = dict(chart)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _no_network(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)


def chart_validator() -> jsonschema.protocols.Validator:
    """A validator for the saved values.schema.json. The schema declares no draft; its ``$defs`` are Draft 2020-12's.

    Its references to Kubernetes' own definitions (volumes, env, resources, probes: a URL Helm fetches) are answered
    with empty schemas, so the Kubernetes objects inside the values are not checked here; everything the chart
    defines itself is."""
    schema = json.loads((HELM / "values.schema.json").read_text(encoding="utf-8"))
    outside: dict[str, dict[str, Any]] = {}
    for ref in _references(schema):
        uri, _, pointer = ref.partition("#")
        if uri:
            node = outside.setdefault(uri, {})
            for part in pointer.strip("/").split("/"):
                node = node.setdefault(part, {})
    registry: Registry[Any] = Registry(retrieve=_no_network).with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT202012)) for uri, doc in outside.items()
    )
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, registry=registry)


def _flat(errors: Iterable[jsonschema.ValidationError]) -> Iterator[str]:
    """Each error with its place, and the errors under it (why no branch of an ``anyOf`` matched)."""
    for error in errors:
        yield f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        yield from _flat(error.context or [])


def _errors(values: dict[str, Any]) -> list[str]:
    """What the chart's schema says of ``values`` merged over the chart's values (nothing: they validate)."""
    merged = helm_merge(_load_yaml(HELM / "chart-values.yaml"), values)
    return list(_flat(chart_validator().iter_errors(merged)))


def _daemon(values: dict[str, Any]) -> dict[str, Any]:
    return values["dagsterDaemon"]  # type: ignore[no-any-return]


def _misspelt_daemon_key(values: dict[str, Any]) -> None:
    _daemon(values)["runRetry"] = _daemon(values).pop("runRetries")


def _limit_as_text(values: dict[str, Any]) -> None:
    _daemon(values)["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"][0]["limit"] = "four"


def _unknown_run_launcher(values: dict[str, Any]) -> None:
    values["runLauncher"]["type"] = "K8SRunLauncher"


def _code_location_without_port(values: dict[str, Any]) -> None:
    del values["dagster-user-deployments"]["deployments"][0]["port"]


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "misspelt key under dagsterDaemon": (_misspelt_daemon_key, "'runRetry' was unexpected"),
    "tag limit given as text": (_limit_as_text, "'four' is not of type 'integer'"),
    "unknown run launcher type": (_unknown_run_launcher, "'K8SRunLauncher' is not one of"),
    "code location without a port": (_code_location_without_port, "'port' is a required property"),
}


class TestHelmValues:
    """values.yaml, merged over the chart's values as Helm does, against the chart's values.schema.json."""

    def test_the_chart_values_copy_matches_the_schema_copy(self) -> None:
        """The chart's own values validate: the two copies belong to the same chart version."""
        assert _errors({}) == []

    def test_values_validate_against_the_chart_schema(self) -> None:
        """values.yaml over the chart's values validates against the chart's schema."""
        assert _errors(_load_yaml(HELM / "values.yaml")) == []

    @pytest.mark.parametrize("broken", list(BROKEN), ids=list(BROKEN))
    def test_a_broken_copy_does_not_validate(self, broken: str) -> None:
        """A copy of values.yaml with one mistake fails validation, naming the mistake (so the test above can fail)."""
        change, expected = BROKEN[broken]
        values = copy.deepcopy(_load_yaml(HELM / "values.yaml"))
        change(values)
        errors = _errors(values)
        assert any(expected in error for error in errors), errors

    def test_run_monitoring_keys_are_the_charts(self) -> None:
        """The schema leaves dagsterDaemon.runMonitoring free-form: every key set there is one the chart's own values
        have (the chart's template reads only those), so a misspelt one fails here instead."""
        ours = _daemon(_load_yaml(HELM / "values.yaml"))["runMonitoring"]
        chart = _daemon(_load_yaml(HELM / "chart-values.yaml"))["runMonitoring"]
        assert set(ours) <= set(chart), set(ours) - set(chart)

    def test_the_run_queue_limits_runs_per_database(self) -> None:
        """The queue's tag limit is on the tag every alert run carries, one limit per database; run monitoring and
        run retries are on, retries left to each run's dagster/max_retries tag."""
        daemon = _daemon(_load_yaml(HELM / "values.yaml"))
        queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
        (limit,) = queue["tagConcurrencyLimits"]
        assert (limit["key"], limit["value"]) == (TAG_DATABASE, {"applyLimitPerUniqueValue": True})
        assert daemon["runMonitoring"]["enabled"] and daemon["runMonitoring"]["maxResumeRunAttempts"] == 0
        assert daemon["runRetries"] == {"enabled": True, "maxRetries": 0}

    def test_the_code_location_mounts_the_configmap(self) -> None:
        """The code location's volume is the ConfigMap of alerts-configmap.yaml, mounted where definitions.py reads."""
        (deployment,) = _load_yaml(HELM / "values.yaml")["dagster-user-deployments"]["deployments"]
        (configmap,) = yaml.safe_load_all((HELM / "alerts-configmap.yaml").read_text(encoding="utf-8"))
        (volume,) = deployment["volumes"]
        (mount,) = deployment["volumeMounts"]
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert mount["name"] == volume["name"]
        env = {e["name"]: e["value"] for e in deployment["env"]}
        assert env["SQLSENTINEL_ALERTS_FILE"] == f"{mount['mountPath']}/alerts.yaml"
        assert deployment["codeServerArgs"] == ["--python-file", f"{APP}/definitions.py"]
        assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


# ---------------------------------------------------------------------------------------------------------------------
# (3) the alerts files the deployments serve


class TestServedAlertsFiles:
    """The alerts files of the ConfigMap and of the compose example load, with their checks: and runs: blocks."""

    def test_configmap_alerts_file_loads(self, tmp_path: Path) -> None:
        """The ConfigMap's alerts.yaml loads with load_config: shards of 50, run tags, max runtime and retries."""
        loaded = load_config(_configmap_alerts(tmp_path))
        assert [a.name for a in loaded.file.alerts] == ["orders_volume", "stale_events"]
        assert loaded.file.checks.shard_size == 50
        tags = loaded.file.runs.run_tags()
        assert tags["dagster/max_runtime"] == "600" and tags["dagster/max_retries"] == "2"
        assert "dagster-k8s/config" in tags

    def test_helm_code_location_builds_from_the_mounted_file(self, tmp_path: Path, monkeypatch: Any) -> None:
        """helm/definitions.py, with SQLSENTINEL_ALERTS_FILE as values.yaml sets it, builds the checks-mode
        definitions of the ConfigMap's file (the warehouse URL is read only inside runs)."""
        monkeypatch.setenv("SQLSENTINEL_ALERTS_FILE", str(_configmap_alerts(tmp_path)))
        monkeypatch.delenv("WAREHOUSE_URL", raising=False)
        defs: dg.Definitions = runpy.run_path(str(HELM / "definitions.py"))["defs"]
        assert defs.resolve_job_def("sqlsentinel_checks") is not None

    def test_compose_alerts_file_loads(self) -> None:
        """The compose example's alerts.yaml loads, with its checks: and runs: blocks."""
        loaded = load_config(COMPOSE / "alerts.yaml")
        assert {a.name for a in loaded.file.alerts} == {"high_error_rate", "orders_volume"}
        assert loaded.file.checks.shard_size == 50
        assert loaded.file.runs.run_tags() == {
            "team": "data-platform",
            "dagster/max_runtime": "600",
            "dagster/max_retries": "2",
        }


# ---------------------------------------------------------------------------------------------------------------------
# (4) the compose services as plain local processes


def _env_references(node: Any) -> set[str]:
    """The environment variables a dagster.yaml reads (``{env: NAME}``)."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return {name for value in node.values() for name in _env_references(value)}
    if isinstance(node, list):
        return {name for value in node for name in _env_references(value)}
    return set()


def _local_command(command: list[str], app: Path, ports: dict[str, str]) -> list[str]:
    """A compose command as a local process: the executable from this virtualenv, the image's code location folder
    replaced by ``app``, loopback instead of every interface, and free ports instead of the container's."""
    local = [str(BIN / command[0])]
    for previous, arg in pairwise(command):
        if previous in ("-p", "--port"):
            arg = ports[arg]
        elif arg == "0.0.0.0":
            arg = "127.0.0.1"
        local.append(arg.replace(APP, str(app)))
    return local


@contextmanager
def _service(command: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group until the block ends; then SIGTERM the group, SIGKILL after 30s."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.mark.slow
def test_compose_services_start_as_local_processes(
    empty_postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-compose.yaml's code server, webserver and daemon commands, run here with the compose files (paths,
    ports and the code server's host made local, the Postgres variables pointing at a fresh database): the webserver
    serves the location with the checks job and its schedules, and the daemon heartbeats for every daemon the
    compose dagster.yaml asks for (run queue, run monitoring, run retries among them)."""
    services = _load_yaml(COMPOSE / "docker-compose.yaml")["services"]
    app, home, logs = tmp_path / "app", tmp_path / "dagster_home", tmp_path / "logs"
    for folder in (app, home, logs):
        folder.mkdir()
    for name in ("definitions.py", "alerts.yaml", "workspace.yaml"):
        shutil.copy(COMPOSE / name, app / name)
    shutil.copy(COMPOSE / "dagster.yaml", home / "dagster.yaml")

    code_port, web_port = str(free_port()), free_port()
    code_command = services["code-server"]["command"]
    workspace = _load_yaml(app / "workspace.yaml")
    (location,) = workspace["load_from"]
    server = location["grpc_server"]
    # the workspace points at the code-server service, on the port its command serves
    assert server["host"] == "code-server" and str(server["port"]) == code_command[code_command.index("-p") + 1]
    server.update(host="127.0.0.1", port=int(code_port))
    (app / "workspace.yaml").write_text(yaml.safe_dump(workspace))

    url = sa.make_url(empty_postgres)
    local_db = {
        "DAGSTER_POSTGRES_HOST": url.host or "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": str(url.port or 5432),
        "DAGSTER_POSTGRES_USER": url.username or "postgres",
        "DAGSTER_POSTGRES_PASSWORD": url.password or "postgres",
        "DAGSTER_POSTGRES_DB": url.database or "",
    }
    needed = _env_references(_load_yaml(COMPOSE / "dagster.yaml"))
    for name in ("code-server", "webserver", "daemon"):
        assert needed <= set(services[name]["environment"]), f"{name}: dagster.yaml reads {sorted(needed)}"
    assert set(local_db) == needed
    for key, value in local_db.items():
        monkeypatch.setenv(key, value)

    web_command = services["webserver"]["command"]
    ports = {
        code_command[code_command.index("-p") + 1]: code_port,
        web_command[web_command.index("-p") + 1]: str(web_port),
    }

    running: dict[str, subprocess.Popen[bytes]] = {}

    def said() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))

    def start(stack: ExitStack, name: str) -> None:
        env = dagster_env(home, **{**services[name]["environment"], **local_db})
        command = _local_command(services[name]["command"], app, ports)
        running[name] = stack.enter_context(_service(command, app, env, logs / f"{name}.log"))

    def wait(condition: Callable[[], bool], what: str) -> None:
        def alive_and(condition: Callable[[], bool]) -> bool:
            for name, process in running.items():
                assert process.poll() is None, f"{name} exited with {process.returncode}"
            return condition()

        try:
            wait_for(lambda: alive_and(condition), 180, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{said()}") from None

    with ExitStack() as stack:
        start(stack, "code-server")
        health = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", code_port, "-h", "127.0.0.1"]
        wait(lambda: subprocess.run(health, capture_output=True, timeout=60).returncode == 0, "the code server")
        start(stack, "webserver")
        start(stack, "daemon")

        def location_loaded() -> bool:
            try:
                entries = graphql(web_port, LOCATIONS)["workspaceOrError"]["locationEntries"]
            except (requests.RequestException, KeyError, TypeError, ValueError):
                return False
            return bool(entries) and all(entry["locationOrLoadError"] for entry in entries)

        wait(location_loaded, "the webserver to serve the location")
        (entry,) = graphql(web_port, LOCATIONS)["workspaceOrError"]["locationEntries"]
        assert entry["name"] == server["location_name"]
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry["locationOrLoadError"]
        (repository,) = entry["locationOrLoadError"]["repositories"]
        assert "sqlsentinel_checks" in {job["name"] for job in repository["jobs"]}
        schedules = {s["name"] for s in repository["schedules"]}
        assert schedules and all(name.startswith("sqlsentinel") for name in schedules), schedules

        with dg.DagsterInstance.from_config(str(home)) as instance:
            required = set(instance.get_required_daemon_types())
            assert {"QUEUED_RUN_COORDINATOR", "MONITORING", "EVENT_LOG_CONSUMER", "SCHEDULER"} <= required
            wait(lambda: required <= set(instance.get_daemon_heartbeats()), f"heartbeats of {sorted(required)}")
