"""The dedupe / reminder / resolve / silence decision: a pure function of (state, outcome, silences, settings, now).
Time intervals (``mute_time_intervals``, ``active_time_intervals``, in ``settings``) hold notifications as a silence
does, recorded as ``muted``.

It returns the next state, the event to notify (if any), whether it is delivered or suppressed, and a named
reason that is logged and shown on the run. :func:`decide_gone` is the same decision for what no evaluation can
say: the watched thing no longer exists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .holds import Hold
from .model import AlertState, Event, Outcome, StateSettings
from .silences import AlertLabels, Silence
from .time_intervals import muted

__all__ = ["Decision", "already_evaluated", "decide", "decide_gone"]


@dataclass(frozen=True)
class Decision:
    """What to do after one evaluation."""

    state: AlertState
    """The state to store."""
    code: str
    """A stable name for the reason, e.g. ``first_notification``, ``repeat_interval_elapsed``, ``suppressed``."""
    reason: str
    """The reason in words, shown on the run."""
    event: Event | None = None
    """The notification this evaluation creates, if any."""
    suppressed_by: Silence | Hold | None = None
    """The silence, or the time intervals' mute, that holds ``event``; it is then recorded but not sent."""
    held: Mapping[str, str] = field(default_factory=dict)
    """Channels not sent ``event``, each with why: their own time intervals hold it (see :mod:`.channel_holds`)."""
    released: tuple[str, ...] = ()
    """Channels owed this episode's firing whose time intervals no longer hold it: they are sent it now."""

    @property
    def notify(self) -> bool:
        """Whether ``event`` is to be sent."""
        return self.event is not None and self.suppressed_by is None


def decide(
    previous: AlertState | None,
    outcome: Outcome,
    *,
    labels: AlertLabels,
    silences: Sequence[Silence],
    settings: StateSettings,
    now: dt.datetime,
    inhibited: Hold | None = None,
) -> Decision:
    """Decide what ``outcome`` means for the alert given what was remembered, the silences, what inhibits it
    (``inhibited``, from :func:`.inhibition.inhibited`) and ``now``."""
    state = previous or AlertState(alert=labels.name)
    silence = _holding(silences, labels, settings, now) or inhibited
    state = _record(state, outcome, now)
    if outcome.status == "ERROR":
        decision = _on_error(state, settings)
    elif outcome.status == "ALERT":
        decision = _on_alert(state, settings, now, silence)
    else:
        decision = _on_ok(state, settings, first=previous is None)
    return _apply_silence(decision, silence, now)


def _holding(
    silences: Sequence[Silence], labels: AlertLabels, settings: StateSettings, now: dt.datetime
) -> Silence | Hold | None:
    """What holds the alert's notifications at ``now``: an active silence matching it, else its time intervals'
    mute (:func:`.time_intervals.muted`), else nothing."""
    silence = next((s for s in silences if s.state(now) == "active" and s.matches(labels)), None)
    return silence if silence is not None else muted(settings.mute, settings.active, now)


def already_evaluated(state: AlertState, tick: str) -> Decision:
    """The decision for a run of a schedule tick that ``state`` was already evaluated for (a retried or repeated
    run): nothing changes, nothing is notified."""
    return Decision(state, "already_evaluated", f"already evaluated for the tick of {tick}: not evaluated again")


def decide_gone(
    previous: AlertState, *, labels: AlertLabels, silences: Sequence[Silence], now: dt.datetime, why: str
) -> Decision:
    """Decide what it means that the watched thing of ``previous`` no longer exists (``why`` says how that is
    known): a notified firing episode resolves (``gone``, a ``resolved`` event, suppressed by an active silence as
    any resolved notice is); one never notified ends quietly (``gone_unnotified``). Either way the state is
    inactive with no streak counted, so it never reminds, and a later evaluation starts a new episode."""
    silence = next((s for s in silences if s.state(now) == "active" and s.matches(labels)), None)
    ended = previous.evolve(
        condition="inactive",
        firing_since=None,
        episode_notified=False,
        episode_suppressed=False,
        held_until=None,
        consecutive_alerts=0,
        consecutive_oks=0,
        evaluation_count=previous.evaluation_count + 1,
        last_evaluated_at=now,
    )
    if previous.condition != "firing":
        return Decision(ended, "gone_unnotified", f"gone ({why}): it was not firing, nothing to resolve")
    if not previous.episode_notified:
        return Decision(ended, "gone_unnotified", f"gone ({why}): firing was never notified, nothing to resolve")
    return _apply_silence(Decision(ended, "gone", f"resolved: gone ({why})", "resolved"), silence, now)


def _record(state: AlertState, outcome: Outcome, now: dt.datetime) -> AlertState:
    changed = state.last_status != outcome.status
    counters = {
        "ALERT": dict(consecutive_alerts=state.consecutive_alerts + 1, consecutive_oks=0, consecutive_errors=0),
        "OK": dict(consecutive_alerts=0, consecutive_oks=state.consecutive_oks + 1, consecutive_errors=0),
        "ERROR": dict(consecutive_errors=state.consecutive_errors + 1),
    }[outcome.status]
    return state.evolve(
        last_status=outcome.status,
        since=now if changed else state.since,
        evaluation_count=state.evaluation_count + 1,
        last_evaluated_at=now,
        last_value=outcome.actual_value if outcome.status != "ERROR" else state.last_value,
        last_error=outcome.error if outcome.status == "ERROR" else None,
        error_notified=state.error_notified if outcome.status == "ERROR" else False,
        **counters,
    )


