"""Durations as alerts.yaml and the CLI write them (30, '30s', '5m', '1.5h', '250ms'), read and written back."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

__all__ = ["format_duration", "parse_duration"]


_DURATION = re.compile(r"^\s*(?P<n>\d+(\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?\s*$")

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def format_duration(length: timedelta) -> str:
    """``length`` in its two largest units: ``12h``, ``45d 3h``, ``2h 30m``, ``90s`` (negative reads as ``0s``)."""
    seconds = max(0, round(length.total_seconds()))
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as '30s', '5m', '1.5h', '250ms'; at most 3650 days (10 years).

    The bound keeps date arithmetic in range (``now + duration`` past year 9999 raises OverflowError): no
    timeout, interval, silence or retention needs longer. Errors quote at most 40 characters of ``value``.
    """
    longest = 3650 * 86400.0
    text = repr(value)
    shown = text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '30s', '5m' or '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group("n")) * _UNIT_SECONDS[match.group("unit")]
    else:
        raise ValueError(f"invalid duration {shown}; use seconds (30) or a string such as '30s', '5m', '1h'")
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite number of seconds, got {shown}")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {shown}")
    if seconds > longest:
        raise ValueError(f"duration {shown} is too long; at most 3650d (10 years)")
    return seconds
