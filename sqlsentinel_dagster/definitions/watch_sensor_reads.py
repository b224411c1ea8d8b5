"""Reading asset check evaluations (``watch: checks``) and other indexed events from the Dagster instance, in every
code location, for the watch sensor (:mod:`.watch_sensor`)."""

# No `from __future__ import annotations`: the module sits with Dagster-facing code that is inspected at runtime.

from collections.abc import Collection, Sequence
from typing import Any

import dagster as dg
import sqlalchemy as sa

from .._dagster import asset_check_executions, event_log_storages
from ..config.watch import WatchRule
from ..cycle.check_evaluations import CheckEvaluation, CheckKey

__all__ = [
    "FIRST_TICK_WINDOW",
    "GONE",
    "check_evaluations_after",
    "event_records",
    "gone_checks",
    "latest_check_evaluations",
    "newest_storage_id",
]

FIRST_TICK_WINDOW = 10_000
"""Where the instance cannot list its asset checks (event-log storage that is not SQL), the first tick takes the
latest evaluation of each check (and partition) among this many of the newest evaluations."""
GONE = "its asset was wiped: Dagster keeps no evaluation of the check"
"""Why a check is gone (:func:`gone_checks`), in the ``gone`` decision's reason and the resolved message."""
_FETCH_CHUNK = 500


def check_evaluations_after(instance: dg.DagsterInstance, after: int, limit: int) -> list[CheckEvaluation]:
    """The asset check evaluations stored after storage id ``after`` in any code location, oldest first, at
    most ``limit``: one indexed range read of the event log (its index on event type and id)."""
    records_filter = dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after)
    return _evaluations(event_records(instance, records_filter, limit, ascending=True))


def latest_check_evaluations(
    instance: dg.DagsterInstance, rules: Sequence[WatchRule], up_to: int, after: int = 0, limit: int | None = None
) -> list[CheckEvaluation]:
    """The latest evaluation (stored at or before ``up_to``) of every asset check some rule watches, and of every
    partition of a partitioned one, oldest first, leaving out those stored at or before ``after`` (done by an
    earlier, unfinished first tick); at most ``limit`` of them (the oldest: the next call goes on after them), and
    fewer only when there are no more."""
    latest = _latest_evaluation_ids(instance, up_to)
    if latest is None:  # the storage cannot list its checks: the newest evaluations instead
        window = dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION, before_cursor=up_to + 1)
        newest: dict[tuple[tuple[str, ...], str, str | None], CheckEvaluation] = {}
        for evaluation in _evaluations(event_records(instance, window, FIRST_TICK_WINDOW, ascending=False)):
            newest.setdefault((evaluation.asset, evaluation.check, evaluation.partition), evaluation)
        chosen = [e for e in newest.values() if e.storage_id > after and _watched(rules, e.asset, e.check)]
        return sorted(chosen, key=lambda e: e.storage_id)[:limit]
    ids = sorted(i for (asset, check, _), i in latest.items() if i > after and _watched(rules, asset, check))
    found: list[CheckEvaluation] = []
    for start in range(0, len(ids), _FETCH_CHUNK):  # an id whose event is gone (a deleted run) finds nothing
        if limit is not None and len(found) >= limit:
            break
        chunk = ids[start : start + _FETCH_CHUNK]
        records_filter = dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION, storage_ids=chunk)
        found += _evaluations(event_records(instance, records_filter, len(chunk), ascending=True))
    return sorted(found, key=lambda e: e.storage_id)[:limit]


def gone_checks(instance: dg.DagsterInstance, checks: Collection[CheckKey]) -> dict[CheckKey, str]:
    """The ``checks`` (asset key path, check name) that no longer exist, each with why: those of which the
    instance keeps no execution at all, planned or finished, of any partition.

    Dagster deletes a check's executions when its asset is wiped (``dagster asset wipe``, the UI's wipe,
    ``instance.wipe_assets``), and nothing else does (deleting a run keeps them): a check with a state was
    evaluated, so no execution left means it was wiped since. It is read from the instance, the same for every
    code location, so a code location that fails to load changes nothing. A check removed from the code while
    its asset is kept is not gone by this signal (a sensor sees only its own code location, so the absence from
    every code location cannot be told apart from one that failed to load). Storage without asset-check
    executions can tell nothing: nothing is gone.
    """
    if not checks or not _keeps_check_executions(instance):
        return {}
    keys = [dg.AssetCheckKey(dg.AssetKey(list(asset)), name) for asset, name in checks]
    kept: set[dg.AssetCheckKey] = set()
    for start in range(0, len(keys), _FETCH_CHUNK):
        kept.update(_latest_executions(instance, keys[start : start + _FETCH_CHUNK]))
    return {(tuple(key.asset_key.path), key.name): GONE for key in keys if key not in kept}


