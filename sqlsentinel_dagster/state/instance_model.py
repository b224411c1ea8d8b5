"""Values of instance alerts' state (``instances:``): an instance's labels, one row to record, and what one
evaluation decided for each instance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .decision import Decision
from .model import Outcome
from .silences import AlertLabels

__all__ = ["InstanceDecision", "InstanceLabels", "InstanceRow", "InstancesRecorded"]


@dataclass(frozen=True)
class InstanceLabels(AlertLabels):
    """The labels of one instance: an ``alert=`` (or ``name=``) matcher matches the instance's name and its
    alert's, ``instance=`` the instance's only, and any label column by its name (``endpoint=/orders``)."""

    alert_name: str = ""
    """The alert the instance belongs to."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The instance's label columns and their values."""

    @classmethod
    def of(cls, parent: AlertLabels, name: str, labels: Mapping[str, str]) -> InstanceLabels:
        """The labels of the instance ``name`` of the alert ``parent`` (whose severity, owners and tags it has), its
        label columns ``labels``."""
        return cls(name, parent.severity, parent.owners, parent.tags, alert_name=parent.name, labels=labels)

    def values(self, key: str) -> list[str]:
        """As :meth:`AlertLabels.values`, with the alert's name among the names and the label columns."""
        if key in ("alert", "name"):
            return [self.name, self.alert_name]
        if key == "instance":
            return [self.name]
        if key in self.labels:
            return [self.labels[key]]
        return super().values(key)


@dataclass(frozen=True)
class InstanceRow:
    """One row of an instance alert's evaluation, to decide and record."""

    labels: InstanceLabels
    outcome: Outcome
    payload: dict[str, Any]
    """The instance's notification message."""


@dataclass(frozen=True)
class InstanceDecision:
    """What one evaluation decided for one instance."""

    name: str
    labels: Mapping[str, str]
    decision: Decision
    outcome: Outcome | None
    """None: the instance's row was missing from the result."""
    missing: int = 0
    """Results in a row without the instance's row."""


@dataclass(frozen=True)
class InstancesRecorded:
    """One evaluation of an instance alert, as recorded: the alert's own decision and each instance's."""

    parent: Decision
    instances: list[InstanceDecision]
    current: int
    """Instances kept after this evaluation."""
    not_added: int = 0
    """New instances left out because the alert keeps ``max`` already."""
