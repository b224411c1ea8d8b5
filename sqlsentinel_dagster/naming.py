"""How alert names become Dagster names, and the tags every alert run carries.

Every generated name starts with ``sqlsentinel`` so it cannot collide with a team's own jobs, schedules or
resources when our ``Definitions`` are merged into theirs.
"""

from __future__ import annotations

import re

__all__ = [
    "CHECKS_JOB_NAME",
    "MATERIALIZATION_SENSOR_NAME",
    "NOTIFICATIONS_RESOURCE_KEY",
    "OWN_CHECK_METADATA",
    "PREFIX",
    "STATE_RESOURCE_KEY",
    "TAG_ALERT",
    "TAG_DECISION",
    "TAG_SEVERITY",
    "TAG_STATUS",
    "batch_schedule_name",
    "check_name",
    "evaluate_op_name",
    "job_name",
    "safe_name",
    "schedule_name",
    "warehouse_resource_key",
]

PREFIX = "sqlsentinel__"
CHECKS_JOB_NAME = "sqlsentinel_checks"
MATERIALIZATION_SENSOR_NAME = "sqlsentinel_on_materialization"
STATE_RESOURCE_KEY = "sqlsentinel_state"
NOTIFICATIONS_RESOURCE_KEY = "sqlsentinel_notifications"
TAG_ALERT = "sqlsentinel/alert"
OWN_CHECK_METADATA = "sqlsentinel/alert"
"""Metadata key on the evaluations of sqlsentinel's own alert checks (checks mode): ``watch:`` skips them, the
alert itself already notified."""
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


def check_name(alert_name: str) -> str:
    """The asset check of an alert (checks mode): its safe name, unprefixed (checks are scoped by asset)."""
    return safe_name(alert_name)


def batch_schedule_name(cron: str, timezone: str) -> str:
    """The schedule of every alert due at the same ticks (checks mode), e.g. ``sqlsentinel_checks__x_5_x_x_x_x__UTC``.

    ``*`` reads as ``x``; other characters outside ``[A-Za-z0-9_]`` become ``_``.
    """
    return f"{CHECKS_JOB_NAME}__{safe_name(cron.replace('*', 'x').replace(' ', '_'))}__{safe_name(timezone)}"


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
