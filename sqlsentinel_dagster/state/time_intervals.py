"""Time intervals, as Alertmanager writes them (``time_intervals:``), and the mutes they make: no Dagster here.

A named interval holds one or more specs; a spec contains a moment when every part it sets contains it (``times``,
``weekdays``, ``days_of_month``, ``months``, ``years``, read in its ``location``), and a named interval when any of
its specs does. An alert's ``mute_time_intervals`` hold its notifications while one of them contains the moment;
its ``active_time_intervals`` hold them while none does (:func:`muted`). Held notifications are recorded, and owed
as a silence's are (see :mod:`.decision`).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .holds import Hold

__all__ = ["Span", "TimeInterval", "TimeIntervalSpec", "muted"]


@dataclass(frozen=True)
class Span:
    """A range of whole numbers, both ends included (minutes of the day use ``end`` excluded: see ``times``)."""

    start: int
    end: int


@dataclass(frozen=True)
class TimeIntervalSpec:
    """One entry of a named interval: the moments every part it sets contains (an empty part contains all)."""

    times: tuple[Span, ...] = ()
    """Minutes since midnight, ``start`` included and ``end`` excluded (``00:00`` to ``24:00`` is the whole day)."""
    weekdays: tuple[Span, ...] = ()
    """Monday is 0, Sunday 6."""
    days_of_month: tuple[Span, ...] = ()
    """1 to 31, or -1 (the last day) to -31."""
    months: tuple[Span, ...] = ()
    """1 (January) to 12."""
    years: tuple[Span, ...] = ()
    location: str = "UTC"

    def contains(self, moment: dt.datetime) -> bool:
        """Whether ``moment`` (timezone-aware) is in this spec, read in its location."""
        local = moment.astimezone(ZoneInfo(self.location))
        minute = local.hour * 60 + local.minute
        if self.times and not any(s.start <= minute < s.end for s in self.times):
            return False
        if self.weekdays and not any(s.start <= local.weekday() <= s.end for s in self.weekdays):
            return False
        if self.days_of_month and not _in_month(local, self.days_of_month):
            return False
        if self.months and not any(s.start <= local.month <= s.end for s in self.months):
            return False
        return not self.years or any(s.start <= local.year <= s.end for s in self.years)


def _in_month(local: dt.datetime, spans: Sequence[Span]) -> bool:
    """Whether ``local``'s day is in one of ``spans``: a negative day counts from the month's end (-1 the last)."""
    last = calendar.monthrange(local.year, local.month)[1]

    def day(number: int) -> int:
        return number if number > 0 else last + number + 1

    return any(day(s.start) <= local.day <= day(s.end) for s in spans)


@dataclass(frozen=True)
class TimeInterval:
    """A named time interval: the moments any of its specs contains."""

    name: str
    specs: tuple[TimeIntervalSpec, ...]

    def contains(self, moment: dt.datetime) -> bool:
        """Whether ``moment`` is in one of the specs."""
        return any(spec.contains(moment) for spec in self.specs)


def muted(mute: Sequence[TimeInterval], active: Sequence[TimeInterval], now: dt.datetime) -> Hold | None:
    """The mute that holds notifications at ``now``: the first of ``mute`` containing it, else, when ``active``
    is given and none of it contains ``now``, that; None when notifications may go out."""
    inside = next((interval for interval in mute if interval.contains(now)), None)
    if inside is not None:
        return Hold("mute", (inside.name,))
    if active and not any(interval.contains(now) for interval in active):
        return Hold("inactive", tuple(interval.name for interval in active))
    return None
