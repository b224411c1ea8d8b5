"""Baselines: the ``baseline:`` block, and thresholds learned from synthetic histories built here.

Every expected band is worked out by hand in the comments (1.4826 turns a MAD into a standard deviation, 1.2533 a
mean absolute deviation), never copied from an output.
"""

# ruff: noqa: RUF001  (sentences and reasons write ranges with an en dash, as people do)

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from sqlsentinel_dagster.baselines import Band, BaselineError, Sample, Verdict, describe, judge, lookback, numeric
from sqlsentinel_dagster.baselines import judging as baselines
from sqlsentinel_dagster.config.baseline import BaselineSpec, Change, parse_change
from sqlsentinel_dagster.errors import SentinelError

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)  # a Monday
HOUR = dt.timedelta(hours=1)
NOISE = (-2, -1, 0, 1, 2)


def hourly(values: Sequence[Any], *, before: dt.datetime = NOW, anomalous: Sequence[int] = ()) -> list[Sample]:
    """``values`` oldest first, one an hour, the last an hour before ``before``; ``anomalous`` are indexes."""
    start = before - len(values) * HOUR
    return [Sample(start + i * HOUR, v, i in anomalous) for i, v in enumerate(values)]


def ago(hours_to_value: dict[int, Any], anomalous: Sequence[int] = ()) -> list[Sample]:
    """One sample per entry, recorded that many hours before NOW."""
    return [Sample(NOW - h * HOUR, v, h in anomalous) for h, v in hours_to_value.items()]


# 14 days of 100 +/- 2: the noise is drawn from five equally likely values, so the median is 100 and the median
# absolute deviation 1 (for either to move, half of 336 draws would have to land where 40% are expected).
_rng = random.Random(7)
STEADY = hourly([100 + _rng.choice(NOISE) for _ in range(336)])
# 98, 99, 100, 101, 102 five times: median 100, MAD 1 (|dev| 0 x5, 1 x10, 2 x10); mean 100, sample standard
# deviation sqrt(50 / 24) = 1.4434.
CYCLE = hourly([98, 99, 100, 101, 102] * 5)
# 100, 101, ..., 435: median 267.5; |dev| 0.5, 0.5, 1.5, 1.5, ..., 167.5, 167.5: the 168th and 169th are 83.5 and
# 84.5, so MAD 84, spread 1.4826 x 84 = 124.54.
TREND = hourly([100 + i for i in range(336)])


