"""The ``baseline:`` block of an alert: thresholds learned from the alert's own history, validated when loaded.

Two families of methods. ``mad`` (the default) and ``zscore`` learn a band from the values recorded over
``history``; ``change`` compares the value with one earlier value, the previous one or the one ``vs`` ago.
The computation lives in :mod:`sqlsentinel_dagster.baselines.judging`; this module only says what may be written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

__all__ = [
    "MAX_HISTORY_SECONDS",
    "BaselineSpec",
    "Change",
    "Direction",
    "Method",
    "Seasonality",
    "parse_change",
    "short_span",
]

Method = Literal["mad", "zscore", "change"]
Direction = Literal["both", "up", "down"]
Seasonality = Literal["none", "hour_of_day", "day_of_week", "hour_of_week"]

MAX_HISTORY_SECONDS = 400 * 86400.0
"""The longest ``history`` and ``vs``: a bit more than a year, enough to compare with the same day last year."""
_SEASON_SECONDS = {"hour_of_day": 86400.0, "day_of_week": 7 * 86400.0, "hour_of_week": 7 * 86400.0}
"""One period of each seasonality: ``history`` must cover at least one."""
_BAND_SETTINGS = ("sensitivity", "min_history", "direction", "seasonality")
_CHANGE_SETTINGS = ("vs", "above", "below")
_CHANGE = re.compile(r"^\s*(?P<n>[+-]?(\d+(\.\d*)?|\.\d+))\s*(?P<percent>%)?\s*$")
_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


def short_span(seconds: float) -> str:
    """``'14d'``, ``'36h'``, ``'16.8h'``, ``'90s'``: the largest unit that makes the number at least 1."""
    unit, size = next(((u, s) for u, s in _UNITS if seconds >= s), ("s", 1.0))
    return f"{seconds / size:.3g}{unit}"


@dataclass(frozen=True)
class Change:
    """An amount of change: a percent of a reference value (``5%``, ``-30%``) or an absolute number (``12``)."""

    value: float
    """The number as written: 5 for both ``5%`` and ``5``; negative for a fall."""
    percent: bool
    """Whether ``value`` is a percent of the reference value's magnitude."""

    def amount(self, reference: float) -> float:
        """The change as an absolute number, for a value compared with ``reference``."""
        return self.value / 100 * abs(reference) if self.percent else self.value

    def __str__(self) -> str:
        return f"{self.value:g}{'%' if self.percent else ''}"


def parse_change(value: Any) -> Change:
    """A :class:`Change` from ``'5%'``, ``'-30 %'``, ``12`` or ``'12'``. Errors quote at most 40 characters."""
    text = repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, Change):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        change = Change(float(value), percent=False)
    elif isinstance(value, str) and len(value) <= 40 and (match := _CHANGE.match(value)):
        change = Change(float(match.group("n")), percent=match.group("percent") is not None)
    else:
        raise ValueError(f"invalid change {shown}; write a percent such as '5%' or '-30%', or a number such as 12")
    if not math.isfinite(change.value):
        raise ValueError(f"a change must be a finite number, got {shown}")
    return change


def _duration(value: Any) -> float:
    # Imported when called: models.py imports this module to give AlertConfig its `baseline:` block.
    from ..durations import parse_duration

    seconds = parse_duration(value)
    if seconds > MAX_HISTORY_SECONDS:
        raise ValueError(f"at most 400d, got {short_span(seconds)}")
    return seconds


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _positive(value: float) -> float:
    if not value > 0:  # also refuses NaN
        raise ValueError(f"must be more than 0 (the band's half-width in standard deviations, e.g. 3), got {value:g}")
    return value


def _rise(change: Change) -> Change:
    if change.value < 0:
        raise ValueError(f"above is a rise, written positive (e.g. 50% or 100), got {change}")
    return change


def _fall(change: Change) -> Change:
    if change.value > 0:
        raise ValueError(f"below is a fall, written negative (e.g. -30% or -100), got {change}")
    return change


