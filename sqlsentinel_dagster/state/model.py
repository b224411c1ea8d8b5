"""Values the state machine works on: an alert's remembered state, one evaluation's outcome, the settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from .time_intervals import TimeInterval

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .channel_holds import ChannelTimes
    from .inhibition import InhibitRule
    from .silences import AlertLabels

__all__ = ["STATE_FIELDS", "AlertState", "Event", "Outcome", "OutcomeStatus", "StateSettings", "kept"]

OutcomeStatus = Literal["ALERT", "OK", "ERROR"]
Event = Literal["firing", "reminder", "resolved", "error", "acknowledged"]
Condition = Literal["inactive", "pending", "firing"]


@dataclass(frozen=True)
class Outcome:
    """What one evaluation found: ALERT/OK with values, or ERROR with a message."""

    status: OutcomeStatus
    actual_value: Any = None
    threshold: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_ms: float = 0.0
    keep: bool = False
    """No rows with ``no_data: keep``: the status is the alert's own (ALERT while firing or pending, else OK), as
    :func:`kept` decides where the state is read."""


@dataclass(frozen=True)
class StateSettings:
    """Per-alert settings of the state machine (from alerts.yaml)."""

    repeat_interval: dt.timedelta | None = None
    """Remind while firing this often; None: never remind."""
    for_count: int = 1
    """Consecutive ALERT results needed before firing."""
    recover_after: int = 1
    """Consecutive OK results needed before resolving."""
    error_after: int = 1
    """Consecutive ERROR results needed before notifying an error."""
    min_interval: dt.timedelta | None = None
    """A new firing notification is held while the last one sent is younger than this (SQL Sentinel's)."""
    mute: tuple[TimeInterval, ...] = ()
    """Notifications are held while one of these contains the moment (``mute_time_intervals``)."""
    active: tuple[TimeInterval, ...] = ()
    """When given, notifications are held while none of these contains the moment (``active_time_intervals``)."""
    inhibit: tuple[InhibitRule, ...] = ()
    """The file's inhibition rules (``inhibit:``): the store checks them against what is firing."""
    upstream: Mapping[str, str] = field(default_factory=dict)
    """The alerts on assets upstream of this alert's asset, with their assets (``inhibit: [{upstream: true}]``)."""
    channel_times: Callable[[AlertLabels], Mapping[str, ChannelTimes]] | None = None
    """By channel, the time intervals of the receivers and routes that hold what each channel is told for given
    labels (an instance's, say); None when no receiver or route has any (see :mod:`.channel_holds`)."""


@dataclass(frozen=True)
class AlertState:
    """Everything remembered about one alert between evaluations."""

    alert: str
    condition: Condition = "inactive"
    """inactive: not firing; pending: ALERT seen, fewer than `for` times; firing."""
    last_status: OutcomeStatus | None = None
    """The latest evaluation's outcome; None before the first evaluation."""
    since: dt.datetime | None = None
    """When ``last_status`` last changed."""
    consecutive_alerts: int = 0
    consecutive_oks: int = 0
    consecutive_errors: int = 0
    error_notified: bool = False
    """An error notification went out for the current run of errors."""
    firing_since: dt.datetime | None = None
    first_fired_at: dt.datetime | None = None
    """The first time this alert ever fired."""
    episode_notified: bool = False
    """A firing notification was sent (not suppressed) in the current firing episode."""
    episode_suppressed: bool = False
    """A notification of the current firing episode was suppressed by a silence and is owed once it ends."""
    last_notified_at: dt.datetime | None = None
    """The last time a firing or reminder notification was sent (the repeat interval counts from here)."""
    last_firing_at: dt.datetime | None = None
    """The last time a firing notification was sent (``min_interval`` counts from here)."""
    held_until: dt.datetime | None = None
    """The firing notification of this episode is held by ``min_interval`` until then (sent if still firing)."""
    acknowledged_by: str | None = None
    """Who acknowledged this firing episode (``sqlsentinel ack``): no reminders until it resolves."""
    acknowledged_reason: str | None = None
    acknowledged_at: dt.datetime | None = None
    ack_told: bool = False
    """The acknowledgement was passed on (PagerDuty's ``acknowledge``) by an evaluation since."""
    last_tick: str | None = None
    """The schedule tick (its scheduled time) of the last evaluation, when a schedule launched it: a run of the same
    tick (a retry, a second launch) evaluates nothing again."""
    owed_channels: tuple[str, ...] = ()
    """Channels whose time intervals held this episode's firing (or a reminder): sent it once their mute ends."""
    notification_count: int = 0
    evaluation_count: int = 0
    last_evaluated_at: dt.datetime | None = None
    last_value: Any = None
    last_error: str | None = None

    def evolve(self, **changes: Any) -> AlertState:
        """A copy with ``changes`` applied (as :func:`dataclasses.replace`, a few times faster: an instance alert
        evolves thousands of states per evaluation). Raises TypeError for a name that is not a field."""
        unknown = changes.keys() - STATE_FIELDS
        if unknown:
            raise TypeError(f"AlertState has no field {sorted(unknown)[0]!r}")
        copy = object.__new__(AlertState)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy


STATE_FIELDS = frozenset(f.name for f in fields(AlertState))
"""The names of :class:`AlertState`'s fields."""


def kept(outcome: Outcome, previous: AlertState | None) -> Outcome:
    """``outcome`` with the status ``no_data: keep`` gives it: ALERT while ``previous`` is firing or pending (it
    stays so, and reminds), else OK; unchanged for any other outcome."""
    if not outcome.keep:
        return outcome
    firing = previous is not None and previous.condition in ("firing", "pending")
    return replace(outcome, status="ALERT" if firing else "OK", keep=False)
