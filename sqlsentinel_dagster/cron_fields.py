"""What is wrong with a cron expression that Dagster's scheduler refuses, said field by field.

Dagster's parser (see ``_dagster``) only says yes or no; a person who wrote ``0 25 * * *`` needs to hear that the
hour is 25 and hours go from 0 to 23, not to "use five fields".
"""

from __future__ import annotations

import re

__all__ = ["FIELDS", "describe_cron_problem"]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)
"""Each field's name, smallest and largest value, and the names it also takes (JAN-DEC, SUN-SAT)."""

_SHAPE = "five fields 'minute hour day-of-month month day-of-week' (e.g. '*/5 * * * *', '0 9 * * MON-FRI')"
_FORMS = "each a value, '*', a list (1,2), a range (1-5) or a step (*/5)"
_MACROS = "'@hourly', '@daily', '@weekly', '@monthly', '@yearly'"
_ATOM = re.compile(r"^(?P<start>[0-9A-Za-z]+)(-(?P<end>[0-9A-Za-z]+))?$")


def describe_cron_problem(expression: str) -> str:
    """Why ``expression`` is not a cron schedule: the field and the values it allows, or the expected shape."""
    fields = expression.split()
    if expression.strip().startswith("@"):
        return f"unknown macro; use one of {_MACROS}, or {_SHAPE}"
    if len(fields) != 5:
        return f"it has {len(fields)} field(s); use {_SHAPE} or a macro such as {_MACROS}"
    for text, (name, low, high, names) in zip(fields, FIELDS, strict=True):
        problem = _field_problem(text, name, low, high, names)
        if problem:
            return f"{problem}; cron takes 'minute hour day-of-month month day-of-week', {_FORMS}"
    return "every field is in range, but the scheduler refuses the combination (e.g. 30 February never comes)"


def _field_problem(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    for part in text.split(","):
        body, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f"the {name} field '{text}' has the step '/{step}'; a step is a whole number from 1"
        if body == "*":
            continue
        match = _ATOM.match(body)
        values = [v for v in (match["start"], match["end"]) if v] if match else [body]
        for value in values:
            if value.upper() in names:
                continue
            if not value.isdigit():
                return f"the {name} field '{text}' has '{value}'; the {name} takes {allowed}"
            if not low <= int(value) <= high:
                return f"the {name} is {value}, outside {allowed}"
    return None