def _watched(rules: Sequence[WatchRule], asset: tuple[str, ...], check: str) -> bool:
    return any(rule.watches(asset, check) for rule in rules)


def newest_storage_id(
    instance: dg.DagsterInstance, event_type: dg.DagsterEventType = dg.DagsterEventType.ASSET_CHECK_EVALUATION
) -> int:
    """The storage id of the newest event of ``event_type`` in the instance (0 without any)."""
    records_filter = dg.EventRecordsFilter(event_type)
    newest = event_records(instance, records_filter, 1, ascending=False)
    return newest[0].storage_id if newest else 0


def _evaluations(records: Sequence[dg.EventLogRecord]) -> list[CheckEvaluation]:
    found = []
    for record in records:
        entry = record.event_log_entry
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if not isinstance(data, dg.AssetCheckEvaluation):
            continue
        found.append(
            CheckEvaluation(
                storage_id=record.storage_id,
                asset=tuple(data.asset_key.path),
                check=data.check_name,
                passed=data.passed,
                severity=data.severity.value,
                description=data.description,
                metadata={label: _plain(value) for label, value in data.metadata.items()},
                run_id=entry.run_id or None,
                timestamp=entry.timestamp,
                partition=data.partition,
            )
        )
    return found


def _plain(value: dg.MetadataValue) -> Any:
    """A metadata value as a plain one: numbers, text and JSON as they are, asset keys as paths, others as text."""
    raw = value.value
    if raw is None or isinstance(raw, bool | int | float | str | dict | list):
        return raw
    if isinstance(raw, dg.AssetKey):
        return raw.to_user_string()
    return str(raw)


# -- Dagster internals (the classes and the table come from .._dagster, the one module of private imports) ------
# The places that reach past Dagster's public API, and why:
# 1. The default SQLite event-log storage keeps each run's events in its own database; its get_event_records
#    scans every run's database for non-asset events, and refuses a plain storage-id cursor. Asset check
#    evaluations are also copied, with storage ids increasing across runs, into its index database, which
#    SqlEventLogStorage.get_event_records reads: we call that implementation for this storage.
# 2. Listing every asset check with evaluations, in every code location, has no public API (a sensor's
#    repository knows only its own location): we read Dagster's asset_check_executions table, once per first
#    tick, for the storage id of each check's (and partition's) latest evaluation. Storages that are not SQL fall
#    back to the newest FIRST_TICK_WINDOW evaluations.
# 3. Whether the instance keeps any execution of a check: the event-log storage's
#    get_latest_asset_check_execution_by_key, which takes many checks in one query (DagsterInstance's
#    get_latest_asset_check_evaluation_record takes one check at a time), and its supports_asset_checks.


def event_records(
    instance: dg.DagsterInstance, records_filter: dg.EventRecordsFilter, limit: int, *, ascending: bool = True
) -> Sequence[dg.EventLogRecord]:
    """The instance's event records that ``records_filter`` selects (asset or check events), at most ``limit``,
    read where every storage keeps them with storage ids that increase across runs."""
    SqlEventLogStorage, SqliteEventLogStorage = event_log_storages()
    storage = instance.event_log_storage
    if isinstance(storage, SqliteEventLogStorage):  # run-sharded: read its index database
        records: Sequence[dg.EventLogRecord] = SqlEventLogStorage.get_event_records(
            storage, records_filter, limit, ascending
        )
        return records
    return storage.get_event_records(records_filter, limit=limit, ascending=ascending)


def _latest_evaluation_ids(
    instance: dg.DagsterInstance, up_to: int
) -> dict[tuple[tuple[str, ...], str, str | None], int] | None:
    SqlEventLogStorage, _ = event_log_storages()
    executions = asset_check_executions()
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        return None
    query = (
        sa.select(
            executions.c.asset_key,
            executions.c.check_name,
            executions.c.partition,
            sa.func.max(executions.c.evaluation_event_storage_id),
        )
        .where(
            executions.c.execution_status.in_(("SUCCEEDED", "FAILED")),
            executions.c.evaluation_event_storage_id <= up_to,
        )
        .group_by(executions.c.asset_key, executions.c.check_name, executions.c.partition)
    )
    with storage.index_connection() as conn:
        rows = conn.execute(query).all()
    latest: dict[tuple[tuple[str, ...], str, str | None], int] = {}
    for asset_key, check_name, partition, storage_id in rows:
        key = dg.AssetKey.from_db_string(asset_key)
        if key is not None and storage_id is not None:
            latest[(tuple(key.path), str(check_name), partition)] = int(storage_id)
    return latest


def _keeps_check_executions(instance: dg.DagsterInstance) -> bool:
    return bool(instance.event_log_storage.supports_asset_checks)


def _latest_executions(instance: dg.DagsterInstance, keys: Sequence[dg.AssetCheckKey]) -> set[dg.AssetCheckKey]:
    return set(instance.event_log_storage.get_latest_asset_check_execution_by_key(keys))
