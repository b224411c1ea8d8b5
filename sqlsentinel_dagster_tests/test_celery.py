"""Shards across machines (#18): the real dagster-daemon launches a checks-mode tick of 200 alerts as four shards
through dagster-celery's CeleryRunLauncher (the local RabbitMQ as broker, Redis as result backend) onto three
`dagster-celery worker` processes, each its own process group standing in for a machine, on a fresh Postgres
instance. One worker is killed (SIGKILL) halfway through its shard: Dagster's run monitoring fails that run at its
max_runtime, run retries relaunch it on a survivor, and every alert is still evaluated exactly once and notified
under exactly one idempotency key (a notification the killed worker was sending when it died is taken over by the
retry and may reach the receiver twice with that key, as docs/state.md says of a run killed while sending)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from sqlsentinel_dagster.naming import TAG_HOST, batch_schedule_name
from sqlsentinel_dagster.state.schema import history, notifications

from .celery_cluster import (
    Worker,
    broker_or_skip,
    celery_workers,
    forget,
    purge,
    start_group,
    stop_groups,
    unused_redis_db_or_skip,
)
from .loopback import Receiver, loopback_receiver
from .processes import BIN, create_storage, dagster_env, wait_for

ALERTS = 200
SHARD_SIZE = 50
WORKERS = 3
QUERY_SECONDS = 1  # pg_sleep per alert: a shard of 50, 8 at once, takes about 7 s: long enough to kill halfway
MAX_RUNTIME = 30  # seconds: a healthy shard takes well under it; the killed shard's run is failed after it
CRON = "* * * * *"
TICK = ".dagster/scheduled_execution_time"
PARENT = "dagster/parent_run_id"
SHARD = "sqlsentinel/shard"
CHECKS_JOB = "sqlsentinel_checks"


@pytest.fixture
def celery_services() -> tuple[str, str]:
    """The broker URL and a result backend on an unused Redis database (skips locally, fails under CI, when
    RabbitMQ or Redis is unreachable); first among the test's fixtures, so nothing is created before a skip."""
    return broker_or_skip(), unused_redis_db_or_skip()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as rec:
        yield rec


def alerts_file(warehouse: str, webhook: str, queue: str) -> str:
    """200 alerts on the Postgres ``warehouse``, each query sleeping a second: the even ones fire, the odd are OK."""
    lines = [
        f"  - {{name: alert_{i:03d}, query: \"SELECT '{'ALERT' if i % 2 == 0 else 'OK'}' AS status "
        f'FROM pg_sleep({QUERY_SECONDS})"}}'
        for i in range(ALERTS)
    ]
    return (
        textwrap.dedent(
            f"""
            database: {{url: "{warehouse}", pool_size: 10}}  # a batch's 8 at once (its default concurrency)
            defaults: {{schedule: "{CRON}", notify: [{{channel: webhook, url: "{webhook}"}}]}}
            checks: {{shard_size: {SHARD_SIZE}}}
            runs:
              tags: {{dagster-celery/queue: {queue}}}
              max_runtime: {MAX_RUNTIME}s
              max_retries: 2
            alerts:
            """
        ).lstrip()
        + "\n".join(lines)
        + "\n"
    )


def instance_settings(broker: str, backend: str, queue: str) -> str:
    """dagster.yaml beyond storage: the Celery run launcher, run monitoring (a killed worker's task stays STARTED
    in the result backend, so only max_runtime frees its run; resuming is off) and run retries."""
    return textwrap.dedent(
        f"""
        run_launcher:
          module: dagster_celery.launcher
          class: CeleryRunLauncher
          config: {{broker: "{broker}", backend: "{backend}", default_queue: {queue}}}
        run_monitoring:
          enabled: true
          poll_interval_seconds: 5
          max_resume_run_attempts: 0
          start_timeout_seconds: 180
        run_retries:
          enabled: true
        """
    )


@dataclass
class Kill:
    """The shard run whose worker was killed, and how far it had got."""

    run_id: str
    worker: Worker
    recorded: int
    at: float


