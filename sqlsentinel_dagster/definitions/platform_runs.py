"""``watch:`` rules on runs, read from the Dagster instance: runs that failed (then succeeded), runs running too long.

Every code location's runs are in the instance, so the watch sensor sees them all. Run records are read through
``DagsterInstance.get_run_records``: failures by their update time after the sensor's cursor (a bounded read),
successes only for the jobs that are pending or firing (or failed in this pass), and running runs for
``longer_than`` rules.
"""

# No `from __future__ import annotations`: the module sits with Dagster-facing code that is inspected at runtime.

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import dagster as dg

from ..config.watch import WatchRule
from ..cycle.platform import Observation, selects
from ..durations import format_duration
from ..naming import TAG_DECISION
from ..redact import redact_text

__all__ = [
    "MAX_RUNS_PER_PASS",
    "OVERLAP",
    "error_text",
    "failed_run_observations",
    "failed_runs_since",
    "run_events",
    "run_url",
    "slow_run_observations",
]

MAX_RUNS_PER_PASS = 200
"""Failed runs read per pass; the cursor keeps the rest for the next pass."""
OVERLAP = 1.0
"""Seconds each read of failed runs goes back before the newest update time read (see :func:`failed_runs_since`)."""
_RUN_EVENTS = {
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
}
_EVENTS_PER_RUN = 10_000
_RETRY_NUMBER, _WILL_RETRY = "dagster/retry_number", "dagster/will_retry"
_REASON_CHARS = 500


def failed_runs_since(
    instance: dg.DagsterInstance, after: float, seen: Collection[int] = ()
) -> tuple[list[dg.RunRecord], float, list[int]]:
    """The runs that finished as failures since ``after`` (the update time of the newest one read before), at
    most :data:`MAX_RUNS_PER_PASS`, oldest update first, leaving out those an alert of this file already notified
    about (they carry ``sqlsentinel/decision``); and the cursor to read from next: the newest update time read,
    and the storage ids of the runs read whose update time is within :data:`OVERLAP` seconds of it.

    Each read goes back :data:`OVERLAP` seconds before ``after`` (runs updated in the same instant as the last one
    read are not lost) and leaves out the runs ``seen`` there, so a burst of failures within one second is read
    page after page, never the same page again."""
    failed = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE],
            updated_after=dt.datetime.fromtimestamp(after - OVERLAP, dt.UTC),
        ),
        limit=MAX_RUNS_PER_PASS + len(seen),
        order_by="update_timestamp",
        ascending=True,
    )
    known = set(seen)
    new = [record for record in failed if record.storage_id not in known][:MAX_RUNS_PER_PASS]
    if not new:
        return [], after, list(seen)
    newest = max(after, *(record.update_timestamp.timestamp() for record in new))
    read = [record for record in failed if record.storage_id in known] + new
    window = [r.storage_id for r in read if r.update_timestamp.timestamp() >= newest - OVERLAP]
    kept = [record for record in new if TAG_DECISION not in record.dagster_run.tags]
    return kept, newest, window


def run_events(instance: dg.DagsterInstance) -> Callable[[str], Sequence[dg.EventLogRecord]]:
    """A reader of a run's failure, planned and materialization events, each run read once (the reason of a run's
    failure and the assets it failed to materialize come from the same read)."""
    cache: dict[str, Sequence[dg.EventLogRecord]] = {}

    def read(run_id: str) -> Sequence[dg.EventLogRecord]:
        if run_id not in cache:
            cache[run_id] = instance.get_records_for_run(run_id, of_type=_RUN_EVENTS, limit=_EVENTS_PER_RUN).records
        return cache[run_id]

    return read


def failed_run_observations(
    instance: dg.DagsterInstance,
    rules: Sequence[WatchRule],
    failed: Sequence[dg.RunRecord],
    active: dict[tuple[str, str], int],
    base_url: str | None,
    events: Callable[[str], Sequence[dg.EventLogRecord]],
) -> list[Observation]:
    """Observations of the ``failed`` runs of the jobs the ``runs: {status: failure}`` rules select, and of the
    successes that may resolve them: the latest successful runs of each job that is pending or firing
    (``active``: (rule, job) with the latest recorded run's storage id) or that failed in this pass; in run
    order."""
    found: list[Observation] = []
    floor = dict(active)
    for record in failed:
        run = record.dagster_run
        chosen = [rule for rule in rules if selects(rule, "job", run.job_name)]
        reason = _failure_reason(events(run.run_id)) if chosen else None
        for rule in chosen:
            found.append(_failure(rule, record, reason, base_url))
            floor.setdefault((rule.name, run.job_name), record.storage_id - 1)
    for (rule_name, job), latest in sorted(floor.items()):
        successes = instance.get_run_records(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=5
        )  # the newest first
        for record in reversed(successes):
            if record.storage_id > latest:
                found.append(_success(rule_name, record, base_url))
    return sorted(found, key=lambda o: o.key)


