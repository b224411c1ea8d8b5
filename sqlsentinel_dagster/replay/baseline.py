"""Baseline alerts in a replay: each side's statuses re-judged by its ``baseline:`` when that is not the one the
evaluations were recorded under. Pure, like :mod:`.core`.

Rules:

- The recorded statuses are taken as judged by the ``recorded`` baseline (the deployed version's). A side whose
  baseline is the same (same settings; same timezone too with seasonality) replays them as they are, so the
  replay of unchanged settings is exact. A side without a baseline replays them as they are too.
- Any other side re-judges every evaluation, oldest first: its recorded ``actual_value`` against the values of
  the evaluations before it, as :func:`..baselines.judge` does in a run, each earlier evaluation being anomalous
  when *this side* judged it ALERT (what the side would have learned). It learns first from the evaluations
  recorded in the baseline's lookback before the period (``before``); that chain starts with what is recorded,
  so the first evaluations of a young or pruned history are learning, as they were in the alert's first runs.
- A re-judged status is the value's alone: a query's own ``status`` column was combined with the baseline's
  verdict when recorded and cannot be told apart, so a query-side ALERT is lost on a side that re-judges.
- A recorded ERROR stays ERROR; a value that is not a finite number is ERROR, as a run records it.

A run calls ``judge`` once; a replay would call it for each of thousands of evaluations, each time over its whole
window. So the window here is incremental: the usable values of the lookback (at most ``MAX_SAMPLES``, grouped by
season), with a sorted list per group for ``mad`` (the MAD from two sorted runs of deviations, in log time) and
exact running sums for ``zscore``. The bands are the ones ``judge`` draws, to the last bit (a test compares both).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import sys
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import chain
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from ..baselines import MAX_SAMPLES, VS_TOLERANCE, lookback, numeric
from ..config import AlertConfig
from ..config.baseline import BaselineSpec, short_span
from .core import Evaluation

__all__ = ["Baselines", "Judged", "Rule", "baseline_json", "describe_baseline", "judge_sides", "rejudge"]

Side = Literal["current", "proposed"]
SIDES: tuple[Side, ...] = ("current", "proposed")
_MAD_TO_SD = 1 / statistics.NormalDist().inv_cdf(0.75)  # as in ..baselines
_MEAN_AD_TO_SD = math.sqrt(math.pi / 2)
_SQRT_BITS = 2 * sys.float_info.mant_dig + 3
_BAND_FIELDS = ("sensitivity", "history", "min_history", "direction", "seasonality")


@dataclass(frozen=True)
class Rule:
    """A baseline as an alert judges with it: the ``baseline:`` block and the alert's timezone (for seasonality)."""

    spec: BaselineSpec
    timezone: str = "UTC"

    @classmethod
    def of(cls, alert: AlertConfig | None) -> Rule | None:
        """``alert``'s baseline; None for an alert without one (or no alert)."""
        return cls(alert.baseline, alert.timezone) if alert is not None and alert.baseline is not None else None

    def same_as(self, other: Rule | None) -> bool:
        """Whether it judges every value as ``other`` does: the same settings, and the same timezone when
        seasonality reads it."""
        return (
            other is not None
            and self.spec.model_dump() == other.spec.model_dump()
            and (self.spec.seasonality == "none" or self.timezone == other.timezone)
        )


@dataclass(frozen=True)
class Baselines:
    """The baselines of one alert's replay: the one its evaluations were recorded under, and each side's."""

    recorded: Rule | None = None
    """What the recorded statuses are taken as judged by: the deployed version's baseline."""
    current: Rule | None = None
    proposed: Rule | None = None

    def rule(self, side: Side) -> Rule | None:
        """The baseline of ``side``."""
        return self.current if side == "current" else self.proposed

    def rejudges(self, side: Side) -> bool:
        """Whether ``side`` re-judges the statuses: it has a baseline, not the recorded one."""
        rule = self.rule(side)
        return rule is not None and not rule.same_as(self.recorded)

    @property
    def any(self) -> bool:
        """Whether either side re-judges the statuses."""
        return any(self.rejudges(side) for side in SIDES)

    @property
    def lookback(self) -> dt.timedelta:
        """How far before the period the sides that re-judge learn from (0 when none does)."""
        spans = [lookback(r.spec) for s in SIDES if self.rejudges(s) and (r := self.rule(s)) is not None]
        return max(spans, default=dt.timedelta(0))


@dataclass(frozen=True)
class Judged:
    """The evaluations each side decides, and notes on what the baselines did."""

    current: list[Evaluation]
    proposed: list[Evaluation]
    notes: list[str]


