"""The sliding window :mod:`.baseline` re-judges with: what one side has learned by each evaluation. Pure.

A run calls ``judge`` once; a replay would call it for each of thousands of evaluations, each time over its whole
window. So the window here is incremental: the usable values of the lookback (at most ``MAX_SAMPLES``, grouped by
season), with a sorted list per group for ``mad`` (the MAD from two sorted runs of deviations, in log time) and
exact running sums for ``zscore``. The bands are the ones ``judge`` draws, to the last bit (a test compares both),
and a band that is not finite (values near the largest float) is not judged, as ``judge`` does not.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import sys
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from ..baselines import MAX_SAMPLES, VS_TOLERANCE, lookback
from ..config import AlertConfig
from ..config.baseline import BaselineSpec

__all__ = ["Rule", "Window"]

_MAD_TO_SD = 1 / statistics.NormalDist().inv_cdf(0.75)  # as in ..baselines
_MEAN_AD_TO_SD = math.sqrt(math.pi / 2)
_SQRT_BITS = 2 * sys.float_info.mant_dig + 3


class Window:
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
        """The status of ``number`` at ``now``, and whether the window could not judge it: too short (learning),
        or a band that is not finite (``judge``'s ``not_finite``); the status is then OK."""
        spec = self._spec
        if spec.method == "change":
            reference = self._reference(now)
            if reference is None:
                return "OK", True
            low = reference + spec.below.amount(reference) if spec.below is not None else None
            high = reference + spec.above.amount(reference) if spec.above is not None else None
            if not _finite(low, high):
                return "OK", True
            return self._against(number, low, high, reference), False
        group = self._groups.get(self._key(now))
        if group is None or len(group) < spec.min_history:
            return "OK", True
        center, spread = group.center_spread()
        half = spec.sensitivity * spread
        low = center - half if spec.direction != "up" else None
        high = center + half if spec.direction != "down" else None
        if not _finite(center, spread, low, high):
            return "OK", True
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

    def center_spread(self) -> tuple[float, float]:
        """The centre and spread, as ``judge`` computes them; either is infinite when it overflows a float."""
        ...


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
        try:
            total = math.fsum(chain((center - v for v in values[:split]), (v - center for v in values[above:])))
        except OverflowError:  # as statistics.fmean overflows in judge
            return center, math.inf
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
        try:
            center = float(self._total) / n
        except OverflowError:  # a sum past the largest float: rounded once after dividing, as judge does then
            center = float(self._total / n)
        if n < 2:
            return center, 0.0
        variance = (n * self._squares - self._total * self._total) / n / (n - 1)
        try:
            return center, _sqrt(variance)
        except OverflowError:  # as statistics.stdev overflows in judge
            return center, math.inf


def _finite(*numbers: float | None) -> bool:
    """Whether every number given (None: a side not checked) is finite."""
    return all(x is None or math.isfinite(x) for x in numbers)


def _median(n: int, kth: Callable[[int], float]) -> float:
    """The median of ``n`` sorted values given by ``kth``, as ``judge`` takes it: ``statistics.median``'s, except
    that two middle values whose sum overflows are halved first."""
    if n % 2:
        return kth(n // 2)
    low, high = kth(n // 2 - 1), kth(n // 2)
    half_sum = (low + high) / 2
    return half_sum if math.isfinite(half_sum) else low / 2 + high / 2


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
