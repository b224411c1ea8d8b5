"""What launches alert evaluations besides a person: batch schedules (checks mode) and materializations.

- Checks mode: alerts due at the same ticks (same cron, timezone and starting status) share one schedule that
  launches ``sqlsentinel_checks`` once with all their checks: one run per tick, not one per alert; or, past
  ``checks.shard_size``, one run per shard, each with a stable run key so a retried tick launches none twice.
- Both modes: ``sqlsentinel_on_materialization`` watches the assets of alerts with ``on_materialization: true``
  (in any code location: it reads the instance) and evaluates them after new materializations; every
  materialization seen in one tick gives one evaluation, so a burst is one evaluation.
"""

# No `from __future__ import annotations` here: Dagster inspects the sensor's `context` annotation at runtime.

import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from .checks_mode import AssetJob

from ..config import AlertConfig
from ..config.shards import Shard
from ..naming import PLAIN_NAMES, TAG_ALERT, TAG_DATABASE, FileNames, job_name

__all__ = ["TAG_SHARD", "TAG_TRIGGER", "Planner", "build_batch_schedules", "build_materialization_sensor"]

TAG_TRIGGER = "sqlsentinel/trigger"
TAG_SCHEDULE = "sqlsentinel/schedule"
TAG_SHARD = "sqlsentinel/shard"
"""``i/n``: the shard of its tick a run evaluates (only when a tick is split)."""

Planner = Callable[[list[AlertConfig]], list[Shard]]

CheckKeyOf = Callable[[AlertConfig], dg.AssetCheckKey]


def build_batch_schedules(
    alerts: Sequence[AlertConfig],
    check_key: CheckKeyOf,
    job: "AssetJob",
    names: FileNames = PLAIN_NAMES,
    plan: Planner | None = None,
) -> list[dg.ScheduleDefinition]:
    """One schedule per (cron, timezone, starting status), launching ``job`` with the checks of its alerts: one
    run per tick, or one per shard when ``plan`` splits its alerts (see :mod:`..config.shards`)."""
    groups: dict[tuple[str, str, bool], list[AlertConfig]] = defaultdict(list)
    for alert in alerts:
        if alert.schedule:
            groups[(alert.schedule, alert.timezone, alert.schedule_running)].append(alert)
    schedules: list[dg.ScheduleDefinition] = []
    taken: set[str] = set()
    for (cron, timezone, running), members in groups.items():
        name = names.batch_schedule(cron, timezone) + ("" if running else "__stopped")
        while name in taken:  # two crons that only differ in punctuation
            name += "_"
        taken.add(name)
        planned = plan(members) if plan is not None else [Shard(tuple(members), None)]
        schedules.append(_batch_schedule(name, cron, timezone, running, planned, check_key, job))
    return schedules


def _batch_schedule(
    name: str,
    cron: str,
    timezone: str,
    running: bool,
    planned: list[Shard],
    check_key: CheckKeyOf,
    job: "AssetJob",
) -> dg.ScheduleDefinition:
    alerts = [alert for shard in planned for alert in shard.alerts]
    tags = {TAG_SCHEDULE: name, TAG_TRIGGER: "schedule", **({TAG_ALERT: alerts[0].name} if len(alerts) == 1 else {})}
    requests = []
    for number, shard in enumerate(planned, start=1):
        shard_tags = {**tags, **({TAG_DATABASE: shard.database} if shard.database else {})}
        if len(planned) > 1:
            shard_tags[TAG_SHARD] = f"{number}/{len(planned)}"
        keys = [check_key(alert) for alert in shard.alerts]
        run_key = f"shard-{number}-of-{len(planned)}" if len(planned) > 1 else None
        requests.append(dg.RunRequest(run_key=run_key, asset_selection=[], asset_check_keys=keys, tags=shard_tags))
    listed = ", ".join(a.name for a in alerts[:10]) + (f" and {len(alerts) - 10} more" if len(alerts) > 10 else "")
    runs = f"{len(planned)} runs" if len(planned) > 1 else "one run"

    def due(_context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        yield from requests

    return dg.ScheduleDefinition(
        name=name,
        cron_schedule=cron,
        execution_timezone=timezone,
        job=job,
        execution_fn=due,
        description=f"Evaluate {len(alerts)} alert(s) in {runs} on '{cron}' ({timezone}): {listed}",
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
    )


def build_materialization_sensor(
    alerts: Sequence[AlertConfig],
    check_key: CheckKeyOf | None,
    jobs: Sequence["dg.JobDefinition | AssetJob"],
    names: FileNames = PLAIN_NAMES,
) -> dg.SensorDefinition | None:
    """``sqlsentinel_on_materialization``, or None when no enabled alert asks for it.

    ``check_key`` set (checks mode): one run of ``jobs[0]`` with the checks of every alert whose asset was
    materialized since the last tick. Unset (jobs mode): one run of each such alert's job.
    """
    watched: dict[str, list[AlertConfig]] = defaultdict(list)
    for alert in alerts:
        if alert.on_materialization and alert.enabled and alert.asset:
            watched[dg.AssetKey(list(alert.asset)).to_user_string()].append(alert)
    if not watched:
        return None
    asset_keys = [dg.AssetKey.from_user_string(k) for k in watched]

    def tick(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        latest = {
            record.asset_entry.asset_key.to_user_string(): record.asset_entry.last_materialization_record.storage_id
            for record in context.instance.get_asset_records(asset_keys)
            if record.asset_entry.last_materialization_record is not None
        }
        if context.cursor is None:
            context.update_cursor(json.dumps(latest))
            return dg.SkipReason(f"watching {len(watched)} asset(s) for materializations from now on")
        seen: dict[str, int] = json.loads(context.cursor)
        changed = sorted(k for k, storage_id in latest.items() if storage_id > seen.get(k, 0))
        if not changed:
            return dg.SkipReason("no new materialization of a watched asset")
        due = [alert for key in changed for alert in watched[key]]
        burst = max(latest[k] for k in changed)
        tags = {TAG_TRIGGER: "materialization", "sqlsentinel/assets": ", ".join(changed)[:200]}
        if check_key is not None:
            requests = [
                dg.RunRequest(
                    run_key=f"materialization:{burst}",
                    asset_selection=[],
                    asset_check_keys=[check_key(alert) for alert in due],
                    tags={**tags, **({TAG_ALERT: due[0].name} if len(due) == 1 else {})},
                )
            ]
        else:
            requests = [
                dg.RunRequest(run_key=f"{alert.name}:{burst}", job_name=job_name(alert.name), tags=tags)
                for alert in due
            ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps({**seen, **latest}))

    return dg.SensorDefinition(
        name=names.materialization_sensor,
        evaluation_fn=tick,
        jobs=list(jobs),
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Evaluate alerts after materializations of {len(watched)} asset(s): "
        + ", ".join(list(watched)[:10]),
    )