def judge_sides(evaluations: Sequence[Evaluation], baselines: Baselines, before: Sequence[Evaluation] = ()) -> Judged:
    """``evaluations`` (oldest first) as each side decides them: re-judged by its baseline when
    :meth:`Baselines.rejudges`, else as recorded; ``before``: the evaluations recorded before them, to learn from."""
    sides: dict[Side, list[Evaluation]] = {}
    notes: list[str] = []
    recorded_alerts = sum(1 for e in evaluations if e.status == "ALERT")
    for side in SIDES:
        rule = baselines.rule(side)
        if rule is None or not baselines.rejudges(side):
            sides[side] = list(evaluations)
            if rule is None and baselines.recorded is not None:
                notes.append(
                    f"{side}: no baseline, so the recorded statuses are replayed as they are; they include the "
                    "recorded baseline's verdicts (a query's own status cannot be told apart from them)"
                )
            continue
        judged, learning = _rejudge(evaluations, rule, before)
        sides[side] = judged
        alerts = sum(1 for e in judged if e.status == "ALERT")
        errors = sum(1 for e in judged if e.status == "ERROR")
        not_numbers = errors - sum(1 for e in evaluations if e.status == "ERROR")
        note = (
            f"{side}: statuses re-judged by its baseline: {alerts:,} ALERT, {errors:,} ERROR, {learning:,} learning "
            f"of {len(judged):,} evaluations (recorded: {recorded_alerts:,} ALERT)"
        )
        if not_numbers:
            note += f"; {not_numbers:,} without a numeric actual_value are ERROR, as a run records them"
        notes.append(note)
    if baselines.any and evaluations:
        since = _aware(before[0].at if before else evaluations[0].at)
        notes.append(
            "a re-judged status is the baseline's verdict on the recorded actual_value alone (a query's own status "
            "column is not replayed), learned from the values that side did not judge ALERT, recorded since "
            f"{since.isoformat(timespec='seconds')}; the incidents are still those of the recorded history"
        )
    return Judged(sides["current"], sides["proposed"], notes)


def rejudge(evaluations: Sequence[Evaluation], rule: Rule, before: Sequence[Evaluation] = ()) -> list[Evaluation]:
    """``evaluations`` (oldest first, else ValueError) with each status as ``rule`` judges its value against the
    evaluations before it, ``before`` included, anomalous where this judging said ALERT. ERRORs stay ERROR."""
    return _rejudge(evaluations, rule, before)[0]


def baseline_json(rule: Rule | None) -> dict[str, Any] | None:
    """The settings ``rule`` judges with, as ``baseline:`` is written (``history: 14d``, ``min_change: 5%``), every
    one that applies to its method; None without a baseline."""
    if rule is None:
        return None
    spec = rule.spec
    shown: dict[str, Any] = spec.model_dump(mode="json", exclude_none=True)
    if spec.method == "change":
        shown = {k: v for k, v in shown.items() if k not in _BAND_FIELDS or (k == "history" and spec.vs is None)}
    for key in ("history", "vs"):
        if key in shown:
            shown[key] = short_span(shown[key])
    return shown


def describe_baseline(rule: Rule | None) -> str:
    """``{method: mad, sensitivity: 3, history: 14d, ...}`` as in YAML's flow style; ``none`` without a baseline."""
    shown = baseline_json(rule)
    if shown is None:
        return "none"
    return "{" + ", ".join(f"{k}: {f'{v:g}' if isinstance(v, float) else v}" for k, v in shown.items()) + "}"


def _rejudge(
    evaluations: Sequence[Evaluation], rule: Rule, before: Sequence[Evaluation]
) -> tuple[list[Evaluation], int]:
    """The re-judged evaluations, and how many of them were learning."""
    window = _Window(rule)
    judged: list[Evaluation] = []
    learning = 0
    for index, evaluation in enumerate(chain(before, evaluations)):
        at = _aware(evaluation.at)
        window.move_to(at)
        number = numeric(evaluation.actual_value)
        status, error, was_learning = evaluation.status, evaluation.error, False
        if status != "ERROR" and number is None:
            status, error = "ERROR", _not_a_number(evaluation.actual_value)
        elif status != "ERROR" and number is not None:
            status, was_learning = window.judge(at, number)
            error = None
        window.learn(at, number, anomalous=status == "ALERT")
        if index >= len(before):
            judged.append(replace(evaluation, status=status, error=error))
            learning += was_learning
    return judged, learning


