"""How alert names become Dagster names, and the tags every alert run carries.

Every generated name starts with ``sqlsentinel`` so it cannot collide with a team's own jobs, schedules or
resources when our ``Definitions`` are merged into theirs.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass

__all__ = [
    "CHECKS_JOB_NAME",
    "MATERIALIZATION_SENSOR_NAME",
    "MAX_STATE_NAME",
    "NOTIFICATIONS_RESOURCE_KEY",
    "OWN_CHECK_METADATA",
    "PLAIN_NAMES",
    "PREFIX",
    "STATE_RESOURCE_KEY",
    "TAG_ALERT",
    "TAG_DATABASE",
    "TAG_DECISION",
    "TAG_HOST",
    "TAG_SEVERITY",
    "TAG_STATUS",
    "FileNames",
    "batch_schedule_name",
    "check_name",
    "evaluate_op_name",
    "host",
    "job_name",
    "safe_name",
    "schedule_name",
    "state_name",
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
TAG_DATABASE = "sqlsentinel/database"
"""The one warehouse a run's alerts query (a run queue can limit runs per value)."""
TAG_DECISION = "sqlsentinel/decision"
TAG_HOST = "sqlsentinel/host"
"""``<host name>:<process id>`` of the process that evaluated a run's alerts (a pod, a Celery worker)."""
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


def batch_schedule_name(cron: str, timezone: str, checks_job: str = CHECKS_JOB_NAME) -> str:
    """The schedule of every alert due at the same ticks (checks mode), e.g. ``sqlsentinel_checks__x_5_x_x_x_x__UTC``.

    ``*`` reads as ``x``; other characters outside ``[A-Za-z0-9_]`` become ``_``.
    """
    return f"{checks_job}__{safe_name(cron.replace('*', 'x').replace(' ', '_'))}__{safe_name(timezone)}"


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


@dataclass(frozen=True)
class FileNames:
    """The names of what one alerts file makes besides its alerts' own jobs, schedules and checks: its sensors,
    its checks job and batch schedules, its warehouse resources and assets, its test-notify, replay and prune
    schedule.

    Without a namespace these are the plain names (``sqlsentinel_config``, ``sqlsentinel_checks``, ...). Several
    alerts files in one code location each take a namespace, which ends each name (``sqlsentinel_config__team_a``)
    and sits inside warehouse assets (``sqlsentinel/team_a/<database>``). Alert names are not namespaced: they key
    the alert's state, so they are unique in the whole code location.
    """

    namespace: str | None = None

    def __post_init__(self) -> None:
        if self.namespace is not None:
            object.__setattr__(self, "namespace", safe_name(self.namespace) or None)

    def _of(self, base: str) -> str:
        return f"{base}__{self.namespace}" if self.namespace else base

    @property
    def config_sensor(self) -> str:
        """The sensor that shows the file's problems: ``sqlsentinel_config``."""
        return self._of("sqlsentinel_config")

    @property
    def failure_sensor(self) -> str:
        """The sensor that tells the fallback receivers about failed alert runs."""
        return self._of("sqlsentinel_run_failure_sensor")

    @property
    def watch_sensor(self) -> str:
        """The sensor of the file's ``watch:`` rules: ``sqlsentinel_watch``."""
        return self._of("sqlsentinel_watch")

    @property
    def heartbeat_sensor(self) -> str:
        """The sensor that pings the file's ``heartbeat:`` URL while alerting is live: ``sqlsentinel_heartbeat``."""
        return self._of("sqlsentinel_heartbeat")

    @property
    def materialization_sensor(self) -> str:
        """The sensor that evaluates alerts after their asset materializes."""
        return self._of(MATERIALIZATION_SENSOR_NAME)

    @property
    def checks_job(self) -> str:
        """The one job that evaluates the file's alerts as asset checks (checks mode)."""
        return self._of(CHECKS_JOB_NAME)

    @property
    def checks_op(self) -> str:
        """The multi-asset check that holds the file's alerts (checks mode)."""
        return self._of("sqlsentinel_evaluate_checks")

    @property
    def test_notify_job(self) -> str:
        """The Launchpad job that sends a test message through an alert's channels."""
        return self._of("sqlsentinel_test_notify")

    @property
    def replay_job(self) -> str:
        """The Launchpad job that replays the file's alerts under other settings."""
        return self._of("sqlsentinel_replay")

    @property
    def prune_schedule(self) -> str:
        """The daily schedule of the shared ``sqlsentinel_prune`` job, when the file is built outside Dagster's
        loaders (inside them, the code location has one, ``sqlsentinel_prune__schedule``)."""
        return self._of("sqlsentinel_prune__schedule")

    def batch_schedule(self, cron: str, timezone: str) -> str:
        """The checks-mode schedule of the file's alerts due on ``cron`` in ``timezone``."""
        return batch_schedule_name(cron, timezone, self.checks_job)

    def warehouse_resource(self, database: str) -> str:
        """The resource key of the file's warehouse ``database``."""
        return self._of(warehouse_resource_key(database))

    def evaluate_op(self, database: str) -> str:
        """The op that evaluates the file's alerts on ``database`` (jobs mode)."""
        return self._of(evaluate_op_name(database))

    def warehouse_asset(self, database: str) -> list[str]:
        """The asset that the file's alerts without ``asset:`` are checks on: ``sqlsentinel/<database>``."""
        return ["sqlsentinel", *([self.namespace] if self.namespace else []), database]


PLAIN_NAMES = FileNames()
"""The names of a file without a namespace (one alerts file in the code location)."""


MAX_STATE_NAME = 200
"""The longest name a state is kept under (an alert's instance, a watched check): the state tables keep 255
characters, and a notification's key adds its evaluation, event and channel."""


def state_name(name: str) -> str:
    """``name`` if it has at most :data:`MAX_STATE_NAME` characters; else cut, ending in ``~`` and 12 hex digits of
    the full name's sha256 (so two long names stay apart)."""
    if len(name) <= MAX_STATE_NAME:
        return name
    return f"{name[: MAX_STATE_NAME - 13]}~{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def host() -> str:
    """This process as :data:`TAG_HOST` shows it: ``<host name>:<process id>``."""
    return f"{socket.gethostname()}:{os.getpid()}"
