"""Run workers build only the job they run; and what one definitions load is.

Dagster's run worker re-imports the code location to run one job. With one job per alert, rebuilding every
job (and every schedule) made the cost of one alert run grow with the size of the file. In a run worker we
therefore give Dagster placeholder jobs, each built only when Dagster asks for it by name, and no schedules
or sensors (a run worker never evaluates them).

Telling a run worker from a code server: Dagster's ``DefinitionsLoadContext`` says ``RECONSTRUCTION`` in a run
worker, but not only there. A code server first loads the definitions under ``INITIALIZATION`` and then
builds the repository it serves under ``RECONSTRUCTION`` in the same process
(``dagster._core.definitions.reconstruct.reconstruct_repository_def_from_pointer``). For a module-level
``Definitions`` the second load reuses the imported object, but a ``@dg.definitions`` function (and so every
``dg`` project and the Component) is called again, and its schedules and sensors vanished. So a process is a
run worker only when it loads under ``RECONSTRUCTION`` without having loaded under ``INITIALIZATION`` first:
a run worker's first load is a reconstruction, a code server's never is.

Dagster has no public API for any of this: the load context and a job that is built on demand (a subclass of
``UnresolvedAssetJobDefinition``, which Dagster resolves lazily, by name); both come from ``.._dagster``, the
one module of private Dagster imports. If a Dagster upgrade moves them, :func:`is_run_worker` answers False and
everything is built eagerly,
as in the code server: slower, never wrong. ``test_run_worker.py`` and ``test_definition_styles.py`` pin the
behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from .._dagster import load_context, unresolved_asset_job

if TYPE_CHECKING:
    from .._dagster import AssetJob as UnresolvedAssetJobDefinition
else:
    UnresolvedAssetJobDefinition = unresolved_asset_job()

__all__ = ["current_load", "is_run_worker", "lazy_job"]

_LOAD = load_context()  # (DefinitionsLoadContext, DefinitionsLoadType), or None: build eagerly

_BUILDERS: dict[str, Callable[[], dg.JobDefinition]] = {}
_initialized_in: int | None = None
"""The process (pid: a forked child starts afresh) that has loaded definitions under ``INITIALIZATION``."""


def is_run_worker() -> bool:
    """Whether definitions are being loaded to run a job (not to serve the UI, schedules and sensors): a
    reconstruction in a process that never initialized definitions."""
    global _initialized_in
    if _LOAD is None:
        return False
    context, load_type = _LOAD
    try:
        reconstruction = context.get().load_type == load_type.RECONSTRUCTION
    except Exception:  # no usable context: loaded outside Dagster's loaders, e.g. a test or a script
        return False
    if not reconstruction:
        _initialized_in = os.getpid()
        return False
    return _initialized_in != os.getpid()


def current_load() -> object | None:
    """The definitions load in progress (Dagster's load context), or None outside Dagster's loaders (a script,
    a test). Alerts files built in the same load are in one code location."""
    if _LOAD is None:
        return None
    context = _LOAD[0]
    try:
        return context._instance if context.is_set() else None
    except Exception:
        return None


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
