"""Alerting about alerting: a test-notify job, and a run-failure sensor that tells the fallback receivers."""

# No `from __future__ import annotations`: Dagster inspects the ops' and sensors' annotations at runtime.

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from .checks import AssetJob
from pydantic import Field

from .config import LoadedConfig
from .cycle import FALLBACK
from .naming import NOTIFICATIONS_RESOURCE_KEY, TAG_ALERT, TAG_DECISION
from .notifiers.probe import broadcast, send_test_message
from .resources import NotificationsResource

__all__ = ["TestNotifyConfig", "build_failure_sensor", "build_test_notify_job"]


class TestNotifyConfig(dg.Config):
    """Which alert's channels to test."""

    alert: str = Field(description="Name of the alert whose notify channels get a test message.")


def build_test_notify_job(config: LoadedConfig) -> dg.JobDefinition:
    """``sqlsentinel_test_notify``: send a test message through an alert's channels from the Launchpad."""
    loaded = config  # the op's own `config` parameter is its run config

    @dg.op(name="sqlsentinel_test_notify_op", required_resource_keys={NOTIFICATIONS_RESOURCE_KEY})
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
            context.log.info(f"test message via {result.channel}: {state} ({result.attempts} tries)")
        if not results:
            raise dg.Failure(description=f"alert '{alert.name}' has no notify channels")
        if failed:
            lines = "; ".join(f"{r.channel}: {r.error}" for r in failed)
            raise dg.Failure(description=f"test message not delivered on {len(failed)} channel(s): {lines}")

    return dg.JobDefinition(
        graph_def=dg.GraphDefinition(name="sqlsentinel_test_notify", node_defs=[test_notify]),
        description="Send a test message through an alert's channels.",
        executor_def=dg.in_process_executor,
    )


def build_failure_sensor(config: LoadedConfig, jobs: Sequence["dg.JobDefinition | AssetJob"]) -> dg.SensorDefinition:
    """``sqlsentinel_run_failure_sensor``: tell the fallback receivers when an alert job fails unexpectedly.

    Failures the alert already handled (query errors, undelivered notifications: the run has a decision tag)
    are not repeated; crashes, resource errors and code errors are.
    """
    fallback = config.fallback_targets()

    @dg.run_failure_sensor(
        name="sqlsentinel_run_failure_sensor",
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
