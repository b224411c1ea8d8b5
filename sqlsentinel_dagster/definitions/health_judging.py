"""Whether alerting is live, judged from what the instance and the state database recorded: pure functions of
those records, the settings and ``now`` (the clock is injected; nothing here reads a database or the time).

Each judge returns a :class:`Cause` (a stable ``code`` and a sentence) or None; :mod:`.health` gathers the
records and builds the :class:`HealthReport`. The causes:

- ``ticks_late``: a RUNNING schedule or sensor of the file missed its tick by more than ``grace`` (the daemon is
  down or stuck); one the daemon never recorded counts from when the file's version was first loaded.
- ``runs_queued``: an alert run has waited in the run queue longer than ``queued_limit``.
- ``state_unreachable``: the state database did not answer within the deadline.
- ``instance_unreachable``: the Dagster instance could not be read within the deadline.
- ``config_stale``: the alerts file on disk is not the version the deployment runs, for longer than
  ``config_grace`` (it changed and the code location was not reloaded, or it is invalid).
- ``batches_failing``: checks mode, the latest ``failed_runs`` finished runs of the checks job all failed before
  recording any outcome (a run failing because an alert's query failed is that alert's error, which it notifies).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._dagster import next_ticks
from ..durations import format_duration

__all__ = [
    "CAUSE_CODES",
    "DEFAULT_SENSOR_INTERVAL",
    "PICKUP_SECONDS",
    "Cause",
    "FileVersion",
    "HealthReport",
    "HealthSettings",
    "Instigator",
    "Mode",
    "RunSeen",
    "Seen",
    "failing_batches",
    "late_ticks",
    "queued_too_long",
    "stale_config",
]

Mode = Literal["jobs", "checks"]
CAUSE_CODES = (
    "ticks_late",
    "runs_queued",
    "state_unreachable",
    "instance_unreachable",
    "config_stale",
    "batches_failing",
)
"""Every cause's code, as :class:`Cause` and the JSON report carry it."""
DEFAULT_SENSOR_INTERVAL = 30.0
"""Seconds between ticks of a sensor that sets no interval (Dagster's default: the run-failure sensor)."""
PICKUP_SECONDS = 60.0
"""How long the daemon may take to record a new schedule or sensor (it creates its state on its first pass)."""
SHOWN = 5
"""The most schedules, sensors or runs a cause names; the others are counted."""


@dataclass(frozen=True)
class HealthSettings:
    """How strict the check is (the defaults are ``sqlsentinel health``'s and the heartbeat's)."""

    grace: float = 120.0
    """Seconds a tick may be late."""
    queued_limit: float = 600.0
    """Seconds an alert run may stay queued."""
    config_grace: float = 300.0
    """Seconds the file on disk may differ from the version the deployment runs."""
    failed_runs: int = 3
    """Checks mode: this many failed batch runs in a row is not live (0: not checked)."""
    timeout: float = 10.0
    """Seconds the state database and the instance get to answer."""


@dataclass(frozen=True)
class Cause:
    """Why alerting is not live: a stable ``code``, a sentence, and the names it concerns."""

    code: str
    message: str
    subjects: tuple[str, ...] = ()
    """The schedules, sensors, runs or file the cause names (all of them, not only those in the message)."""


@dataclass(frozen=True)
class HealthReport:
    """The verdict: live when there is no cause."""

    checked_at: dt.datetime
    causes: tuple[Cause, ...] = ()
    checked: str = ""
    """What was checked, for the one line said when live."""

    @property
    def live(self) -> bool:
        """True when nothing is wrong."""
        return not self.causes

    def summary(self) -> str:
        """One line: ``live: ...``, or ``not live: <cause>; <cause>``."""
        if self.live:
            return f"live: {self.checked}" if self.checked else "live"
        return "not live: " + "; ".join(cause.message for cause in self.causes)

    def as_json(self) -> dict[str, Any]:
        """The stable JSON object: ``live``, ``checked_at``, ``summary`` and ``causes`` (code, message, subjects)."""
        return {
            "live": self.live,
            "checked_at": self.checked_at.isoformat(timespec="seconds"),
            "summary": self.summary(),
            "causes": [{"code": c.code, "message": c.message, "subjects": list(c.subjects)} for c in self.causes],
        }


@dataclass(frozen=True)
class Instigator:
    """A schedule or sensor the file's definitions make, and how often it must tick."""

    name: str
    kind: Literal["schedule", "sensor"]
    running: bool = True
    """Its default status in code (RUNNING or STOPPED)."""
    cron: str | None = None
    timezone: str = "UTC"
    interval: float = DEFAULT_SENSOR_INTERVAL
    """Sensors: seconds between ticks."""


@dataclass(frozen=True)
class Seen:
    """What the instance recorded of one schedule or sensor."""

    status: str
    """``RUNNING``, ``STOPPED`` (toggled by hand) or ``DECLARED_IN_CODE`` (its default status applies)."""
    last_tick: dt.datetime | None = None
    """Its latest tick (a schedule's: the time it was scheduled for)."""
    since: dt.datetime | None = None
    """When the daemon started it (without a tick, lateness counts from here)."""


@dataclass(frozen=True)
class RunSeen:
    """A run of one of the file's jobs."""

    run_id: str
    job: str
    status: str
    created_at: dt.datetime
    handled: bool = False
    """The run recorded its alerts' outcomes (a decision tag) before it ended: a failed alert, not a broken run."""


