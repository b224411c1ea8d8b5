"""``check_health``: is alerting live? The one check ``sqlsentinel health`` and the ``sqlsentinel_heartbeat``
sensor both run.

It reads what the Dagster instance recorded of the file's schedules, sensors and runs, asks the state database
for the last valid version of the file, reads the file on disk, and hands all of it to the pure judges of
:mod:`.health_judging`. Each read has a deadline (``HealthSettings.timeout``): it runs in a worker thread that
is given up when the deadline passes, so a silent database makes a cause, never a hang. Errors are redacted.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import sqlalchemy as sa

from .._yaml import read_text
from ..config import LoadedConfig
from ..durations import format_duration
from ..naming import PLAIN_NAMES, TAG_DECISION, FileNames, job_name, schedule_name
from ..redact import redact_text
from ..state.configs import content_digest, last_valid
from ..state.schema import installed_version
from ..state.store import StateStore, utcnow
from .health_judging import (
    DEFAULT_SENSOR_INTERVAL,
    Cause,
    FileVersion,
    HealthReport,
    HealthSettings,
    Instigator,
    Mode,
    RunSeen,
    Seen,
    failing_batches,
    late_ticks,
    queued_too_long,
    stale_config,
)

__all__ = [
    "CONFIG_SENSOR_INTERVAL",
    "MATERIALIZATION_SENSOR_INTERVAL",
    "MAX_QUEUED_READ",
    "InstanceRecords",
    "alert_jobs",
    "check_health",
    "expected_instigators",
    "read_instance",
    "within",
]

CONFIG_SENSOR_INTERVAL = 60.0
"""Seconds between ticks of ``sqlsentinel_config`` (``meta_alerting``)."""
MATERIALIZATION_SENSOR_INTERVAL = 15.0
"""Seconds between ticks of ``sqlsentinel_on_materialization`` (``triggers``)."""

MAX_QUEUED_READ = 1_000
"""Queued runs read (the oldest first): the file's runs among them are judged."""
_T = TypeVar("_T")


