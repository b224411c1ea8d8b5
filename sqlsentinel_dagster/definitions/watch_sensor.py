"""``sqlsentinel_watch``: the sensor that notifies about the deployment's asset checks (``watch:`` rules).

Every 30 s it reads the asset check evaluations stored since its cursor (from every code location: it reads the
instance, not the sensor's own repository), at most :data:`MAX_EVALUATIONS_PER_TICK` of them, in storage-id
order, and hands them to :func:`.watch.watch_tick`, which records and notifies from the sensor process (no run
is launched). The cursor moves only past what was processed; an evaluation read twice (overlapping ticks, a
restart before the cursor was saved) is recorded once, because the state remembers the storage id of the latest
evaluation recorded for each watched check, in the transaction that records it.

On its first tick it takes the latest evaluation of every watched check (of every partition of a partitioned
one) as the current state, so a check that is already failing fires; later ticks read only what is new.

A firing check of which the instance keeps no execution any more (:func:`gone_checks`: its asset was wiped) is
gone: it resolves instead of reminding forever.
"""

# No `from __future__ import annotations` here: Dagster inspects the sensor's `context` annotation at runtime.

import datetime as dt
import json
import time
import uuid
from collections.abc import Collection
from typing import Any

import dagster as dg

from ..config import LoadedConfig
from ..config.watch import WatchRule
from ..cycle.check_evaluations import CheckEvaluation, CheckKey
from ..cycle.delivery import CycleSettings
from ..cycle.watch import watch_tick
from ..redact import redact_text
from .platform_reads import platform_pass
from .resources import AlertStateResource, NotificationsResource
from .watch_sensor_reads import check_evaluations_after, gone_checks, latest_check_evaluations, newest_storage_id

__all__ = ["MAX_EVALUATIONS_PER_TICK", "TICK_BUDGET_SECONDS", "WATCH_SENSOR_NAME", "build_watch_sensor"]

WATCH_SENSOR_NAME = "sqlsentinel_watch"
MAX_EVALUATIONS_PER_TICK = 1_000
"""Evaluations read per tick; the cursor keeps the rest for the next tick (30 s later)."""
TICK_BUDGET_SECONDS = 40.0
"""Time a tick spends recording and delivering before it leaves the rest to the next tick (Dagster gives a sensor
evaluation 60 s)."""


def build_watch_sensor(config: LoadedConfig, name: str = WATCH_SENSOR_NAME) -> dg.SensorDefinition | None:
    """``sqlsentinel_watch`` (RUNNING by default) for the ``watch:`` rules of ``config``, or None without any.

    It takes the loaded file (not its path) so that it watches with the same version of the file as the rest
    of the code location, the last valid one included.
    """
    if not config.watch_rules:
        return None
    rules = config.watch_rules
    checking = any(rule.checks for rule in rules)
    platform = [rule for rule in rules if rule.kind != "checks"]
    listed = ", ".join(f"{r.name} ({_watching(r)})" for r in rules[:5])

    @dg.sensor(
        name=name,
        minimum_interval_seconds=round(config.file.watch_interval),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Notify about what the watch: rules select in every code location: {listed}"
        + (f" and {len(rules) - 5} more rule(s)" if len(rules) > 5 else ""),
    )
    def sqlsentinel_watch(
        context: dg.SensorEvaluationContext,
        sqlsentinel_state: AlertStateResource,  # the resources STATE_RESOURCE_KEY and NOTIFICATIONS_RESOURCE_KEY
        sqlsentinel_notifications: NotificationsResource,
    ) -> dg.SkipReason:
        state, notifications = sqlsentinel_state, sqlsentinel_notifications
        deadline = time.monotonic() + TICK_BUDGET_SECONDS
        store = state.get_store(context.instance)
        settings = CycleSettings(
            channels=notifications.channel_settings(),
            lease=dt.timedelta(seconds=state.delivery_lease_seconds),
            expire_after=dt.timedelta(hours=state.notification_expiry_hours),
            run_id=f"{WATCH_SENSOR_NAME}/{uuid.uuid4().hex[:12]}",  # this tick, as the ledger's sender
        )
        saved: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        cursor: dict[str, int] = {k: v for k, v in saved.items() if k in ("after", "backlog")}
        if "after" not in cursor:  # first tick: the current state of every watched check
            cursor = {"after": newest_storage_id(context.instance), "backlog": 0}
        limit = MAX_EVALUATIONS_PER_TICK
        evaluations: list[CheckEvaluation] = []
        if checking and "backlog" in cursor:
            evaluations = latest_check_evaluations(context.instance, rules, cursor["after"], cursor["backlog"], limit)
        elif checking:
            evaluations = check_evaluations_after(context.instance, cursor["after"], limit)
        active = store.watched_active([rule.name for rule in platform]) if platform else []
        now, base_url = store.clock(), settings.channels.webserver_base_url
        read = platform_pass(context.instance, platform, saved.get("platform", {}), active, now, base_url)
        for problem in read.problems:
            context.log.warning(problem)

        def gone(checks: Collection[CheckKey]) -> dict[CheckKey, str]:
            try:
                return gone_checks(context.instance, checks)
            except Exception as exc:  # not knowing is not a definitive absence: nothing is gone this tick
                problem = redact_text(f"{type(exc).__name__}: {exc}")
                context.log.warning(f"could not tell whether {len(checks)} firing check(s) still exist: {problem}")
                return {}

        tick = watch_tick(
            evaluations,
            config,
            store,
            settings,
            context.log,
            deadline=deadline,
            gone=gone,
            observations=read.observations,
            active=active if platform else None,
        )
        done = tick.last_storage_id
        if "backlog" in cursor:  # the latest evaluations up to "after": finished, or done up to `done`
            backlog = cursor["backlog"] if done is None else done
            finished = not tick.out_of_time and len(evaluations) < limit
            cursor = {"after": cursor["after"]} if finished else {**cursor, "backlog": backlog}
        elif done is not None:
            cursor = {"after": done}
        # A pass out of time keeps the platform cursor: what it read is read again (and recorded once).
        kept = saved.get("platform", {}) if tick.out_of_time else read.cursor
        context.update_cursor(json.dumps({**cursor, **({"platform": kept} if kept else {})}))
        problems = f"; {len(read.problems)} reader(s) failed: {read.problems[0]}" if read.problems else ""
        return dg.SkipReason(tick.summary() + problems)

    return sqlsentinel_watch


def _watching(rule: WatchRule) -> str:
    """What ``rule`` watches, in a few words (the sensor's description)."""
    if rule.checks is not None:
        return ", ".join(str(p) for p in rule.checks)
    if rule.assets is not None:
        return "failed materializations of " + ", ".join(str(p) for p in rule.assets)
    if rule.runs is not None:
        jobs = ", ".join(rule.runs.jobs)
        return f"runs of {jobs} longer than {rule.runs.longer_than:g}s" if rule.runs.slow else f"failed runs of {jobs}"
    if rule.ticks is not None:
        return "failing ticks"
    return "code locations that fail to load"
