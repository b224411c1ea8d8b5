"""Thresholds learned from an alert's own history (``baseline:``): a pure function of the value, the recorded
evaluations, the settings and ``now``. No Dagster and no database here.

Rules, each chosen to keep one odd history from making a blind or a noisy alert:

- Learning uses the usable values recorded in ``[now - history, now)``: numbers (numeric text too, as the state
  store keeps ``actual_value`` as text), finite, and not judged ALERT, so an anomaly never widens the band.
- ``mad``: centre = median, spread = 1.4826 x the median absolute deviation (the standard deviation of normal
  data). When more than half the values are equal that deviation is 0: the spread falls back to 1.2533 x the
  mean absolute deviation from the median, and when that is 0 too (every value equal) the band is the single
  value, so any change is outside it; ``min_change`` is how a team tolerates small changes.
- ``zscore``: centre = mean, spread = the sample standard deviation (0 with one value).
- ``seasonality`` learns only from values of the same hour of the day / weekday / hour of the week as ``now``,
  in the alert's timezone; ``min_history`` then counts those values.
- ``change`` compares with the latest usable value in the window, or with the usable value recorded closest to
  ``now - vs``, at most 10% of ``vs`` away (16.8h for 7d; the earlier on a tie); with none, the verdict is OK
  and says so.
- A band is finite or not drawn: when values near the largest float (±1.8e308) make the centre, the spread or a
  bound overflow, the verdict is OK, ``not_finite``, naming which (never a band of infinities, which no value could
  leave, nor one in metadata). A median or mean that is finite is found even when the arithmetic on the way
  overflows (two middle values are halved before they are added; a sum is taken exactly).
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import re
import statistics
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ..config.baseline import BaselineSpec, Method, short_span
from .verdict import MAX_SAMPLES, VS_TOLERANCE, Band, BaselineError, Sample, Verdict, VerdictCode
from .words import center_words, decimals_of, delta_words, expected_words, number_words, season_words

__all__ = ["judge", "lookback", "numeric"]


_MAD_TO_SD = 1 / statistics.NormalDist().inv_cdf(0.75)  # 1.4826
_MEAN_AD_TO_SD = math.sqrt(math.pi / 2)  # 1.2533
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


def numeric(value: Any) -> float | None:
    """``value`` as a finite float: ints, floats, Decimals and numeric text such as ``'172.5'``; else None
    (None, booleans, NaN, infinities, other text and types)."""
    if isinstance(value, str):
        if len(value) > 100 or not _NUMBER.match(value):
            return None
    elif isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):  # an int too large for a float; a signalling Decimal NaN
        return None
    return number if math.isfinite(number) else None


def lookback(spec: BaselineSpec) -> dt.timedelta:
    """How far before ``now`` the caller must read the history for :func:`judge`."""
    if spec.method == "change" and spec.vs is not None:
        return dt.timedelta(seconds=spec.vs * (1 + VS_TOLERANCE))
    return dt.timedelta(seconds=spec.history)


def judge(value: Any, history: Sequence[Sample], spec: BaselineSpec, now: dt.datetime, tz: str = "UTC") -> Verdict:
    """Judge ``value`` against what ``history`` (the alert's evaluations before ``now``, any order) teaches.

    Raises :class:`BaselineError` when ``value`` is not a finite number."""
    number = numeric(value)
    if number is None:
        text = repr(value)
        shown = text if len(text) <= 60 else text[:57] + "..."
        got = "none (no actual_value column, or NULL)" if value is None else f"{type(value).__name__} {shown}"
        raise BaselineError(f"the baseline needs a numeric actual_value (a finite number); the query returned {got}")
    now = _aware(now)
    since = now - lookback(spec)
    usable = sorted(
        (at, v)
        for s in history
        if not s.anomalous and since <= (at := _aware(s.at)) < now and (v := numeric(s.value)) is not None
    )[-MAX_SAMPLES:]
    if spec.method == "change":
        return _judge_change(number, usable, spec, now)
    season = None
    if spec.seasonality != "none":
        zone = ZoneInfo(tz)
        season = season_words(now, spec, zone)
        usable = [(at, v) for at, v in usable if season_words(at, spec, zone) == season]
    values = [v for _, v in usable]
    if len(values) < spec.min_history:
        return Verdict("OK", "learning", f"learning ({len(values)} of {spec.min_history})", number, None)
    center, spread = _center_spread(values, spec.method)
    half = spec.sensitivity * spread
    low = center - half if spec.direction != "up" else None
    high = center + half if spec.direction != "down" else None
    band = Band(low, high, center, spec.method, len(values), spec.history, season)
    unfinished = _not_finite(band, spread, spec)
    if unfinished is not None:
        return Verdict("OK", "not_finite", f"cannot judge: {unfinished} is not a finite number", number, None)
    return _against(number, band, spec)


def _judge_change(
    number: float, usable: list[tuple[dt.datetime, float]], spec: BaselineSpec, now: dt.datetime
) -> Verdict:
    if spec.vs is None:
        reference = usable[-1] if usable else None
        missing = "no earlier value to compare with"
    else:
        target, tolerance = now - dt.timedelta(seconds=spec.vs), dt.timedelta(seconds=spec.vs * VS_TOLERANCE)
        near = [(abs(at - target), at, v) for at, v in usable if abs(at - target) <= tolerance]
        reference = min(near)[1:] if near else None
        missing = f"no value recorded around {short_span(spec.vs)} earlier (±{short_span(spec.vs * VS_TOLERANCE)})"
        missing += " to compare with"
    if reference is None:
        return Verdict("OK", "no_reference", missing, number, None)
    ref = reference[1]
    low = ref + spec.below.amount(ref) if spec.below is not None else None
    high = ref + spec.above.amount(ref) if spec.above is not None else None
    window = spec.vs if spec.vs is not None else spec.history
    band = Band(low, high, ref, "change", 1, window, None, spec.vs)
    unfinished = _not_finite(band, 0.0, spec)
    if unfinished is not None:
        return Verdict("OK", "not_finite", f"cannot judge: {unfinished} is not a finite number", number, None)
    return _against(number, band, spec)


def _center_spread(values: list[float], method: Method) -> tuple[float, float]:
    """The centre and spread of a band learnt from ``values``; either is infinite when it overflows a float."""
    if method == "zscore":
        center = _mean(values)
        try:
            return center, statistics.stdev(values) if len(values) > 1 else 0.0
        except OverflowError:  # the exact standard deviation is past the largest float
            return center, math.inf
    center = _median(values)
    deviations = [abs(v - center) for v in values]  # infinite past the largest float (1e308 - -1e308)
    mad = _median(deviations)
    if mad > 0:
        return center, _MAD_TO_SD * mad
    try:
        return center, _MEAN_AD_TO_SD * statistics.fmean(deviations)
    except OverflowError:
        return center, math.inf


def _median(values: list[float]) -> float:
    """``statistics.median``, but the two middle values near the largest float are halved before they are added
    (as the replay's window does), so the median of 1e308s is 1e308, not infinity."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    low, high = ordered[middle - 1], ordered[middle]
    half_sum = (low + high) / 2
    return half_sum if math.isfinite(half_sum) else low / 2 + high / 2


def _mean(values: list[float]) -> float:
    """``statistics.fmean``; when its sum overflows on the way, the exact sum rounded once, then divided (as the
    replay's window takes the mean), so a mean of values near the largest float is still that value."""
    try:
        return statistics.fmean(values)
    except OverflowError:
        exact = sum(map(Fraction, values), Fraction(0))
        try:
            return float(exact) / len(values)
        except OverflowError:
            return float(exact / len(values))


def _not_finite(band: Band, spread: float, spec: BaselineSpec) -> str | None:
    """What of ``band`` is not a finite number, in words (``the spread of the 24 values learnt from``); None when
    every number is finite."""
    if band.method == "change":
        if all(b is None or math.isfinite(b) for b in (band.low, band.high)):
            return None
        changes = [f"{name} {change}" for name, change in (("above", spec.above), ("below", spec.below)) if change]
        return f"the band {' and '.join(changes)} around {center_words(band)}"
    learnt = f"the {band.count:,} value{'s' if band.count != 1 else ''} learnt from"
    if not math.isfinite(band.center):
        return f"the {'mean' if band.method == 'zscore' else 'median'} of {learnt}"
    if not math.isfinite(spread):
        return f"the spread of {learnt}"
    if all(b is None or math.isfinite(b) for b in (band.low, band.high)):
        return None
    return f"the band {center_words(band)} ± {spec.sensitivity:g} x {number_words(spread, decimals_of(spread))}"


def _against(number: float, band: Band, spec: BaselineSpec) -> Verdict:
    above = band.high is not None and number > band.high
    below = band.low is not None and number < band.low
    _, expected = expected_words(number, band, words=False)
    if not above and not below:
        return Verdict("OK", "within_band", f"within expected {expected}", number, band)
    side: Literal["above", "below"] = "above" if above else "below"
    detail = f"({delta_words(number, band.center)} vs {center_words(band)})"
    if spec.min_change is not None and abs(number - band.center) < spec.min_change.amount(band.center):
        reason = f"{side} expected {expected} but within min_change {spec.min_change} {detail}"
        return Verdict("OK", "within_min_change", reason, number, band)
    code: VerdictCode = "above_band" if above else "below_band"
    return Verdict("ALERT", code, f"{side} expected {expected} {detail}", number, band)


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