def _tolerance(change: Change) -> Change:
    if change.value < 0:
        raise ValueError(f"min_change is a size, written positive (e.g. 5% or 10), got {change}")
    return change


Span = Annotated[float, BeforeValidator(_duration)]
ChangeAmount = Annotated[
    Change,
    BeforeValidator(parse_change),
    PlainSerializer(str, return_type=str),  # dumped as written ('5%'), so a dump validates again
    WithJsonSchema(
        {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*%?\s*$"}]}
    ),
]
Sensitivity = Annotated[float, BeforeValidator(_not_bool), AfterValidator(_positive), Field(le=100)]
MinHistory = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=100_000)]


class BaselineSpec(BaseModel):
    """How an alert learns its threshold from its own history (the ``baseline:`` block of an alert)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        default="mad",
        description="mad: band around the median, width from the median absolute deviation (robust to spikes); "
        "zscore: band around the mean, width from the standard deviation; change: compare with one earlier value",
    )
    sensitivity: Sensitivity = Field(
        default=3.0, description="Half-width of the band in (robust) standard deviations; mad and zscore only"
    )
    history: Span = Field(
        default=14 * 86400.0,
        description="Learn from the evaluations recorded in this window, e.g. '14d' (at most 400d); with method "
        "change and no vs, how old the previous value may be",
    )
    min_history: MinHistory = Field(
        default=24,
        description="Values needed before the band is used; with fewer the result is OK, 'learning (n of 24)'",
    )
    direction: Direction = Field(
        default="both", description="Which side of the band alerts: both, up (only above) or down (only below)"
    )
    seasonality: Seasonality = Field(
        default="none",
        description="Learn only from values of the same hour of the day, day of the week or hour of the week "
        "(in the alert's timezone)",
    )
    min_change: Annotated[ChangeAmount, AfterValidator(_tolerance)] | None = Field(
        default=None,
        description="A value outside the band alerts only if it also differs from the baseline by at least this: "
        "a percent of the baseline ('5%') or an absolute number (10)",
    )
    vs: Span | None = Field(
        default=None,
        description="method change: compare with the value recorded this long ago (e.g. '7d'); unset: with the "
        "previous value",
    )
    above: Annotated[ChangeAmount, AfterValidator(_rise)] | None = Field(
        default=None, description="method change: alert when the value rose by more than this ('50%' or 100)"
    )
    below: Annotated[ChangeAmount, AfterValidator(_fall)] | None = Field(
        default=None, description="method change: alert when the value fell by more than this ('-30%' or -100)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> BaselineSpec:
        problems = []
        # Set means "not the default" (not "written"), so a full model_dump() validates again.
        given = {name for name, info in type(self).model_fields.items() if getattr(self, name) != info.default}
        if self.method == "change":
            if self.above is None and self.below is None:
                problems.append("method change needs above (a rise, e.g. 50%), below (a fall, e.g. -30%) or both")
            band = [name for name in _BAND_SETTINGS if name in given]
            if band:
                problems.append(
                    f"{_names(band)} only to methods mad and zscore; method change alerts on above and below"
                )
            if self.vs is not None and "history" in given:
                problems.append(
                    "history applies to method change only without vs (how old the previous value may be); "
                    "with vs the value recorded closest to that long ago is used"
                )
        else:
            change = [name for name in _CHANGE_SETTINGS if name in given]
            if change:
                problems.append(f"{_names(change)} only to method change (this baseline uses {self.method})")
            period = _SEASON_SECONDS.get(self.seasonality)
            if period is not None and self.history < period:
                problems.append(
                    f"seasonality {self.seasonality} compares with the same time in earlier "
                    f"{'days' if period == 86400 else 'weeks'}: history must be at least {short_span(period)}, "
                    f"got {short_span(self.history)}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _names(names: list[str]) -> str:
    """``'vs applies'``, ``'above and below apply'``: the names set, with the verb."""
    return f"{names[0]} applies" if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]} apply"
