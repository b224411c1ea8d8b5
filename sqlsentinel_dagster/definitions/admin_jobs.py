"""Jobs for people who never open a shell: silence, unsilence and acknowledge from the Launchpad, and daily
pruning."""

# No `from __future__ import annotations`: Dagster inspects the ops' `config` annotations at runtime.

import datetime as dt
import functools

import dagster as dg
from pydantic import Field

from ..durations import parse_duration
from ..naming import STATE_RESOURCE_KEY
from ..state import admin
from ..state.acks import acknowledge
from ..state.silences import parse_matcher
from .resources import AlertStateResource

__all__ = ["AckConfig", "PruneConfig", "SilenceConfig", "UnsilenceConfig", "admin_jobs", "prune_schedule"]


class SilenceConfig(dg.Config):
    """A silence: which alerts, for how long, who and why."""

    alert: str = Field(default="", description="Name of the alert to silence; or leave empty and use matchers.")
    matchers: list[str] = Field(
        default_factory=list,
        description="More conditions, all required: key=value, key=~regex (RE2 syntax) or key~glob; at most 20.",
    )
    duration: str = Field(
        default="2h",
        description='How long: hours as a bare number ("2", as `sqlsentinel silence --duration 2`), or 30m, 2h, '
        "1d; at most 30d, or SQLSENTINEL_MAX_SILENCE in the code location's environment.",
    )
    author: str = Field(description="Who is silencing (shown on every suppressed run); at most 255 characters.")
    reason: str = Field(description="Why (shown on every suppressed run); at most 1,000 characters.")


class UnsilenceConfig(dg.Config):
    """Which silence to end."""

    target: str = Field(description="A silence id, or an alert name to end the silences made for it.")


class AckConfig(dg.Config):
    """An acknowledgement: which firing alert (or instance), who and why."""

    alert: str = Field(
        description="The firing alert or instance to acknowledge (an instance alert's name: all its firing ones)."
    )
    author: str = Field(description="Who is on it (shown in messages and status); at most 255 characters.")
    reason: str = Field(description="What is being done; at most 1,000 characters.")


class PruneConfig(dg.Config):
    """How much history to keep."""

    older_than: str = Field(default="", description="Age such as 30d; empty: the state resource's retention.")


@dg.op(required_resource_keys={STATE_RESOURCE_KEY})
def sqlsentinel_silence_op(context: dg.OpExecutionContext, config: SilenceConfig) -> None:
    """Store the silence described by the run config, within the limits :func:`.state.admin.add_silence` sets
    (its length at most ``SQLSENTINEL_MAX_SILENCE``, read from this run's environment)."""
    state: AlertStateResource = getattr(context.resources, STATE_RESOURCE_KEY)
    store = state.get_store(context.instance)
    try:
        matchers = ([parse_matcher(f"alert={config.alert}")] if config.alert else []) + [
            parse_matcher(m) for m in config.matchers
        ]
        ends_at = store.clock() + admin.parse_silence_duration(config.duration)
        silence = admin.add_silence(store, matchers, ends_at=ends_at, author=config.author, reason=config.reason)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.add_output_metadata({"silence_id": silence.id, "silence": silence.describe()})
    context.log.info(f"silence {silence.id} ({', '.join(map(str, silence.matchers))}): {silence.describe()}")


@dg.op(required_resource_keys={STATE_RESOURCE_KEY})
def sqlsentinel_unsilence_op(context: dg.OpExecutionContext, config: UnsilenceConfig) -> None:
    """End the silences named by the run config."""
    state: AlertStateResource = getattr(context.resources, STATE_RESOURCE_KEY)
    ended = admin.end_silences(state.get_store(context.instance), config.target)
    if not ended:
        raise dg.Failure(description=f"no active or pending silence with id or alert name '{config.target}'")
    context.add_output_metadata({"ended": [s.id for s in ended]})
    for silence in ended:
        context.log.info(f"ended silence {silence.id} ({', '.join(map(str, silence.matchers))})")


@dg.op(required_resource_keys={STATE_RESOURCE_KEY})
def sqlsentinel_ack_op(context: dg.OpExecutionContext, config: AckConfig) -> None:
    """Acknowledge the alert the run config names (:func:`.state.acks.acknowledge`): no reminders until it
    resolves."""
    state: AlertStateResource = getattr(context.resources, STATE_RESOURCE_KEY)
    try:
        names = acknowledge(state.get_store(context.instance), config.alert, author=config.author, reason=config.reason)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.add_output_metadata({"acknowledged": names})
    context.log.info(f"acknowledged by {config.author}: {', '.join(names)}")


@dg.op(required_resource_keys={STATE_RESOURCE_KEY})
def sqlsentinel_prune_op(context: dg.OpExecutionContext, config: PruneConfig) -> None:
    """Delete history, finished notifications, expired silences and gone instances past the retention."""
    state: AlertStateResource = getattr(context.resources, STATE_RESOURCE_KEY)
    try:
        if config.older_than:
            age = dt.timedelta(seconds=parse_duration(config.older_than))
        else:
            age = dt.timedelta(days=state.history_retention_days)
        removed = admin.prune_history(state.get_store(context.instance), age)
    except (ValueError, OverflowError) as exc:  # OverflowError: a retention beyond timedelta's range
        raise dg.Failure(description=f"cannot prune: {exc}") from None
    context.add_output_metadata(dict(removed))


def _job(name: str, op: dg.OpDefinition, description: str) -> dg.JobDefinition:
    return dg.JobDefinition(
        graph_def=dg.GraphDefinition(name=name, node_defs=[op]),
        description=description,
        executor_def=dg.in_process_executor,
    )


@functools.cache
def admin_jobs() -> tuple[dg.JobDefinition, dg.JobDefinition, dg.JobDefinition, dg.JobDefinition]:
    """``sqlsentinel_silence``, ``sqlsentinel_unsilence``, ``sqlsentinel_ack`` and ``sqlsentinel_prune``: the same
    objects on every call,
    so the definitions of several alerts files in one code location merge (Dagster accepts a job twice only if
    it is the same object)."""
    return (
        _job("sqlsentinel_silence", sqlsentinel_silence_op, "Silence alerts: fill in the config and launch."),
        _job("sqlsentinel_unsilence", sqlsentinel_unsilence_op, "End a silence by id or alert name."),
        _job("sqlsentinel_ack", sqlsentinel_ack_op, "Acknowledge a firing alert: no reminders until it resolves."),
        _job("sqlsentinel_prune", sqlsentinel_prune_op, "Delete alert history older than the retention."),
    )


def prune_schedule(job: dg.JobDefinition, name: str = "sqlsentinel_prune__schedule") -> dg.ScheduleDefinition:
    """Prune daily at 03:17 UTC (with several alerts files, each has one: the later ones find nothing to do)."""
    return dg.ScheduleDefinition(
        name=name,
        cron_schedule="17 3 * * *",
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily pruning of alert history past the state resource's retention.",
    )
