"""Replay of baseline alerts: statuses re-judged by a side's ``baseline:`` when it is not the recorded one.

Synthetic histories, one value an hour; every expected status is worked out by hand in the comments (1.4826
turns a MAD into a standard deviation), never copied from an output. A property test checks the incremental
re-judging against :func:`judge` on every evaluation; real runs check it against what the runs recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.baselines import BaselineError, Sample, judge
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.config.baseline import BaselineSpec
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.replay import (
    Baselines,
    Evaluation,
    Rule,
    baseline_json,
    compare,
    describe_baseline,
    judge_sides,
    rejudge,
)
from sqlsentinel_dagster.state.configs import remember
from sqlsentinel_dagster.state.history import evaluations_between
from sqlsentinel_dagster.state.model import Outcome, OutcomeStatus, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
LABELS = AlertLabels("orders_per_hour")
MARK = {"ALERT": "A", "OK": ".", "ERROR": "E"}
# 98..102 again and again: over any whole number of cycles the median is 100 and the MAD 1 (|dev| 0 once, 1 and
# 2 twice per cycle), so the band is 100 +/- 1.4826 x sensitivity: 95.55-104.45 at 3, 91.10-108.90 at 6.
CYCLE = [98, 99, 100, 101, 102]


def hourly(values: Sequence[Any], statuses: str = "", start: dt.datetime = T0) -> list[Evaluation]:
    """One evaluation an hour from ``start``, OK unless ``statuses`` (A, ., E per evaluation) says otherwise."""
    marks = statuses or "." * len(values)
    status = {v: k for k, v in MARK.items()}
    return [Evaluation(start + i * HOUR, status[m], v) for i, (v, m) in enumerate(zip(values, marks, strict=True))]


def marks(evaluations: Sequence[Evaluation]) -> str:
    return "".join(MARK[e.status] for e in evaluations)


def rule(**spec: Any) -> Rule:
    return Rule(BaselineSpec.model_validate(spec))


SPIKE = CYCLE * 4 + [107] + CYCLE * 2
SHIFT = (CYCLE * 10)[:48] + [150] * 30

# (values, baseline, expected statuses)
CASES = [
    pytest.param(
        SPIKE, rule(sensitivity=3, min_history=10, history="30d"), "." * 20 + "A" + "." * 10,
        id="spike of 107 after four cycles: outside 95.55-104.45 at sensitivity 3, ALERT",
    ),
    pytest.param(
        SPIKE, rule(sensitivity=6, min_history=10, history="30d"), "." * 31,
        id="the same spike at sensitivity 6: inside 91.10-108.90, OK",
    ),
    pytest.param(
        # The 150s are ALERT, so never learned: the band stays on the old level while at least 10 old values are
        # in the last day, hours 48 to 62 (at 62 the day holds 38..47); from 63 on fewer than 10 values are usable:
        # learning, and the 150s are learned; at 73 ten of them make the band 150-150, and 150 is inside it.
        SHIFT, rule(min_history=10, history="1d"), "." * 48 + "A" * 15 + "." * 15,
        id="level shift: ALERT while the old level fills the window, then learning, then the new level is OK",
    ),
    pytest.param(
        # Five values before index 5: 0-4 are learning, the 500 at 2 too, and it is learned. At 6 the window is
        # 98 102 500 100 99 101: median 100.5, |dev| .5 .5 1.5 1.5 2.5 399.5, MAD 1.5, band 100.5 +/- 6.67.
        [98, 102, 500, 100, 99, 101, 500], rule(min_history=5, history="30d"), "......A",
        id="learning period: a spike before min_history values is OK (and learned); the same spike after is ALERT",
    ),
    pytest.param(
        [*SPIKE[:20], 90, 110], rule(min_history=10, history="30d", direction="up"), "." * 20 + ".A",
        id="direction up: a drop to 90 is OK, a rise to 110 ALERT",
    ),
    pytest.param(
        # previous usable value 100: above 50% is over 150; the 160 is ALERT, not learned, so 100 is compared
        # with the 100 before it
        [100, 100, 160, 100], rule(method="change", above="50%"), "..A.",
        id="method change: a rise of 60% on the previous value is ALERT, and the next value is compared with 100",
    ),
]  # fmt: skip


class TestRejudge:
    @pytest.mark.parametrize(("values", "baseline", "expected"), CASES)
    def test_statuses_judged_from_the_values_before(self, values: list[Any], baseline: Rule, expected: str) -> None:
        """Each synthetic history gets exactly the expected statuses."""
        assert marks(rejudge(hourly(values), baseline)) == expected

    def test_what_a_side_judged_alert_it_never_learns_whatever_was_recorded(self) -> None:
        """The anomalous flag is the side's own verdict, not the recorded status."""
        # Recorded OK, judged ALERT at 3 (over 104.45), so never learned: every 108 stays ALERT. (Learned, six of
        # them would move the median to 101.5 and the MAD to 3, and the 108s would be OK.)
        values = [*CYCLE * 2, *[108] * 11]
        baseline = rule(min_history=10, history="30d")
        assert marks(rejudge(hourly(values), baseline)) == "." * 10 + "A" * 11
        # Recorded ALERT (the query said so), judged OK at 6 (inside 91.10-108.90), so learned: ten 104s make the
        # median (102 + 104) / 2 = 103 and the MAD 1, band 94.1-111.9, and 110 is OK (over 108.90 had they not).
        values = [*CYCLE * 2, *[104] * 10, 110]
        recorded = "." * 10 + "A" * 10 + "."
        baseline = rule(sensitivity=6, min_history=10, history="30d")
        assert marks(rejudge(hourly(values, recorded), baseline)) == "." * 21

    def test_learning_starts_from_the_evaluations_recorded_before_the_period(self) -> None:
        """Given the four cycles before the period, the spike is ALERT at once; without them it is learning."""
        history = hourly(SPIKE)
        before, period = history[:20], history[20:]
        baseline = rule(min_history=10, history="30d")
        assert marks(rejudge(period, baseline, before)) == "A" + "." * 10
        assert marks(rejudge(period, baseline)) == "." * 11

    def test_errors_stay_errors_and_a_value_that_is_not_a_number_is_one(self) -> None:
        """A recorded ERROR stays ERROR (with its error); a NULL or text value is ERROR, as a run records it."""
        evaluations = [*hourly([100, None, "n/a", 100], "...."), Evaluation(T0 + 4 * HOUR, "ERROR", None, "timeout")]
        judged = rejudge(evaluations, rule(min_history=1))
        assert marks(judged) == ".EE.E"
        assert judged[1].error == (
            "the baseline needs a numeric actual_value (a finite number); the recorded value is none "
            "(no actual_value column, or NULL)"
        )
        assert judged[2].error is not None and judged[2].error.endswith("the recorded value is 'n/a'")
        assert judged[4].error == "timeout"

    def test_evaluations_out_of_order_are_refused(self) -> None:
        """Re-judging needs the evaluations oldest first."""
        evaluations = [*hourly([100, 101]), Evaluation(T0, "OK", 100)]
        with pytest.raises(ValueError, match="evaluations must be oldest first"):
            rejudge(evaluations, rule())


