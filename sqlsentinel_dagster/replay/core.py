"""Replay recorded evaluations through the real :func:`~..state.decision.decide`, under two sets of settings.

Pure: the evaluations, the alert's labels, silences, acknowledgements, when the alerts that may inhibit it fired
(:mod:`.holds`) and the settings go in; notifications by event, those held and by what, the reminders an
acknowledgement kept quiet and what happened to each incident come out. Nothing reads the clock: each evaluation is
decided at the time it was recorded, so what held notifications applies as it was then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..state.decision import Decision, decide
from ..state.model import AlertState, Event, Outcome, OutcomeStatus, StateSettings
from ..state.silences import AlertLabels, Silence
from .holds import (
    HELD_BY,
    Acknowledgement,
    Acknowledgements,
    Inhibitors,
    SilenceWindows,
    SourceFiring,
    held_by,
    reminder_kept_quiet,
)

__all__ = [
    "EVENTS",
    "Comparison",
    "Evaluation",
    "Incident",
    "IncidentReplay",
    "SettingsReplay",
    "compare",
    "find_incidents",
    "mark",
    "replay",
]

EVENTS: tuple[Event, ...] = ("firing", "reminder", "resolved", "error")
"""Every event a notification can be for, in the order they are shown. PagerDuty's ``acknowledge``, passed on
once after an acknowledgement, is no notification to anyone and is not counted."""


@dataclass(frozen=True)
class Evaluation:
    """One recorded evaluation: when, its status, and its value or error."""

    at: dt.datetime
    status: OutcomeStatus
    actual_value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Incident:
    """A stretch of the raw history, whatever the settings: from an ALERT after anything but an ALERT (or the
    first evaluation) to the next OK. ERROR evaluations in between do not end it."""

    first: int
    """Index of its first evaluation (an ALERT)."""
    end: int
    """Index of the OK that ends it; the number of evaluations when it is still open at the end."""
    started_at: dt.datetime
    ended_at: dt.datetime | None
    """When the OK that ends it was recorded; None when it is still open at the end of the period."""


@dataclass(frozen=True)
class IncidentReplay:
    """What one incident looked like under one set of settings."""

    incident: Incident
    fired_at: dt.datetime | None
    """The first evaluation of the incident at which the alert was firing; None when it never was (missed)."""
    resolved_at: dt.datetime | None
    """The first evaluation, from the incident's end on, at which the alert no longer fired; None when it was
    missed or still firing at the end of the period."""
    suppressed: bool
    """Its firing notification was held by a silence, a time interval or an inhibition (it is sent when that ends,
    if still firing)."""
    held_by: str | None = None
    """What held it (one of :data:`HELD_BY`) when ``suppressed``."""

    @property
    def missed(self) -> bool:
        """The alert never fired during the incident."""
        return self.fired_at is None

    @property
    def delay(self) -> dt.timedelta | None:
        """How long after the incident started the alert fired; None when it was missed."""
        return None if self.fired_at is None else self.fired_at - self.incident.started_at


@dataclass(frozen=True)
class SettingsReplay:
    """The recorded evaluations replayed under one set of settings."""

    settings: StateSettings
    notifications: dict[Event, int]
    """Notifications delivered (not suppressed), by event; every event is a key. One per event, not per channel."""
    suppressed: int
    """Notifications held by a silence, a time interval or an inhibition."""
    incidents: tuple[IncidentReplay, ...]
    marks: str
    """One character per evaluation (see :func:`mark`), for the timeline."""
    suppressed_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HELD_BY, 0))
    """``suppressed`` by what held them; every key of :data:`HELD_BY` is there."""
    acknowledged_quiet: int = 0
    """Reminders an acknowledgement kept quiet: the decision would have sent them but for it."""

    @property
    def total(self) -> int:
        """Notifications delivered, all events together."""
        return sum(self.notifications.values())


@dataclass(frozen=True)
class Comparison:
    """The same evaluations replayed under the current and the proposed settings."""

    evaluations: int
    incidents: tuple[Incident, ...]
    current: SettingsReplay
    proposed: SettingsReplay

    @property
    def difference(self) -> dict[Event, int]:
        """Notifications by event, proposed minus current."""
        return {e: self.proposed.notifications[e] - self.current.notifications[e] for e in EVENTS}

    @property
    def change(self) -> int:
        """Notifications in all, proposed minus current (negative: less noise)."""
        return self.proposed.total - self.current.total

    @property
    def missed(self) -> list[Incident]:
        """Incidents the current settings fired on and the proposed ones never do."""
        return [
            current.incident
            for current, proposed in zip(self.current.incidents, self.proposed.incidents, strict=True)
            if proposed.missed and not current.missed
        ]


def find_incidents(evaluations: Sequence[Evaluation]) -> list[Incident]:
    """The incidents of ``evaluations`` (oldest first), independent of any setting."""
    incidents: list[Incident] = []
    first: int | None = None  # the open incident's first evaluation
    for index, evaluation in enumerate(evaluations):
        if evaluation.status == "ALERT" and first is None:
            first = index
        elif evaluation.status == "OK" and first is not None:
            incidents.append(Incident(first, index, evaluations[first].at, evaluation.at))
            first = None
    if first is not None:
        incidents.append(Incident(first, len(evaluations), evaluations[first].at, None))
    return incidents


def mark(decision: Decision, acknowledged_quiet: bool = False) -> str:
    """``F`` firing, ``R`` resolved, ``E`` error, ``r`` reminder (each delivered); held: ``s`` by a silence, ``m``
    muted by a time interval, ``i`` inhibited; ``a`` a reminder an acknowledgement kept quiet
    (``acknowledged_quiet``); ``-`` firing without a notification, ``.`` otherwise."""
    if decision.event in _EVENT_MARKS:
        cause = held_by(decision)
        return _EVENT_MARKS[decision.event] if cause is None else _HELD_MARKS[cause]
    if acknowledged_quiet:
        return "a"
    return "-" if decision.state.condition == "firing" else "."


_EVENT_MARKS = {"firing": "F", "resolved": "R", "error": "E", "reminder": "r"}
_HELD_MARKS = {"silence": "s", "muted": "m", "inhibited": "i"}


def replay(
    evaluations: Sequence[Evaluation],
    *,
    labels: AlertLabels,
    silences: Sequence[Silence],
    settings: StateSettings,
    incidents: Sequence[Incident] | None = None,
    acks: Sequence[Acknowledgement] = (),
    sources: Sequence[SourceFiring] = (),
) -> SettingsReplay:
    """Decide every evaluation in turn (oldest first, else ValueError), from no remembered state, as a run would
    have at that time: with the silences as they were then, the acknowledgements recorded before it applied to the
    state, and inhibited by ``settings.inhibit`` while one of the ``sources`` was firing."""
    _refuse_unordered(evaluations)
    windows = SilenceWindows([s for s in silences if s.matches(labels)])  # matching does not depend on time
    acknowledgements, inhibitors = Acknowledgements(acks), Inhibitors(sources)
    state: AlertState | None = None
    notifications = dict.fromkeys(EVENTS, 0)
    suppressed_by = dict.fromkeys(HELD_BY, 0)
    quiet, last_quiet = 0, None  # reminders an acknowledgement kept quiet; the last one, in this episode
    marks: list[str] = []
    firing: list[bool] = []
    fired_held: list[str | None] = []
    for evaluation in evaluations:
        now = evaluation.at
        outcome = Outcome(evaluation.status, evaluation.actual_value, error=evaluation.error)
        active = windows.started_by(now)  # decide() itself tells which of them is active
        state = acknowledgements.before(state, now)
        hold = inhibitors.hold(now, settings.inhibit, labels, settings.upstream)
        decision = decide(state, outcome, labels=labels, silences=active, settings=settings, now=now, inhibited=hold)
        kept_quiet = False
        if state is not None and (decision.code == "acknowledged_quiet" or decision.event == "acknowledged"):
            kept_quiet = reminder_kept_quiet(
                state, outcome, last_quiet, labels=labels, silences=active, settings=settings, now=now, inhibited=hold
            )
        state = decision.state
        last_quiet = now if kept_quiet else last_quiet if state.acknowledged_by is not None else None
        quiet += kept_quiet
        cause = held_by(decision)
        if decision.event in EVENTS:
            if cause is None:
                notifications[decision.event] += 1
            else:
                suppressed_by[cause] += 1
        marks.append(mark(decision, kept_quiet))
        firing.append(state.condition == "firing")
        fired_held.append(cause if decision.event == "firing" else None)
    found = find_incidents(evaluations) if incidents is None else incidents
    times = [e.at for e in evaluations]
    return SettingsReplay(
        settings=settings,
        notifications=notifications,
        suppressed=sum(suppressed_by.values()),
        incidents=tuple(_incident_replays(found, times, firing, fired_held)),
        marks="".join(marks),
        suppressed_by=suppressed_by,
        acknowledged_quiet=quiet,
    )


def _refuse_unordered(evaluations: Sequence[Evaluation]) -> None:
    for index in range(1, len(evaluations)):
        if evaluations[index].at < evaluations[index - 1].at:
            raise ValueError(
                f"evaluations must be oldest first: #{index} at {evaluations[index].at.isoformat()} comes after "
                f"#{index - 1} at {evaluations[index - 1].at.isoformat()}"
            )


def _incident_replays(
    incidents: Sequence[Incident], times: list[dt.datetime], firing: list[bool], fired_held: list[str | None]
) -> list[IncidentReplay]:
    # next_quiet[i]: the first index at or after i where the alert is not firing (len: none)
    next_quiet = [len(times)] * (len(times) + 1)
    for index in range(len(times) - 1, -1, -1):
        next_quiet[index] = index if not firing[index] else next_quiet[index + 1]
    replays = []
    for incident in incidents:
        fired = next((i for i in range(incident.first, incident.end) if firing[i]), None)
        if fired is None:
            replays.append(IncidentReplay(incident, None, None, False))
            continue
        quiet = next_quiet[incident.end]
        resolved_at = times[quiet] if quiet < len(times) else None
        held = fired_held[fired]
        replays.append(IncidentReplay(incident, times[fired], resolved_at, held is not None, held))
    return replays


def compare(
    evaluations: Sequence[Evaluation],
    *,
    labels: AlertLabels,
    silences: Sequence[Silence],
    current: StateSettings,
    proposed: StateSettings,
    judged: tuple[Sequence[Evaluation], Sequence[Evaluation]] | None = None,
    acks: Sequence[Acknowledgement] = (),
    sources: Sequence[SourceFiring] = (),
) -> Comparison:
    """Replay ``evaluations`` under ``current`` and ``proposed`` settings, side by side, with the same
    acknowledgements and the same firing of the alerts that may inhibit it (``sources``, under their own settings).

    ``judged``: what each side decides instead, when a baseline re-judged the statuses (the same evaluations, in
    the same order, with other statuses; see :mod:`.baseline`). The incidents are always those of
    ``evaluations``, the recorded history."""
    incidents = find_incidents(evaluations)
    as_current, as_proposed = judged or (evaluations, evaluations)
    if not len(as_current) == len(as_proposed) == len(evaluations):
        raise ValueError(f"judged: {len(as_current)} and {len(as_proposed)} evaluations, {len(evaluations)} recorded")
    side = partial(replay, labels=labels, silences=silences, incidents=incidents, acks=acks, sources=sources)
    return Comparison(
        evaluations=len(evaluations),
        incidents=tuple(incidents),
        current=side(as_current, settings=current),
        proposed=side(as_proposed, settings=proposed),
    )
