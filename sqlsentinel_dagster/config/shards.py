"""Shards: a checks-mode batch larger than ``checks.shard_size`` split into runs that Dagster's run launcher can
place on different machines.

Each database's alerts go into shards of their own (so a run queue can limit the runs per database by the
``sqlsentinel/database`` tag, and a shard opens connections to one warehouse), filled in file order up to
``shard_size``. Alerts that share a ``group: true`` target stay in one shard, so their group is still one
message per tick; such a group larger than ``shard_size`` is one shard of its own, larger than the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .loaded import LoadedConfig
from .models import AlertConfig

__all__ = ["Shard", "shards"]


@dataclass(frozen=True)
class Shard:
    """The alerts of one run of a batch, and the one database they query (None when they query several)."""

    alerts: tuple[AlertConfig, ...]
    database: str | None


def shards(alerts: Sequence[AlertConfig], config: LoadedConfig, size: int | None) -> list[Shard]:
    """``alerts`` as the runs of one batch: one shard when ``size`` is None or they are no more than ``size``."""
    if size is None or len(alerts) <= size:
        return [Shard(tuple(alerts), _one_database(alerts, config))]
    by_database: dict[str, list[list[AlertConfig]]] = {}
    for together in _kept_together(alerts, config):
        by_database.setdefault(config.database_name(together[0]), []).append(together)
    planned: list[Shard] = []
    for groups in by_database.values():
        current: list[AlertConfig] = []
        for together in groups:
            if current and len(current) + len(together) > size:
                planned.append(Shard(tuple(current), _one_database(current, config)))
                current = []
            current.extend(together)
        if current:
            planned.append(Shard(tuple(current), _one_database(current, config)))
    return planned


def _kept_together(alerts: Sequence[AlertConfig], config: LoadedConfig) -> list[list[AlertConfig]]:
    """``alerts`` in file order, as lists of those that must share a run: the alerts of each ``group: true``
    target (and, through them, of every target they share), else one alert each."""
    parent = list(range(len(alerts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of: dict[str, int] = {}
    for index, alert in enumerate(alerts):
        for target in config.targets(alert):
            if target.group:
                key = target.model_dump_json()
                if key in first_of:
                    parent[root(index)] = root(first_of[key])
                else:
                    first_of[key] = index
    together: dict[int, list[AlertConfig]] = {}
    for index, alert in enumerate(alerts):
        together.setdefault(root(index), []).append(alert)
    return list(together.values())


def _one_database(alerts: Sequence[AlertConfig], config: LoadedConfig) -> str | None:
    names = {config.database_name(alert) for alert in alerts}
    return names.pop() if len(names) == 1 else None