SPECS = [
    {"history": "1d", "min_history": 5},
    {"history": "1d", "min_history": 5, "sensitivity": 1.5},
    {"history": "6h", "min_history": 3, "direction": "up"},
    {"history": "6h", "min_history": 3, "direction": "down", "min_change": "5%"},
    {"method": "zscore", "history": "12h", "min_history": 4, "sensitivity": 1.2},
    {"method": "zscore", "history": "12h", "min_history": 1, "sensitivity": 2, "min_change": 3},
    {"history": "2d", "min_history": 2, "seasonality": "hour_of_day"},
    {"method": "zscore", "history": "8d", "min_history": 2, "seasonality": "hour_of_week"},
    {"history": "8d", "min_history": 2, "seasonality": "day_of_week", "sensitivity": 1},
    {"method": "change", "above": "10%", "below": "-10%"},
    {"method": "change", "above": 5, "history": "2h"},
    {"method": "change", "vs": "1d", "below": "-20%"},
    {"method": "change", "vs": "3h", "above": "5%", "below": -2},
]


def _random_history(rng: random.Random) -> list[Evaluation]:
    """Some hundred evaluations: steps of 0 to 90 minutes (ties included), values with many repeats (the MAD is
    then 0), noisy floats with spikes, or text and NULLs; some recorded ALERT or ERROR."""
    kind = rng.choice(["repeats", "floats", "text"])
    evaluations, at = [], T0
    for _ in range(rng.randint(50, 300)):
        at += dt.timedelta(minutes=rng.choice([0, 7, 20, 55, 60, 61, 90]))
        value: Any = {
            "repeats": lambda: rng.choice([0, 0, 0, 1, 2, 3, 100]),
            "floats": lambda: 100 + rng.gauss(0, 5) + 50 * (rng.random() < 0.05),
            "text": lambda: rng.choice(["12.5", "13", "1e1", None, "x", 12.25, 14]),
        }[kind]()
        status: OutcomeStatus = rng.choice(("OK", "ALERT", "ERROR")) if rng.random() < 0.3 else "OK"
        evaluations.append(Evaluation(at, status, str(value) if rng.random() < 0.5 else value))
    return evaluations


