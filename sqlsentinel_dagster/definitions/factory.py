"""``build_definitions(path)``: one job and one schedule per alert, plus the resources they need."""

# No `from __future__ import annotations` here: Dagster inspects the op's `context` annotation at runtime.

import functools
import logging
import os
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import dagster as dg
from pydantic import ValidationError

from ..config import AlertConfig, LoadedConfig
from ..config.runs import ChecksSettings, RunSettings
from ..config.shards import Shard, shards
from ..errors import ConfigError, SecretResolutionError
from ..naming import NOTIFICATIONS_RESOURCE_KEY, STATE_RESOURCE_KEY, FileNames, job_name
from .admin_jobs import admin_jobs, prune_schedule
from .checks_mode import build_checks, build_checks_job, check_key, warehouse_assets
from .code_location import claim_names
from .heartbeat_sensor import build_heartbeat_sensor
from .jobs_mode import build_evaluate_op, build_job, build_schedule
from .meta_alerting import build_config_sensor, build_failure_sensor, build_test_notify_job
from .replay_job import build_replay_job
from .resources import AlertStateResource, NotificationsResource, WarehouseResource, cached_config
from .run_worker import is_run_worker, lazy_job
from .triggers import build_batch_schedules, build_materialization_sensor
from .versions import load_version
from .watch_sensor import build_watch_sensor

__all__ = ["Mode", "build_definitions"]

Mode = Literal["jobs", "checks"]
_log = logging.getLogger("sqlsentinel")

# Job owners are a beta parameter in Dagster 1.13: Dagster warns each time a job with owners is (re)built.
# We rely on them on purpose, so silence exactly that warning rather than all beta warnings.
warnings.filterwarnings("ignore", message="Parameter `owners`", category=dg.BetaWarning)


