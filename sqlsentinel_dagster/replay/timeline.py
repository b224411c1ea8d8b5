"""A compact text timeline of a replayed period: what happened, and what each setting would have sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..durations import format_duration
from .core import Comparison, Evaluation

__all__ = ["HISTORY_LEGEND", "SETTINGS_LEGEND", "WIDTH", "timeline"]

WIDTH = 60
"""Columns of the timeline, whatever the length of the period."""
HISTORY_LEGEND = "history: A alert, E error (no alert), . ok, blank: no evaluation"
"""What the marks of the ``history`` row mean."""
SETTINGS_LEGEND = (
    "current/proposed: F firing, R resolved, E error, r reminder (sent); held: s by a silence, m muted, "
    "i inhibited; a reminder quiet (acknowledged), - firing (nothing sent), . quiet"
)
"""What the marks of the ``current`` and ``proposed`` rows mean (see :func:`.core.mark`)."""
_HISTORY_RANK = "AE."
"""Of the evaluations in one column, the first of these that occurs is shown."""
_SETTINGS_RANK = "FRErsmia-."
_STATUS_MARK = {"ALERT": "A", "ERROR": "E", "OK": "."}


def timeline(
    evaluations: Sequence[Evaluation],
    comparison: Comparison,
    start: dt.datetime,
    end: dt.datetime,
    width: int = WIDTH,
) -> list[str]:
    """The dates of the period, one row each for the history and both settings, ``width`` columns from ``start``
    to ``end``, and the legend."""
    columns = [_column(e.at, start, end, width) for e in evaluations]
    history = _row(columns, [_STATUS_MARK[e.status] for e in evaluations], _HISTORY_RANK, width)
    current = _row(columns, comparison.current.marks, _SETTINGS_RANK, width)
    proposed = _row(columns, comparison.proposed.marks, _SETTINGS_RANK, width)
    first, last = f"{start:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M} UTC"
    return [
        " " * 11 + first + last.rjust(width - len(first) + 1),
        f"{'history':<10}|{history}|",
        f"{'current':<10}|{current}|",
        f"{'proposed':<10}|{proposed}|",
        f"one column: {format_duration((end - start) / width)}; {HISTORY_LEGEND}",
        SETTINGS_LEGEND,
    ]


def _column(at: dt.datetime, start: dt.datetime, end: dt.datetime, width: int) -> int:
    if end <= start:
        return 0
    return min(width - 1, max(0, int((at - start) / (end - start) * width)))


def _row(columns: Sequence[int], marks: Sequence[str], rank: str, width: int) -> str:
    shown = [" "] * width
    for column, mark in zip(columns, marks, strict=True):
        if shown[column] == " " or rank.index(mark) < rank.index(shown[column]):
            shown[column] = mark
    return "".join(shown)
