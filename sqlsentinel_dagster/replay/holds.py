"""What held notifications, as it was: silences, acknowledgements (``sqlsentinel ack``) and the firing of alerts
that inhibit (``inhibit:``); time intervals are in the settings. Pure: :func:`.core.replay` applies them at each
evaluation's time, and the decision (:func:`..state.decision.decide`) does the rest, as in a run.

An acknowledgement at ``t`` acknowledges the replayed state if it is firing then, as
:func:`..state.acks.acknowledge` does (the state after the evaluations recorded at or before ``t``). A source
alert fires from the evaluation at which its own replay fires up to the one at which it no longer does: a target
evaluated at the same time as a source sees the source's state after that evaluation, as when the source is
evaluated first (what the inhibition docs advise).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..state.decision import Decision, decide
from ..state.holds import Hold
from ..state.inhibition import InhibitRule, inhibited
from ..state.model import AlertState, Outcome, StateSettings
from ..state.silences import AlertLabels, Silence

if TYPE_CHECKING:
    from .core import Evaluation  # core imports this module; an evaluation is only read here

__all__ = [
    "HELD_BY",
    "Acknowledgement",
    "Acknowledgements",
    "Inhibitors",
    "SilenceWindows",
    "SourceFiring",
    "firing_of",
    "held_by",
    "reminder_kept_quiet",
]

HELD_BY = ("silence", "muted", "inhibited")
"""What can hold a notification the decision makes: a silence, the alert's time intervals, a firing source alert."""


def held_by(decision: Decision) -> str | None:
    """What holds ``decision``'s notification (one of :data:`HELD_BY`), or None when it is sent or there is none."""
    held = decision.suppressed_by
    if decision.event is None or held is None:
        return None
    return held.code if isinstance(held, Hold) else "silence"


class SilenceWindows:
    """The silences started and not ended at each time, for times given in order: each evaluation is then decided
    against the few silences around it, not every silence ever recorded."""

    def __init__(self, silences: Sequence[Silence]) -> None:
        self._waiting = sorted(silences, key=lambda s: s.starts_at)
        self._next = 0
        self._started: list[Silence] = []

    def started_by(self, now: dt.datetime) -> list[Silence]:
        """The silences started at or before ``now`` and ending after it."""
        while self._next < len(self._waiting) and self._waiting[self._next].starts_at <= now:
            self._started.append(self._waiting[self._next])
            self._next += 1
        self._started = [s for s in self._started if s.ends_at > now]
        return self._started


@dataclass(frozen=True)
class Acknowledgement:
    """``sqlsentinel ack`` as recorded: when, by whom and why."""

    at: dt.datetime
    by: str
    reason: str

    def apply(self, state: AlertState | None) -> AlertState | None:
        """``state`` acknowledged as :func:`..state.acks.acknowledge` acknowledges it: only while firing (else it
        is returned as it is), and told again at the next evaluation."""
        if state is None or state.condition != "firing":
            return state
        return state.evolve(
            acknowledged_by=self.by, acknowledged_reason=self.reason, acknowledged_at=self.at, ack_told=False
        )


class Acknowledgements:
    """The acknowledgements of one alert, applied in time order as its evaluations are decided (oldest first)."""

    def __init__(self, acks: Sequence[Acknowledgement]) -> None:
        self._waiting = sorted(acks, key=lambda a: a.at)
        self._next = 0

    def before(self, state: AlertState | None, now: dt.datetime) -> AlertState | None:
        """``state`` with every acknowledgement recorded before ``now`` (and not applied yet) applied in turn."""
        while self._next < len(self._waiting) and self._waiting[self._next].at < now:
            state = self._waiting[self._next].apply(state)
            self._next += 1
        return state


@dataclass(frozen=True)
class SourceFiring:
    """When an alert (or instance, or watched check) that may inhibit others was firing."""

    labels: AlertLabels
    intervals: tuple[tuple[dt.datetime, dt.datetime | None], ...]
    """From (included) to (excluded) each time it fired; the end is None when it still fires at the end."""


def firing_of(evaluations: Sequence[Evaluation], labels: AlertLabels, settings: StateSettings) -> SourceFiring:
    """When the alert ``labels`` names fired, deciding its ``evaluations`` (oldest first) from no remembered state
    under ``settings``, as a replay does. Silences, time intervals and inhibition hold notifications, never the
    condition, so none of them is applied."""
    bare = replace(settings, mute=(), active=(), inhibit=())
    state: AlertState | None = None
    intervals: list[tuple[dt.datetime, dt.datetime | None]] = []
    since: dt.datetime | None = None
    for evaluation in evaluations:
        outcome = Outcome(evaluation.status, evaluation.actual_value, error=evaluation.error)
        state = decide(state, outcome, labels=labels, silences=(), settings=bare, now=evaluation.at).state
        firing = state.condition == "firing"
        if firing and since is None:
            since = evaluation.at
        elif not firing and since is not None:
            intervals.append((since, evaluation.at))
            since = None
    if since is not None:
        intervals.append((since, None))
    return SourceFiring(labels, tuple(intervals))


class Inhibitors:
    """What inhibits a replayed alert at each time (given in order), from when its possible sources fired."""

    def __init__(self, sources: Sequence[SourceFiring]) -> None:
        spans = [(start, end, s.labels) for s in sources for start, end in s.intervals]
        self._waiting = sorted(spans, key=lambda span: span[0])
        self._next = 0
        self._firing: list[tuple[dt.datetime, dt.datetime | None, AlertLabels]] = []

    def hold(
        self, now: dt.datetime, rules: Sequence[InhibitRule], target: AlertLabels, upstream: Mapping[str, str]
    ) -> Hold | None:
        """The hold :func:`..state.inhibition.inhibited` gives ``target`` under ``rules`` at ``now``, against the
        sources firing then (``upstream``: the alerts on the target's upstream assets, for ``upstream`` rules)."""
        while self._next < len(self._waiting) and self._waiting[self._next][0] <= now:
            self._firing.append(self._waiting[self._next])
            self._next += 1
        self._firing = [span for span in self._firing if span[1] is None or span[1] > now]
        if not rules or not self._firing:
            return None
        return inhibited(rules, target, [labels for _, _, labels in self._firing], upstream)


def reminder_kept_quiet(
    previous: AlertState,
    outcome: Outcome,
    last_quiet: dt.datetime | None,
    *,
    labels: AlertLabels,
    silences: Sequence[Silence],
    settings: StateSettings,
    now: dt.datetime,
    inhibited: Hold | None,
) -> bool:
    """Whether the decision would have sent a reminder at ``now`` but for the acknowledgement of ``previous``: the
    same decision without it, counting the repeat interval from the last reminder it kept quiet (``last_quiet``)."""
    unacknowledged = previous.evolve(
        acknowledged_by=None,
        acknowledged_reason=None,
        acknowledged_at=None,
        ack_told=False,
        last_notified_at=last_quiet or previous.last_notified_at,
    )
    would = decide(
        unacknowledged, outcome, labels=labels, silences=silences, settings=settings, now=now, inhibited=inhibited
    )
    return would.event == "reminder" and would.notify