def build_definitions(
    path: str | os.PathLike[str],
    *,
    mode: Mode = "jobs",
    name: str | None = None,
    strict: bool | None = None,
    state: AlertStateResource | None = None,
    notifications: NotificationsResource | None = None,
    shard_size: int | None = None,
    run_tags: Mapping[str, str] | None = None,
) -> dg.Definitions:
    """Definitions for every alert in ``path``, plus the resources they need.

    ``mode="jobs"`` (default): one job and one schedule per alert. ``mode="checks"``: every alert is an asset
    check (on its ``asset:``, else on ``sqlsentinel/<database>``), evaluated by one job, ``sqlsentinel_checks``,
    with one schedule per distinct cron and timezone that evaluates all of its alerts in one run.

    A mistake in the file never takes the code location down: an alert with a problem is left out, a problem
    in something alerts share (a database, a receiver) leaves out the alerts that use it, and a file that cannot
    be read loads no alerts; the ``sqlsentinel_config`` sensor shows every problem and tells the fallback
    receivers. ``strict=True`` raises :class:`ConfigError` on any problem instead; by default (``None``) that
    is what happens under ``dagster definitions validate`` and ``dg check defs`` (they set
    ``DAGSTER_IS_DEFS_VALIDATION_CLI=1``), so CI catches every problem while deployments stay up.

    The result loads on its own and can be merged with a team's own ``Definitions``
    (``dg.Definitions.merge(theirs, build_definitions("alerts.yaml"))``); every name starts with
    ``sqlsentinel`` so nothing collides. ``state`` overrides where alert state is kept (default: the Dagster
    instance's own database); ``notifications`` sets the SMTP server, UI links and retries (default: from the
    environment). A relative ``path`` is read from the working directory: write
    ``Path(__file__).parent / "alerts.yaml"`` in a definitions file.

    Several alerts files in one code location: give each a ``name`` (``team_a``), which ends the names of the
    file's sensors, checks job and schedules (``sqlsentinel_config__team_a``); the alerts' own jobs, schedules
    and checks keep their names, which must be unique across the files (see ``code_location``).

    ``shard_size`` (checks mode) and ``run_tags`` set the file's ``checks.shard_size`` and add to its
    ``runs.tags``, winning over the file: a checks-mode tick with more alerts than ``shard_size`` is launched as
    several runs, and every alert run carries the tags (for the run launcher and the run queue).
    """
    if mode not in ("jobs", "checks"):
        raise ValueError(f"mode must be 'jobs' or 'checks', got {mode!r}")
    worker = is_run_worker()  # a run worker runs one job: no schedules or sensors, jobs built on demand
    state = state or AlertStateResource()
    names = FileNames(name)
    version = load_version(cached_config(path, compiled=worker), state, record=not worker)
    config = version.config
    claim = claim_names(config, names)  # alert names taken by another file of this code location: left out
    config = with_run_settings(claim.config, shard_size, run_tags)
    if strict is None:
        strict = os.environ.get("DAGSTER_IS_DEFS_VALIDATION_CLI") == "1"
    if config.problems and strict:
        raise ConfigError(str(config.path), config.problems)
    if config.problems and not worker:
        _log.error("%s", ConfigError(str(config.path), config.problems))  # and the sqlsentinel_config sensor fails
    alerting = _checks_mode(config, worker, names) if mode == "checks" else _jobs_mode(config, worker, names)
    silence, unsilence, ack, prune = admin_jobs()
    if config.fallback_targets() and alerting.jobs and not worker:
        alerting.sensors.append(build_failure_sensor(config, alerting.jobs, names))
    if not worker:
        alerting.sensors.append(build_config_sensor(config, names, removed=version.removed))
    watch = None if worker else build_watch_sensor(config, names.watch_sensor)  # watch: rules on every asset check
    if watch is not None:
        alerting.sensors.append(watch)
    heartbeat = None if worker else build_heartbeat_sensor(config, mode, names)  # the dead man's switch
    if heartbeat is not None:
        alerting.sensors.append(heartbeat)
    return dg.Definitions(
        assets=alerting.assets,
        asset_checks=alerting.checks,
        jobs=[
            *alerting.jobs,
            *((silence, unsilence, ack, prune) if claim.location_wide else ()),
            build_test_notify_job(config, names),
            build_replay_job(str(config.path), names.replay_job),
        ],
        schedules=[
            *alerting.schedules,
            *([prune_schedule(prune, claim.prune_schedule)] if claim.prune_schedule and not worker else []),
        ],
        sensors=alerting.sensors,
        resources={
            STATE_RESOURCE_KEY: bind_at_run_time(state),
            NOTIFICATIONS_RESOURCE_KEY: bind_at_run_time(notifications or NotificationsResource()),
            **{
                names.warehouse_resource(database): bind_at_run_time(
                    WarehouseResource(config_path=str(config.path), database=database), f"Warehouse '{database}'"
                )
                for database in config.file.all_databases()
            },
        },
    )


@dataclass
class _Alerting:
    """The definitions one mode makes of the alerts."""

    jobs: list[Any]
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]
    assets: list[dg.AssetSpec] = field(default_factory=list)
    checks: list[dg.AssetChecksDefinition] = field(default_factory=list)


def _jobs_mode(config: LoadedConfig, worker: bool, names: FileNames) -> _Alerting:
    ops = {database: build_evaluate_op(database, config, names) for database in config.file.all_databases()}
    if worker:

        def build(name: str) -> dg.JobDefinition:
            alert = config.alert(name)
            return build_job(alert, config, ops[config.database_name(alert)])

        lazy = [lazy_job(job_name(name), functools.partial(build, name)) for name in config.alert_names]
        return _Alerting(jobs=lazy, schedules=[], sensors=[])
    jobs = [build_job(alert, config, ops[config.database_name(alert)]) for alert in config.alerts]
    by_alert = dict(zip((a.name for a in config.alerts), jobs, strict=True))
    watching = [by_alert[a.name] for a in config.alerts if a.on_materialization and a.enabled and a.asset]
    sensor = build_materialization_sensor(config.alerts, None, watching, names)
    return _Alerting(
        jobs=jobs,
        schedules=[build_schedule(alert, by_alert[alert.name]) for alert in config.alerts if alert.schedule],
        sensors=[sensor] if sensor else [],
    )


