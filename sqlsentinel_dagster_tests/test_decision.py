"""The decision function, table-driven: each scenario is a sequence of evaluations and what each must decide."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from sqlsentinel_dagster.state.decision import decide
from sqlsentinel_dagster.state.model import AlertState, Outcome, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels, Matcher, Silence, parse_matcher
from sqlsentinel_dagster.state.time_intervals import Span, TimeInterval, TimeIntervalSpec

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
LABELS = AlertLabels(name="orders_late", severity="critical", owners=("team:sales",), tags={"domain": "sales"})


@dataclass(frozen=True)
class Step:
    minute: int
    status: str
    expect: str  # "<code>" or "<code>:<event>" ; suppressed events read "suppressed:<event>"
    silenced_until: int | None = None  # a silence from minute 0 to this minute, matching the alert


def _silence(until_minute: int) -> Silence:
    return Silence(
        id="s1",
        matchers=(Matcher("alert", "=", "orders_late"),),
        starts_at=T0,
        ends_at=T0 + dt.timedelta(minutes=until_minute),
        author="ana",
        reason="deploy",
        created_at=T0,
    )


NOON_HALF_HOUR = TimeInterval("lunch_deploys", (TimeIntervalSpec(times=(Span(12 * 60, 12 * 60 + 30),)),))
"""12:00 to 12:30 UTC every day: T0 is 12:00."""
AFTER_HALF_PAST = TimeInterval("afternoon", (TimeIntervalSpec(times=(Span(12 * 60 + 30, 24 * 60),)),))

SCENARIOS: dict[str, tuple[StateSettings, list[Step]]] = {
    "first_ok_is_silent": (StateSettings(), [Step(0, "OK", "first_evaluation"), Step(5, "OK", "ok")]),
    "ok_to_alert_fires_once": (
        StateSettings(),
        [
            Step(0, "OK", "first_evaluation"),
            Step(5, "ALERT", "first_notification:firing"),
            Step(10, "ALERT", "already_firing"),
            Step(15, "ALERT", "already_firing"),
        ],
    ),
    "first_evaluation_alert_fires": (StateSettings(), [Step(0, "ALERT", "first_notification:firing")]),
    "reminder_after_repeat_interval": (
        StateSettings(repeat_interval=dt.timedelta(minutes=30)),
        [
            Step(0, "ALERT", "first_notification:firing"),
            Step(29, "ALERT", "already_firing"),
            Step(30, "ALERT", "repeat_interval_elapsed:reminder"),
            Step(45, "ALERT", "already_firing"),
            Step(60, "ALERT", "repeat_interval_elapsed:reminder"),
        ],
    ),
    "alert_to_ok_resolves": (
        StateSettings(),
        [Step(0, "ALERT", "first_notification:firing"), Step(5, "OK", "resolved:resolved"), Step(10, "OK", "ok")],
    ),
    "for_waits_for_consecutive_alerts": (
        StateSettings(for_count=3),
        [Step(0, "ALERT", "pending"), Step(5, "ALERT", "pending"), Step(10, "ALERT", "first_notification:firing")],
    ),
    "flapping_under_for_never_fires": (
        StateSettings(for_count=2),
        [
            Step(0, "ALERT", "pending"),
            Step(5, "OK", "pending_cleared"),
            Step(10, "ALERT", "pending"),
            Step(15, "OK", "pending_cleared"),
        ],
    ),
    "recover_after_waits_for_consecutive_oks": (
        StateSettings(recover_after=2),
        [
            Step(0, "ALERT", "first_notification:firing"),
            Step(5, "OK", "recovering"),
            Step(10, "ALERT", "already_firing"),
            Step(15, "OK", "recovering"),
            Step(20, "OK", "resolved:resolved"),
        ],
    ),
    "errors_notify_after_error_after_and_once": (
        StateSettings(error_after=2),
        [
            Step(0, "ERROR", "error_pending"),
            Step(5, "ERROR", "error:error"),
            Step(10, "ERROR", "error_already_notified"),
            Step(15, "OK", "ok"),
            Step(20, "ERROR", "error_pending"),
        ],
    ),
    "error_does_not_end_firing": (
        StateSettings(),
        [
            Step(0, "ALERT", "first_notification:firing"),
            Step(5, "ERROR", "error:error"),
            Step(10, "ALERT", "already_firing"),
            Step(15, "OK", "resolved:resolved"),
        ],
    ),
    "silence_suppresses_then_notifies_when_it_ends": (
        StateSettings(repeat_interval=dt.timedelta(hours=4)),
        [
            Step(0, "ALERT", "suppressed:firing", silenced_until=20),
            Step(5, "ALERT", "still_silenced", silenced_until=20),
            Step(25, "ALERT", "silence_ended:firing", silenced_until=20),
            Step(30, "ALERT", "already_firing"),
        ],
    ),
    "silence_during_firing_owes_a_reminder": (
        StateSettings(repeat_interval=dt.timedelta(minutes=10)),
        [
            Step(0, "ALERT", "first_notification:firing"),
            Step(10, "ALERT", "suppressed:reminder", silenced_until=15),
            Step(20, "ALERT", "silence_ended:reminder", silenced_until=15),
            Step(25, "ALERT", "already_firing"),
        ],
    ),
    "resolve_of_unnotified_firing_sends_nothing": (
        StateSettings(),
        [Step(0, "ALERT", "suppressed:firing", silenced_until=60), Step(5, "OK", "resolved_unnotified")],
    ),
    "silenced_resolve_is_suppressed": (
        StateSettings(),
        [Step(0, "ALERT", "first_notification:firing"), Step(5, "OK", "suppressed:resolved", silenced_until=60)],
    ),
    "expired_silence_does_not_suppress": (
        StateSettings(),
        [Step(30, "ALERT", "first_notification:firing", silenced_until=10)],
    ),
    "a_firing_due_inside_a_mute_is_held_and_sent_once_after_it": (
        StateSettings(mute=(NOON_HALF_HOUR,)),
        [
            Step(0, "ALERT", "muted:firing"),
            Step(10, "ALERT", "still_muted"),
            Step(30, "ALERT", "silence_ended:firing"),
            Step(35, "ALERT", "already_firing"),
        ],
    ),
    "an_alert_that_fires_and_resolves_inside_a_mute_sends_nothing": (
        StateSettings(mute=(NOON_HALF_HOUR,)),
        [Step(0, "ALERT", "muted:firing"), Step(10, "OK", "resolved_unnotified"), Step(35, "OK", "ok")],
    ),
    "outside_its_active_intervals_an_alert_is_held_until_one_starts": (
        StateSettings(active=(AFTER_HALF_PAST,)),
        [Step(0, "ALERT", "muted:firing"), Step(29, "ALERT", "still_muted"), Step(30, "ALERT", "silence_ended:firing")],
    ),
    "min_interval_holds_a_flapping_alerts_second_firing": (
        StateSettings(min_interval=dt.timedelta(minutes=30)),
        [
            Step(0, "ALERT", "first_notification:firing"),
            Step(5, "OK", "resolved:resolved"),
            Step(10, "ALERT", "held_min_interval"),
            Step(20, "ALERT", "still_held"),
            Step(30, "ALERT", "min_interval_elapsed:firing"),
            Step(35, "ALERT", "already_firing"),
        ],
    ),
    "min_interval_held_firing_that_resolves_sends_nothing": (
        StateSettings(min_interval=dt.timedelta(minutes=30)),
        [
            Step(0, "ALERT", "first_notification:firing"),
            Step(5, "OK", "resolved:resolved"),
            Step(10, "ALERT", "held_min_interval"),
            Step(15, "OK", "resolved_unnotified"),
            Step(40, "ALERT", "first_notification:firing"),
        ],
    ),
    "min_interval_counts_from_the_last_firing_not_the_reminders": (
        StateSettings(repeat_interval=dt.timedelta(minutes=10), min_interval=dt.timedelta(minutes=25)),
        [
            Step(0, "ALERT", "first_notification:firing"),
            Step(10, "ALERT", "repeat_interval_elapsed:reminder"),
            Step(20, "OK", "resolved:resolved"),
            Step(26, "ALERT", "first_notification:firing"),
        ],
    ),
    "min_interval_release_inside_a_silence_is_owed": (
        StateSettings(min_interval=dt.timedelta(minutes=30)),
        [
            Step(0, "ALERT", "first_notification:firing"),
            Step(5, "OK", "resolved:resolved"),
            Step(10, "ALERT", "held_min_interval"),
            Step(30, "ALERT", "suppressed:firing", silenced_until=40),
            Step(45, "ALERT", "silence_ended:firing"),
        ],
    ),
}


@pytest.mark.parametrize(("settings", "steps"), SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenario(settings: StateSettings, steps: list[Step]) -> None:
    """Each evaluation in the scenario yields the named reason and event listed for it."""
    state: AlertState | None = None
    got, want = [], []
    for step in steps:
        outcome = Outcome(status=step.status, error="boom" if step.status == "ERROR" else None)  # type: ignore[arg-type]
        silences = [_silence(step.silenced_until)] if step.silenced_until is not None else []
        now = T0 + dt.timedelta(minutes=step.minute)
        decision = decide(state, outcome, labels=LABELS, silences=silences, settings=settings, now=now)
        label = decision.code if decision.event is None else f"{decision.code}:{decision.event}"
        got.append(f"{step.minute}:{step.status}->{label}")
        want.append(f"{step.minute}:{step.status}->{step.expect}")
        state = decision.state
    assert got == want


class TestCounters:
    def test_state_counts_streaks_times_and_notifications(self) -> None:
        """Counters, since, first fired and last notified are kept as the old tool did."""
        settings = StateSettings()
        state = None
        for minute, status in [(0, "OK"), (5, "ALERT"), (10, "ALERT"), (15, "ERROR")]:
            now = T0 + dt.timedelta(minutes=minute)
            outcome = Outcome(status=status, actual_value=minute, error="x" if status == "ERROR" else None)  # type: ignore[arg-type]
            state = decide(state, outcome, labels=LABELS, silences=[], settings=settings, now=now).state
        assert state is not None
        assert (state.consecutive_alerts, state.consecutive_oks, state.consecutive_errors) == (2, 0, 1)
        assert state.first_fired_at == T0 + dt.timedelta(minutes=5) == state.last_notified_at
        assert state.since == T0 + dt.timedelta(minutes=15) and state.last_status == "ERROR"
        assert state.notification_count == 2 and state.evaluation_count == 4
        assert state.last_value == 10 and state.last_error == "x" and state.condition == "firing"

    def test_suppressed_reason_names_author_end_and_reason(self) -> None:
        """A suppressed decision says who silenced it, until when and why."""
        decision = decide(
            None, Outcome("ALERT"), labels=LABELS, silences=[_silence(60)], settings=StateSettings(), now=T0
        )
        assert decision.reason == "suppressed firing: silenced by ana until 2026-01-01T13:00:00+00:00: deploy"
        assert not decision.notify and decision.suppressed_by is not None


class TestSilences:
    @pytest.mark.parametrize(
        ("matcher", "matches"),
        [
            ("alert=orders_late", True),
            ("alert=orders", False),
            ("alert~orders_*", True),
            ("alert=~orders_(late|early)", True),
            ("alert=~orders", False),  # regex must match the whole value
            ("severity=critical", True),
            ("owner=team:sales", True),
            ("domain=sales", True),
            ("tag:domain~sa*", True),
            ("domain=finance", False),
            ("missing_tag=x", False),
        ],
    )
    def test_matchers(self, matcher: str, matches: bool) -> None:
        """Exact, glob and regex matchers on name, severity, owners and tags."""
        assert parse_matcher(matcher).matches(LABELS) is matches

    @pytest.mark.parametrize("text", ["alert", "=x", "alert=", "alert=~(", "bad key=x"])
    def test_invalid_matchers_say_what_is_allowed(self, text: str) -> None:
        """A malformed matcher is refused with the accepted forms."""
        with pytest.raises(ValueError, match="invalid"):
            parse_matcher(text)

    def test_state_is_derived_from_start_end_and_now(self) -> None:
        """pending before the start, active until the end, expired after."""
        silence = _silence(30)
        assert silence.state(T0 - dt.timedelta(seconds=1)) == "pending"
        assert silence.state(T0) == "active" and silence.state(T0 + dt.timedelta(minutes=29)) == "active"
        assert silence.state(T0 + dt.timedelta(minutes=30)) == "expired"
