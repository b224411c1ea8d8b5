"""Cron parsing shared with Dagster's scheduler.

This is the package's one private Dagster import, kept here on purpose: a schedule must be accepted by exactly
the parser Dagster's daemon uses (it rejects some strings that plain croniter accepts, such as 6-field
expressions or 30 February), and ``sqlsentinel list`` must show the ticks the daemon will really launch,
including its daylight-saving handling. Dagster has no public API for either.
"""

from __future__ import annotations

import datetime as dt
from itertools import islice

from dagster._utils.schedules import cron_string_iterator, is_valid_cron_string

__all__ = ["is_valid_cron", "next_ticks"]


def is_valid_cron(expression: str) -> bool:
    """Whether Dagster's scheduler accepts ``expression`` (five fields, or a macro such as ``@daily``)."""
    try:
        return is_valid_cron_string(expression)
    except Exception:  # croniter raises assorted errors on malformed input
        return False


def next_ticks(expression: str, timezone: str, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` tick times of ``expression`` in ``timezone`` strictly after ``after``."""
    ticks = cron_string_iterator(after.timestamp() + 1e-6, expression, timezone)
    return list(islice(ticks, count))