def _checks_mode(config: LoadedConfig, worker: bool, names: FileNames) -> _Alerting:
    if not config.alerts:
        return _Alerting(jobs=[], schedules=[], sensors=[])
    checks = build_checks(config, names)
    job = build_checks_job(checks, names, config.file.runs.run_tags())
    size = config.file.checks.shard_size

    def plan(alerts: list[AlertConfig]) -> list[Shard]:
        return shards(alerts, config, size)

    def key(alert: AlertConfig) -> dg.AssetCheckKey:
        return check_key(alert, config, names)

    return _Alerting(
        jobs=[job],
        schedules=[] if worker else build_batch_schedules(config.alerts, key, job, names, plan),
        sensors=[] if worker else [s for s in [build_materialization_sensor(config.alerts, key, [job], names)] if s],
        assets=warehouse_assets(config, names),
        checks=[checks],
    )


def bind_at_run_time(resource: dg.ConfigurableResource, label: str = "") -> dg.ResourceDefinition:  # type: ignore[type-arg]
    """``resource`` as a resource without a run-config schema, initialized (``EnvVar`` fields resolved) when a
    run starts.

    Every top-level resource's config schema is copied into every job's snapshot; with thousands of alert jobs
    that doubled the snapshot the webserver loads. Settings are given in Python (``build_definitions(...,
    notifications=NotificationsResource(...))``), so nothing is lost but per-run overrides in the Launchpad.

    Equal settings give the same object, so several alerts files' definitions merge in one code location
    (Dagster's merge accepts a resource key twice only for the very same object).
    """
    settings = tuple((name, type(value).__name__, repr(value)) for name, value in _fields(resource))  # EnvVar apart
    key = (type(resource), settings, label)
    with _BOUND_LOCK:
        if key not in _BOUND:
            summary = (type(resource).__doc__ or "").strip().splitlines()[0]
            _BOUND[key] = dg.ResourceDefinition(
                resource_fn=lambda _context: _with_env_resolved(resource),
                description=f"{label}: {summary}" if label else summary,
            )
        return _BOUND[key]


_BOUND: dict[tuple[Any, ...], dg.ResourceDefinition] = {}
_BOUND_LOCK = threading.Lock()


def _fields(resource: dg.ConfigurableResource) -> list[tuple[str, Any]]:  # type: ignore[type-arg]
    return [(name, getattr(resource, name)) for name in type(resource).model_fields]


def _with_env_resolved(resource: dg.ConfigurableResource) -> dg.ConfigurableResource:  # type: ignore[type-arg]
    """A copy of ``resource`` with every ``dg.EnvVar`` field replaced by the variable's value, read now."""
    values: dict[str, Any] = {}
    for name, value in _fields(resource):
        if isinstance(value, dg.EnvVar):
            value = value.get_value()
            if value is None:
                raise SecretResolutionError(f"{type(resource).__name__}.{name}", getattr(resource, name).env_var_name)
        values[name] = value
    return type(resource)(**values)


def with_run_settings(config: LoadedConfig, shard_size: int | None, run_tags: Mapping[str, str] | None) -> LoadedConfig:
    """``config`` with ``build_definitions``'s ``shard_size`` and ``run_tags`` over the file's ``checks:`` and
    ``runs:`` (validated as the file's are: a ValueError says what is wrong)."""
    if shard_size is None and not run_tags:
        return config
    try:
        checks = ChecksSettings.model_validate(
            {**config.file.checks.model_dump(), **({"shard_size": shard_size} if shard_size is not None else {})}
        )
        runs = RunSettings.model_validate(
            {**config.file.runs.model_dump(), "tags": {**config.file.runs.tags, **(run_tags or {})}}
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"build_definitions: {problems}") from None
    return replace(config, file=config.file.model_copy(update={"checks": checks, "runs": runs}))