def _judge_each(evaluations: Sequence[Evaluation], baseline: Rule) -> str:
    """The statuses, by calling judge() on every evaluation with every evaluation before it."""
    samples: list[Sample] = []
    statuses = ""
    for evaluation in evaluations:
        status = evaluation.status
        if status != "ERROR":
            try:
                status = judge(evaluation.actual_value, samples, baseline.spec, evaluation.at, baseline.timezone).status
            except BaselineError:
                status = "ERROR"
        samples.append(Sample(evaluation.at, evaluation.actual_value, status == "ALERT"))
        statuses += MARK[status]
    return statuses


class TestSameAsJudge:
    @pytest.mark.parametrize("seed", range(40))
    def test_every_status_is_the_one_judge_gives(self, seed: int) -> None:
        """On random histories, under every kind of baseline and timezone, the incremental window gives the status
        judge() gives each evaluation from all the ones before it (so the bands agree to the last bit)."""
        rng = random.Random(seed)
        baseline = Rule(
            BaselineSpec.model_validate(SPECS[seed % len(SPECS)]), rng.choice(["UTC", "Europe/Paris", "Asia/Kolkata"])
        )
        history = _random_history(rng)
        cut = rng.randint(0, len(history) // 2)
        expected = _judge_each(history, baseline)[cut:]
        assert marks(rejudge(history[cut:], baseline, history[:cut])) == expected

    def test_at_most_max_samples_values_are_learned(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With the newest 5 values only, as judge() keeps them: over 0, 1, ..., 19 the band is 17 +/- 4.45 (the
        last five, MAD 1) and 10 is ALERT; from all twenty it is 9.5 +/- 22.2 (MAD 5) and 10 is OK."""
        history = hourly([*range(20), 10])
        baseline = rule(min_history=3, history="30d")
        assert marks(rejudge(history, baseline)) == _judge_each(history, baseline) == "." * 21
        monkeypatch.setattr("sqlsentinel_dagster.baselines.judging.MAX_SAMPLES", 5)
        monkeypatch.setattr("sqlsentinel_dagster.replay.window.MAX_SAMPLES", 5)
        assert marks(rejudge(history, baseline)) == _judge_each(history, baseline) == "." * 20 + "A"


class TestSides:
    def test_a_side_with_the_recorded_baseline_replays_the_recorded_statuses(self) -> None:
        """Exactness: with the recorded baseline on both sides, the query's own ALERTs (recorded on values the band
        accepts) are replayed as recorded, and the counts are those of the recorded history."""
        recorded = "." * 10 + "AA" + "." * 8 + "A" + "." * 10  # a query-side incident at 10-11, the spike at 20
        evaluations = hourly(SPIKE, recorded)
        same = rule(sensitivity=3, min_history=10, history="30d")
        judged = judge_sides(evaluations, Baselines(same, same, same))
        assert judged.current == judged.proposed == evaluations and judged.notes == []
        as_recorded = compare(
            evaluations, labels=LABELS, silences=[], current=StateSettings(), proposed=StateSettings()
        )
        replayed = compare(
            evaluations,
            labels=LABELS,
            silences=[],
            current=StateSettings(),
            proposed=StateSettings(),
            judged=(judged.current, judged.proposed),
        )
        assert replayed.current.notifications == as_recorded.current.notifications == {
            "firing": 2, "reminder": 0, "resolved": 2, "error": 0,
        }  # fmt: skip
        assert replayed.proposed == as_recorded.proposed

    def test_sensitivity_6_misses_the_spike_sensitivity_3_fired_on(self) -> None:
        """Recorded at 3, proposed 6: the current side replays the recorded firing; the proposed one re-judges, the
        spike is inside its band, and the incident is missed."""
        evaluations = hourly(SPIKE, "." * 20 + "A" + "." * 10)
        recorded = rule(sensitivity=3, min_history=10, history="30d")
        baselines = Baselines(recorded, recorded, rule(sensitivity=6, min_history=10, history="30d"))
        judged = judge_sides(evaluations, baselines)
        comparison = compare(
            evaluations,
            labels=LABELS,
            silences=[],
            current=StateSettings(),
            proposed=StateSettings(),
            judged=(judged.current, judged.proposed),
        )
        assert (comparison.current.total, comparison.proposed.total, len(comparison.missed)) == (2, 0, 1)
        assert judged.notes[0] == (
            "proposed: statuses re-judged by its baseline: 0 ALERT, 0 ERROR, 10 learning of 31 evaluations "
            "(recorded: 1 ALERT)"
        )
        assert "a query's own status column is not replayed" in judged.notes[1]

    def test_a_side_without_a_baseline_keeps_the_recorded_statuses_and_says_so(self) -> None:
        """The baseline removed: its verdicts are in the recorded statuses, which are replayed, with a note."""
        evaluations = hourly(SPIKE, "." * 20 + "A" + "." * 10)
        recorded = rule(min_history=10)
        judged = judge_sides(evaluations, Baselines(recorded, recorded, None))
        assert judged.proposed == evaluations
        assert judged.notes == [
            "proposed: no baseline, so the recorded statuses are replayed as they are; they include the recorded "
            "baseline's verdicts (a query's own status cannot be told apart from them)"
        ]

    def test_the_timezone_counts_only_with_seasonality(self) -> None:
        """Another timezone is another baseline only when seasonality reads it."""
        spec = BaselineSpec(seasonality="hour_of_day", history=2 * 86400.0)
        assert Rule(BaselineSpec(), "UTC").same_as(Rule(BaselineSpec(), "Europe/Paris"))
        assert not Rule(spec, "UTC").same_as(Rule(spec, "Europe/Paris"))
        assert not Rule(BaselineSpec()).same_as(None)

    def test_a_baseline_is_shown_as_written(self) -> None:
        """Every setting that applies to the method, durations and changes as YAML has them."""
        assert baseline_json(rule(sensitivity=6, min_change="5%")) == {
            "method": "mad", "sensitivity": 6.0, "history": "14d", "min_history": 24, "direction": "both",
            "seasonality": "none", "min_change": "5%",
        }  # fmt: skip
        assert baseline_json(rule(method="change", vs="7d", below="-30%")) == {
            "method": "change",
            "vs": "7d",
            "below": "-30%",
        }
        assert describe_baseline(rule(method="change", above=100)) == "{method: change, history: 14d, above: 100}"
        assert baseline_json(None) is None and describe_baseline(None) == "none"

    def test_a_month_at_one_evaluation_every_5_minutes_is_rejudged_in_seconds(self) -> None:
        """8,640 evaluations under a 14-day window (4,032 values learned from) take well under 10 seconds (about
        0.1 s here; judge() on each would take about 40 s)."""
        rng = random.Random(1)
        evaluations = [
            Evaluation(T0 + i * dt.timedelta(minutes=5), "OK", str(round(100 + rng.gauss(0, 5), 2)))
            for i in range(8640)
        ]
        started = time.perf_counter()
        for method in ("mad", "zscore"):
            rejudge(evaluations, rule(method=method, history="14d"))
        assert time.perf_counter() - started < 10


WriteAlerts = Callable[..., Path]
FILE = """
databases: {main: {url: "sqlite:///warehouse.db"}}
alerts:
  - name: orders_per_hour
    query: "SELECT v AS actual_value FROM metric"
    schedule: "0 * * * *"
    baseline: {min_history: 10, history: 30d, sensitivity: %s}
"""


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", *args])


class TestReplayCommand:
    @pytest.fixture
    def start(self) -> dt.datetime:
        """Two days ago, on a whole hour: where the recorded history starts."""
        return dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=2)

    @pytest.fixture
    def state(self, tmp_path: Path, start: dt.datetime) -> str:
        """The spike history recorded hourly by the real store, as sensitivity 3 judged it."""
        url = f"sqlite:///{tmp_path / 'state.db'}"
        clock = {"now": start}
        store = StateStore.from_url(url, lambda: clock["now"])
        for evaluation in hourly(SPIKE, "." * 20 + "A" + "." * 10, start):
            clock["now"] = evaluation.at
            store.record(LABELS, Outcome(evaluation.status, evaluation.actual_value), StateSettings(), {}, {}, None)
        store.engine.dispose()
        return url

    def deployed(self, state: str, write_alerts: WriteAlerts, sensitivity: int, now: int) -> Path:
        """The file deployed with sensitivity ``sensitivity`` (recorded as the code servers record it), and the
        file as it is now with ``now``."""
        recorded = write_alerts(FILE % sensitivity, name="deployed.yaml").read_text()
        edited = write_alerts(FILE % now)
        store = StateStore.from_url(state)
        remember(store, str(edited.resolve()), recorded, 1)
        store.engine.dispose()
        return edited

    def test_file_form_compares_the_recorded_baseline_with_the_files(
        self, state: str, write_alerts: WriteAlerts, start: dt.datetime
    ) -> None:
        """Deployed at 3, the file at 6: each side's baseline is in the JSON; the current side replays the recorded
        statuses, the proposed one re-judges them and misses the spike."""
        edited = self.deployed(state, write_alerts, 3, 6)
        result = invoke("--file", str(edited), "--database-url", state, "--since", start.isoformat(), "--json")
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.output)
        shown = {"method": "mad", "history": "30d", "min_history": 10, "direction": "both", "seasonality": "none"}
        assert row["settings"]["current"]["baseline"] == {**shown, "sensitivity": 3.0}
        assert row["settings"]["proposed"]["baseline"] == {**shown, "sensitivity": 6.0}
        assert row["current"]["notifications"] == {"firing": 1, "reminder": 0, "resolved": 1, "error": 0}
        assert row["proposed"]["notifications"] == {"firing": 0, "reminder": 0, "resolved": 0, "error": 0}
        assert len(row["missed"]) == 1
        assert not any(note.startswith("current: statuses re-judged") for note in row["notes"])
        assert "proposed: statuses re-judged by its baseline: 0 ALERT, 0 ERROR, 10 learning of 31" in row["notes"][1]

    def test_file_form_with_the_same_baseline_replays_what_was_recorded(
        self, state: str, write_alerts: WriteAlerts, start: dt.datetime
    ) -> None:
        """The same baseline deployed and in the file: nothing is re-judged; both sides fire once."""
        edited = self.deployed(state, write_alerts, 3, 3)
        result = invoke("--file", str(edited), "--database-url", state, "--since", start.isoformat(), "--json")
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.output)
        assert row["current"]["notifications"] == row["proposed"]["notifications"]
        assert row["proposed"]["notifications"]["firing"] == 1
        assert not any("re-judged" in note for note in row["notes"])

    def test_name_form_rejudges_both_sides_when_the_file_is_not_what_was_deployed(
        self, state: str, write_alerts: WriteAlerts, start: dt.datetime
    ) -> None:
        """NAME: both sides take the file's baseline; deployed at 3 and at 6 in the file, both re-judge; the text
        shows each side's baseline."""
        edited = self.deployed(state, write_alerts, 3, 6)
        result = invoke("orders_per_hour", "--file", str(edited), "--database-url", state, "--since", start.isoformat())
        assert result.exit_code == 0, result.output
        baseline = "{method: mad, sensitivity: 6, history: 30d, min_history: 10, direction: both, seasonality: none}"
        proposed = "  proposed: for 1, recover_after 1, error_after 1, repeat_interval none\n"
        assert f"{proposed}            baseline {baseline}\n" in result.output
        assert "note: current: statuses re-judged by its baseline: 0 ALERT" in result.output
        assert "note: proposed: statuses re-judged by its baseline: 0 ALERT" in result.output
        assert "both sides re-judge them" in result.output
        assert "  firing                0         0           0" in result.output


def _set(warehouse: Path, value: float) -> None:
    with sqlite3.connect(warehouse) as db:
        db.execute("DELETE FROM metric")
        db.execute("INSERT INTO metric VALUES (?)", (value,))


class TestReplayOfRealRuns:
    def test_rejudging_under_the_deployed_baseline_gives_what_the_runs_recorded(
        self, tmp_path: Path, write_alerts: WriteAlerts
    ) -> None:
        """Eight real runs (five learning, a spike of 300, 310 while firing, 100): re-judged under the same baseline
        the replay gets every recorded status; replayed with min_history 10, all eight are learning."""
        warehouse = tmp_path / "warehouse.db"
        with sqlite3.connect(warehouse) as db:
            db.execute("CREATE TABLE metric (v REAL)")
        path = write_alerts((FILE % 3).replace("min_history: 10", "min_history: 5"))
        with dg.instance_for_test() as instance:
            job = build_definitions(path).resolve_job_def("sqlsentinel__orders_per_hour")
            for value in (100, 102, 98, 101, 99, 300, 310, 100):
                _set(warehouse, value)
                assert job.execute_in_process(instance=instance).success
            url = instance_state_url(instance)
            store = StateStore.from_url(url)
            now = dt.datetime.now(dt.UTC)
            rows, _ = evaluations_between(store, "orders_per_hour", now - dt.timedelta(days=1), now)
            recorded = [Evaluation(r["evaluated_at"], r["status"], r["actual_value"]) for r in rows]
            assert marks(recorded) == ".....AA."
            assert marks(rejudge(recorded, Rule(BaselineSpec(min_history=5, history=30 * 86400.0)))) == ".....AA."
            remember(store, str(path.resolve()), path.read_text(), 1)
            store.engine.dispose()
            path.write_text(path.read_text().replace("min_history: 5", "min_history: 10"))
            result = invoke("--file", str(path), "--database-url", url, "--days", "1", "--json")
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.output)
        assert row["current"]["notifications"]["firing"] == 1 and row["proposed"]["notifications"]["firing"] == 0