@dataclass(frozen=True)
class FileVersion:
    """The alerts file as it is on disk."""

    digest: str
    modified_at: dt.datetime


def late_ticks(
    expected: Sequence[Instigator],
    seen: Mapping[str, Seen],
    now: dt.datetime,
    grace: float,
    declared_since: dt.datetime | None,
) -> Cause | None:
    """``ticks_late`` when a running schedule or sensor's next tick was due more than ``grace`` seconds before
    ``now``. Running: toggled on, or declared running in code and not toggled off. One the instance has no record
    of was due :data:`PICKUP_SECONDS` after ``declared_since`` (when the file's version was first loaded), or at
    once when that is unknown."""
    late: list[tuple[str, str]] = []
    for instigator in expected:
        record = seen.get(instigator.name)
        status = record.status if record is not None else "DECLARED_IN_CODE"
        if status == "STOPPED" or (status == "DECLARED_IN_CODE" and not instigator.running):
            continue
        base = (record.last_tick or record.since) if record is not None else None
        if base is None:
            due = declared_since + dt.timedelta(seconds=PICKUP_SECONDS) if declared_since is not None else None
            if due is None or now - due > dt.timedelta(seconds=grace):
                late.append((instigator.name, f"{instigator.kind} {instigator.name} has never ticked"))
            continue
        if instigator.kind == "schedule" and instigator.cron:
            due = next_ticks(instigator.cron, instigator.timezone, base, 1)[0]
            every = f"on '{instigator.cron}' ({instigator.timezone})"
        else:
            due = base + dt.timedelta(seconds=instigator.interval)
            every = f"every {_age(instigator.interval)}"
        if now - due > dt.timedelta(seconds=grace):
            ago = _age((now - base).total_seconds())
            late.append((instigator.name, f"{instigator.kind} {instigator.name} last ticked {ago} ago, due {every}"))
    if not late:
        return None
    shown = ", ".join(text for _, text in late[:SHOWN]) + (
        f" and {len(late) - SHOWN} more" if len(late) > SHOWN else ""
    )
    return Cause(
        "ticks_late",
        f"{len(late)} schedule(s)/sensor(s) not ticking (is dagster-daemon running?): {shown}",
        tuple(name for name, _ in late),
    )


def queued_too_long(queued: Sequence[RunSeen], now: dt.datetime, limit: float) -> Cause | None:
    """``runs_queued`` when a run of ``queued`` (the file's runs now QUEUED) was queued more than ``limit``
    seconds before ``now``."""
    stuck = sorted((r for r in queued if (now - r.created_at).total_seconds() > limit), key=lambda r: r.created_at)
    if not stuck:
        return None
    shown = ", ".join(
        f"{r.job} (run {r.run_id[:8]}, {_age((now - r.created_at).total_seconds())})" for r in stuck[:SHOWN]
    )
    more = f" and {len(stuck) - SHOWN} more" if len(stuck) > SHOWN else ""
    return Cause(
        "runs_queued",
        f"{len(stuck)} alert run(s) queued longer than {_age(limit)} (is the run queue working, or a concurrency "
        f"limit holding them?): {shown}{more}",
        tuple(r.run_id for r in stuck),
    )


def stale_config(
    path: str,
    saved: tuple[str, dt.datetime] | None,
    current: FileVersion | None,
    now: dt.datetime,
    grace: float,
    problems: Sequence[str] = (),
) -> Cause | None:
    """``config_stale`` when the file on disk (``current``; None: unreadable) is not the last valid version
    the deployment recorded (``saved``: its digest and when it was first loaded), and has not been for more than
    ``grace`` seconds. ``problems``: the file's problems, when known (the CLI loads it; the sensor does not)."""
    if current is None:
        reason = problems[0] if problems else "it cannot be read"
        return Cause("config_stale", f"the alerts file {path} cannot be used: {reason}", (path,))
    if saved is not None and saved[0] == current.digest:
        return None
    if (now - current.modified_at).total_seconds() <= grace:
        return None
    if saved is None:
        running = "no valid version of it is recorded as loaded (has a code server loaded it, with the state database?)"
    else:
        running = f"the deployment still runs the version first loaded {saved[1]:%Y-%m-%d %H:%M} UTC"
    if problems:
        why = f"has {len(problems)} problem(s) (first: {problems[0]}; see sqlsentinel validate)"
    else:
        age = _age((now - current.modified_at).total_seconds())
        why = f"changed {age} ago" + (" and the code location was not reloaded" if saved is not None else "")
    return Cause("config_stale", f"the alerts file {path} {why}: {running}", (path,))


def failing_batches(finished: Sequence[RunSeen], count: int) -> Cause | None:
    """``batches_failing`` when the latest ``count`` runs of ``finished`` (the checks job's, newest first) all
    failed before recording their alerts' outcomes; None when ``count`` is 0 or fewer runs have finished. A run
    that recorded them and failed because an alert did (its query, its delivery) is that alert's error, which the
    alert notifies: it breaks the streak."""
    latest = list(finished[:count])
    if count <= 0 or len(latest) < count or any(run.status != "FAILURE" or run.handled for run in latest):
        return None
    job = latest[0].job
    return Cause(
        "batches_failing",
        f"the last {count} run(s) of {job} failed before recording any outcome (latest: run "
        f"{latest[0].run_id[:8]}, created {latest[0].created_at:%Y-%m-%d %H:%M} UTC)",
        tuple(run.run_id for run in latest),
    )


def _age(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 60 else format_duration(dt.timedelta(seconds=seconds))
