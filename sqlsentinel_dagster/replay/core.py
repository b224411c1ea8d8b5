"""Replay recorded evaluations through the real :func:`~..state.decision.decide`, under two sets of settings.

Pure: the evaluations, the alert's labels, the silences and the settings go in; notifications by event,
suppressed notifications and what happened to each incident come out. Nothing reads the clock: each
evaluation is decided at the time it was recorded, so silences apply as they were then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..state.decision import Decision, decide
from ..state.model import AlertState, Event, Outcome, OutcomeStatus, StateSettings
from ..state.silences import AlertLabels, Silence

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
"""Every event a notification can be for, in the order they are shown."""


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
    """Its firing notification was suppressed by a silence (it is sent when the silence ends, if still firing)."""

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
    """Notifications a silence suppressed."""
    incidents: tuple[IncidentReplay, ...]
    marks: str
    """One character per evaluation (see :func:`mark`), for the timeline."""

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


def mark(decision: Decision) -> str:
    """``F`` firing, ``R`` resolved, ``E`` error, ``r`` reminder (each delivered), ``s`` suppressed by a silence,
    ``-`` firing without a notification, ``.`` otherwise."""
    if decision.event is not None:
        if not decision.notify:
            return "s"
        return {"firing": "F", "resolved": "R", "error": "E", "reminder": "r"}[decision.event]
    return "-" if decision.state.condition == "firing" else "."


def replay(
    evaluations: Sequence[Evaluation],
    *,
    labels: AlertLabels,
    silences: Sequence[Silence],
    settings: StateSettings,
    incidents: Sequence[Incident] | None = None,
) -> SettingsReplay:
    """Decide every evaluation in turn (oldest first, else ValueError), from no remembered state, as a run would
    have at that time, with the silences as they were then."""
    _refuse_unordered(evaluations)
    windows = _SilenceWindows([s for s in silences if s.matches(labels)])  # matching does not depend on time
    state: AlertState | None = None
    notifications = dict.fromkeys(EVENTS, 0)
    suppressed = 0
    marks: list[str] = []
    firing: list[bool] = []
    fired_silenced: list[bool] = []
    for evaluation in evaluations:
        outcome = Outcome(evaluation.status, evaluation.actual_value, error=evaluation.error)
        active = windows.started_by(evaluation.at)  # decide() itself tells which of them is active
        decision = decide(state, outcome, labels=labels, silences=active, settings=settings, now=evaluation.at)
        state = decision.state
        if decision.event is not None:
            if decision.notify:
                notifications[decision.event] += 1
            else:
                suppressed += 1
        marks.append(mark(decision))
        firing.append(state.condition == "firing")
        fired_silenced.append(decision.event == "firing" and not decision.notify)
    found = find_incidents(evaluations) if incidents is None else incidents
    times = [e.at for e in evaluations]
    return SettingsReplay(
        settings=settings,
        notifications=notifications,
        suppressed=suppressed,
        incidents=tuple(_incident_replays(found, times, firing, fired_silenced)),
        marks="".join(marks),
    )


class _SilenceWindows:
    """The silences started and not ended at each time, for times given in order: each evaluation is then decided
    against the few silences around it, not every silence ever recorded."""

    def __init__(self, silences: Sequence[Silence]) -> None:
        self._waiting = sorted(silences, key=lambda s: s.starts_at)
        self._next = 0
        self._started: list[Silence] = []

    def started_by(self, now: dt.datetime) -> list[Silence]:
        while self._next < len(self._waiting) and self._waiting[self._next].starts_at <= now:
            self._started.append(self._waiting[self._next])
            self._next += 1
        self._started = [s for s in self._started if s.ends_at > now]
        return self._started


def _refuse_unordered(evaluations: Sequence[Evaluation]) -> None:
    for index in range(1, len(evaluations)):
        if evaluations[index].at < evaluations[index - 1].at:
            raise ValueError(
                f"evaluations must be oldest first: #{index} at {evaluations[index].at.isoformat()} comes after "
                f"#{index - 1} at {evaluations[index - 1].at.isoformat()}"
            )


def _incident_replays(
    incidents: Sequence[Incident], times: list[dt.datetime], firing: list[bool], fired_silenced: list[bool]
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
        replays.append(IncidentReplay(incident, times[fired], resolved_at, fired_silenced[fired]))
    return replays


def compare(
    evaluations: Sequence[Evaluation],
    *,
    labels: AlertLabels,
    silences: Sequence[Silence],
    current: StateSettings,
    proposed: StateSettings,
    judged: tuple[Sequence[Evaluation], Sequence[Evaluation]] | None = None,
) -> Comparison:
    """Replay ``evaluations`` under ``current`` and ``proposed`` settings, side by side.

    ``judged``: what each side decides instead, when a baseline re-judged the statuses (the same evaluations, in
    the same order, with other statuses; see :mod:`.baseline`). The incidents are always those of
    ``evaluations``, the recorded history."""
    incidents = find_incidents(evaluations)
    as_current, as_proposed = judged or (evaluations, evaluations)
    if not len(as_current) == len(as_proposed) == len(evaluations):
        raise ValueError(f"judged: {len(as_current)} and {len(as_proposed)} evaluations, {len(evaluations)} recorded")
    return Comparison(
        evaluations=len(evaluations),
        incidents=tuple(incidents),
        current=replay(as_current, labels=labels, silences=silences, settings=current, incidents=incidents),
        proposed=replay(as_proposed, labels=labels, silences=silences, settings=proposed, incidents=incidents),
    )