class _Window:
    """What one side has learned by ``now``: the usable values recorded in ``[now - lookback, now)``, at most
    ``MAX_SAMPLES`` (the newest), ordered as ``judge`` orders them (by time, then value), grouped by season."""

    def __init__(self, rule: Rule) -> None:
        self._spec = rule.spec
        self._zone = ZoneInfo(rule.timezone) if rule.spec.seasonality != "none" else None
        self._lookback = lookback(rule.spec)
        self._times: list[dt.datetime] = []
        self._values: list[float] = []
        self._keys: list[Hashable] = []
        self._head = 0  # entries before it are forgotten
        self._groups: dict[Hashable, _Group] = {}
        self._pending: list[tuple[dt.datetime, float]] = []  # recorded at ``now``: not before it, not learned yet
        self._now: dt.datetime | None = None
        self._new_group: Callable[[], _Group] = _Sums if rule.spec.method == "zscore" else _Sorted

    def move_to(self, now: dt.datetime) -> None:
        """Learn what was recorded before ``now``, forget what is out of the window; ``now`` never goes back."""
        if self._now is not None and now < self._now:
            raise ValueError(f"evaluations must be oldest first: {now.isoformat()} comes after {self._now.isoformat()}")
        self._now = now
        if self._pending and self._pending[0][0] < now:
            for at, value in sorted(self._pending):
                self._add(at, value)
            self._pending.clear()
        since = now - self._lookback
        times = self._times
        while self._head < len(times) and (times[self._head] < since or len(times) - self._head > MAX_SAMPLES):
            if self._spec.method != "change":
                self._groups[self._keys[self._head]].remove(self._values[self._head])
            self._head += 1
        if self._head > 4096 and self._head * 2 > len(times):
            del self._times[: self._head], self._values[: self._head], self._keys[: self._head]
            self._head = 0

    def learn(self, at: dt.datetime, number: float | None, *, anomalous: bool) -> None:
        """Remember the value of the evaluation at ``at`` (the current time), unless it cannot be learned from."""
        if number is not None and not anomalous:
            self._pending.append((at, number))

    def judge(self, now: dt.datetime, number: float) -> tuple[Literal["ALERT", "OK"], bool]:
        """The status of ``number`` at ``now``, and whether the window was too short to judge (learning)."""
        spec = self._spec
        if spec.method == "change":
            reference = self._reference(now)
            if reference is None:
                return "OK", True
            low = reference + spec.below.amount(reference) if spec.below is not None else None
            high = reference + spec.above.amount(reference) if spec.above is not None else None
            return self._against(number, low, high, reference), False
        group = self._groups.get(self._key(now))
        if group is None or len(group) < spec.min_history:
            return "OK", True
        center, spread = group.center_spread()
        half = spec.sensitivity * spread
        low = center - half if spec.direction != "up" else None
        high = center + half if spec.direction != "down" else None
        return self._against(number, low, high, center), False

    def _against(self, number: float, low: float | None, high: float | None, center: float) -> Literal["ALERT", "OK"]:
        outside = (high is not None and number > high) or (low is not None and number < low)
        change = self._spec.min_change
        if not outside or (change is not None and abs(number - center) < change.amount(center)):
            return "OK"
        return "ALERT"

    def _reference(self, now: dt.datetime) -> float | None:
        """Method change: the value compared with, as ``judge`` picks it."""
        times, values, head, vs = self._times, self._values, self._head, self._spec.vs
        if head == len(times):
            return None
        if vs is None:
            return values[-1]  # the newest; of values recorded at one time, the largest (they are sorted)
        target, tolerance = now - dt.timedelta(seconds=vs), dt.timedelta(seconds=vs * VS_TOLERANCE)
        after = bisect_left(times, target, head)  # the first at or after target: nearest on that side
        near = []
        if after < len(times):
            near.append((times[after] - target, times[after], values[after]))
        if after > head:
            first = bisect_left(times, times[after - 1], head)  # of the ones recorded then, the smallest value
            near.append((target - times[first], times[first], values[first]))
        near = [n for n in near if n[0] <= tolerance]
        return min(near)[2] if near else None

    def _add(self, at: dt.datetime, value: float) -> None:
        key = self._key(at)
        self._times.append(at)
        self._values.append(value)
        self._keys.append(key)
        if self._spec.method != "change":
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = self._new_group()
            group.add(value)

    def _key(self, at: dt.datetime) -> Hashable:
        """The season of ``at`` (its hour and weekday, in the alert's timezone, as seasonality compares them)."""
        if self._zone is None:
            return None
        local = at.astimezone(self._zone)
        return {"hour_of_day": local.hour, "day_of_week": local.weekday()}.get(
            self._spec.seasonality, (local.weekday(), local.hour)
        )


