"""Run workers build only the job they run.

Dagster's run worker re-imports the code location to run one job. With one job per alert, rebuilding every
job (and every schedule) made the cost of one alert run grow with the size of the file. In a run worker we
therefore give Dagster placeholder jobs, each built only when Dagster asks for it by name, and no schedules
or sensors (a run worker never evaluates them).

Dagster has no public API for either piece: knowing that definitions are loaded by a run worker
(``DefinitionsLoadContext``, load type ``RECONSTRUCTION``) and a job that is built on demand (a subclass of
``UnresolvedAssetJobDefinition``, which Dagster resolves lazily, by name). Both private imports live here
only. If a Dagster upgrade moves them, :func:`is_run_worker` answers False and everything is built eagerly,
as in the code server: slower, never wrong. ``test_run_worker.py`` pins the behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

__all__ = ["is_run_worker", "lazy_job"]

try:
    from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext, DefinitionsLoadType
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
except ImportError:  # pragma: no cover - a Dagster without them: build eagerly
    DefinitionsLoadContext = None  # type: ignore[assignment,misc]
    UnresolvedAssetJobDefinition = object  # type: ignore[assignment,misc]

_BUILDERS: dict[str, Callable[[], dg.JobDefinition]] = {}


def is_run_worker() -> bool:
    """Whether definitions are being loaded to run a job (not to serve the UI, schedules and sensors)."""
    if DefinitionsLoadContext is None:
        return False
    try:
        return bool(DefinitionsLoadContext.get().load_type == DefinitionsLoadType.RECONSTRUCTION)
    except Exception:  # no context: loaded outside Dagster's loaders, e.g. a test or a script
        return False


class _LazyJob(UnresolvedAssetJobDefinition):
    """A job that Dagster builds, by name, only when it needs it."""

    def resolve(
        self,
        asset_graph: Any,
        default_executor_def: Any = None,
        resource_defs: Mapping[str, dg.ResourceDefinition] | None = None,
    ) -> dg.JobDefinition:
        job = _BUILDERS[self.name]()
        return job.with_top_level_resources(dict(resource_defs or {}))


def lazy_job(name: str, build: Callable[[], dg.JobDefinition]) -> Any:
    """A placeholder for the job ``name`` that ``build()`` makes when Dagster first asks for it."""
    _BUILDERS[name] = build
    return _LazyJob(name=name, selection=dg.AssetSelection.assets())