def recorded_by_run(engine: sa.Engine) -> Counter[str]:
    """History rows (alert evaluations) per run id."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(history.c.run_id, sa.func.count()).group_by(history.c.run_id)).all()
    return Counter({run_id: count for run_id, count in rows})


def failure_of(instance: dg.DagsterInstance, run_id: str) -> str:
    """The message of the run's failure event, or of its last event."""
    records = instance.all_logs(run_id)
    failed = [
        r
        for r in records
        if r.dagster_event and r.dagster_event.event_type_value in ("PIPELINE_FAILURE", "STEP_FAILURE")
    ]
    last = (failed or records)[-1:]
    return "; ".join(str(r.message or (r.dagster_event.message if r.dagster_event else ""))[:800] for r in last)


def worker_of(host: str, pids: dict[int, Worker]) -> Worker:
    """The worker whose process evaluated a run, from its ``sqlsentinel/host`` tag (``<host name>:<pid>``)."""
    name, _, pid = host.rpartition(":")
    assert name == socket.gethostname(), host
    assert int(pid) in pids, f"{host} is none of the workers' processes {sorted(pids)}"
    return pids[int(pid)]


def kill_a_worker_halfway(
    instance: dg.DagsterInstance, engine: sa.Engine, pids: dict[int, Worker], deadline: float
) -> Kill:
    """Watch the tick's shards; when one has recorded 40-60% of its alerts, SIGKILL its worker's process group."""
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        running = instance.get_runs(dg.RunsFilter(job_name=CHECKS_JOB, statuses=[dg.DagsterRunStatus.STARTED]))
        counts = recorded_by_run(engine)
        for run in running:
            if PARENT in run.tags or TAG_HOST not in run.tags:
                continue
            if SHARD_SIZE * 0.4 <= counts[run.run_id] <= SHARD_SIZE * 0.6:
                worker = worker_of(run.tags[TAG_HOST], pids)
                os.killpg(worker.group, signal.SIGKILL)
                return Kill(run.run_id, worker, counts[run.run_id], time.monotonic())
        time.sleep(0.2)
    shown = [(r.tags.get(SHARD), r.status.value, counts[r.run_id]) for r in instance.get_runs()]
    raise AssertionError(f"no shard was seen half done (shard, status, recorded): {shown}")


