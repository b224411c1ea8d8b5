"""Alerting about alerting: a test-notify job, and a run-failure sensor that tells the fallback receivers."""

# No `from __future__ import annotations`: Dagster inspects the ops' and sensors' annotations at runtime.

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from .checks_mode import AssetJob
from pydantic import Field

from ..config import LoadedConfig
from ..cycle.delivery import FALLBACK
from ..naming import NOTIFICATIONS_RESOURCE_KEY, PLAIN_NAMES, TAG_ALERT, TAG_DECISION, FileNames
from ..notifiers.probe import broadcast, send_test_message
from ..notifiers.retry import tries
from .resources import NotificationsResource
from .versions import NAMES_SHOWN, RemovedAlerts

__all__ = ["TestNotifyConfig", "build_config_sensor", "build_failure_sensor", "build_test_notify_job"]


class TestNotifyConfig(dg.Config):
    """Which alert's channels to test."""

    alert: str = Field(description="Name of the alert whose notify channels get a test message.")


def build_test_notify_job(config: LoadedConfig, names: FileNames = PLAIN_NAMES) -> dg.JobDefinition:
    """``sqlsentinel_test_notify``: send a test message through an alert's channels from the Launchpad."""
    loaded = config  # the op's own `config` parameter is its run config

    @dg.op(name=f"{names.test_notify_job}_op", required_resource_keys={NOTIFICATIONS_RESOURCE_KEY})
    def test_notify(context: dg.OpExecutionContext, config: TestNotifyConfig) -> None:
        if config.alert not in loaded.alert_names:
            names = ", ".join(sorted(loaded.alert_names))
            raise dg.Failure(description=f"no alert named '{config.alert}'; alerts: {names}")
        alert = loaded.alert(config.alert)
        notifications: NotificationsResource = getattr(context.resources, NOTIFICATIONS_RESOURCE_KEY)
        targets = loaded.targets(alert)
        results = send_test_message(alert, targets, notifications.channel_settings(), context.log, context.run_id)
        context.add_output_metadata({"results": dg.MetadataValue.json([r.__dict__ for r in results])})
        failed = [r for r in results if not r.delivered]
        for result in results:
            state = "delivered" if result.delivered else f"FAILED: {result.error}"
            context.log.info(f"test message via {result.channel}: {state} ({tries(result.attempts)})")
        if not results:
            raise dg.Failure(description=f"alert '{alert.name}' has no notify channels")
        if failed:
            lines = "; ".join(f"{r.channel}: {r.error}" for r in failed)
            raise dg.Failure(description=f"test message not delivered on {len(failed)} channel(s): {lines}")

    return dg.JobDefinition(
        graph_def=dg.GraphDefinition(name=names.test_notify_job, node_defs=[test_notify]),
        description="Send a test message through an alert's channels.",
        executor_def=dg.in_process_executor,
    )


def build_failure_sensor(
    config: LoadedConfig, jobs: Sequence["dg.JobDefinition | AssetJob"], names: FileNames = PLAIN_NAMES
) -> dg.SensorDefinition:
    """``sqlsentinel_run_failure_sensor``: tell the fallback receivers when an alert job fails unexpectedly.

    Failures the alert already handled (query errors, undelivered notifications: the run has a decision tag)
    are not repeated; crashes, resource errors and code errors are.
    """
    fallback = config.fallback_targets()

    @dg.run_failure_sensor(
        name=names.failure_sensor,
        monitored_jobs=list(jobs),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Tell the fallback receivers when an alert job fails before it could record its outcome.",
    )
    def tell_fallback(context: dg.RunFailureSensorContext, sqlsentinel_notifications: NotificationsResource) -> None:
        run = context.dagster_run
        if TAG_DECISION in run.tags:
            return  # the alert recorded its outcome and notified through its own channels
        alert = run.tags.get(TAG_ALERT, run.job_name)
        settings = sqlsentinel_notifications.channel_settings()
        error = context.failure_event.message or "the run failed"
        message = {
            "alert_name": alert,
            "status": "ERROR",
            "event": "error",
            "reason": f"alert job {run.job_name} failed before recording an outcome",
            "error": error,
            "severity": run.tags.get("sqlsentinel/severity", "error"),
            "run_id": run.run_id,
            "run_url": settings.run_url(run.run_id),
        }
        key = f"{alert}/run-failure/{run.run_id}"
        for result in broadcast(alert, fallback, message, key, settings, logging.getLogger("sqlsentinel"), FALLBACK):
            if not result.delivered:
                context.log.error(f"fallback {result.channel} could not be told about run {run.run_id}: {result.error}")

    return tell_fallback


