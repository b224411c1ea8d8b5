"""Helpers for tests that run real Dagster processes (`dagster`, `dagster-daemon`, `dagster dev`, `dg dev`) against
a DAGSTER_HOME, and ask the webserver's GraphQL API what it serves."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import requests

BIN = Path(sys.executable).parent
"""The virtualenv's scripts: `dagster`, `dagster-daemon`, `sqlsentinel`."""


def dagster_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a Dagster process on the instance in ``home``, without telemetry."""
    return {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", **extra}


PATIENCE = 2.5 if os.environ.get("PYTEST_XDIST_WORKER") else 1.0
"""How much longer every :func:`wait_for` deadline is on pytest-xdist workers. A deadline bounds a hang, it does not
time anything: with three workers on two cores, a daemon's first tick or a run's start can take several times as
long as in one process, and a passing test waits no longer for a longer deadline."""


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every second; fail naming ``what`` after ``timeout`` seconds (times :data:`PATIENCE`)."""
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def sensor_ticks(instance: dg.DagsterInstance, name: str) -> int:
    """How many ticks the daemon has recorded for the sensor ``name`` (0 before its first)."""
    states = [s for s in instance.all_instigator_state() if s.name == name]
    if not states:
        return 0
    return len(instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=1000))


def create_storage(home: Path) -> None:
    """Create Dagster's own tables for the instance in ``home``, before several processes open it at once.

    Processes opening a new instance together each create its tables: on Postgres they race, and on SQLite two of
    them can stamp the schema twice ("Version table 'alembic_version' has more than one head present"), which
    leaves the instance unusable for good (seen: a daemon whose code servers could never load)."""
    with dg.DagsterInstance.from_config(str(home)):
        pass


@contextmanager
def dagster_daemon(cwd: Path, home: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `dagster-daemon` on ``cwd``'s workspace.yaml and the instance in ``home`` until the block ends.

    Its output goes to ``cwd/daemon.log``; an assertion failing in the block says the log's last lines."""
    create_storage(home)
    log = cwd / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=cwd,
            env=dagster_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code servers and runs in its process group: stopped with it
        )
    try:
        yield daemon
    except AssertionError as exc:
        tail = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"{exc}\n--- the daemon's log, last lines ({log}) ---\n{tail}") from exc
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        finally:  # a code server the daemon started can outlive it (seen: one blocked in a sensor call)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(daemon.pid, signal.SIGKILL)


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Linux: the lowest and highest port the kernel hands out for port 0 and outgoing connections."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now, for a process started next to bind, seconds later.

    Picked at random below the kernel's ephemeral range, where neither a bind to port 0 nor an outgoing connection
    (of this test, of another xdist worker, of another test session) can take it meanwhile; the kernel's pick when
    that range leaves no room below it."""
    low = int(EPHEMERAL_PORTS.read_text().split()[0]) if EPHEMERAL_PORTS.exists() else 0
    for _ in range(50) if low > 11024 else ():
        port = random.randrange(low - 10000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> Any:
    """The ``data`` of a query to the webserver's GraphQL API on ``port``."""
    reply = requests.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    ).json()
    assert "errors" not in reply, reply["errors"]
    return reply["data"]


LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
    __typename ... on PythonError { message }
    ... on RepositoryLocation { repositories { name jobs { name }
        schedules { name scheduleState { status } } sensors { name sensorState { status } } } } } } } } }"""


@contextmanager
def webserver(command: list[str], cwd: Path, home: Path, locations: int, port: int) -> Iterator[dict[str, Any]]:
    """Run ``command`` (`dagster dev` or `dg dev` serving on ``port``) until ``locations`` code locations have
    loaded; yield each location's entry from the webserver's GraphQL API (by name), then stop it."""
    create_storage(home)
    log_path = home / "webserver.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=dagster_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            loaded: dict[str, Any] = {}

            def all_loaded() -> bool:
                assert process.poll() is None, log_path.read_text()[-5000:]
                try:
                    entries = graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]
                except (requests.RequestException, KeyError, TypeError, ValueError):
                    return False
                loaded.update({entry["name"]: entry["locationOrLoadError"] for entry in entries})
                return len(entries) == locations and all(entry["locationOrLoadError"] for entry in entries)

            wait_for(all_loaded, 300, f"{locations} code location(s) to load:\n{log_path}")
            yield loaded
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
