"""What a replay is asked: the settings it proposes (``Changes``) and the period it covers (``parse_period``)."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ..durations import parse_duration
from ..state.model import StateSettings
from ..state.time_intervals import TimeInterval

__all__ = ["DEFAULT_DAYS", "Changes", "parse_period"]


DEFAULT_DAYS = 30
"""The period replayed when none is given: as long as the default history retention."""

_LONGEST_STREAK = 1000  # as alerts.yaml allows for `for`, `recover_after` and `error_after`

_FAR = 10**15
"""A number past :func:`parse_duration`'s bound in any unit (10^15 ms is 31,700 years): larger ones are cut to it,
so that the bound it names is the reason given, not an overflow."""

_AMOUNT = re.compile(r"^\s*(?P<sign>[+-]?)\s*(?P<number>\d+(\.\d+)?)(?P<rest>.*)$", re.DOTALL)
"""A signed number and what follows it: how ``--since`` is told apart as a duration that ``parse_duration`` refuses
(zero, negative, too long) from text that is no duration at all (its unit is checked by ``parse_duration``)."""


@dataclass(frozen=True)
class Changes:
    """Proposed settings; None leaves a setting as the alert has it."""

    for_count: int | None = None
    recover_after: int | None = None
    error_after: int | None = None
    repeat_interval: dt.timedelta | Literal["none"] | None = None
    """A new interval, ``"none"`` to turn reminders off, or None to keep the alert's."""
    min_interval: dt.timedelta | Literal["none"] | None = None
    """A new ``min_interval``, ``"none"`` to hold no firing, or None to keep the alert's."""
    mute: tuple[TimeInterval, ...] | None = None
    """New ``mute_time_intervals`` (empty: none), or None to keep the alert's."""
    active: tuple[TimeInterval, ...] | None = None
    """New ``active_time_intervals`` (empty: always active), or None to keep the alert's."""

    @classmethod
    def parse(
        cls,
        *,
        for_count: int | None = None,
        recover_after: int | None = None,
        error_after: int | None = None,
        repeat_interval: str | None = None,
        min_interval: str | None = None,
        mute_time_intervals: str | None = None,
        active_time_intervals: str | None = None,
        defined: Sequence[TimeInterval] = (),
    ) -> Changes:
        """Changes from options as typed (time intervals as comma-separated names of ``defined``, the file's, or
        ``none``); raise ValueError naming every problem."""
        problems = [
            f"{name} must be from 1 to {_LONGEST_STREAK}, got {value}"
            for name, value in (("for", for_count), ("recover_after", recover_after), ("error_after", error_after))
            if value is not None and not 1 <= value <= _LONGEST_STREAK
        ]
        interval = _interval("repeat_interval", repeat_interval, "to turn reminders off", problems)
        least = _interval("min_interval", min_interval, "to hold no firing", problems)
        mute = _windows("mute_time_intervals", mute_time_intervals, defined, problems)
        active = _windows("active_time_intervals", active_time_intervals, defined, problems)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(for_count, recover_after, error_after, interval, least, mute, active)

    @property
    def any(self) -> bool:
        """Whether any setting is changed."""
        settings = (self.for_count, self.recover_after, self.error_after, self.repeat_interval, self.min_interval)
        return any(v is not None for v in (*settings, self.mute, self.active))

    def apply(self, settings: StateSettings) -> StateSettings:
        """``settings`` with these changes."""
        interval = settings.repeat_interval if self.repeat_interval is None else self.repeat_interval
        least = settings.min_interval if self.min_interval is None else self.min_interval
        return replace(
            settings,
            repeat_interval=None if interval == "none" else interval,
            min_interval=None if least == "none" else least,
            for_count=self.for_count or settings.for_count,
            recover_after=self.recover_after or settings.recover_after,
            error_after=self.error_after or settings.error_after,
            mute=settings.mute if self.mute is None else self.mute,
            active=settings.active if self.active is None else self.active,
        )


