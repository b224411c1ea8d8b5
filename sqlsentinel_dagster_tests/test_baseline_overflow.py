"""Baselines on hostile histories: values near the largest float (±1.8e308) never make a band of infinities.

A band, centre or spread that is not a finite number is ``not_finite``: the value is OK, not judged, with the reason
named, and no infinity reaches metadata or messages. A median or mean that is finite is still found when the
arithmetic on the way overflows. Every expected outcome is worked out in the comments.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.baselines import Band, BaselineError, Sample, describe, judge
from sqlsentinel_dagster.config.baseline import BaselineSpec
from sqlsentinel_dagster.replay import Evaluation, Rule, rejudge

from .loopback import loopback_receiver
from .test_baseline_alerts import _alerts

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
BIG = 1e308
MAX = 1.7976931348623157e308  # the largest float


def hourly(values: Sequence[Any]) -> list[Sample]:
    """``values`` oldest first, one an hour, the last an hour before NOW."""
    return [Sample(NOW - (len(values) - i) * HOUR, v, False) for i, v in enumerate(values)]


@dataclass(frozen=True)
class Case:
    history: list[Sample]
    value: float
    spec: dict[str, Any]
    status: str
    code: str
    reason: str


NOT_FINITE = "is not a finite number"
CASES: dict[str, Case] = {
    # median (1e308 + -1e308) / 2 = 0; every |dev| is 1e308, MAD 1e308, spread 1.48e308: 3 x that is past the max
    "alternating_mad": Case(
        hourly([BIG, -BIG] * 12),
        5,
        {},
        "OK",
        "not_finite",
        f"cannot judge: the band median 0 ± 3 x 1.483e+308 {NOT_FINITE}",
    ),
    # five values: median 1e308, |dev| 0 0 0 2e308 2e308 (past the max: infinite), MAD 0, mean |dev| infinite
    "deviations_overflow": Case(
        hourly([BIG, -BIG, BIG, -BIG, BIG]),
        5,
        {"min_history": 5},
        "OK",
        "not_finite",
        f"cannot judge: the spread of the 5 values learnt from {NOT_FINITE}",
    ),
    # the same values at sensitivity 0.1: the band 0 +/- 1.48e307 is finite, and 0 is within it
    "a_finite_band_of_huge_values_is_judged": Case(
        hourly([BIG, -BIG] * 12),
        0,
        {"sensitivity": 0.1},
        "OK",
        "within_band",
        "within expected -1.483e+307 to 1.483e+307",
    ),
    # the sample standard deviation of 1.7e308 and -1.7e308 is 1.7e308 x sqrt(2): past the max
    "zscore_spread_overflows": Case(
        hourly([1.7e308, -1.7e308]),
        5,
        {"method": "zscore", "min_history": 2},
        "OK",
        "not_finite",
        f"cannot judge: the spread of the 2 values learnt from {NOT_FINITE}",
    ),
    # mean 0, standard deviation 1e308 x sqrt(24/23) = 1.0215e308 (finite), but 3 x that is past the max
    "zscore_band_overflows": Case(
        hourly([BIG, -BIG] * 12),
        5,
        {"method": "zscore"},
        "OK",
        "not_finite",
        f"cannot judge: the band mean 0 ± 3 x 1.022e+308 {NOT_FINITE}",
    ),
    # 8 each of 0.5e308, 1e308, 1.5e308: median 1e308 (the middle two halved before they are added), |dev| 0 x 8
    # and 0.5e308 x 16, MAD 0.5e308, spread 7.413e307; at sensitivity 2 the high bound 2.48e308 is past the max
    "direction_up_high_overflows": Case(
        hourly([BIG, 1.5e308, 0.5e308] * 8),
        BIG,
        {"direction": "up", "sensitivity": 2},
        "OK",
        "not_finite",
        f"cannot judge: the band median 1e+308 ± 2 x 7.413e+307 {NOT_FINITE}",
    ),
    # the same history, direction down: only the low bound counts, 1e308 - 1.4826e308 = -4.826e307, finite
    "direction_down_low_is_finite": Case(
        hourly([BIG, 1.5e308, 0.5e308] * 8),
        -BIG,
        {"direction": "down", "sensitivity": 2},
        "ALERT",
        "below_band",
        "below expected ≥ -4.826e+307 (-200% vs median 1e+308)",
    ),
    # method change: 1e308 + 100% = 2e308
    "change_rise_overflows": Case(
        hourly([BIG]),
        BIG,
        {"method": "change", "above": "100%"},
        "OK",
        "not_finite",
        f"cannot judge: the band above 100% around previous value 1e+308 {NOT_FINITE}",
    ),
    # a rise of a million percent on 1e305 is 1e309
    "change_huge_percent": Case(
        hourly([1e305]),
        5,
        {"method": "change", "above": "1000000%", "below": "-50%"},
        "OK",
        "not_finite",
        f"cannot judge: the band above 1e+06% and below -50% around previous value 1e+305 {NOT_FINITE}",
    ),
    # 24 x 1e308: the two middle values sum past the max, but are halved first: median 1e308, band 1e308
    "median_of_huge_values_is_found": Case(hourly([BIG] * 24), BIG, {}, "OK", "within_band", "within expected 1e+308"),
    # their sum (2.4e309) overflows on the way, but the mean is 1e308: taken from the exact sum
    "mean_of_huge_values_is_found": Case(
        hourly([BIG] * 24), BIG, {"method": "zscore"}, "OK", "within_band", "within expected 1e+308"
    ),
    # the largest float everywhere: a band of that one value; the most negative float is 3.6e308 below it, a
    # difference past the max, so the percent is taken from the exact difference: -200%
    "difference_past_the_max_is_a_percent": Case(
        hourly([MAX] * 24),
        -MAX,
        {},
        "ALERT",
        "below_band",
        "below expected 1.798e+308 (-200% vs median 1.798e+308)",
    ),
}


class TestNotFinite:
    @pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
    def test_verdicts_on_hostile_histories(self, case: Case) -> None:
        """Each history gives the worked-out status, code and reason; a band is drawn only when it is finite."""
        verdict = judge(case.value, case.history, BaselineSpec.model_validate(case.spec), NOW)
        assert (verdict.status, verdict.code, verdict.reason) == (case.status, case.code, case.reason)
        assert (verdict.band is None) == (case.code == "not_finite")
        numbers = verdict.band.as_metadata().values() if verdict.band is not None else ()
        assert all(n is None or math.isfinite(n) for n in numbers)
        assert "inf" not in describe(verdict) and "nan" not in describe(verdict)

    def test_not_finite_is_told_like_learning(self) -> None:
        """The sentence for people gives the value and why it is not judged, as while learning."""
        verdict = judge(5, CASES["deviations_overflow"].history, BaselineSpec(min_history=5), NOW)
        assert describe(verdict, "orders") == (
            "5 orders, cannot judge: the spread of the 5 values learnt from is not a finite number"
        )
        assert not verdict.learning

    def test_a_band_with_infinities_never_reaches_metadata(self) -> None:
        """Whoever built a Band, as_metadata gives None for a number that is not finite, never inf or nan."""
        band = Band(-math.inf, math.inf, math.nan, "mad", 24, 86400.0, None)
        assert band.as_metadata() == {"baseline": None, "threshold_low": None, "threshold_high": None}

    @pytest.mark.parametrize("value", [math.inf, -math.inf, "1e999", 10**400])
    def test_a_value_past_the_largest_float_is_still_an_error(self, value: Any) -> None:
        """The value judged must be a finite number, as before: an infinity is never judged against a band."""
        with pytest.raises(BaselineError, match="needs a numeric actual_value"):
            judge(value, hourly([100] * 24), BaselineSpec(), NOW)


SPECS = [
    {"history": "1d", "min_history": 3},
    {"history": "1d", "min_history": 3, "direction": "up", "sensitivity": 0.5},
    {"history": "1d", "min_history": 3, "direction": "down", "min_change": "5%"},
    {"method": "zscore", "history": "12h", "min_history": 2},
    {"method": "zscore", "history": "12h", "min_history": 1, "sensitivity": 0.1},
    {"method": "change", "above": "50%", "below": "-50%"},
    {"method": "change", "vs": "3h", "above": "100%"},
]


def _hostile_history(rng: random.Random) -> list[Evaluation]:
    """Evaluations an hour apart whose values sit near the largest float, with ties, signs and ordinary numbers."""
    pool = [BIG, -BIG, MAX, -MAX, 1.5e308, 0.9e308, 1e307, 0.0, 1.0, 100.0, -3.5]
    return [Evaluation(NOW + i * HOUR, "OK", rng.choice(pool)) for i in range(rng.randint(30, 120))]


def _judge_each(evaluations: Sequence[Evaluation], rule: Rule) -> list[str]:
    samples: list[Sample] = []
    statuses = []
    for evaluation in evaluations:
        status = judge(evaluation.actual_value, samples, rule.spec, evaluation.at).status
        samples.append(Sample(evaluation.at, evaluation.actual_value, status == "ALERT"))
        statuses.append(status)
    return statuses


class TestReplayAgrees:
    @pytest.mark.parametrize("seed", range(21))
    def test_the_replay_window_judges_hostile_values_as_judge_does(self, seed: int) -> None:
        """On values near the largest float, the replay's incremental window gives the status judge() gives (a band
        that is not finite is OK in both; an overflowing median or mean is found the same way)."""
        rng = random.Random(seed)
        rule = Rule(BaselineSpec.model_validate(SPECS[seed % len(SPECS)]))
        history = _hostile_history(rng)
        assert [e.status for e in rejudge(history, rule)] == _judge_each(history, rule)


def test_a_run_on_a_hostile_history_is_ok_and_says_why_without_thresholds(tmp_path: Path) -> None:
    """A real checks-mode run: five recorded values of ±1e308 teach no finite band, so the next value passes with
    baseline_reason naming what is not finite, no threshold_low/high in the metadata, and nobody is notified."""
    warehouse = tmp_path / "w.db"
    with loopback_receiver() as receiver, dg.instance_for_test() as instance:
        path = _alerts(tmp_path, receiver.url, warehouse)  # the baseline alert of test_baseline_alerts
        job = build_definitions(path, mode="checks").resolve_job_def("sqlsentinel_checks")

        def run(value: float) -> dg.AssetCheckEvaluation:
            with sqlite3.connect(warehouse) as db:
                db.execute("DELETE FROM metric")
                db.execute("INSERT INTO metric VALUES (?)", (value,))
            (evaluation,) = job.execute_in_process(instance=instance).get_asset_check_evaluations()
            return evaluation

        for value in (BIG, -BIG, BIG, -BIG, BIG):
            run(value)
        evaluation = run(5)
        assert evaluation.passed
        assert evaluation.metadata["baseline_reason"].value == (
            "cannot judge: the spread of the 5 values learnt from is not a finite number"
        )
        assert not {"threshold_low", "threshold_high", "baseline"} & set(evaluation.metadata)
        assert receiver.delivered() == []
