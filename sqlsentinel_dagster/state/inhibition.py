"""Inhibition, as Alertmanager's ``inhibit_rules``: while an alert matching a rule's ``source`` fires, the alerts
matching its ``target`` (with the same values of its ``equal`` labels) hold their notifications, recorded as
inhibited and naming the source; when the source resolves and a target still fires, the target notifies once
(as at the end of a silence). An alert never inhibits itself, and an instance alert's own state (the worst of its
instances) is no source: its instances are.

``upstream: true`` rules need no labels in common: a firing alert on an asset upstream of the target's asset (in
the deployment's lineage, which the Dagster layer reads) holds the target, and the hold names the upstream asset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from .holds import Hold
from .labels import labels_from_json
from .schema import alert_state, instances
from .silences import AlertLabels, Matcher

__all__ = ["InhibitRule", "alert_of", "firing_labels", "inhibited"]


@dataclass(frozen=True)
class InhibitRule:
    """One rule: a firing alert matching ``source`` holds the alerts matching ``target`` that have the same values
    of the ``equal`` labels; with ``upstream``, only a source on an asset upstream of the target's (its alert named
    in ``upstream`` of :func:`inhibited`)."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()
    upstream: bool = False

    def holds(self, target: AlertLabels, source: AlertLabels, upstream: Mapping[str, str] | None = None) -> bool:
        """Whether ``source`` (firing) inhibits ``target`` under this rule (``upstream``: the alerts on the target's
        upstream assets, with their assets)."""
        if source.name == target.name or not all(m.matches(target) for m in self.target):
            return False
        if self.upstream and alert_of(source) not in (upstream or {}):
            return False
        if not all(m.matches(source) for m in self.source):
            return False
        return all(source.values(key) and source.values(key) == target.values(key) for key in self.equal)


def alert_of(labels: AlertLabels) -> str:
    """The alert ``labels`` belong to: an instance's alert, else the name."""
    return getattr(labels, "alert_name", "") or labels.name


def firing_labels(conn: sa.Connection) -> list[AlertLabels]:
    """The labels of every alert, instance and watched check that is firing now (instance alerts' own rows left
    out: their instances stand for them)."""
    parents = sa.select(instances.c.alert).distinct()
    query = sa.select(alert_state.c.alert, alert_state.c.labels).where(
        alert_state.c.condition == "firing", alert_state.c.alert.not_in(parents)
    )
    return [labels_from_json(name, raw) for name, raw in conn.execute(query)]


def inhibited(
    rules: Sequence[InhibitRule],
    target: AlertLabels,
    firing: Sequence[AlertLabels],
    upstream: Mapping[str, str] | None = None,
) -> Hold | None:
    """What inhibits ``target`` now: the first firing source a rule says holds it, else None. ``upstream`` maps
    the alerts on assets upstream of the target's to their assets (for ``upstream: true`` rules)."""
    for rule in rules:
        source = next((s for s in firing if rule.holds(target, s, upstream)), None)
        if source is not None:
            on = (upstream or {}).get(alert_of(source)) if rule.upstream else None
            return Hold("inhibited", (source.name, on) if on else (source.name,))
    return None