def _daily_shape(days: int) -> list[Sample]:
    """Night 100, day 200, evening 150, plus NOISE[day % 5]: each hour of the day sees every noise value 3 times."""
    level = {**dict.fromkeys(range(8), 100), **dict.fromkeys(range(8, 20), 200), **dict.fromkeys(range(20, 24), 150)}
    times = [NOW - dt.timedelta(days=days) + h * HOUR for h in range(days * 24)]
    return [Sample(at, level[at.hour] + NOISE[(h // 24) % 5], False) for h, at in enumerate(times)]


DAILY = _daily_shape(15)
# The week in Paris: 1,000 on weekdays, 300 at weekends, hourly from Monday 2 Feb 00:00 UTC for 28 days.
WEEK_NOW = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)  # Sunday in UTC, Monday 00:30 in Paris
WEEK = [
    Sample(at, 1000 if at.astimezone(ZoneInfo("Europe/Paris")).weekday() < 5 else 300, False)
    for at in (dt.datetime(2026, 2, 2, tzinfo=dt.UTC) + h * HOUR for h in range(28 * 24))
]


@dataclass(frozen=True)
class Case:
    history: list[Sample]
    value: Any
    spec: dict[str, Any]
    status: str
    low: float | None
    high: float | None
    reason: str
    now: dt.datetime = NOW
    tz: str = "UTC"


BAND_CASES: dict[str, Case] = {
    # 100 +/- 3 x 1.4826 x 1
    "steady_within": Case(STEADY, 103, {}, "OK", 95.55, 104.45, "within expected 95.6–104.4"),
    "steady_above": Case(STEADY, 105, {}, "ALERT", 95.55, 104.45, "above expected 95.6–104.4 (+5% vs median 100)"),
    "steady_below": Case(STEADY, 95, {}, "ALERT", 95.55, 104.45, "below expected 95.6–104.4 (-5% vs median 100)"),
    # 104.4 reads 104.4 like the high bound at one decimal, so two decimals are shown
    "decimals_keep_the_story": Case(
        CYCLE, 104.4, {"min_history": 25}, "OK", 95.55, 104.45, "within expected 95.55–104.45"
    ),
    # 100 +/- 3 x 1.4434
    "zscore_above": Case(
        CYCLE,
        104.4,
        {"method": "zscore", "min_history": 25},
        "ALERT",
        95.67,
        104.33,
        "above expected 95.7–104.3 (+4.4% vs mean 100)",
    ),
    # 104.3 and 104.33 both read 104.3 with one decimal: two are shown, so the text never contradicts the status
    "zscore_within": Case(
        CYCLE, 104.3, {"method": "zscore", "min_history": 25}, "OK", 95.67, 104.33, "within expected 95.67–104.33"
    ),
    # 267.5 +/- 3 x 124.54: a steady trend widens the band, so its next value is within
    "trend_within": Case(TREND, 436, {}, "OK", -106.12, 641.12, "within expected -106 to 641"),
    # 267.5 +/- 124.54: a lower sensitivity catches the trend running past the middle of the window
    "trend_caught_by_low_sensitivity": Case(
        TREND, 436, {"sensitivity": 1}, "ALERT", 142.96, 392.04, "above expected 143–392 (+63% vs median 268)"
    ),
    # the 12:00 values only: 200 + NOISE three times each, so median 200, MAD 1
    "seasonal_hour_alerts": Case(
        DAILY,
        150,
        {"seasonality": "hour_of_day", "history": "15d", "min_history": 15},
        "ALERT",
        195.55,
        204.45,
        "below expected 196–204 (-25% vs median 200)",
    ),
    # all hours: 120 near 100, 60 near 150, 180 near 200; median (152 + 198) / 2 = 175; |dev| 23..27 48 times
    # each, then 73..77: MAD 26, spread 38.55
    "same_history_without_seasonality_misses": Case(
        DAILY, 150, {"history": "15d"}, "OK", 59.36, 290.64, "within expected 59.4–290.6"
    ),
    # Paris Mondays: 96 values, all 1,000: the band is the single value
    "weekday_in_the_alert_timezone": Case(
        WEEK,
        1000,
        {"seasonality": "day_of_week", "history": "28d"},
        "OK",
        1000,
        1000,
        "within expected 1,000",
        now=WEEK_NOW,
        tz="Europe/Paris",
    ),
    # UTC Sundays: 92 x 300 and 4 x 1,000 (Paris Monday 00:00): MAD 0, so 1.2533 x 2,800 / 96 = 36.55
    "weekday_in_utc_compares_with_sundays": Case(
        WEEK,
        1000,
        {"seasonality": "day_of_week", "history": "28d"},
        "ALERT",
        190.34,
        409.66,
        "above expected 190–410 (+233% vs median 300)",
        now=WEEK_NOW,
    ),
    "too_little_history_is_learning": Case(hourly([100] * 5), 500, {}, "OK", None, None, "learning (5 of 24)"),
    # 20 numbers and 3 numeric texts count; ALERTs, None, NaN, text, too old, now and later do not
    "only_usable_values_count": Case(
        [
            *hourly([100] * 20 + ["100"] * 3 + [500, 500, None, "NaN", "n/a"], anomalous=(23, 24)),
            Sample(NOW - dt.timedelta(days=14, seconds=1), 100, False),
            Sample(NOW, 100, False),
            Sample(NOW + HOUR, 100, False),
        ],
        500,
        {},
        "OK",
        None,
        None,
        "learning (23 of 24)",
    ),
    "older_than_history_is_ignored": Case(
        hourly([1000] * 200 + [100] * 24), 100, {"history": "1d"}, "OK", 100, 100, "within expected 100"
    ),
    # 20 x 100 and 4 x 110: MAD 0, so 1.2533 x 40 / 24 = 2.089
    "mad_zero_falls_back_to_mean_deviation": Case(
        hourly([100] * 20 + [110] * 4), 107, {}, "ALERT", 93.73, 106.27, "above expected 93.7–106.3 (+7% vs median 100)"
    ),
    "all_equal_same_value_is_within": Case(hourly([100] * 24), 100, {}, "OK", 100, 100, "within expected 100"),
    "all_equal_any_change_is_outside": Case(
        hourly([100] * 24), 101, {}, "ALERT", 100, 100, "above expected 100 (+1% vs median 100)"
    ),
    "min_change_tolerates_small_changes": Case(
        hourly([100] * 24),
        101,
        {"min_change": "5%"},
        "OK",
        100,
        100,
        "above expected 100 but within min_change 5% (+1% vs median 100)",
    ),
    "min_change_reached_alerts": Case(
        hourly([100] * 24), 95, {"min_change": "5%"}, "ALERT", 100, 100, "below expected 100 (-5% vs median 100)"
    ),
    "min_change_absolute": Case(
        hourly([100] * 24),
        101.5,
        {"min_change": 2},
        "OK",
        100,
        100,
        "above expected 100 but within min_change 2 (+1.5% vs median 100)",
    ),
    "direction_up_ignores_falls": Case(STEADY, 90, {"direction": "up"}, "OK", None, 104.45, "within expected ≤ 104"),
    "direction_up_alerts_on_rises": Case(
        STEADY, 105, {"direction": "up"}, "ALERT", None, 104.45, "above expected ≤ 104 (+5% vs median 100)"
    ),
    "direction_down_ignores_rises": Case(
        STEADY, 110, {"direction": "down"}, "OK", 95.55, None, "within expected ≥ 95.6"
    ),
    "direction_down_alerts_on_falls": Case(
        STEADY, 95, {"direction": "down"}, "ALERT", 95.55, None, "below expected ≥ 95.6 (-5% vs median 100)"
    ),
}

# 8 days of 100, except 120 an hour ago and 80 exactly 7 days ago (90 and 100 around it)
CHANGE = ago({h: 100 for h in range(1, 193)} | {1: 120, 167: 90, 168: 80})
PREVIOUS = {"method": "change", "above": "50%", "below": "-30%"}
WEEK_AGO = {**PREVIOUS, "vs": "7d"}
CHANGE_CASES: dict[str, Case] = {
    # 120 x 1.5 = 180, 120 x 0.7 = 84
    "previous_within": Case(CHANGE, 160, PREVIOUS, "OK", 84, 180, "within expected 84–180"),
    "previous_rise": Case(
        CHANGE, 181, PREVIOUS, "ALERT", 84, 180, "above expected 84–180 (+50.8% vs previous value 120)"
    ),
    "previous_fall": Case(
        CHANGE, 80, PREVIOUS, "ALERT", 84, 180, "below expected 84–180 (-33.3% vs previous value 120)"
    ),
    "previous_alert_is_skipped": Case(
        ago({1: 300, 2: 100}, anomalous=[1]),
        160,
        PREVIOUS,
        "ALERT",
        70,
        150,
        "above expected 70–150 (+60% vs previous value 100)",
    ),
    "no_previous_value": Case(ago({400: 100}), 160, PREVIOUS, "OK", None, None, "no earlier value to compare with"),
    # 80 x 1.5 = 120, 80 x 0.7 = 56
    "week_ago_rise": Case(
        CHANGE, 126, WEEK_AGO, "ALERT", 56, 120, "above expected 56–120 (+57.5% vs 80 7 days earlier)"
    ),
    # 80 was an ALERT: 90 and 100 are an hour away each; the earlier, 100, wins
    "week_ago_alert_is_skipped": Case(
        ago({h: 100 for h in range(1, 193)} | {167: 90, 168: 80}, anomalous=[168]),
        140,
        WEEK_AGO,
        "OK",
        70,
        150,
        "within expected 70–150",
    ),
    "week_ago_within_tolerance": Case(
        ago({168 - 16: 80}), 126, WEEK_AGO, "ALERT", 56, 120, "above expected 56–120 (+57.5% vs 80 7 days earlier)"
    ),
    "week_ago_past_tolerance": Case(
        ago({168 + 17: 80, 24: 100}),
        126,
        WEEK_AGO,
        "OK",
        None,
        None,
        "no value recorded around 7d earlier (±16.8h) to compare with",
    ),
    "absolute_rise_only": Case(
        CHANGE,
        171,
        {"method": "change", "above": 50},
        "ALERT",
        None,
        170,
        "above expected ≤ 170 (+42.5% vs previous value 120)",
    ),
    "from_zero_any_rise_is_past_a_percent": Case(
        ago({1: 0}),
        1,
        {"method": "change", "above": "50%"},
        "ALERT",
        None,
        0,
        "above expected ≤ 0 (+1 vs previous value 0)",
    ),
    "min_change_gates_small_numbers": Case(
        ago({1: 4}),
        8,
        {"method": "change", "above": "50%", "min_change": 10},
        "OK",
        None,
        6,
        "above expected ≤ 6 but within min_change 10 (+100% vs previous value 4)",
    ),
}


def _bounds(band: Band | None) -> tuple[float | None, float | None]:
    """The band's low and high rounded to 2 decimals; (None, None) without a band."""
    low, high = (band.low, band.high) if band is not None else (None, None)
    return (None if low is None else round(low, 2)), (None if high is None else round(high, 2))


class TestJudge:
    @pytest.mark.parametrize("case", [*BAND_CASES.values(), *CHANGE_CASES.values()], ids=[*BAND_CASES, *CHANGE_CASES])
    def test_verdicts_on_synthetic_histories(self, case: Case) -> None:
        """Each history, value and setting gives the worked-out status, band and reason."""
        verdict = judge(case.value, case.history, BaselineSpec.model_validate(case.spec), case.now, case.tz)
        got = (verdict.status, *_bounds(verdict.band), verdict.reason)
        assert got == (case.status, case.low, case.high, case.reason)
        assert verdict.learning == (verdict.band is None)

    def test_a_spike_fires_once_and_is_left_out_of_learning(self) -> None:
        """Fed back as history, a spike is ALERT once; the values after it are judged on the band before it."""
        history: list[Sample] = []
        values = [98, 99, 100, 101, 102] * 6 + [500] + [98, 99, 100, 101, 102]
        codes, bands = [], []
        for i, value in enumerate(values):
            verdict = judge(value, history, BaselineSpec(), NOW + i * HOUR)
            history.append(Sample(NOW + i * HOUR, value, verdict.status == "ALERT"))
            codes.append(verdict.code)
            bands.append(_bounds(verdict.band))
        assert codes == ["learning"] * 24 + ["within_band"] * 6 + ["above_band"] + ["within_band"] * 5
        assert bands[30] == bands[31] == bands[-1] == (95.55, 104.45)

    @pytest.mark.parametrize(
        ("value", "got"),
        [
            (None, "none (no actual_value column, or NULL)"),
            ("abc", "str 'abc'"),
            ("NaN", "str 'NaN'"),
            (float("inf"), "float inf"),
            (True, "bool True"),
            ("x" * 100, "str '" + "x" * 56 + "..."),
        ],
        ids=["none", "text", "nan_text", "infinity", "boolean", "long_text_is_cut"],
    )
    def test_a_value_that_is_not_a_number_is_an_error(self, value: Any, got: str) -> None:
        """A missing or non-numeric actual_value raises BaselineError saying what the query returned."""
        with pytest.raises(BaselineError) as caught:
            judge(value, STEADY, BaselineSpec(), NOW)
        assert (
            str(caught.value)
            == f"the baseline needs a numeric actual_value (a finite number); the query returned {got}"
        )
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, SentinelError)

    def test_naive_times_are_utc(self) -> None:
        """Naive sample times and a naive now are read as UTC."""
        naive = [Sample(s.at.replace(tzinfo=None), s.value, s.anomalous) for s in STEADY]
        spec = BaselineSpec()
        assert judge(105, naive, spec, NOW.replace(tzinfo=None)) == judge(105, STEADY, spec, NOW)

    def test_only_the_newest_samples_are_learnt(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Past MAX_SAMPLES usable values, the older ones are left out."""
        monkeypatch.setattr(baselines, "MAX_SAMPLES", 24)
        verdict = judge(100, hourly([1000] * 50 + [100] * 24), BaselineSpec(), NOW)
        assert verdict.band is not None and (verdict.band.low, verdict.band.high, verdict.band.count) == (100, 100, 24)

    def test_band_metadata_names_the_thresholds(self) -> None:
        """A band gives baseline, threshold_low and threshold_high as numbers."""
        band = judge(100, hourly([100] * 24), BaselineSpec(direction="up"), NOW).band
        assert band is not None and band.as_metadata() == {
            "baseline": 100,
            "threshold_low": None,
            "threshold_high": 100,
        }


class TestNumeric:
    @pytest.mark.parametrize(
        ("value", "number"),
        [
            (84, 84.0),
            (Decimal("84.50"), 84.5),
            (Fraction(1, 4), 0.25),
            ("172.5", 172.5),
            (" -12 ", -12.0),
            ("1e3", 1000.0),
            (None, None),
            (True, None),
            ("NaN", None),
            ("Infinity", None),
            (float("nan"), None),
            (float("-inf"), None),
            (Decimal("NaN"), None),
            (Decimal("sNaN"), None),
            (10**400, None),
            ("1e999", None),
            ("1_000", None),
            ("12 orders", None),
            ("", None),
            ("1" * 101, None),
            ([1], None),
        ],
    )
    def test_finite_numbers_and_numeric_text_only(self, value: Any, number: float | None) -> None:
        """Numbers and numeric text (as the history stores them) are read; anything else, NaN and infinities are not."""
        assert numeric(value) == number


class TestLookback:
    @pytest.mark.parametrize(
        ("spec", "days"),
        [({}, 14), ({"history": "2d"}, 2), ({"method": "change", "above": 1}, 14), (WEEK_AGO, 7.7)],
        ids=["default", "history", "change_with_previous", "change_vs_adds_the_tolerance"],
    )
    def test_how_far_back_to_read(self, spec: dict[str, Any], days: float) -> None:
        """The history the caller must read: history, or vs and its tolerance."""
        assert lookback(BaselineSpec.model_validate(spec)) == dt.timedelta(days=days)


def _band(low: float | None, high: float | None, center: float, **kwargs: Any) -> Band:
    fields: dict[str, Any] = {"method": "mad", "count": 300, "window_seconds": 14 * 86400.0, "season": None}
    return Band(low, high, center, **(fields | kwargs))


def _verdict(value: float, band: Band | None, reason: str = "") -> Verdict:
    return Verdict("ALERT", "learning" if band is None else "below_band", reason, value, band)


class TestDescribe:
    @pytest.mark.parametrize(
        ("verdict", "unit", "sentence"),
        [
            (
                _verdict(84, _band(140, 210, 172)),
                "orders",
                "84 orders, expected 140–210 (median 172 over the last 14 days)",
            ),
            (_verdict(84, _band(140, 210, 172)), "", "84, expected 140–210 (median 172 over the last 14 days)"),
            (
                _verdict(
                    84,
                    _band(
                        140,
                        210,
                        172,
                        method="zscore",
                        season="on Mondays between 09:00 and 10:00",
                        window_seconds=56 * 86400.0,
                    ),
                ),
                "",
                "84, expected 140–210 (mean 172 on Mondays between 09:00 and 10:00 over the last 56 days)",
            ),
            (
                _verdict(250, _band(None, 210, 172, window_seconds=86400.0)),
                "",
                "250, expected at most 210 (median 172 over the last day)",
            ),
            (
                _verdict(84, _band(140, None, 172, window_seconds=36 * 3600.0)),
                "",
                "84, expected at least 140 (median 172 over the last 36 hours)",
            ),
            (
                _verdict(-7, _band(-5.5, 10, 2.25, window_seconds=5400.0)),
                "",
                "-7, expected -5.5 to 10 (median 2.25 over the last 90 minutes)",
            ),
            (
                _verdict(1_234_567.891, _band(12_345.6, 23_456.7, 17_890.1)),
                "",
                "1,234,568, expected 12,346–23,457 (median 17,890 over the last 14 days)",
            ),
            (
                _verdict(0.05, _band(0.0123, 0.0456, 0.03)),
                "",
                "0.05, expected 0.0123–0.0456 (median 0.03 over the last 14 days)",
            ),
            (
                _verdict(104.5, _band(95.5522, 104.4478, 100)),
                "",
                "104.5, expected 95.6–104.4 (median 100 over the last 14 days)",
            ),
            (
                _verdict(104.4, _band(95.5522, 104.4478, 100)),
                "",
                "104.4, expected 95.55–104.45 (median 100 over the last 14 days)",
            ),
            (_verdict(101, _band(100, 100, 100)), "", "101, expected 100 (median 100 over the last 14 days)"),
            (
                _verdict(160, _band(None, 150, 100, method="change", count=1)),
                "",
                "160, expected at most 150 (previous value 100)",
            ),
            (
                _verdict(126, _band(56, 120, 80, method="change", count=1, vs_seconds=7 * 86400.0)),
                "",
                "126, expected 56–120 (80 7 days earlier)",
            ),
            (
                _verdict(126, _band(56, 120, 80, method="change", count=1, vs_seconds=86400.0)),
                "",
                "126, expected 56–120 (80 a day earlier)",
            ),
            (_verdict(5, None, "learning (5 of 24)"), "orders", "5 orders, learning (5 of 24)"),
            (
                _verdict(1e300, _band(1e-7, 2e-7, 1.5e-7)),
                "",
                "1e+300, expected 1e-07–2e-07 (median 1.5e-07 over the last 14 days)",
            ),
        ],
        ids=[
            "issue_example",
            "without_unit",
            "zscore_seasonal",
            "up_only",
            "down_only",
            "negative_bounds",
            "thousands",
            "small_numbers",
            "value_just_above_shows_a_decimal",
            "value_just_below_shows_two",
            "single_value",
            "change_previous",
            "change_vs",
            "change_vs_one_day",
            "learning",
            "huge_and_tiny_numbers_use_an_exponent",
        ],
    )
    def test_sentence(self, verdict: Verdict, unit: str, sentence: str) -> None:
        """The sentence gives the value, the expected range and what it was learnt from, compactly."""
        assert describe(verdict, unit) == sentence


ISSUE_BLOCK = """
method: mad          # mad (median and MAD, default), zscore, or change
sensitivity: 3       # band half-width in robust standard deviations
history: 14d
min_history: 24
direction: both
seasonality: none
min_change: 5%
"""


def _problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        BaselineSpec.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["msg"].removeprefix("Value error, ")) for e in caught.value.errors()]


class TestBaselineSpec:
    def test_the_documented_block_parses(self) -> None:
        """The block from the issue gives the documented settings."""
        spec = BaselineSpec.model_validate(yaml.safe_load(ISSUE_BLOCK))
        assert (spec.method, spec.sensitivity, spec.history, spec.min_history) == ("mad", 3.0, 14 * 86400.0, 24)
        assert (spec.direction, spec.seasonality, spec.min_change) == ("both", "none", Change(5.0, percent=True))

    def test_the_change_block_parses(self) -> None:
        """`{method: change, vs: 7d, above: 50%, below: -30%}` compares with a week ago, both ways."""
        spec = BaselineSpec.model_validate(yaml.safe_load("{method: change, vs: 7d, above: 50%, below: -30%}"))
        assert (spec.vs, spec.above, spec.below) == (7 * 86400.0, Change(50.0, True), Change(-30.0, True))

    def test_defaults(self) -> None:
        """An empty block is mad, 3 deviations, 14 days, 24 values, both sides, no seasonality, no gate."""
        assert BaselineSpec() == BaselineSpec.model_validate(
            {"method": "mad", "sensitivity": 3, "history": "14d", "min_history": 24, "direction": "both"}
        )

    @pytest.mark.parametrize(
        "data",
        [{"min_change": "5%", "seasonality": "hour_of_day"}, {**WEEK_AGO, "min_change": 10}],
        ids=["band", "change"],
    )
    def test_a_dump_validates_again(self, data: dict[str, Any]) -> None:
        """model_dump() gives every field, changes as written ('5%'), and validates to the same spec."""
        spec = BaselineSpec.model_validate(data)
        assert BaselineSpec.model_validate(spec.model_dump()) == spec
        assert BaselineSpec.model_validate_json(spec.model_dump_json()) == spec

    @pytest.mark.parametrize(
        ("data", "problems"),
        [
            (
                {"method": "change"},
                [("", "method change needs above (a rise, e.g. 50%), below (a fall, e.g. -30%) or both")],
            ),
            (
                {"method": "change", "above": "50%", "sensitivity": 2, "seasonality": "hour_of_day"},
                [
                    (
                        "",
                        "sensitivity and seasonality apply only to methods mad and zscore; "
                        "method change alerts on above and below",
                    )
                ],
            ),
            ({"above": "50%"}, [("", "above applies only to method change (this baseline uses mad)")]),
            (
                {"method": "zscore", "vs": "7d", "above": "5%", "below": "-5%"},
                [("", "vs, above and below apply only to method change (this baseline uses zscore)")],
            ),
            (
                {"method": "change", "vs": "7d", "history": "30d", "above": "5%"},
                [
                    (
                        "",
                        "history applies to method change only without vs (how old the previous value may be); "
                        "with vs the value recorded closest to that long ago is used",
                    )
                ],
            ),
            (
                {"seasonality": "day_of_week", "history": "3d"},
                [
                    (
                        "",
                        "seasonality day_of_week compares with the same time in earlier weeks: "
                        "history must be at least 7d, got 3d",
                    )
                ],
            ),
            (
                {"seasonality": "hour_of_day", "history": "12h"},
                [
                    (
                        "",
                        "seasonality hour_of_day compares with the same time in earlier days: "
                        "history must be at least 1d, got 12h",
                    )
                ],
            ),
            ({"history": "500d"}, [("history", "at most 400d, got 500d")]),
            (
                {"history": "soon"},
                [("history", "invalid duration 'soon'; use seconds (30) or a string such as '30s', '5m', '1h'")],
            ),
            (
                {"sensitivity": 0},
                [("sensitivity", "must be more than 0 (the band's half-width in standard deviations, e.g. 3), got 0")],
            ),
            ({"sensitivity": True}, [("sensitivity", "expected a number, got True")]),
            ({"min_history": 0}, [("min_history", "Input should be greater than or equal to 1")]),
            (
                {"min_change": "five"},
                [
                    (
                        "min_change",
                        "invalid change 'five'; write a percent such as '5%' or '-30%', or a number such as 12",
                    )
                ],
            ),
            (
                {"min_change": "-5%"},
                [("min_change", "min_change is a size, written positive (e.g. 5% or 10), got -5%")],
            ),
            (
                {"method": "change", "above": "-10%"},
                [("above", "above is a rise, written positive (e.g. 50% or 100), got -10%")],
            ),
            (
                {"method": "change", "below": "30%"},
                [("below", "below is a fall, written negative (e.g. -30% or -100), got 30%")],
            ),
            ({"method": "mean"}, [("method", "Input should be 'mad', 'zscore' or 'change'")]),
            ({"metod": "mad"}, [("metod", "Extra inputs are not permitted")]),
        ],
        ids=[
            "change_needs_above_or_below",
            "band_settings_with_change",
            "above_without_change",
            "vs_above_below_without_change",
            "history_with_vs",
            "weekly_seasonality_needs_a_week",
            "daily_seasonality_needs_a_day",
            "history_too_long",
            "history_not_a_duration",
            "sensitivity_zero",
            "sensitivity_boolean",
            "min_history_zero",
            "min_change_not_a_change",
            "min_change_negative",
            "above_negative",
            "below_positive",
            "unknown_method",
            "unknown_key",
        ],
    )
    def test_problems_say_what_is_allowed(self, data: dict[str, Any], problems: list[tuple[str, str]]) -> None:
        """Each invalid block is refused with the field and a message naming what is allowed."""
        assert _problems(data) == problems


class TestChange:
    @pytest.mark.parametrize(
        ("text", "change", "shown", "amount_of_200"),
        [
            ("5%", Change(5.0, True), "5%", 10.0),
            ("-30 %", Change(-30.0, True), "-30%", -60.0),
            ("+2.5%", Change(2.5, True), "2.5%", 5.0),
            (12, Change(12.0, False), "12", 12.0),
            ("-0.5", Change(-0.5, False), "-0.5", -0.5),
        ],
    )
    def test_percent_or_absolute(self, text: Any, change: Change, shown: str, amount_of_200: float) -> None:
        """A percent is of the reference's magnitude; a plain number is absolute."""
        parsed = parse_change(text)
        assert (parsed, str(parsed), parsed.amount(200), parsed.amount(-200)) == (
            change,
            shown,
            amount_of_200,
            amount_of_200,
        )

    @pytest.mark.parametrize("value", ["5 percent", "%", True, None, float("nan"), "9" * 50])
    def test_anything_else_is_refused(self, value: Any) -> None:
        """Words, booleans, None, NaN and long text are refused, quoting at most 40 characters."""
        with pytest.raises(ValueError, match=r"(invalid change|finite)") as caught:
            parse_change(value)
        assert len(str(caught.value)) < 140
