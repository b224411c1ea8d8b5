"""Replay: recorded evaluations through the real decision under current and proposed settings, the timeline, the
``sqlsentinel replay`` command on real state databases, and the ``sqlsentinel_replay`` job after real runs."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.definitions import replay_job
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.replay import (
    AlertReplay,
    Changes,
    Comparison,
    Evaluation,
    ReplayRun,
    compare,
    find_incidents,
    parse_period,
    timeline,
)
from sqlsentinel_dagster.state import admin
from sqlsentinel_dagster.state.configs import remember
from sqlsentinel_dagster.state.history import evaluations_between, first_evaluated_at, history_stats
from sqlsentinel_dagster.state.model import Outcome, OutcomeStatus, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels, Silence, parse_matcher
from sqlsentinel_dagster.state.store import StateStore

from .conftest import alerts_yaml

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=5)
STATUS: dict[str, OutcomeStatus] = {"A": "ALERT", "O": "OK", "E": "ERROR"}
LABELS = AlertLabels("orders_late", "critical", ("team:sales",), {"domain": "sales"})


def history(marks: str, start: dt.datetime = T0) -> list[Evaluation]:
    """One evaluation every 5 minutes from ``start``: A for ALERT, O for OK, E for ERROR."""
    return [Evaluation(start + i * STEP, STATUS[mark]) for i, mark in enumerate(marks)]


def at(index: int) -> dt.datetime:
    """The time of the evaluation at ``index`` of :func:`history`."""
    return T0 + index * STEP


def silence(first: int, end: int, matcher: str = "alert=orders_late") -> Silence:
    """A silence active from evaluation ``first`` up to (not including) evaluation ``end``."""
    return Silence("s1", (parse_matcher(matcher),), at(first), at(end), "ana", "deploy", at(first))


def settings(**values: Any) -> StateSettings:
    """StateSettings with ``repeat_interval`` given in minutes."""
    minutes = values.pop("repeat_interval", None)
    return StateSettings(repeat_interval=dt.timedelta(minutes=minutes) if minutes else None, **values)


def counts(side: Any) -> tuple[int, int, int, int, int]:
    """(firing, reminder, resolved, error, suppressed) of one side of a comparison."""
    n = side.notifications
    return n["firing"], n["reminder"], n["resolved"], n["error"], side.suppressed


def replayed(marks: str, current: StateSettings, proposed: StateSettings, silences: list[Silence]) -> Comparison:
    return compare(history(marks), labels=LABELS, silences=silences, current=current, proposed=proposed)


class TestFindIncidents:
    def test_an_incident_runs_from_an_alert_to_the_next_ok_through_errors(self) -> None:
        """ALERTs separated by ERRORs are one incident; an OK ends it; one still open at the end has no end."""
        found = find_incidents(history("OAAEAOEEOAEA"))
        assert [(i.first, i.end, i.ended_at) for i in found] == [(1, 5, at(5)), (9, 12, None)]

    def test_errors_alone_make_no_incident(self) -> None:
        """A history of OKs and ERRORs has no incident."""
        assert find_incidents(history("OEEOE")) == []


# (history, current settings, proposed settings, silences, current counts, proposed counts), counts being
# (firing, reminder, resolved, error, suppressed).
CASES = [
    pytest.param(
        "OOAOAAOAAAOOAOAAAAOO", settings(), settings(for_count=3), [], (5, 0, 5, 0, 0), (2, 0, 2, 0, 0),
        id="flapping: for 1 fires on every blip, for 3 only on the two runs of 3+ ALERTs",
    ),
    pytest.param(
        "O" + "A" * 96 + "O", settings(repeat_interval=60), settings(repeat_interval=240), [],
        (1, 7, 1, 0, 0), (1, 1, 1, 0, 0),
        id="long incident of 8h: a reminder every hour is 7, every 4 hours 1",
    ),
    pytest.param(
        "OAAAAAO", settings(repeat_interval=60), settings(), [], (1, 0, 1, 0, 0), (1, 0, 1, 0, 0),
        id="incident shorter than the repeat interval: no reminder either way",
    ),
    pytest.param(
        "OEOEEOEEEOO", settings(), settings(error_after=3), [], (0, 0, 0, 3, 0), (0, 0, 0, 1, 0),
        id="error bursts of 1, 2, 3: error_after 1 notifies each, error_after 3 only the third",
    ),
    pytest.param(
        "OEOEEOEEEOO", settings(), settings(error_after=2), [], (0, 0, 0, 3, 0), (0, 0, 0, 2, 0),
        id="error bursts of 1, 2, 3: error_after 2 notifies two",
    ),
    pytest.param(
        "OAAEAAO", settings(), settings(for_count=3), [], (1, 0, 1, 1, 0), (1, 0, 1, 1, 0),
        id="an error inside an incident neither resolves it nor resets the ALERT count",
    ),
    pytest.param(
        "OAAOAOOO", settings(), settings(recover_after=2), [], (2, 0, 2, 0, 0), (1, 0, 1, 0, 0),
        id="recover_after 2 rides out a single OK between two incidents",
    ),
    pytest.param(
        "OAAAAAAO", settings(), settings(for_count=3), [silence(2, 4)], (1, 0, 1, 0, 0), (1, 0, 1, 0, 1),
        id="silence in the middle: for 1 fired before it; for 3 fires inside it, suppressed, sent when it ends",
    ),
    pytest.param(
        "OAAAAAAO", settings(repeat_interval=10), settings(repeat_interval=10, for_count=3), [silence(2, 4)],
        (1, 2, 1, 0, 1), (1, 1, 1, 0, 1),
        id="silence in the middle: a reminder due inside it is suppressed and sent when it ends",
    ),
    pytest.param(
        "OAAAO", settings(), settings(for_count=2), [silence(0, 6)], (0, 0, 0, 0, 1), (0, 0, 0, 0, 1),
        id="an incident silenced from start to end notifies nobody, resolved included",
    ),
    pytest.param(
        "OAAO", settings(), settings(), [silence(0, 6, "alert=other")], (1, 0, 1, 0, 0), (1, 0, 1, 0, 0),
        id="a silence of another alert changes nothing",
    ),
    pytest.param(
        "OAAO", settings(), settings(), [silence(0, 6, "domain=sales")], (0, 0, 0, 0, 1), (0, 0, 0, 0, 1),
        id="a silence matching the alert's tag applies",
    ),
]  # fmt: skip


class TestCompare:
    @pytest.mark.parametrize(
        ("marks", "current", "proposed", "silences", "expected_current", "expected_proposed"), CASES
    )
    def test_notifications_by_event_under_each_setting(
        self,
        marks: str,
        current: StateSettings,
        proposed: StateSettings,
        silences: list[Silence],
        expected_current: tuple[int, ...],
        expected_proposed: tuple[int, ...],
    ) -> None:
        """Each synthetic history notifies exactly the expected counts under each setting, and the difference."""
        comparison = replayed(marks, current, proposed, silences)
        assert counts(comparison.current) == expected_current
        assert counts(comparison.proposed) == expected_proposed
        events = ("firing", "reminder", "resolved", "error")
        assert comparison.difference == {
            e: p - c for e, c, p in zip(events, expected_current, expected_proposed[:4], strict=False)
        }
        assert comparison.change == sum(expected_proposed[:4]) - sum(expected_current[:4])

    def test_evaluations_out_of_order_are_refused(self) -> None:
        """Evaluations must come oldest first: otherwise a ValueError names the first one out of order."""
        evaluations = [*history("OA"), Evaluation(T0 - STEP, "OK")]
        with pytest.raises(ValueError, match="evaluations must be oldest first: #2 at 2026-03-01T07:55:00"):
            compare(evaluations, labels=LABELS, silences=[], current=settings(), proposed=settings())

    def test_identical_settings_make_no_difference(self) -> None:
        """The same settings on both sides: every difference is 0 and nothing is missed."""
        comparison = replayed("OOAOAAOAAAOOAOAAAAOO", settings(), settings(), [])
        assert comparison.difference == dict.fromkeys(("firing", "reminder", "resolved", "error"), 0)
        assert comparison.missed == []


class TestIncidentReplays:
    def test_a_larger_for_delays_firing_and_misses_short_incidents(self) -> None:
        """for 3: the incidents of 3+ ALERTs fire 10 minutes late; the three shorter ones are missed."""
        comparison = replayed("OOAOAAOAAAOOAOAAAAOO", settings(), settings(for_count=3), [])
        assert [(i.delay, i.resolved_at) for i in comparison.current.incidents] == [
            (dt.timedelta(0), at(3)),
            (dt.timedelta(0), at(6)),
            (dt.timedelta(0), at(10)),
            (dt.timedelta(0), at(13)),
            (dt.timedelta(0), at(18)),
        ]
        proposed = comparison.proposed.incidents
        assert [i.missed for i in proposed] == [True, True, False, True, False]
        assert [(i.fired_at, i.delay, i.resolved_at) for i in proposed if not i.missed] == [
            (at(9), dt.timedelta(minutes=10), at(10)),
            (at(16), dt.timedelta(minutes=10), at(18)),
        ]
        assert [i.started_at for i in comparison.missed] == [at(2), at(4), at(12)]

    def test_a_proposed_min_interval_holds_a_flapping_alerts_refirings(self) -> None:
        """A flapping alert every 5 minutes (five incidents): with min_interval 30m the firings at minutes 0 and 30
        go out, those at 10 and 20 are held and resolve unsent, and the one at 40 is held and sent at 60, still
        firing then; each sent firing gets its resolved notice."""
        marks = "AOAOAOAOAAAAAOO"
        comparison = replayed(marks, settings(), StateSettings(min_interval=dt.timedelta(minutes=30)), [])
        assert counts(comparison.current)[:3] == (5, 0, 5)
        assert counts(comparison.proposed)[:3] == (3, 0, 3)

    def test_a_missed_incident_has_no_firing_and_no_resolution(self) -> None:
        """A missed incident has neither fired_at, delay nor resolved_at."""
        missed = replayed("OAAO", settings(), settings(for_count=3), []).proposed.incidents[0]
        assert (missed.missed, missed.fired_at, missed.delay, missed.resolved_at) == (True, None, None, None)

    def test_an_error_in_the_incident_delays_firing_without_ending_it(self) -> None:
        """for 3 over ALERT, ALERT, ERROR, ALERT fires at the third ALERT, 15 minutes after the start."""
        comparison = replayed("OAAEAAO", settings(), settings(for_count=3), [])
        assert [i.delay for i in comparison.proposed.incidents] == [dt.timedelta(minutes=15)]
        assert comparison.proposed.incidents[0].resolved_at == at(6)

    def test_recover_after_resolves_both_incidents_at_the_second_ok(self) -> None:
        """recover_after 2: the first incident is still firing when the second starts (delay 0), both resolve at
        the second OK in a row."""
        incidents = replayed("OAAOAOOO", settings(), settings(recover_after=2), []).proposed.incidents
        assert [(i.fired_at, i.delay, i.resolved_at) for i in incidents] == [
            (at(1), dt.timedelta(0), at(6)),
            (at(4), dt.timedelta(0), at(6)),
        ]

    def test_a_firing_inside_a_silence_is_marked_suppressed(self) -> None:
        """for 3 fires inside the silence (suppressed); for 1 fired before it (not suppressed)."""
        comparison = replayed("OAAAAAAO", settings(), settings(for_count=3), [silence(2, 4)])
        assert [(i.fired_at, i.suppressed) for i in comparison.current.incidents] == [(at(1), False)]
        assert [(i.fired_at, i.suppressed) for i in comparison.proposed.incidents] == [(at(3), True)]
        assert comparison.proposed.marks == "...sF--R"  # pending, suppressed at 3, the owed firing when it ends

    def test_an_incident_open_at_the_end_has_no_end_and_no_resolution(self) -> None:
        """An incident still ALERT at the last evaluation: ended_at and resolved_at are None."""
        incident = replayed("OAAA", settings(), settings(), []).current.incidents[0]
        assert (incident.incident.ended_at, incident.fired_at, incident.resolved_at) == (None, at(1), None)


class TestTimeline:
    def test_one_column_per_evaluation_with_blank_columns_after_the_history(self) -> None:
        """12 columns of 5 minutes over an hour: each evaluation has its column; nothing recorded is blank."""
        evaluations = history("OAAEOO")
        comparison = compare(
            evaluations, labels=LABELS, silences=[], current=settings(), proposed=settings(for_count=3)
        )
        lines = timeline(evaluations, comparison, T0, T0 + dt.timedelta(hours=1), width=12)
        assert lines[1:4] == [
            "history   |.AAE..      |",
            "current   |.F-ER.      |",
            "proposed  |...E..      |",
        ]
        assert lines[0] == " " * 11 + "2026-03-01 08:00" + "2026-03-01 09:00 UTC".rjust(12 - 16 + 1)
        assert lines[4].startswith("one column: 5m; history: A alert")
        assert len(lines) == 6 and lines[5].startswith("current/proposed: F firing, R resolved")

    def test_a_column_shows_its_most_important_evaluation(self) -> None:
        """With 20-minute columns: A over E over OK; F over R, E, r, s, -, and quiet."""
        evaluations = history("OAAEOO")
        comparison = compare(
            evaluations, labels=LABELS, silences=[], current=settings(), proposed=settings(for_count=3)
        )
        lines = timeline(evaluations, comparison, T0, T0 + dt.timedelta(hours=1), width=3)
        assert lines[1:4] == ["history   |A. |", "current   |FR |", "proposed  |E. |"]
        assert lines[4].startswith("one column: 20m;")

    def test_every_row_has_the_width_of_the_timeline(self) -> None:
        """Rows are 60 columns by default, whatever the length of the history."""
        evaluations = history("OA" * 500)
        comparison = compare(evaluations, labels=LABELS, silences=[], current=settings(), proposed=settings())
        lines = timeline(evaluations, comparison, T0, evaluations[-1].at)
        assert {len(line) for line in lines[:4]} == {72}


class TestOptions:
    def test_changes_replace_only_what_is_given(self) -> None:
        """Options replace their setting; 'none' turns reminders off; a duration sets the interval."""
        base = settings(repeat_interval=60, for_count=2)
        assert Changes.parse(for_count=3).apply(base) == settings(repeat_interval=60, for_count=3)
        assert Changes.parse(repeat_interval="none").apply(base) == settings(for_count=2)
        assert Changes.parse(repeat_interval="4h").apply(base) == settings(repeat_interval=240, for_count=2)
        assert not Changes.parse().any and Changes.parse(error_after=2).any

    def test_bad_options_name_every_problem(self) -> None:
        """A streak out of range and a bad interval are both reported."""
        with pytest.raises(ValueError, match=r"for must be from 1 to 1000, got 0; repeat_interval: invalid dur"):
            Changes.parse(for_count=0, repeat_interval="soon")

    def test_the_period_is_days_back_a_duration_back_or_from_a_date(self) -> None:
        """--days N, --since 7d and --since an ISO time all give the start; both at once is refused."""
        now = T0
        assert parse_period(now) == now - dt.timedelta(days=30)
        assert parse_period(now, days=3) == now - dt.timedelta(days=3)
        assert parse_period(now, since="7d") == now - dt.timedelta(days=7)
        assert parse_period(now, since="2026-02-20T00:00+00:00") == dt.datetime(2026, 2, 20, tzinfo=dt.UTC)
        with pytest.raises(ValueError, match="not both"):
            parse_period(now, days=3, since="7d")
        with pytest.raises(ValueError, match="neither a duration"):
            parse_period(now, since="last week")
        with pytest.raises(ValueError, match="not in the past"):
            parse_period(now, since="2027-01-01T00:00+00:00")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def record(store: StateStore, clock: FakeClock, marks: str, labels: AlertLabels = LABELS) -> None:
    """Record one evaluation every 5 minutes through the real store, moving the clock."""
    for mark in marks:
        store.record(labels, Outcome(STATUS[mark]), StateSettings(), {}, {}, None)
        clock.now += STEP


class TestReadingHistory:
    def test_evaluations_come_oldest_first_within_the_period(self, state_url: str) -> None:
        """Only the period's evaluations, oldest first; the earliest recorded one is known."""
        clock = FakeClock(T0)
        store = StateStore.from_url(state_url, clock)
        record(store, clock, "OAEO")
        rows, cut = evaluations_between(store, "orders_late", at(1), at(2))
        assert [(r["evaluated_at"], r["status"]) for r in rows] == [(at(1), "ALERT"), (at(2), "ERROR")]
        assert not cut and first_evaluated_at(store, "orders_late") == T0
        assert first_evaluated_at(store, "other") is None
        store.engine.dispose()

    def test_more_than_the_limit_keeps_the_newest(self, state_url: str) -> None:
        """Past the limit, the newest evaluations are returned and the cut is reported."""
        clock = FakeClock(T0)
        store = StateStore.from_url(state_url, clock)
        record(store, clock, "OAEOA")
        rows, cut = evaluations_between(store, "orders_late", T0, at(10), limit=2)
        assert cut and [r["status"] for r in rows] == ["OK", "ALERT"]
        store.engine.dispose()

    def test_values_and_errors_are_read_cut_at_200_characters(self, state_url: str) -> None:
        """A long error or value is read cut: replay never needs more, and 200,000 rows stay small."""
        clock = FakeClock(T0)
        store = StateStore.from_url(state_url, clock)
        store.record(LABELS, Outcome("ERROR", error="e" * 5_000), StateSettings(), {}, {}, None)
        clock.now += STEP
        store.record(LABELS, Outcome("ALERT", actual_value="v" * 5_000), StateSettings(), {}, {}, None)
        rows, _ = evaluations_between(store, "orders_late", T0, at(1))
        assert [(r["error"], r["actual_value"]) for r in rows] == [("e" * 200, None), (None, "v" * 200)]
        store.engine.dispose()


