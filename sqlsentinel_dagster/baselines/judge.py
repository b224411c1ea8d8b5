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
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ..config.baseline import BaselineSpec, Method, short_span
from ..errors import SentinelError

__all__ = [
    "MAX_SAMPLES",
    "VS_TOLERANCE",
    "Band",
    "BaselineError",
    "Sample",
    "Verdict",
    "VerdictCode",
    "describe",
    "expected_range",
    "judge",
    "lookback",
    "numeric",
]

MAX_SAMPLES = 100_000
"""The most recorded values one verdict learns from (the newest); the caller need not read more."""
VS_TOLERANCE = 0.1
"""With ``vs``, how far from ``now - vs`` the compared value may be recorded, as a fraction of ``vs``."""
VerdictCode = Literal[
    "learning", "no_reference", "not_finite", "within_band", "within_min_change", "above_band", "below_band"
]

_MAD_TO_SD = 1 / statistics.NormalDist().inv_cdf(0.75)  # 1.4826
_MEAN_AD_TO_SD = math.sqrt(math.pi / 2)  # 1.2533
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_DASH = "\N{EN DASH}"
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WORDS = (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0))


class BaselineError(SentinelError, ValueError):
    """Raised by :func:`judge` when the value to judge is not a finite number (missing, NULL, text, NaN)."""


@dataclass(frozen=True)
class Sample:
    """One recorded evaluation of the alert, as the caller read it from the history."""

    at: dt.datetime
    """When it was evaluated (a naive time is taken as UTC)."""
    value: Any
    """Its ``actual_value`` as recorded (number, numeric text, None...); only finite numbers are learnt from."""
    anomalous: bool
    """Whether it was judged ALERT: such values are never learnt from nor compared with."""


@dataclass(frozen=True)
class Band:
    """The expected range a value was judged against; ``low`` and ``high`` are the alert's thresholds."""

    low: float | None
    """Values below this alert; None when that side is not checked (``direction: up``, no ``below``)."""
    high: float | None
    """Values above this alert; None when that side is not checked (``direction: down``, no ``above``)."""
    center: float
    """The baseline: the median, the mean, or the value compared with (method change)."""
    method: Method
    """How the band was made."""
    count: int
    """How many recorded values it was learnt from (1 for method change)."""
    window_seconds: float
    """How far back values were taken from: ``history``, or ``vs`` when comparing with a value that long ago."""
    season: str | None
    """With seasonality, the values learnt from, e.g. ``on Mondays between 09:00 and 10:00``; else None."""
    vs_seconds: float | None = None
    """Method change with ``vs``: how long before ``now`` the compared value was meant to be; else None."""

    def as_metadata(self) -> dict[str, float | None]:
        """``baseline``, ``threshold_low`` and ``threshold_high``, for run metadata and JSON payloads; None for a
        side not checked, and for a number that is not finite (:func:`judge` never draws one, but an infinity
        must never reach metadata or JSON, whoever built the band)."""
        return {
            "baseline": _finite(self.center),
            "threshold_low": _finite(self.low),
            "threshold_high": _finite(self.high),
        }


@dataclass(frozen=True)
class Verdict:
    """What the baseline says of one value: ALERT or OK, a named reason, and the band used (if any)."""

    status: Literal["ALERT", "OK"]
    """ALERT when the value is outside the band (and past ``min_change``); OK otherwise, also while learning and
    when the band is not finite."""
    code: VerdictCode
    """A stable name for the reason, e.g. ``learning``, ``not_finite``, ``above_band``."""
    reason: str
    """The reason in words, e.g. ``above expected 140-210 (+35% vs median 172)`` (an en dash in the range)."""
    value: float
    """The value judged."""
    band: Band | None
    """The band, or None while learning, with nothing to compare with, or when it is not finite."""

    @property
    def learning(self) -> bool:
        """Whether the history was too short to judge (the status is then OK)."""
        return self.code in ("learning", "no_reference")


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
        season = _season(now, spec, zone)
        usable = [(at, v) for at, v in usable if _season(at, spec, zone) == season]
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


def describe(verdict: Verdict, unit: str = "") -> str:
    """The verdict for people: ``84 orders, expected 140-210 (median 172 over the last 14 days)``, with an en dash.

    ``unit`` (e.g. ``orders``) follows the value; without it the sentence reads ``84, expected ...``."""
    band = verdict.band
    shown_unit = f" {unit}" if unit else ""
    if band is None:
        return f"{_fmt(verdict.value, _decimals(verdict.value))}{shown_unit}, {verdict.reason}"
    value, expected = _expected(verdict.value, band, words=True)
    basis = _center_words(band)
    if band.method != "change":
        basis += f" {band.season}" if band.season else ""
        basis += f" over the last {_span_words(band.window_seconds, one='')}"
    return f"{value}{shown_unit}, expected {expected} ({basis})"