def _windows(
    name: str, text: str | None, defined: Sequence[TimeInterval], problems: list[str]
) -> tuple[TimeInterval, ...] | None:
    """Proposed time intervals as typed: names of ``defined``, comma-separated, ``none`` for none, or None when
    not given (a problem appended to ``problems`` for each unknown name)."""
    if text is None or not text.strip():
        return None
    if text.strip().lower() == "none":
        return ()
    by_name = {interval.name: interval for interval in defined}
    found = []
    for wanted in (part.strip() for part in text.split(",") if part.strip()):
        if wanted in by_name:
            found.append(by_name[wanted])
            continue
        listed = ", ".join(by_name) or "(none: declare them under 'time_intervals:' in the file)"
        hint = difflib.get_close_matches(wanted, list(by_name), n=1)
        problems.append(
            f"{name}: unknown time interval '{wanted[:60]}'; defined: {listed}"
            + (f"; did you mean '{hint[0]}'?" if hint else "")
        )
    return tuple(found)


def _interval(
    name: str, text: str | None, none_means: str, problems: list[str]
) -> dt.timedelta | Literal["none"] | None:
    """A proposed interval as typed: a duration, ``none``, or None when not given (a problem appended to
    ``problems``)."""
    if text is None or not text.strip():
        return None
    if text.strip().lower() == "none":
        return "none"
    try:
        return dt.timedelta(seconds=parse_duration(text.strip()))
    except ValueError as exc:
        problems.append(f"{name}: {exc}, or 'none' {none_means}")
        return None


def parse_period(
    now: dt.datetime, *, days: int | None = None, since: str | None = None, option: str = "--"
) -> dt.datetime:
    """The start of the period ending ``now``: ``days`` back (default :data:`DEFAULT_DAYS`), or ``since``, a
    duration back (``7d``) or an ISO date or time (without a timezone, the local one).

    Raise ValueError naming the option as ``option`` + ``days`` (``--days`` for the CLI, ``days`` for the
    Launchpad job's config) and what is wrong: zero or negative, longer than any duration can be (the bound of
    :func:`..config.models.parse_duration`, 10 years), neither a duration nor a date, or not in the past."""
    days_name, since_name = f"{option}days", f"{option}since"
    if days is not None and since is not None:
        raise ValueError(f"give {days_name} or {since_name}, not both")
    if since is None:
        count = DEFAULT_DAYS if days is None else days
        shown = str(count) if abs(count) < 10**40 else "(a number of over 40 digits)"
        if count == 0:
            raise ValueError(f"{days_name} 0: zero days replay nothing; give a positive number of days such as 7")
        if count < 0:
            raise ValueError(f"{days_name} {shown}: a negative number of days; give a positive one such as 7")
        return now - _back(f"{days_name} {shown}", str(count) if count < _FAR else str(_FAR), "d")
    text = since.strip()
    shown = text if len(text) <= 40 else text[:40] + "..."
    amount = _AMOUNT.match(text)
    if amount is not None and _is_duration_unit(amount.group("rest")):
        name = f"{since_name} {shown}"
        if float(amount.group("number")) == 0:
            raise ValueError(f"{name}: a zero duration replays nothing; give a positive duration such as 7d")
        if amount.group("sign") == "-":
            raise ValueError(f"{name}: a negative duration; give how far back as a positive duration such as 7d")
        number = amount.group("number")
        return now - _back(name, number if float(number) < _FAR else str(_FAR), amount.group("rest"))
    try:
        start = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{since_name} {shown!r} is neither a duration such as 7d nor an ISO date such as 2026-11-01"
        ) from None
    start = start if start.tzinfo else start.astimezone()
    if start >= now:
        raise ValueError(f"{since_name} {start.isoformat(timespec='seconds')} is not in the past")
    return start.astimezone(dt.UTC)


def _is_duration_unit(rest: str) -> bool:
    """Whether ``rest`` is what may follow a number in a duration (``d``, ``h``, ``30s``'s ``s``, nothing), as
    :func:`parse_duration` reads it."""
    try:
        parse_duration("1" + rest)
    except ValueError:
        return False
    return True


def _back(name: str, number: str, unit: str) -> dt.timedelta:
    """``number`` (positive, at most :data:`_FAR`) of ``unit`` as a timedelta; ValueError naming ``name`` when it
    is longer than any duration may be."""
    try:
        return dt.timedelta(seconds=parse_duration(number + unit))
    except ValueError as exc:  # the only refusal left for a positive amount with a unit: past parse_duration's bound
        bound = str(exc).rpartition("; ")[2]  # "at most 3650d (10 years)": named by parse_duration, not repeated here
        raise ValueError(f"{name}: longer than the history that can be kept; {bound}") from None