WriteAlerts = Callable[..., Path]
FILE = """
database: {url: "sqlite:///warehouse.db"}
alerts:
  - name: orders_late
    severity: critical
    owners: ["team:sales"]
    tags: {domain: sales}
    query: "SELECT 'OK' AS status"
    schedule: "*/5 * * * *"
    %s
  - name: quiet
    query: "SELECT 'OK' AS status"
    schedule: "*/5 * * * *"
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", *args])


class TestReplayCommand:
    @pytest.fixture
    def start(self) -> dt.datetime:
        """Two days ago, on a whole minute: where the recorded history starts."""
        return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(days=2)

    @pytest.fixture
    def state(self, tmp_path: Path, start: dt.datetime) -> str:
        """A SQLite state database written by the real store: a flapping alert, with a silence over one blip."""
        url = f"sqlite:///{tmp_path / 'state.db'}"
        clock = FakeClock(start)
        store = StateStore.from_url(url, clock)
        record(store, clock, "OOAOAAOAAAOO")
        admin.add_silence(store, [parse_matcher("alert=orders_late")], ends_at=clock.now + STEP, author="a", reason="r")
        record(store, clock, "AOAAAAOO")
        record(store, clock, "OOOO", AlertLabels("quiet"))
        return url

    @pytest.fixture
    def alerts(self, write_alerts: WriteAlerts) -> Path:
        return write_alerts(FILE % "for: 1")

    def test_one_alert_current_against_options_as_json(self, state: str, alerts: Path, start: dt.datetime) -> None:
        """--json has the stable keys; the counts are the replay of what was recorded, the silence applied."""
        result = invoke("orders_late", "--file", str(alerts), "--for", "3", "--database-url", state, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert list(data) == [
            "alert", "period", "settings", "evaluations", "current", "proposed", "difference", "missed", "timeline",
            "notes",
        ]  # fmt: skip
        assert data["settings"]["proposed"] == {
            "for": 3,
            "recover_after": 1,
            "error_after": 1,
            "repeat_interval_seconds": None,
            "min_interval_seconds": None,
            "mute_time_intervals": [],
            "active_time_intervals": [],
            "baseline": None,
        }
        # OOAOAAOAAAOO, then AOAAAAOO whose first ALERT is silenced: 5 incidents; for 3 fires on 2 of them
        assert data["current"]["notifications"] == {"firing": 4, "reminder": 0, "resolved": 4, "error": 0}
        assert data["current"]["suppressed"] == 1
        assert data["proposed"]["notifications"] == {"firing": 2, "reminder": 0, "resolved": 2, "error": 0}
        assert data["difference"] == {"firing": -2, "reminder": 0, "resolved": -2, "error": 0}
        missed = [(start + i * STEP).isoformat() for i in (2, 4, 12)]  # the silenced one had fired, unheard
        assert [m["started_at"] for m in data["missed"]] == missed
        incident = data["proposed"]["incidents"][2]
        assert list(incident) == [
            "started_at", "ended_at", "fired_at", "delay_seconds", "resolved_at", "missed", "suppressed",
        ]  # fmt: skip
        assert (incident["delay_seconds"], incident["missed"]) == (600.0, False)
        assert [i["suppressed"] for i in data["current"]["incidents"]] == [False, False, False, True, False]
        assert data["period"]["history_starts"] == start.isoformat() and len(data["timeline"]) == 6

    def test_text_shows_counts_side_by_side_and_says_history_was_pruned(self, state: str, alerts: Path) -> None:
        """With 30 days asked and 2 recorded, the command says where the history starts and why."""
        result = invoke("orders_late", "--file", str(alerts), "--for", "3", "--database-url", state)
        assert result.exit_code == 0, result.output
        assert "  firing                4         2          -2" in result.output
        assert "  suppressed            1         0          -1" in result.output
        assert "the recorded history of 'orders_late' starts at " in result.output
        assert "older evaluations were pruned (AlertStateResource.history_retention_days" in result.output
        assert "  incidents the proposal fires on: 2\n" in result.output
        assert "current: fired +0s, resolved" in result.output and "proposed: fired +10m, resolved" in result.output
        assert "  missed by the proposal (the current settings fired): 3\n" in result.output
        assert "delay to fire: current median 0s, max 0s; proposed median 10m, max 10m" in result.output

    def test_file_form_compares_the_recorded_version_with_the_file(
        self, state: str, write_alerts: WriteAlerts, start: dt.datetime
    ) -> None:
        """Without NAME: the last recorded version's settings against the file's, largest change first."""
        recorded = write_alerts(FILE % "for: 1", name="deployed.yaml").read_text()
        edited = write_alerts(FILE % "for: 3")
        store = StateStore.from_url(state)
        remember(store, str(edited.resolve()), recorded, 2)
        result = invoke("--file", str(edited), "--database-url", state, "--since", start.isoformat(), "--json")
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        assert [r["alert"] for r in rows] == ["orders_late", "quiet"]
        assert [r["settings"]["current"]["for"] for r in rows] == [1, 1]
        assert [r["settings"]["proposed"]["for"] for r in rows] == [3, 1]
        assert rows[0]["notes"][0].startswith(f"current: the version of {edited.resolve()} recorded ")
        assert not any("pruned" in note for note in rows[0]["notes"])  # the period starts with the history

    def test_file_form_without_a_recorded_version_only_compares_options(
        self, state: str, alerts: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No recorded version: said so, and both sides take the file's settings plus the options; alerts.yaml in
        the current directory is the default file."""
        monkeypatch.chdir(alerts.parent)
        result = invoke("--database-url", state, "--recover-after", "2")
        assert result.exit_code == 0, result.output
        assert result.output.startswith("note: no version of ")
        assert "notifications per alert, largest change first:" in result.output
        assert result.output.index("  orders_late\n") < result.output.index("  quiet\n")

    def test_a_file_given_as_name_replays_every_alert_of_it(self, state: str, alerts: Path) -> None:
        """`replay alerts.yaml` is the --file form, as the other commands take the file first."""
        result = invoke(str(alerts), "--database-url", state, "--for", "3", "--json")
        assert result.exit_code == 0, result.output
        assert [row["alert"] for row in json.loads(result.output)] == ["orders_late", "quiet"]

    def test_without_alerts_yaml_here_the_file_is_asked_for(
        self, state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No --file and no alerts.yaml in the current directory: a clear error."""
        monkeypatch.chdir(tmp_path)
        result = invoke("orders_late", "--database-url", state)
        assert (
            result.exit_code == 1 and "no alerts.yaml in the current directory: give the alerts file" in result.output
        )

    def test_an_unknown_alert_is_refused_with_the_closest_name(self, state: str, alerts: Path) -> None:
        """A typo in NAME replays nothing and suggests the closest name."""
        result = invoke("orders_lat", "--file", str(alerts), "--database-url", state)
        assert result.exit_code == 1 and "did you mean 'orders_late'?" in result.output

    def test_a_bad_option_is_refused(self, state: str, alerts: Path) -> None:
        """A repeat interval that is neither a duration nor 'none' is refused before anything is read."""
        result = invoke("orders_late", "--file", str(alerts), "--repeat-interval", "often", "--database-url", state)
        assert result.exit_code == 1 and "or 'none' to turn reminders off" in result.output

    def test_a_bad_min_interval_is_refused_naming_none(self, state: str, alerts: Path) -> None:
        """--min-interval takes a duration or 'none', as --repeat-interval does."""
        result = invoke("orders_late", "--file", str(alerts), "--min-interval", "rarely", "--database-url", state)
        assert (
            result.exit_code == 1
            and "min_interval:" in result.output
            and "or 'none' to hold no firing" in result.output
        )

    def test_a_database_without_tables_is_refused_and_left_alone(self, alerts: Path, tmp_path: Path) -> None:
        """replay only reads: an empty database is an error, and no table is created in it."""
        empty = tmp_path / "empty.db"
        sqlite3.connect(empty).close()
        result = invoke("orders_late", "--file", str(alerts), "--database-url", f"sqlite:///{empty}")
        assert result.exit_code == 1 and "no sqlsentinel state tables" in result.output
        with sqlite3.connect(empty) as db:
            assert db.execute("SELECT name FROM sqlite_master").fetchall() == []


class TestReplayMetadata:
    def test_the_json_metadata_is_bounded_and_says_what_it_left_out(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every alert is in the Markdown table; the JSON holds the largest changes and at most the incident
        limit per alert, saying how many it left out."""
        monkeypatch.setattr(replay_job, "ALERTS_IN_METADATA", 1)
        monkeypatch.setattr(replay_job, "INCIDENTS_IN_METADATA", (200, 2))
        evaluations = history("OOAOAAOAAAOOAOAAAAOO")
        comparison = compare(
            evaluations, labels=LABELS, silences=[], current=settings(), proposed=settings(for_count=3)
        )
        replays = [
            AlertReplay(name, comparison, T0, at(20), T0, timeline(evaluations, comparison, T0, at(20)), [])
            for name in ("noisy", "other")
        ]
        metadata = replay_job.replay_metadata(ReplayRun(replays, []), single=False)
        rows = metadata["replay_json"].value
        assert isinstance(rows, list) and [r["alert"] for r in rows] == ["noisy"]
        assert len(rows[0]["current"]["incidents"]) == 2 and rows[0]["current"]["incidents_omitted"] == 3
        assert rows[0]["missed_omitted"] == 1
        assert "1 more alert(s) are in the table only" in rows[0]["notes"][0]
        table = str(metadata["replay"].value)
        assert "| noisy | 10 | 4 | -6 | 3 |" in table and "| other | 10 | 4 | -6 | 3 |" in table


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance."""
    with dg.instance_for_test() as inst:
        yield inst


def _set_error_rate(warehouse: Path, pct: float) -> None:
    with sqlite3.connect(warehouse) as db:
        db.execute("UPDATE api_metrics SET error_pct = ?", (pct,))


class TestReplayOfRealRuns:
    @pytest.fixture
    def alerts(self, write_alerts: WriteAlerts, sqlite_warehouse: Path, instance: dg.DagsterInstance) -> Path:
        """An alert whose six real runs were OK, ALERT, OK, ALERT, ALERT, OK (two incidents, of 1 and 2 ALERTs)."""
        path = write_alerts(alerts_yaml("sqlite:///warehouse.db", extra="notify: [{channel: log}]"))
        job = build_definitions(path).resolve_job_def("sqlsentinel__error_rate")
        for pct in (1.0, 7.5, 1.0, 7.5, 7.5, 1.0):
            _set_error_rate(sqlite_warehouse, pct)
            assert job.execute_in_process(instance=instance).success
        return path

    def test_replay_of_history_written_by_dagster_runs(self, alerts: Path, instance: dg.DagsterInstance) -> None:
        """The runs notified 2 firings and 2 resolutions; for 2 would have sent 1 of each and missed one incident."""
        url = instance_state_url(instance)
        result = invoke(
            "error_rate", "--file", str(alerts), "--for", "2", "--days", "1", "--database-url", url, "--json"
        )
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["evaluations"] == 6
        assert data["current"]["notifications"] == {"firing": 2, "reminder": 0, "resolved": 2, "error": 0}
        assert data["proposed"]["notifications"] == {"firing": 1, "reminder": 0, "resolved": 1, "error": 0}
        assert len(data["missed"]) == 1 and [i["missed"] for i in data["proposed"]["incidents"]] == [True, False]
        assert history_stats(StateStore.from_url(url), "error_rate").notifications == {"delivered": 4}

    def test_the_launchpad_job_puts_the_comparison_in_the_run_metadata(
        self, alerts: Path, instance: dg.DagsterInstance
    ) -> None:
        """sqlsentinel_replay, added to the definitions, shows a Markdown table with the timeline and the JSON."""
        defs = build_definitions(alerts)  # the sqlsentinel_replay job comes with every definitions
        config = {"alert": "error_rate", "for_count": 2, "days": 1}
        result = defs.resolve_job_def("sqlsentinel_replay").execute_in_process(
            instance=instance, run_config={"ops": {"sqlsentinel_replay_op": {"config": config}}}
        )
        assert result.success
        outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = {k: v.value for k, v in outputs[0].event_specific_data.metadata.items()}  # type: ignore[union-attr]
        table = metadata["replay"]
        assert "| firing | 2 | 1 | -1 |" in table and "| missed incidents | 0 | 1 | +1 |" in table
        assert "```text\n" in table and "history   |" in table
        assert metadata["replay_json"]["proposed"]["notifications"]["firing"] == 1
        assert metadata["replay_json"]["settings"]["proposed"]["for"] == 2

    def test_the_launchpad_job_fails_on_an_unknown_alert(self, alerts: Path, instance: dg.DagsterInstance) -> None:
        """A typo in the job's config fails the run with the closest name."""
        defs = build_definitions(alerts)  # the sqlsentinel_replay job comes with every definitions
        result = defs.resolve_job_def("sqlsentinel_replay").execute_in_process(
            instance=instance,
            run_config={"ops": {"sqlsentinel_replay_op": {"config": {"alert": "error_rat"}}}},
            raise_on_error=False,
        )
        failure = result.failure_data_for_node("sqlsentinel_replay_op")
        assert failure is not None and failure.error is not None
        assert "cannot replay: no alert named 'error_rat'" in failure.error.message
        assert "did you mean 'error_rate'?" in failure.error.message