@pytest.mark.timeout(900)
def test_a_worker_killed_mid_shard_loses_no_alert_and_doubles_none(
    celery_services: tuple[str, str], tmp_path: Path, postgres_home: Path, empty_postgres: str, receiver: Receiver
) -> None:
    """200 alerts every minute in shards of 50 on three Celery workers: the shards run on at least two workers;
    the worker killed halfway through its shard fails that run, whose retry completes on a survivor and evaluates
    only what the killed attempt had not recorded; every alert is evaluated once for the tick, each firing alert
    is notified once, and nothing is left pending in the ledger."""
    started = time.monotonic()
    broker, backend = celery_services
    suffix = uuid.uuid4().hex[:8]
    queue = f"sx_alerts_{suffix}"
    purge(queue)
    home_yaml = postgres_home / "dagster.yaml"
    home_yaml.write_text(home_yaml.read_text() + instance_settings(broker, backend, queue))
    instance_url = yaml.safe_load(home_yaml.read_text())["storage"]["postgres"]["postgres_url"]
    (tmp_path / "alerts.yaml").write_text(alerts_file(empty_postgres, receiver.url, queue))
    (tmp_path / "defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\n"
        f"defs = build_definitions({str(tmp_path / 'alerts.yaml')!r}, mode='checks')\n"
    )
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file: {relative_path: defs.py, location_name: alerts, working_directory: .}\n"
    )
    (tmp_path / "celery.yaml").write_text(f'execution:\n  config: {{broker: "{broker}", backend: "{backend}"}}\n')
    create_storage(postgres_home)  # before the processes open it together
    engine = sa.create_engine(instance_url)
    started_groups: list[subprocess.Popen[bytes]] = []  # the daemon, `dagster schedule stop`
    try:
        with (
            celery_workers(WORKERS, tmp_path, postgres_home, tmp_path / "celery.yaml", queue, f"sx{suffix}") as workers,
            dg.DagsterInstance.from_config(str(postgres_home)) as instance,
        ):
            pids = {pid: worker for worker in workers for pid in worker.pids()}
            daemon = start_group(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                tmp_path,
                dagster_env(postgres_home),
                tmp_path / "daemon.log",
            )
            started_groups.append(daemon)

            def shards() -> list[dg.DagsterRun]:
                return [r for r in instance.get_runs(dg.RunsFilter(job_name=CHECKS_JOB)) if PARENT not in r.tags]

            wait_for(lambda: len(shards()) >= 4, 180, f"the first tick's shards ({tmp_path / 'daemon.log'})")
            tick_seen = time.monotonic()
            stop = start_group(  # one tick is the scenario: the next minute's must not deliver what this one owes
                [str(BIN / "dagster"), "schedule", "stop", batch_schedule_name(CRON, "UTC"), "-w", "workspace.yaml"],
                tmp_path,
                dagster_env(postgres_home),
                tmp_path / "schedule_stop.log",
            )
            started_groups.append(stop)
            kill = kill_a_worker_halfway(instance, engine, pids, time.monotonic() + 120)
            assert stop.wait(timeout=120) == 0, (tmp_path / "schedule_stop.log").read_text()[-3000:]

            def run(run_id: str) -> dg.DagsterRun:
                found = instance.get_run_by_id(run_id)
                assert found is not None
                return found

            wait_for(
                lambda: run(kill.run_id).status == dg.DagsterRunStatus.FAILURE,
                MAX_RUNTIME + 90,
                f"the killed shard's run {kill.run_id} to fail",
            )
            failed_at = time.monotonic()

            def retries() -> list[dg.DagsterRun]:
                return [r for r in instance.get_runs(dg.RunsFilter(job_name=CHECKS_JOB)) if r.tags.get(PARENT)]

            try:
                wait_for(
                    lambda: any(r.status == dg.DagsterRunStatus.SUCCESS for r in retries()),
                    180,
                    f"a retry of {kill.run_id} to succeed",
                )
            except AssertionError as exc:  # say what the retries did, and why each failed
                shown = [(r.run_id, r.status.value, failure_of(instance, r.run_id)) for r in retries()]
                daemon_log = (tmp_path / "daemon.log").read_text()[-3000:]
                raise AssertionError(f"{exc}; retries: {shown}; daemon log:\n{daemon_log}") from None
            recovered_at = time.monotonic()
            wait_for(
                lambda: all(r.is_finished for r in instance.get_runs(dg.RunsFilter(job_name=CHECKS_JOB))),
                180,
                "every run to finish",
            )
            runs = instance.get_runs(dg.RunsFilter(job_name=CHECKS_JOB))
            took = [
                record.end_time - record.start_time
                for record in instance.get_run_records(dg.RunsFilter(job_name=CHECKS_JOB))
                if record.start_time and record.end_time and record.dagster_run.run_id != kill.run_id
            ]
            run_ticks = {r.run_id: r.tags[TICK] for r in runs}
            killed = run(kill.run_id)
            survivors = [w for w in workers if w is not kill.worker]
    finally:
        stop_groups(started_groups)
        forget(backend, queue)
        engine.dispose()

    first = [r for r in runs if PARENT not in r.tags]
    [retry] = [r for r in runs if r.tags.get(PARENT) == kill.run_id]
    assert len(runs) == 5, [(r.run_id, r.status, r.tags.get(SHARD), r.tags.get(PARENT)) for r in runs]
    assert sorted(r.tags[SHARD] for r in first) == ["1/4", "2/4", "3/4", "4/4"]
    assert len(set(run_ticks.values())) == 1, run_ticks
    assert {r.run_id: r.status for r in first if r.run_id != kill.run_id} == {
        r.run_id: dg.DagsterRunStatus.SUCCESS for r in first if r.run_id != kill.run_id
    }
    assert killed.status == dg.DagsterRunStatus.FAILURE
    assert retry.status == dg.DagsterRunStatus.SUCCESS
    assert retry.tags[SHARD] == killed.tags[SHARD]

    where = {r.run_id: worker_of(r.tags[TAG_HOST], pids) for r in runs}
    assert where[kill.run_id] is kill.worker
    assert where[retry.run_id] in survivors
    assert len({where[r.run_id].name for r in first}) >= 2, {r.tags[SHARD]: where[r.run_id].name for r in first}

    with engine.connect() as conn:
        evaluations = conn.execute(sa.select(history.c.alert, history.c.run_id)).all()
        ledger = conn.execute(
            sa.select(notifications.c.alert, notifications.c.status, notifications.c.run_id, notifications.c.attempts)
        ).all()
    per_tick = Counter((alert, run_ticks[run_id]) for alert, run_id in evaluations)
    doubled = {key: count for key, count in per_tick.items() if count > 1}
    assert doubled == {}
    assert sorted(alert for alert, _ in per_tick) == [f"alert_{i:03d}" for i in range(ALERTS)]
    by_run = Counter(run_id for _, run_id in evaluations)
    assert 0 < by_run[kill.run_id] < SHARD_SIZE
    assert by_run[retry.run_id] == SHARD_SIZE - by_run[kill.run_id]  # only what the killed attempt had not recorded

    undelivered = [(a, status, "killed" if run_id == kill.run_id else run_id) for a, status, run_id, _ in ledger]
    assert [row for row in undelivered if row[1] != "delivered"] == []  # (alert, status, run that claimed it)
    assert len(ledger) == ALERTS // 2
    firing = [r for r in receiver.delivered() if r.body["event"] == "firing"]
    keys: dict[str, set[str]] = {}
    for request in firing:
        keys.setdefault(request.body["alert_name"], set()).add(request.headers["Idempotency-Key"])
    assert {alert: len(sent) for alert, sent in keys.items()} == {f"alert_{i:03d}": 1 for i in range(0, ALERTS, 2)}
    # Received twice only where the killed run had sent it and died before recording so: the retry took it over
    # (claimed it a second time) and sent it again with the same key. No other duplicate, none sent three times.
    received = Counter(request.body["alert_name"] for request in firing)
    resent = {alert: count for alert, count in received.items() if count > 1}
    evaluated_by_killed = {alert for alert, run_id in evaluations if run_id == kill.run_id}
    taken_over = {a for a, _, run_id, attempts in ledger if run_id == retry.run_id and attempts > 1}
    assert set(resent) <= taken_over <= evaluated_by_killed, (resent, taken_over)
    assert set(resent.values()) <= {2}, resent
    assert {r.body["event"] for r in receiver.requests} == {"firing"}

    placed = ", ".join(f"{r.tags[SHARD]}: {where[r.run_id].name}" for r in sorted(first, key=lambda r: r.tags[SHARD]))
    print(  # shown with -s: the numbers a reader of the CI log wants
        f"\n{len(first)} shards on {len({w.name for w in where.values()})} workers ({placed}); "
        f"killed {kill.worker.name} at {kill.recorded}/{SHARD_SIZE} recorded ({by_run[kill.run_id]} in the end, "
        f"{len(taken_over)} notification(s) taken over by the retry, {len(resent)} of them received twice); "
        f"run failed {failed_at - kill.at:.0f}s after the kill, retry succeeded on {where[retry.run_id].name} "
        f"{recovered_at - kill.at:.0f}s after it, evaluating {by_run[retry.run_id]}; "
        f"the other runs took {min(took):.0f}-{max(took):.0f}s; "
        f"first tick seen at {tick_seen - started:.0f}s, wall time {time.monotonic() - started:.0f}s"
    )