class _Group(Protocol):
    """The values of one season, and the centre and spread of the band they make."""

    def add(self, value: float) -> None: ...

    def remove(self, value: float) -> None: ...

    def __len__(self) -> int: ...

    def center_spread(self) -> tuple[float, float]: ...


class _Sorted:
    """Method mad: the values kept sorted; median, and MAD as the median of two sorted runs of deviations."""

    def __init__(self) -> None:
        self._values: list[float] = []

    def add(self, value: float) -> None:
        insort(self._values, value)

    def remove(self, value: float) -> None:
        del self._values[bisect_left(self._values, value)]

    def __len__(self) -> int:
        return len(self._values)

    def center_spread(self) -> tuple[float, float]:
        values = self._values
        center = _median(len(values), values.__getitem__)
        split = bisect_left(values, center)  # values[:split] are below the centre, the rest at or above it
        mad = _median(len(values), lambda k: _kth_deviation(values, center, split, k))
        if mad > 0:
            return center, _MAD_TO_SD * mad
        # Over half the values equal the centre: the mean absolute deviation, from the others only (exact: fsum).
        above = bisect_right(values, center)
        total = math.fsum(chain((center - v for v in values[:split]), (v - center for v in values[above:])))
        return center, _MEAN_AD_TO_SD * (total / len(values))


class _Sums:
    """Method zscore: exact running sums, so the mean and the sample standard deviation are those of
    ``statistics`` (a correctly rounded ``fsum``, and the correctly rounded root of the exact variance)."""

    def __init__(self) -> None:
        self._count = 0
        self._total = Fraction(0)
        self._squares = Fraction(0)

    def add(self, value: float) -> None:
        exact = Fraction(value)
        self._count += 1
        self._total += exact
        self._squares += exact * exact

    def remove(self, value: float) -> None:
        exact = Fraction(value)
        self._count -= 1
        self._total -= exact
        self._squares -= exact * exact

    def __len__(self) -> int:
        return self._count

    def center_spread(self) -> tuple[float, float]:
        n = self._count
        center = float(self._total) / n
        if n < 2:
            return center, 0.0
        variance = (n * self._squares - self._total * self._total) / n / (n - 1)
        return center, _sqrt(variance)


def _median(n: int, kth: Callable[[int], float]) -> float:
    """The median of ``n`` sorted values given by ``kth``, as ``statistics.median`` takes it."""
    return kth(n // 2) if n % 2 else (kth(n // 2 - 1) + kth(n // 2)) / 2


def _kth_deviation(values: list[float], center: float, split: int, k: int) -> float:
    """The ``k``-th smallest (from 0) of ``abs(v - center)`` over sorted ``values``: the merge of two sorted runs,
    ``center - values[split - 1 - i]`` and ``values[split + j] - center``, searched in log time."""
    below, above = split, len(values) - split
    lo, hi = max(0, k + 1 - above), min(k + 1, below)  # how many of the k + 1 smallest come from below
    while lo < hi:
        i = (lo + hi) // 2
        j = k + 1 - i
        if j > 0 and center - values[split - 1 - i] < values[split + j - 1] - center:
            lo = i + 1  # the next one below is smaller than the last one taken above: take more from below
        else:
            hi = i
    i, j = lo, k + 1 - lo
    taken = [center - values[split - i]] if i > 0 else []
    taken += [values[split + j - 1] - center] if j > 0 else []
    return max(taken)


def _sqrt(value: Fraction) -> float:
    """The square root of ``value`` (>= 0), correctly rounded, as ``statistics.stdev`` takes it (CPython's
    ``_float_sqrt_of_frac``: an integer root rounded to odd, then one rounding to a float)."""
    n, m = value.numerator, value.denominator
    q = (n.bit_length() - m.bit_length() - _SQRT_BITS) // 2
    if q >= 0:
        return (_isqrt_rto(n, m << 2 * q) << q) / 1
    return _isqrt_rto(n << -2 * q, m) / (1 << -q)


def _isqrt_rto(n: int, m: int) -> int:
    root = math.isqrt(n // m)
    return root | (root * root * m != n)


def _not_a_number(value: Any) -> str:
    text = repr(value)
    shown = text if len(text) <= 60 else text[:57] + "..."
    got = "none (no actual_value column, or NULL)" if value is None else f"{shown}"
    return f"the baseline needs a numeric actual_value (a finite number); the recorded value is {got}"


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