def _on_error(state: AlertState, settings: StateSettings) -> Decision:
    count, needed = state.consecutive_errors, settings.error_after
    if state.error_notified:
        return Decision(state, "error_already_notified", f"error: already notified ({count} consecutive errors)")
    if count < needed:
        return Decision(state, "error_pending", f"error: {count} of {needed} consecutive errors before notifying")
    return Decision(
        state.evolve(error_notified=True), "error", f"error: notifying after {count} consecutive error(s)", "error"
    )


def _on_alert(state: AlertState, settings: StateSettings, now: dt.datetime, silence: Silence | Hold | None) -> Decision:
    if state.condition != "firing":
        count, needed = state.consecutive_alerts, settings.for_count
        if count < needed:
            return Decision(state.evolve(condition="pending"), "pending", f"pending: ALERT {count} of {needed}")
        fired = state.evolve(
            condition="firing",
            firing_since=now,
            first_fired_at=state.first_fired_at or now,
            episode_notified=False,
            episode_suppressed=False,
        )
        held = _held_until(state, settings, now)
        if held is not None:
            until = held.isoformat(timespec="seconds")
            reason = f"firing held: the last firing notification is younger than min_interval; sent at {until} if "
            reason += "still firing"
            return Decision(fired.evolve(held_until=held), "held_min_interval", reason)
        return Decision(fired, "first_notification", "firing: first notification", "firing")
    if state.held_until is not None:
        if now < state.held_until:
            until = state.held_until.isoformat(timespec="seconds")
            return Decision(state, "still_held", f"firing: held by min_interval until {until}")
        released = state.evolve(held_until=None)
        return Decision(released, "min_interval_elapsed", "firing: min_interval elapsed, still firing", "firing")
    if state.episode_suppressed and silence is None:
        event: Event = "reminder" if state.episode_notified else "firing"
        return Decision(state, "silence_ended", f"{event}: what held it ended while still firing", event)
    if isinstance(silence, Hold) and state.episode_suppressed:
        return Decision(state, f"still_{silence.code}", f"firing: still held, {silence.describe()}")
    if state.episode_suppressed:
        return Decision(state, "still_silenced", "firing: still silenced")
    if state.acknowledged_by is not None:
        who = f"acknowledged by {state.acknowledged_by}: {state.acknowledged_reason}"
        if not state.ack_told:  # passed on once (PagerDuty's acknowledge): no other channel takes it
            return Decision(state.evolve(ack_told=True), "acknowledged", who, "acknowledged")
        return Decision(state, "acknowledged_quiet", f"firing: {who}; no reminders until it resolves")
    interval = settings.repeat_interval
    if interval is None:
        return Decision(state, "already_firing", "firing: already notified; no repeat interval set")
    last = state.last_notified_at or state.firing_since or now
    if now - last >= interval:
        return Decision(state, "repeat_interval_elapsed", "reminder: repeat interval elapsed", "reminder")
    next_at = (last + interval).isoformat(timespec="seconds")
    return Decision(state, "already_firing", f"firing: already notified; next reminder after {next_at}")


def _held_until(state: AlertState, settings: StateSettings, now: dt.datetime) -> dt.datetime | None:
    """When a new firing notification may go out, if ``min_interval`` holds it now (the last one is too young)."""
    last, interval = state.last_firing_at, settings.min_interval
    if interval is None or last is None or now - last >= interval:
        return None
    return last + interval


def _on_ok(state: AlertState, settings: StateSettings, *, first: bool) -> Decision:
    if state.condition == "pending":
        return Decision(state.evolve(condition="inactive"), "pending_cleared", "ok: recovered before firing")
    if state.condition == "inactive":
        return Decision(state, "first_evaluation" if first else "ok", "ok: first evaluation" if first else "ok")
    count, needed = state.consecutive_oks, settings.recover_after
    if count < needed:
        return Decision(state, "recovering", f"recovering: OK {count} of {needed}")
    resolved = state.evolve(
        condition="inactive", firing_since=None, episode_notified=False, episode_suppressed=False, held_until=None
    )
    resolved = resolved.evolve(acknowledged_by=None, acknowledged_reason=None, acknowledged_at=None, ack_told=False)
    if not state.episode_notified:
        return Decision(resolved, "resolved_unnotified", "resolved: firing was never notified, nothing to resolve")
    acked = f" (acknowledged by {state.acknowledged_by})" if state.acknowledged_by else ""
    return Decision(resolved, "resolved", f"resolved{acked}", "resolved")


def _apply_silence(decision: Decision, silence: Silence | Hold | None, now: dt.datetime) -> Decision:
    state, event = decision.state, decision.event
    if event is None:
        return decision
    if silence is not None:
        owed = event in ("firing", "reminder") and state.condition == "firing"
        held = silence.code if isinstance(silence, Hold) else "suppressed"
        return Decision(
            state.evolve(episode_suppressed=owed or state.episode_suppressed),
            held,
            f"{held} {event}: {silence.describe()}",
            event,
            silence,
        )
    if event in ("firing", "reminder"):
        state = state.evolve(episode_notified=True, episode_suppressed=False, last_notified_at=now)
    if event == "firing":
        state = state.evolve(last_firing_at=now)
    return Decision(
        state.evolve(notification_count=state.notification_count + 1), decision.code, decision.reason, event
    )