def slow_run_observations(
    instance: dg.DagsterInstance,
    rules: Sequence[WatchRule],
    active: Iterable[tuple[str, str]],
    now: dt.datetime,
    base_url: str | None,
) -> list[Observation]:
    """For each ``runs: {longer_than}`` rule: a failing observation for every selected job with a run that has
    been going (starting, started or canceling) longer than the rule allows, naming its oldest such run, and a
    fine one for every job that is pending or firing (``active``: (rule, job)) and has none any more."""
    going = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
        ),
        limit=1000,
    )
    key = int(now.timestamp() * 1000)
    found: list[Observation] = []
    slow: set[tuple[str, str]] = set()
    for rule in rules:
        limit = dt.timedelta(seconds=rule.runs.longer_than or 0) if rule.runs else dt.timedelta(0)
        oldest: dict[str, tuple[float, dg.RunRecord]] = {}
        for record in going:
            began = record.start_time or record.create_timestamp.timestamp()
            job = record.dagster_run.job_name
            too_long = now.timestamp() - began > limit.total_seconds() and selects(rule, "job", job)
            if too_long and (job not in oldest or began < oldest[job][0]):
                oldest[job] = (began, record)
        for job, (began, record) in sorted(oldest.items()):
            slow.add((rule.name, job))
            run = record.dagster_run
            running = format_duration(dt.timedelta(seconds=now.timestamp() - began))
            found.append(
                Observation(
                    rule=rule.name,
                    kind="job",
                    subject=job,
                    key=key,
                    failed=True,
                    description=f"run {run.run_id[:8]} of job {job} has been running for {running} "
                    f"(longer than {format_duration(limit)})",
                    context={"run_id": run.run_id, "started": _iso(began), "running_for": running},
                    run_id=run.run_id,
                    url=run_url(base_url, run.run_id),
                    steady=True,
                    location=_location(run),
                )
            )
    for rule_name, job in sorted(set(active) - slow):
        found.append(
            Observation(
                rule=rule_name,
                kind="job",
                subject=job,
                key=key,
                failed=False,
                description=f"no run of job {job} is running too long any more",
                steady=True,
            )
        )
    return found


def _failure(rule: WatchRule, record: dg.RunRecord, reason: str | None, base_url: str | None) -> Observation:
    run = record.dagster_run
    attempt = int(run.tags.get(_RETRY_NUMBER, "0") or 0) + 1
    retrying = run.tags.get(_WILL_RETRY) == "true"
    context: dict[str, object] = {"run_id": run.run_id, "attempt": attempt}
    if retrying:
        context["will_retry"] = True
    if reason:
        context["error"] = reason
    said = f" (attempt {attempt}{', will retry' if retrying else ''})" if attempt > 1 or retrying else ""
    return Observation(
        rule=rule.name,
        kind="job",
        subject=run.job_name,
        key=record.storage_id,
        failed=True,
        description=f"run {run.run_id[:8]} of job {run.job_name} failed{said}" + (f": {reason}" if reason else ""),
        context=context,
        run_id=run.run_id,
        url=run_url(base_url, run.run_id),
        timestamp=record.end_time or record.update_timestamp.timestamp(),
        location=_location(run),
    )


def _success(rule_name: str, record: dg.RunRecord, base_url: str | None) -> Observation:
    run = record.dagster_run
    return Observation(
        rule=rule_name,
        kind="job",
        subject=run.job_name,
        key=record.storage_id,
        failed=False,
        description=f"run {run.run_id[:8]} of job {run.job_name} succeeded",
        context={"run_id": run.run_id},
        run_id=run.run_id,
        url=run_url(base_url, run.run_id),
        timestamp=record.end_time or record.update_timestamp.timestamp(),
        location=_location(run),
    )


def _failure_reason(records: Sequence[dg.EventLogRecord]) -> str | None:
    """The first failed step's error (or the run failure's message), one line, at most 500 characters."""
    messages = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or not (event.is_step_failure or event.event_type == dg.DagsterEventType.RUN_FAILURE):
            continue
        data = event.event_specific_data
        error = getattr(data, "error", None)
        text = error_text(error) if error is not None else event.message
        if text:
            messages.append((0 if event.is_step_failure else 1, text))
    return min(messages, key=lambda m: m[0])[1] if messages else None


def error_text(error: Any) -> str:
    """A Dagster error (``SerializableErrorInfo``) as one line of at most 500 characters: its innermost cause
    (the user's exception, not the step's wrapper), redacted."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    text = " ".join(str(getattr(error, "message", error)).split())
    return redact_text(text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "...")


def _location(run: dg.DagsterRun) -> str | None:
    origin = run.remote_job_origin
    return origin.location_name if origin is not None else None


def run_url(base_url: str | None, run_id: str) -> str | None:
    """The run's page in the Dagster UI, or None without its base URL."""
    return f"{base_url.rstrip('/')}/runs/{run_id}" if base_url else None


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")
