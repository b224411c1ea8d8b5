"""``watch: assets``: materializations that failed, read from the failed runs (Dagster OSS stores no
"failed to materialize" event: a run plans an asset, its step fails, and no materialization follows).

An asset fails in a run when the run planned it (``ASSET_MATERIALIZATION_PLANNED``), the step that computes it
failed, and the run did not materialize it; an asset skipped because an upstream step failed is not counted. It
resolves when its latest materialization comes from a later run.
"""

# No `from __future__ import annotations`: the module sits with Dagster-facing code that is inspected at runtime.

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

from ..config.watch import WatchRule
from ..cycle.platform import Observation, selects
from .platform_runs import error_text, run_url

__all__ = ["failed_asset_observations"]

_ASSET_EVENTS = (dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)


def failed_asset_observations(
    instance: dg.DagsterInstance,
    rules: Sequence[WatchRule],
    failed: Sequence[dg.RunRecord],
    active: dict[tuple[str, str], int],
    base_url: str | None,
    events: Callable[[str], Sequence[dg.EventLogRecord]],
) -> list[Observation]:
    """Observations of the assets the ``assets`` rules select that failed in the ``failed`` runs (keyed by the
    run's storage id), and of the latest materialization of each asset that is pending or firing (``active``:
    (rule, asset path) with the latest recorded key) or failed in this pass, when a later run made it. ``events``
    reads a run's events (:func:`.platform_runs.run_events`)."""
    found: list[Observation] = []
    if not rules:
        return found  # no asset rule: no failed run's events to read
    floor = dict(active)
    for record in failed:
        for path, (partition, error) in _failed_assets(events(record.dagster_run.run_id)).items():
            for rule in rules:
                if selects(rule, "asset", path):
                    found.append(_failure(rule.name, path, partition, error, record, base_url))
                    floor.setdefault((rule.name, path), record.storage_id - 1)
    for (rule_name, path), latest in sorted(floor.items()):
        done = instance.fetch_materializations(dg.AssetKey(path.split("/")), limit=1, ascending=False).records
        run_id = done[0].event_log_entry.run_id if done else None
        made_by = instance.get_run_record_by_id(run_id) if run_id else None
        if made_by is not None and made_by.storage_id > latest:
            found.append(
                Observation(
                    rule=rule_name,
                    kind="asset",
                    subject=path,
                    key=made_by.storage_id,
                    failed=False,
                    description=f"{path} materialized in run {made_by.dagster_run.run_id[:8]}",
                    run_id=made_by.dagster_run.run_id,
                    url=run_url(base_url, made_by.dagster_run.run_id),
                    timestamp=done[0].event_log_entry.timestamp,
                )
            )
    return sorted(found, key=lambda o: o.key)


def _failed_assets(records: Sequence[dg.EventLogRecord]) -> dict[str, tuple[str | None, str]]:
    """The assets (key paths) whose own step failed in the run (``records``: its events) before materializing
    them, each with its partition and the step's error."""
    planned: dict[str, tuple[str | None, str | None]] = {}
    materialized: set[str] = set()
    errors: dict[str, str] = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE and event.step_key:
            errors[event.step_key] = error_text(getattr(event.event_specific_data, "error", None) or event.message)
        elif event.event_type in _ASSET_EVENTS and event.asset_key is not None:
            path = "/".join(event.asset_key.path)
            if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                materialized.add(path)
            else:
                planned[path] = (event.partition, event.step_key)
    return {
        path: (partition, errors[step])
        for path, (partition, step) in planned.items()
        if step in errors and path not in materialized
    }


def _failure(
    rule: str, path: str, partition: str | None, error: str, record: dg.RunRecord, base_url: str | None
) -> Observation:
    run = record.dagster_run
    where = f" (partition {partition})" if partition else ""
    context: dict[str, Any] = {"run_id": run.run_id, "error": error, **({"partition": partition} if partition else {})}
    return Observation(
        rule=rule,
        kind="asset",
        subject=path,
        key=record.storage_id,
        failed=True,
        description=f"materialization of {path}{where} failed in run {run.run_id[:8]}: {error}",
        context=context,
        run_id=run.run_id,
        url=run_url(base_url, run.run_id),
        timestamp=record.end_time or record.update_timestamp.timestamp(),
        location=run.remote_job_origin.location_name if run.remote_job_origin else None,
    )