def expected_range(verdict: Verdict) -> str | None:
    """The band alone, as :func:`describe` writes it (``140-210`` with an en dash, ``at most 210``), for the
    alert's threshold; None while there is no band."""
    return _expected(verdict.value, verdict.band, words=True)[1] if verdict.band is not None else None


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
        return f"the band {' and '.join(changes)} around {_center_words(band)}"
    learnt = f"the {band.count:,} value{'s' if band.count != 1 else ''} learnt from"
    if not math.isfinite(band.center):
        return f"the {'mean' if band.method == 'zscore' else 'median'} of {learnt}"
    if not math.isfinite(spread):
        return f"the spread of {learnt}"
    if all(b is None or math.isfinite(b) for b in (band.low, band.high)):
        return None
    return f"the band {_center_words(band)} ± {spec.sensitivity:g} x {_fmt(spread, _decimals(spread))}"


def _against(number: float, band: Band, spec: BaselineSpec) -> Verdict:
    above = band.high is not None and number > band.high
    below = band.low is not None and number < band.low
    _, expected = _expected(number, band, words=False)
    if not above and not below:
        return Verdict("OK", "within_band", f"within expected {expected}", number, band)
    side: Literal["above", "below"] = "above" if above else "below"
    detail = f"({_delta(number, band.center)} vs {_center_words(band)})"
    if spec.min_change is not None and abs(number - band.center) < spec.min_change.amount(band.center):
        reason = f"{side} expected {expected} but within min_change {spec.min_change} {detail}"
        return Verdict("OK", "within_min_change", reason, number, band)
    code: VerdictCode = "above_band" if above else "below_band"
    return Verdict("ALERT", code, f"{side} expected {expected} {detail}", number, band)


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _season(at: dt.datetime, spec: BaselineSpec, zone: ZoneInfo) -> str:
    """Which values ``at`` is compared with, in words (also the key): ``on Mondays between 09:00 and 10:00``."""
    local = at.astimezone(zone)
    hours = f"between {local.hour:02d}:00 and {(local.hour + 1) % 24:02d}:00"
    day = f"on {_DAYS[local.weekday()]}s"
    return {"hour_of_day": hours, "day_of_week": day}.get(spec.seasonality, f"{day} {hours}")


def _center_words(band: Band) -> str:
    center = _fmt(band.center, _decimals(band.center))
    if band.method != "change":
        return f"{'mean' if band.method == 'zscore' else 'median'} {center}"
    if band.vs_seconds is None:
        return f"previous value {center}"
    return f"{center} {_span_words(band.vs_seconds, one='a ')} earlier"


def _span_words(seconds: float, one: str) -> str:
    """``'14 days'``; for exactly one unit ``one`` + ``'day'`` (``'day'``, ``'a day'``)."""
    name, size = next(((n, s) for n, s in _WORDS if seconds >= s and seconds % s == 0), ("second", 1.0))
    count = seconds / size
    return f"{one}{name}" if count == 1 else f"{_fmt(count, _decimals(count))} {name}s"


def _expected(number: float, band: Band, words: bool) -> tuple[str, str]:
    """The value and the band as text, with as many decimals as it takes for the text to tell the same story
    as the numbers (a value just above ``high`` never reads equal to it)."""
    bounds = [b for b in (band.low, band.high) if b is not None]
    start = max(_decimals(b) for b in bounds)
    texts, value = [], ""
    for decimals in range(start, max(start, 9) + 1):
        texts = [_fmt(b, decimals) for b in bounds]
        value = _fmt(number, max(decimals, _decimals(number)))
        if all(_sign(number - b) == _sign(_parse(value) - _parse(t)) for b, t in zip(bounds, texts, strict=True)):
            break
    if band.low is not None and band.high is not None:
        low, high = texts
        if low == high:
            return value, low
        return value, f"{low} to {high}" if low.startswith("-") or high.startswith("-") else f"{low}{_DASH}{high}"
    (only,) = texts
    if band.low is not None:
        return value, f"at least {only}" if words else f"≥ {only}"
    return value, f"at most {only}" if words else f"≤ {only}"


def _delta(number: float, center: float) -> str:
    sign = "+" if number >= center else "-"
    size = abs(number - center)
    if center != 0:
        if math.isfinite(size):
            percent = size / abs(center) * 100
        else:  # past the largest float (1e308 - -1e308): from the exact difference (the centre is huge too)
            percent = float(abs(Decimal(number) - Decimal(center)) / abs(Decimal(center)) * 100)
        if math.isfinite(percent):
            return f"{sign}{_fmt(percent, _decimals(percent))}%"
    return f"{sign}{_fmt(size, _decimals(size))}"  # no percent of 0 (or of a value so small the percent overflows)


def _decimals(x: float) -> int:
    """Decimals for about 3 significant digits, never rounding the integer part: 172, 84.6, 3.14, 0.0123."""
    size = abs(x)
    if size == 0 or not math.isfinite(size):
        return 0
    if size >= 1:
        return max(0, 3 - len(str(int(size))))
    return min(9, 2 - math.floor(math.log10(size)))


def _fmt(x: float, decimals: int) -> str:
    """``x`` with thousands separators and at most ``decimals`` decimals, trailing zeros dropped; from 10^15 and
    under 10^-6, 4 significant digits and an exponent (a reason stays short whatever the query returns)."""
    if x != 0 and not 1e-6 <= abs(x) < 1e15:
        return f"{x:.4g}"
    text = f"{x:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _parse(text: str) -> float:
    return float(text.replace(",", ""))


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)