def check_health(
    instance: dg.DagsterInstance,
    config: LoadedConfig,
    open_store: Callable[[], StateStore],
    *,
    mode: Mode = "jobs",
    names: FileNames = PLAIN_NAMES,
    settings: HealthSettings = HealthSettings(),  # noqa: B008 - frozen
    problems: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> HealthReport:
    """Whether the alerting of ``config`` (built with ``mode`` and ``names``) is live on ``instance``.

    ``open_store`` opens the state database (called inside the deadline); ``problems``: the file's own problems
    when the caller loaded it from disk (they explain a file that differs from the version running); ``now``:
    the time to judge at (default: the clock, read once).
    """
    now = now or utcnow()
    causes: list[Cause] = []
    path = str(config.path)
    saved: tuple[str, dt.datetime] | None = None
    try:
        saved = within(settings.timeout, lambda: _last_valid(open_store, path))
    except Exception as exc:
        causes.append(Cause("state_unreachable", f"the state database is not usable: {_problem(exc)}"))
    else:
        stale = stale_config(path, saved, _on_disk(config.path), now, settings.config_grace, problems)
        causes += [stale] if stale is not None else []
    expected = expected_instigators(config, mode, names)
    jobs = alert_jobs(config, mode, names)
    batches = settings.failed_runs if mode == "checks" and jobs else 0
    running = 0
    try:
        records = within(settings.timeout, lambda: read_instance(instance, expected, jobs, names.checks_job, batches))
    except Exception as exc:
        causes.append(Cause("instance_unreachable", f"the Dagster instance cannot be read: {_problem(exc)}"))
    else:
        found = [
            late_ticks(expected, records.seen, now, settings.grace, saved[1] if saved else None),
            queued_too_long(records.queued, now, settings.queued_limit),
            failing_batches(records.finished, batches),
        ]
        causes += [cause for cause in found if cause is not None]
        running = sum(1 for instigator in expected if _running(instigator, records.seen.get(instigator.name)))
    limit = format_duration(dt.timedelta(seconds=settings.queued_limit))
    checked = (
        f"{running} schedule(s) and sensor(s) of {config.path.name} on time, no alert run queued over {limit}, "
        f"the state database answering, {config.path.name} as the deployment runs it"
    )
    return HealthReport(checked_at=now, causes=tuple(causes), checked=checked)


def alert_jobs(config: LoadedConfig, mode: Mode, names: FileNames) -> set[str]:
    """The jobs that evaluate the file's alerts."""
    if mode == "checks":
        return {names.checks_job} if config.alerts else set()
    return {job_name(alert.name) for alert in config.alerts}


def expected_instigators(config: LoadedConfig, mode: Mode, names: FileNames) -> list[Instigator]:
    """Every schedule and sensor ``build_definitions(config.path, mode=mode, name=names.namespace)`` makes (the
    code location's prune schedule aside), as the factory makes them."""
    found: list[Instigator] = []
    alerts = config.alerts
    if mode == "jobs":
        found += [
            Instigator(schedule_name(a.name), "schedule", a.schedule_running, a.schedule, a.timezone)
            for a in alerts
            if a.schedule
        ]
    else:  # one schedule per (cron, timezone, starting status), as triggers.build_batch_schedules names them
        groups: dict[tuple[str, str, bool], int] = defaultdict(int)
        for alert in alerts:
            if alert.schedule:
                groups[(alert.schedule, alert.timezone, alert.schedule_running)] += 1
        taken: set[str] = set()
        for cron, timezone, running in groups:
            name = names.batch_schedule(cron, timezone) + ("" if running else "__stopped")
            while name in taken:
                name += "_"
            taken.add(name)
            found.append(Instigator(name, "schedule", running, cron, timezone))
    if any(a.on_materialization and a.enabled and a.asset for a in alerts):
        found.append(Instigator(names.materialization_sensor, "sensor", interval=MATERIALIZATION_SENSOR_INTERVAL))
    if config.fallback_targets() and alerts:
        found.append(Instigator(names.failure_sensor, "sensor", interval=DEFAULT_SENSOR_INTERVAL))
    found.append(Instigator(names.config_sensor, "sensor", interval=CONFIG_SENSOR_INTERVAL))
    if config.watch_rules:
        found.append(Instigator(names.watch_sensor, "sensor", interval=float(round(config.file.watch_interval))))
    if config.file.heartbeat is not None:
        found.append(Instigator(names.heartbeat_sensor, "sensor", interval=float(round(config.file.heartbeat.every))))
    return found


class InstanceRecords:
    """What the instance recorded of the file's schedules, sensors and runs."""

    def __init__(self, seen: dict[str, Seen], queued: list[RunSeen], finished: list[RunSeen]) -> None:
        self.seen = seen
        """Each schedule or sensor the instance has a state for, by name."""
        self.queued = queued
        """The file's runs now QUEUED."""
        self.finished = finished
        """The latest finished runs of the checks job, newest first."""


def read_instance(
    instance: dg.DagsterInstance, expected: Sequence[Instigator], jobs: set[str], checks_job: str, batches: int
) -> InstanceRecords:
    """The instance's records of the ``expected`` schedules and sensors (each one's latest tick, in one query),
    of the runs of ``jobs`` now queued, and of the latest ``batches`` finished runs of ``checks_job``."""
    wanted = {instigator.name for instigator in expected}
    states = [state for state in instance.all_instigator_state() if state.name in wanted]
    ticks = instance.get_batch_ticks([state.selector_id for state in states], limit=1) if states else {}
    seen: dict[str, Seen] = {}
    for state in states:
        latest = ticks.get(state.selector_id) or []
        seen[state.name] = _fresher(seen.get(state.name), _seen(state, latest[0].timestamp if latest else None))
    queued: list[RunSeen] = []
    if jobs:
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]),
            limit=MAX_QUEUED_READ,
            order_by="create_timestamp",
            ascending=True,
        )
        queued = [_run(record) for record in records if record.dagster_run.job_name in jobs]
    finished: list[RunSeen] = []
    if batches > 0:
        done = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]
        records = instance.get_run_records(filters=dg.RunsFilter(job_name=checks_job, statuses=done), limit=batches)
        finished = [_run(record) for record in records]
    return InstanceRecords(seen, queued, finished)


