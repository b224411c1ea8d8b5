"""The deployment's asset lineage, for ``inhibit: [{upstream: true}]``, read from the Dagster instance.

A run of one code location cannot see another location's definitions, but Dagster records, on every asset
materialization it executes, one tag per input asset (its data provenance: ``dagster/input_data_version/<key>``),
whatever location defines either asset. So an asset's upstream assets are the inputs of its last materialization,
and theirs in turn. This is storage only: no webserver, no workspace to load.

What it cannot know: an asset never materialized by a Dagster run (or only reported with
``report_runless_asset_event``) has no recorded inputs, and a dependency added since the last materialization
appears after the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import dagster as dg

__all__ = ["MAX_DEPTH", "MAX_UPSTREAM", "AssetLineage"]

MAX_DEPTH = 20
"""Levels of lineage walked up from an asset."""
MAX_UPSTREAM = 2000
"""Upstream assets collected for one asset at most (a walk stops there)."""

Key = tuple[str, ...]
_log = logging.getLogger("sqlsentinel.lineage")


class AssetLineage:
    """Upstream assets of an asset as the instance recorded them, read in batches and kept for one run."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance
        self._parents: dict[Key, frozenset[Key]] = {}
        self._failed = False

    def __call__(self, key: Key) -> frozenset[Key]:
        """The keys of every asset upstream of ``key`` (up to :data:`MAX_DEPTH` levels and :data:`MAX_UPSTREAM`
        assets); empty when the instance cannot say."""
        seen: set[Key] = set()
        level = [key]
        for _ in range(MAX_DEPTH):
            self._read(level)
            above = {parent for child in level for parent in self._parents.get(child, ())} - seen - {key}
            if not above:
                break
            seen |= above
            if len(seen) >= MAX_UPSTREAM:
                break
            level = sorted(above)
        return frozenset(seen)

    def _read(self, keys: Iterable[Key]) -> None:
        """Read the inputs of the last materialization of each of ``keys`` not read yet, in one query."""
        missing = [k for k in keys if k not in self._parents]
        if not missing:
            return
        self._parents.update({k: frozenset() for k in missing})
        if self._failed:
            return
        try:
            records = self._instance.get_asset_records([dg.AssetKey(list(k)) for k in missing])
        except Exception as exc:  # the instance's storage failing must not fail the alert: no lineage then
            self._failed = True
            _log.warning("asset lineage unavailable (upstream inhibition holds nothing this run): %s", exc)
            return
        for record in records:
            entry = record.asset_entry
            event = entry.last_materialization
            provenance = dg.DataProvenance.from_tags(event.tags or {}) if event is not None else None
            if provenance is not None:
                self._parents[tuple(entry.asset_key.path)] = frozenset(
                    tuple(parent.path) for parent in provenance.input_data_versions
                )
