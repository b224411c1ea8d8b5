"""How alert names become Dagster names, and the tags every alert run carries.

Every generated name starts with ``sqlsentinel`` so it cannot collide with a team's own jobs, schedules or
resources when our ``Definitions`` are merged into theirs.
"""

from __future__ import annotations

import re

__all__ = [
    "NOTIFICATIONS_RESOURCE_KEY",
    "PREFIX",
    "STATE_RESOURCE_KEY",
    "TAG_ALERT",
    "TAG_DECISION",
    "TAG_SEVERITY",
    "TAG_STATUS",
    "evaluate_op_name",
    "job_name",
    "safe_name",
    "schedule_name",
    "warehouse_resource_key",
]

PREFIX = "sqlsentinel__"
STATE_RESOURCE_KEY = "sqlsentinel_state"
NOTIFICATIONS_RESOURCE_KEY = "sqlsentinel_notifications"
TAG_ALERT = "sqlsentinel/alert"
TAG_DECISION = "sqlsentinel/decision"
TAG_SEVERITY = "sqlsentinel/severity"
TAG_STATUS = "sqlsentinel/status"

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_name(alert_name: str) -> str:
    """``alert_name`` with every character outside ``[A-Za-z0-9_]`` replaced by ``_``."""
    return _UNSAFE.sub("_", alert_name.strip())


def job_name(alert_name: str) -> str:
    """The job of an alert: ``sqlsentinel__<safe name>``."""
    return f"{PREFIX}{safe_name(alert_name)}"


def evaluate_op_name(database: str) -> str:
    """The op that evaluates alerts on a warehouse: ``sqlsentinel_evaluate__<safe name>``.

    A single underscore after ``sqlsentinel`` keeps op names apart from job names (``sqlsentinel__...``).
    """
    return f"sqlsentinel_evaluate__{safe_name(database)}"


def schedule_name(alert_name: str) -> str:
    """The schedule of an alert: ``sqlsentinel__<safe name>__schedule``."""
    return f"{job_name(alert_name)}__schedule"


def warehouse_resource_key(database: str) -> str:
    """The resource key of a named warehouse: ``sqlsentinel_warehouse__<safe name>``."""
    return f"sqlsentinel_warehouse__{safe_name(database)}"
