"""A Celery cluster on one machine for tests: the local RabbitMQ as broker, a Redis database nobody uses as result
backend, and `dagster-celery worker` processes, each in its own process group as if it were a machine of its own."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import kombu
import pytest
import redis
from kombu.exceptions import KombuError

from .processes import BIN, dagster_env, wait_for

BROKER_URL = os.environ.get("SQLSENTINEL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("SQLSENTINEL_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _reachable_or_skip(check: Callable[[], None], what: str, url: str) -> None:
    """Skip when ``check()`` cannot reach the service, except under CI (CI set), where that is a failure."""
    try:
        check()
    except (OSError, redis.RedisError, KombuError) as exc:
        message = f"{what} is not reachable at {url}: {type(exc).__name__}: {(str(exc) or '-').splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: services are required)")
        pytest.skip(message)


def broker_or_skip() -> str:
    """The RabbitMQ URL (skips locally, fails under CI, when RabbitMQ does not answer)."""

    def connect() -> None:
        with kombu.Connection(BROKER_URL, connect_timeout=5) as conn:
            conn.connect()

    _reachable_or_skip(connect, "RabbitMQ", BROKER_URL)
    return BROKER_URL


CLAIM = "sqlsentinel_test_claim"
"""The key that claims an empty Redis database for one test: another test session looking for one at the same time
passes it by. It expires after an hour, in case the test ends before its ``forget`` (which removes it)."""


def unused_redis_db_or_skip() -> str:
    """A Redis result-backend URL on a database number that held no key, claimed (skips locally, fails under CI,
    when Redis does not answer or every database is in use)."""
    found: list[int] = []

    def find() -> None:
        for number in range(15, 0, -1):
            database = redis.Redis.from_url(f"{REDIS_URL}/{number}", socket_timeout=5)
            if database.dbsize() == 0 and database.set(CLAIM, os.getpid(), nx=True, ex=3600):
                found.append(number)
                return

    _reachable_or_skip(find, "Redis", REDIS_URL)
    if not found:
        message = f"every Redis database 1-15 at {REDIS_URL} holds keys: none is free for a result backend"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return f"{REDIS_URL}/{found[0]}"


def forget(backend_url: str, queue: str) -> None:
    """Flush the result backend's Redis database and delete ``queue`` from the broker."""
    redis.Redis.from_url(backend_url, socket_timeout=5).flushdb()
    with kombu.Connection(BROKER_URL, connect_timeout=5) as conn, suppress(*conn.channel_errors):
        conn.default_channel.queue_delete(queue)  # suppressed: never declared


def purge(queue: str) -> None:
    """Empty ``queue`` on the broker, if it exists."""
    with kombu.Connection(BROKER_URL, connect_timeout=5) as conn, suppress(*conn.channel_errors):
        conn.default_channel.queue_purge(queue)  # suppressed: not declared yet, nothing to purge


@dataclass
class Worker:
    """One `dagster-celery worker` process group (a stand-in for a machine)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def group(self) -> int:
        """The process group: the worker process and the `celery` process it starts."""
        return self.process.pid

    def pids(self) -> set[int]:
        """The processes in the group now."""
        return group_members(self.group)


def group_members(group: int) -> set[int]:
    """The ids of the processes whose process group is ``group``."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        if int(fields[2]) == group:
            members.add(int(entry.name))
    return members


def start_group(command: Sequence[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session (its own process group), output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_groups(processes: Sequence[subprocess.Popen[bytes]], grace: float = 30) -> None:
    """SIGTERM every process group of ``processes``, wait up to ``grace`` seconds, then SIGKILL what is left."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        _signal_group(process, signal.SIGKILL)  # also the group's other processes, when the leader has exited
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # the whole group is gone
        os.killpg(process.pid, sig)


@contextmanager
def celery_workers(
    count: int, cwd: Path, home: Path, config_yaml: Path, queue: str, prefix: str
) -> Iterator[list[Worker]]:
    """Start ``count`` `dagster-celery worker`s listening on ``queue`` (solo pool: a worker runs one run at a time,
    in its `celery` process), each in its own process group, and wait until each says it is ready; stop them all
    (SIGTERM, then SIGKILL) when the block ends."""
    env = dagster_env(home, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    workers: list[Worker] = []
    try:
        for number in range(1, count + 1):
            name = f"{prefix}w{number}"
            log = cwd / f"{name}.log"
            command = [
                str(BIN / "dagster-celery"),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(config_yaml),
                "-q",
                queue,
                "-n",
                name,
                "--",
                "--pool=solo",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
            workers.append(Worker(name, start_group(command, cwd, env, log), log))
        for worker in workers:

            def ready(worker: Worker = worker) -> bool:
                assert worker.process.poll() is None, f"{worker.name} exited:\n{worker.log.read_text()[-3000:]}"
                return " ready." in worker.log.read_text(errors="replace")

            wait_for(ready, 120, f"Celery worker {worker.name} to be ready ({worker.log})")
        yield workers
    finally:
        stop_groups([worker.process for worker in workers])
