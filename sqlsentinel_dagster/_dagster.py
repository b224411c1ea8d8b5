"""Every private Dagster API this package uses, in one place, each imported when it is first used.

Dagster has no public API for any of them, and none can be avoided:

- **Its cron parser** (:func:`is_valid_cron`, :func:`next_ticks`): a schedule must be accepted by exactly the
  parser Dagster's daemon uses (it rejects some strings that plain croniter accepts, such as 6-field expressions
  or 30 February), and ``sqlsentinel list`` must show the ticks the daemon will really launch, including its
  daylight-saving handling. This is the only private import the Dagster-free core makes, and only when a cron
  is checked: ``sqlsentinel --help`` and the state commands never load Dagster.
- **The definitions load context** (:func:`load_context`): whether definitions are loaded to run one job (a run
  worker) or to serve schedules and sensors (see ``definitions.run_worker``).
- **The unresolved asset job** (:func:`unresolved_asset_job`, :data:`AssetJob` for typing): what
  ``define_asset_job`` returns, and the base of the run workers' jobs built on demand, by name.
- **The SQL event-log storage** (:func:`event_log_storages`, :func:`asset_check_executions`): the ``watch:``
  sensor reads check evaluations from every code location by storage id (SQLite keeps them in its index
  database) and, on its first tick, the latest evaluation of each check from Dagster's own table.

- **The scheduled execution time tag** (:func:`scheduled_tick`): the tick a schedule's run was launched for,
  which Dagster sets on the run (and its retries inherit); it keys an evaluation, so a retried or repeated run
  of a tick evaluates nothing twice.

If a Dagster upgrade moves one of them, :func:`load_context` answers None (everything is then built eagerly: slower,
never wrong) and the others fail loudly in this package's tests.
"""

from __future__ import annotations

import datetime as dt
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition as AssetJob

__all__ = [
    "AssetJob",
    "asset_check_executions",
    "event_log_storages",
    "is_valid_cron",
    "load_context",
    "next_ticks",
    "scheduled_tick",
    "unresolved_asset_job",
]


def is_valid_cron(expression: str) -> bool:
    """Whether Dagster's scheduler accepts ``expression`` (five fields, or a macro such as ``@daily``)."""
    from dagster._utils.schedules import is_valid_cron_string

    try:
        return is_valid_cron_string(expression)
    except Exception:  # croniter raises assorted errors on malformed input
        return False


def next_ticks(expression: str, timezone: str, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` tick times of ``expression`` in ``timezone`` strictly after ``after``."""
    from dagster._utils.schedules import cron_string_iterator

    ticks = cron_string_iterator(after.timestamp() + 1e-6, expression, timezone)
    return list(islice(ticks, count))


def load_context() -> tuple[Any, Any] | None:
    """Dagster's ``DefinitionsLoadContext`` class and ``DefinitionsLoadType`` enum, or None if they moved."""
    try:
        from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext, DefinitionsLoadType
    except ImportError:  # pragma: no cover - a Dagster without them
        return None
    return DefinitionsLoadContext, DefinitionsLoadType


def unresolved_asset_job() -> type[AssetJob]:
    """Dagster's ``UnresolvedAssetJobDefinition``: a job resolved by name, when Dagster first asks for it."""
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

    return UnresolvedAssetJobDefinition


def event_log_storages() -> tuple[type[Any], type[Any]]:
    """Dagster's SQL event-log storage class, and its SQLite one (run-sharded: evaluations in its index)."""
    from dagster._core.storage.event_log import SqlEventLogStorage, SqliteEventLogStorage

    return SqlEventLogStorage, SqliteEventLogStorage


def asset_check_executions() -> Any:
    """Dagster's ``asset_check_executions`` table (SQLAlchemy), in the event-log storage's index database."""
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

    return AssetCheckExecutionsTable


def scheduled_tick(tags: Any) -> str | None:
    """The scheduled time (UTC, ISO) of the schedule tick that launched a run with ``tags``; None for a run no
    schedule launched (manual, sensor)."""
    from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

    value = tags.get(SCHEDULED_EXECUTION_TIME_TAG)
    return str(value) if value else None