def within(seconds: float, work: Callable[[], _T]) -> _T:
    """``work()``, in a worker thread given up after ``seconds`` (TimeoutError); its error is raised here."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            outcome["done"] = True

    worker = threading.Thread(target=run, name="sqlsentinel-health", daemon=True)
    worker.start()
    worker.join(seconds)
    if "error" in outcome:
        raise outcome["error"]
    if "done" not in outcome:
        raise TimeoutError(f"no answer within {seconds:g}s")
    value: _T = outcome["value"]
    return value


def _last_valid(open_store: Callable[[], StateStore], path: str) -> tuple[str, dt.datetime] | None:
    """The digest and first load time of the last valid version of ``path``; None without one (or without the
    sqlsentinel tables). Raises when the database does not answer."""
    store = open_store()
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    if installed_version(store.engine) is None:
        return None
    saved = last_valid(store, path)
    return (saved.digest, _aware(saved.loaded_at)) if saved is not None else None


def _on_disk(path: Path) -> FileVersion | None:
    try:
        content = read_text(path)  # bounded, as the code server reads it
        modified = path.stat().st_mtime
    except Exception:  # missing, unreadable, too large, not UTF-8: not the version the deployment runs
        return None
    return FileVersion(content_digest(content), dt.datetime.fromtimestamp(modified, dt.UTC))


def _seen(state: Any, tick: float | None) -> Seen:
    """A schedule's or sensor's state (Dagster's ``InstigatorState``, read by attribute) and its latest tick."""
    status = str(getattr(state.status, "value", state.status))
    status = "DECLARED_IN_CODE" if status == "AUTOMATICALLY_RUNNING" else status  # its old name
    data = state.instigator_data
    stamps = [tick]
    since = getattr(data, "start_timestamp", None)  # schedules
    if str(getattr(state.instigator_type, "value", "")) == "SENSOR":
        stamps += [getattr(data, "last_tick_start_timestamp", None), getattr(data, "last_tick_timestamp", None)]
        since = getattr(data, "last_sensor_start_timestamp", None)
    known = [stamp for stamp in stamps if stamp]
    return Seen(status, _at(max(known)) if known else None, _at(since) if since else None)


def _fresher(one: Seen | None, other: Seen) -> Seen:
    """Of two states of one name (two code locations): a running one, then the one that ticked last."""
    if one is None:
        return other

    def rank(seen: Seen) -> tuple[bool, dt.datetime]:
        return seen.status != "STOPPED", seen.last_tick or seen.since or dt.datetime.min.replace(tzinfo=dt.UTC)

    return max(one, other, key=rank)


def _running(instigator: Instigator, seen: Seen | None) -> bool:
    status = seen.status if seen is not None else "DECLARED_IN_CODE"
    return status == "RUNNING" or (status == "DECLARED_IN_CODE" and instigator.running)


def _run(record: Any) -> RunSeen:
    run = record.dagster_run
    created = _aware(record.create_timestamp)
    return RunSeen(run.run_id, run.job_name, str(run.status.value), created, handled=TAG_DECISION in run.tags)


def _at(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _problem(exc: BaseException) -> str:
    """The error in one bounded line, URLs' passwords hidden."""
    detail = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc  # the driver's words, without the SQL
    text = " ".join(f"{type(detail).__name__}: {detail}".split())
    return redact_text(text)[:300]
