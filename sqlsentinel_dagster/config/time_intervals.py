"""``time_intervals:`` in the file, written as Alertmanager writes them, and validated as it validates them:

.. code-block:: yaml

    time_intervals:
      - name: nightly_maintenance
        time_intervals:
          - times: [{start_time: "01:00", end_time: "03:00"}]
            weekdays: ["monday:friday"]
            days_of_month: ["1:7", "-1"]       # -1 is the last day of the month
            months: ["january:march", "12"]
            years: ["2026:2027"]
            location: Europe/Berlin

Alerts (and ``defaults:``) name them in ``mute_time_intervals`` and ``active_time_intervals``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..state.time_intervals import Span, TimeInterval, TimeIntervalSpec
from .fields import Timezone

__all__ = ["HeldAt", "NamedTimeInterval", "TimeRange", "TimeSpec"]

_TIME = re.compile(r"^(?P<hour>[0-2]?\d):(?P<minute>[0-5]\d)$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = tuple(m.lower() for m in calendar.month_name[1:])


def _minutes(text: str) -> int:
    match = _TIME.match(text.strip())
    minutes = int(match["hour"]) * 60 + int(match["minute"]) if match else -1
    if not 0 <= minutes <= 24 * 60:
        raise ValueError(f"invalid time {text!r}; write HH:MM from 00:00 to 24:00")
    return minutes


def _ranges(
    kind: str, names: tuple[str, ...], low: int, high: int, negative: bool = False
) -> tuple[Callable[[list[str]], list[str]], Callable[[list[str]], tuple[Span, ...]]]:
    """A validator of ``["monday:friday", "sunday"]`` (names or numbers, ``a:b`` ranges), and its reader as spans."""

    def one(text: str) -> int:
        value = text.strip().lower()
        if value in names:
            return names.index(value) + low
        try:
            number = int(value)
        except ValueError:
            allowed = f"{names[0]} to {names[-1]}, or " if names else ""
            raise ValueError(f"invalid {kind} {text!r}; allowed: {allowed}{low} to {high}") from None
        if not (low <= number <= high or (negative and -high <= number <= -1)):
            sign = f", or -1 to -{high} from the end" if negative else ""
            raise ValueError(f"{kind} {number} is outside {low} to {high}{sign}")
        return number

    def parse(values: list[str]) -> list[str]:
        for text in values:
            start, _, end = str(text).partition(":")
            first, last = one(start), one(end or start)
            if (first > 0) == (last > 0) and first > last:
                raise ValueError(f"the {kind} range {text!r} ends before it starts")
        return values

    def spans(values: list[str]) -> tuple[Span, ...]:
        found = []
        for text in values:
            start, _, end = str(text).partition(":")
            found.append(Span(one(start), one(end or start)))
        return tuple(found)

    return parse, spans


_weekdays, _weekday_spans = _ranges("weekday", WEEKDAYS, 0, 6)
_days, _day_spans = _ranges("day of month", (), 1, 31, negative=True)
_months, _month_spans = _ranges("month", MONTHS, 1, 12)
_years, _year_spans = _ranges("year", (), 1, 9999)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeRange(_Strict):
    """``{start_time: "01:00", end_time: "03:00"}``: from the start (included) to the end (excluded)."""

    start_time: str
    end_time: str

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if _minutes(self.start_time) >= _minutes(self.end_time):
            raise ValueError(f"start_time {self.start_time} is not before end_time {self.end_time}")
        return self


class TimeSpec(_Strict):
    """One entry of a named interval: every part it sets must contain the moment (an omitted part: any)."""

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: Annotated[list[str], AfterValidator(_weekdays)] = Field(default_factory=list)
    days_of_month: Annotated[list[str], AfterValidator(_days)] = Field(default_factory=list)
    months: Annotated[list[str], AfterValidator(_months)] = Field(default_factory=list)
    years: Annotated[list[str], AfterValidator(_years)] = Field(default_factory=list)
    location: Timezone = "UTC"

    def compiled(self) -> TimeIntervalSpec:
        """As the state's decision reads it."""
        times = tuple(Span(_minutes(t.start_time), _minutes(t.end_time)) for t in self.times)
        return TimeIntervalSpec(
            times,
            _weekday_spans(self.weekdays),
            _day_spans(self.days_of_month),
            _month_spans(self.months),
            _year_spans(self.years),
            self.location,
        )


def _interval_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"invalid time interval name {value!r}; allowed: letters, digits, '_', '-', '.' (1 to 100)")
    return value


class NamedTimeInterval(_Strict):
    """A time interval alerts name in ``mute_time_intervals`` or ``active_time_intervals``."""

    name: Annotated[str, AfterValidator(_interval_name)]
    time_intervals: list[TimeSpec] = Field(min_length=1, max_length=100)

    def compiled(self) -> TimeInterval:
        """As the state's decision reads it."""
        return TimeInterval(self.name, tuple(spec.compiled() for spec in self.time_intervals))


class HeldAt(BaseModel):
    """Time intervals that hold what a receiver (or a target written in ``notify``) or a route sends: only that
    channel's notifications, owed and sent after (see :mod:`..state.channel_holds`)."""

    mute_time_intervals: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Names under time_intervals: while one holds, what this sends is held (and owed)",
    )
    active_time_intervals: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Names under time_intervals: outside all of them, what this sends is held (and owed)",
    )
