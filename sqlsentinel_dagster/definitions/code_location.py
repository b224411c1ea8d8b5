"""Several alerts files in one code location: what they share, and what must not clash.

A team per file is the natural layout (one ``SqlAlertsComponent`` per team folder, or several
``build_definitions`` calls merged). Every file's definitions are built on their own and Dagster merges them, so:

- What is the same for every file is the same object in every file's ``Definitions`` (Dagster's merge accepts a
  resource or job only if it is the very same object): the state and notifications resources when their
  settings are equal (see ``factory.bind_at_run_time``). The silence, unsilence and prune jobs are the same
  objects too (``admin_jobs.admin_jobs``), but within one load only its first file includes them, with the
  daily prune schedule: Dagster's Components give every job (and every schedule's job) of a component its own
  code-reference metadata, which makes a new object of it.
- What belongs to one file (its sensors, checks job, schedules, warehouses) is named with the file's namespace
  (:class:`.naming.FileNames`). Two files of one load without distinct namespaces are an error naming both.
- Alert names key the alert's state, so they are unique in the code location: an alert whose name an earlier
  file of the same load already uses is left out of the later file, a located problem naming both places
  (shown by that file's ``sqlsentinel_config`` sensor, and raised by ``dg check defs``).

"The same load" is Dagster's definitions load in progress (:func:`.run_worker.current_load`); outside Dagster's
loaders (a script, a test) each call stands alone and Dagster's own duplicate-name errors apply.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from .._yaml import load_located, read_text
from ..config import LoadedConfig
from ..errors import ConfigError, ConfigProblem
from ..naming import PLAIN_NAMES, FileNames
from .run_worker import current_load

__all__ = ["Claim", "claim_names"]


@dataclass
class _Load:
    """The alerts files built so far in one definitions load."""

    files: dict[Path, tuple[FileNames, frozenset[str]]] = field(default_factory=dict)


_LOADS: weakref.WeakKeyDictionary[object, _Load] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Claim:
    """What a file may define in its code location."""

    config: LoadedConfig
    """The file without the alerts an earlier file of the load defines (each a located problem)."""
    location_wide: bool
    """Whether the file brings what the whole code location shares (the silence, unsilence and prune jobs):
    the first file of a load does, and every file built outside Dagster's loaders."""
    prune_schedule: str | None
    """The name of the daily prune schedule the file brings, if any: ``sqlsentinel_prune__schedule`` for the
    first file of a load; outside Dagster's loaders, each file's own (named with its namespace, so that such
    definitions still merge)."""


def claim_names(config: LoadedConfig, names: FileNames) -> Claim:
    """Register ``config``'s file and alerts in the current load, and say what it may define.

    Raises :class:`ConfigError` when an earlier file of the load has the same namespace: their sensors and jobs
    would have the same names.
    """
    load = current_load()
    if load is None:
        return Claim(config, location_wide=True, prune_schedule=names.prune_schedule)
    with _LOCK:
        files = _LOADS.setdefault(load, _Load()).files
        if config.path in files:  # the same file built again: a new load in a long-lived process (a notebook)
            files.clear()
        first = not files
        for other, (other_names, _) in files.items():
            if other_names == names:
                raise ConfigError(str(config.path), [_namespace_clash(config.path, other, names)])
        taken = {alert: other for other, (_, alerts) in files.items() for alert in alerts}
        clashes = [name for name in config.alert_names if name in taken]
        files[config.path] = (names, frozenset(config.alert_names) - set(clashes))
    prune = PLAIN_NAMES.prune_schedule if first else None
    if not clashes:
        return Claim(config, location_wide=first, prune_schedule=prune)
    problems = [
        ConfigProblem(
            alert_line(config.path, name),
            f"alert '{name}'",
            f"an alert of this name is already defined in {taken[name]}:{alert_line(taken[name], name)}; alert "
            "names are unique in a code location (they key the alert's state): rename one of them",
            str(config.path),
        )
        for name in clashes
    ]
    kept = [alert for alert in config.alerts if alert.name not in clashes]
    reduced = LoadedConfig(  # a plain LoadedConfig, also from a run worker's compiled one
        path=config.path,
        file=config.file.model_copy(update={"alerts": kept}),
        notes=config.notes,
        environment=config.environment,
        problems=[*config.problems, *problems],
    )
    return Claim(reduced, location_wide=first, prune_schedule=prune)


def alert_line(path: Path, name: str) -> int:
    """The line of the alert called ``name`` in the file at ``path`` (0 when it cannot be read or found)."""
    try:
        located = load_located(read_text(path))
    except Exception:
        return 0
    alerts = located.data.get("alerts") if isinstance(located.data, dict) else None
    for index, alert in enumerate(alerts if isinstance(alerts, list) else []):
        if isinstance(alert, dict) and str(alert.get("name", "")).strip() == name:
            return located.line_of(("alerts", index))
    return 0


def _namespace_clash(path: Path, other: Path, names: FileNames) -> ConfigProblem:
    given = f"the name '{names.namespace}'" if names.namespace else "no name"
    return ConfigProblem(
        0,
        "",
        f"{other} is loaded in the same code location with {given} too, so both would define "
        f"{names.config_sensor}, {names.checks_job} and the other per-file sensors and jobs; give each file its "
        "own name: build_definitions(path, name='team_a'), or the Component's `name:` attribute (default: its "
        "folder)",
        str(path),
    )