def build_config_sensor(
    config: LoadedConfig, names: FileNames = PLAIN_NAMES, removed: RemovedAlerts | None = None
) -> dg.SensorDefinition:
    """``sqlsentinel_config``: the alerts file's problems, where people look (RUNNING by default).

    While the file has problems, every tick fails listing them (file:line, alert, field), except the first tick
    after the set of problems changes: that one tells the fallback receivers, once, and records it in the
    cursor. When the problems are gone, the fallback receivers are told once that the file is fixed.

    ``removed`` (from :func:`..versions.load_version`): this valid version removed every alert of the version it
    replaced, or more than half. Every tick says so (a skip, not a failure: the file is valid and runs); the first
    tells the fallback receivers (the replaced version's when this one has none), once: the cursor keeps the
    removal's key after the problems' digest (``<digest>|<key>``), so neither ticks nor code-server restarts tell
    it again.
    """
    problems = [str(problem) for problem in config.problems]
    digest = hashlib.sha256("\n".join(problems).encode()).hexdigest()[:16] if problems else "ok"
    summary = (
        f"{config.path}: {len(problems)} problem(s); {len(config.alerts)} alert(s) loaded, the others left out:\n"
        + "\n".join(problems)
    )
    retired = f"{config.path}: {removed.summary()}; the file is valid and runs" if removed is not None else ""

    @dg.sensor(
        name=names.config_sensor,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Problems of {config.path.name}; fails while there are any, and tells the fallback receivers.",
        required_resource_keys={NOTIFICATIONS_RESOURCE_KEY},
    )
    def config_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        told, _, told_removed = (context.cursor or "ok").partition("|")
        shown = []
        if digest != told:
            if _tell_fallback_about_config(context, config, summary if problems else None):
                told = digest
                shown.append(summary if problems else f"{config.path}: problems fixed; fallback receivers told")
            else:  # nobody could be told: try again at the next tick
                shown.append(summary if problems else f"{config.path}: problems fixed; telling the fallback failed")
        elif problems:
            raise dg.Failure(description=summary)
        if removed is not None:
            if removed.key != told_removed:
                if _tell_fallback_about_config(context, config, None, removed):
                    told_removed = removed.key
                    shown.append(f"{retired}; fallback receivers told")
                else:
                    shown.append(f"{retired}; telling the fallback failed, tried again at the next tick")
            else:
                shown.append(f"{retired} (fallback receivers were told)")
        cursor = f"{told}|{told_removed}" if removed is not None else told
        if cursor != (context.cursor or "ok"):
            context.update_cursor(cursor)
        return dg.SkipReason("\n".join(shown) or f"{config.path}: {len(config.alerts)} alert(s) loaded, no problems")

    return config_sensor


def _tell_fallback_about_config(
    context: dg.SensorEvaluationContext,
    config: LoadedConfig,
    summary: str | None,
    removed: RemovedAlerts | None = None,
) -> bool:
    """Tell the fallback receivers about the file: its problems (``summary``), that it is fixed (None), or what
    its new version ``removed``. The idempotency key is derived from what is told, so a receiver can drop a
    repeat. True when it is done: a receiver was told, or there is none; False when every one failed (the
    sensor tries again at its next tick, rather than losing the notice)."""
    fallback = config.fallback_targets() or (list(removed.fallback) if removed is not None else [])
    if not fallback:
        what = f"{config.path}: {removed.summary()}" if removed is not None else "the alerts file changed state"
        context.log.warning(f"{what} but there is no fallback receiver to tell")
        return True
    notifications: NotificationsResource = getattr(context.resources, NOTIFICATIONS_RESOURCE_KEY)
    message: dict[str, Any]
    if removed is not None:
        message = {
            "alert_name": f"alerts file {config.path.name}",
            "status": "ALERT",
            "event": "firing",
            "reason": f"{removed.summary()} in {config.path}; the file is valid and runs",
            "error": None,
            "severity": "warning",
            "context": {
                "file": str(config.path),
                "alerts_before": removed.before,
                "alerts_after": removed.after,
                "removed": list(removed.names[:NAMES_SHOWN]),
            },
        }
        key = f"sqlsentinel_config/removed/{removed.key}"
    else:
        message = {
            "alert_name": f"alerts file {config.path.name}",
            "status": "ERROR" if summary else "OK",
            "event": "error" if summary else "resolved",
            "reason": "the alerts file has problems: alerts left out" if summary else "the alerts file is fixed",
            "error": summary,
            "severity": "error",
        }
        told = f"{config.path}\n{summary or 'ok'}"  # per file: two files' "fixed" notices are two notifications
        key = f"sqlsentinel_config/{hashlib.sha256(told.encode()).hexdigest()[:16]}"
    settings = notifications.channel_settings()
    results = broadcast("sqlsentinel_config", fallback, message, key, settings, context.log, FALLBACK)
    for result in results:
        if not result.delivered:
            context.log.error(f"fallback {result.channel} could not be told about the alerts file: {result.error}")
    return any(result.delivered for result in results)
