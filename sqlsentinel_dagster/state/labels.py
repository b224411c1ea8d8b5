"""An alert's labels as stored in its state row, read back (for silences, status and inhibition)."""

from __future__ import annotations

import json
from dataclasses import asdict

from .instance_model import InstanceLabels
from .silences import AlertLabels
from .watched import WatchedLabels

__all__ = ["labels_from_json"]


def labels_from_json(alert: str, raw: str) -> AlertLabels:
    """The labels of the state row ``alert``, stored as ``raw`` JSON: an alert's, an instance's, or a watched
    check partition's."""
    data = json.loads(raw) if raw else {}
    labels = AlertLabels(
        name=alert, severity=data.get("severity", ""), owners=tuple(data.get("owners", ())), tags=data.get("tags")
    )
    if "alert_name" in data:  # an instance of an instance alert
        return InstanceLabels(**{**asdict(labels), "alert_name": data["alert_name"], "labels": data.get("labels", {})})
    if data.get("check_name"):  # a partition of a watched check: silencing the check silences it too
        return WatchedLabels(**{**asdict(labels), "check_name": data["check_name"]})
    return labels
