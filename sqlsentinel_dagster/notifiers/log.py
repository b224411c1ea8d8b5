"""The ``log`` channel: writes the message to the Dagster run log. For demos and dry runs; no network.

A record holds at most :data:`MAX_RECORD_CHARS`: a grouped one is split into several records (``part 2 of 5``,
:mod:`.parts`), one alert's shortened. Values cannot start a line of their own (:func:`.escaping.log_line`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .base import message_text, part_headline
from .escaping import escape_values, log_line
from .parts import Part, fit

__all__ = ["LIMITS", "MAX_RECORD_CHARS", "LogNotifier"]

MAX_RECORD_CHARS = 32_000
"""Characters in one log record: a screenful of lines, small enough for any log store."""
LIMITS = {"chars": MAX_RECORD_CHARS}
"""Every limit of a log record, by the names :meth:`LogNotifier.measure_group` measures."""


class LogNotifier:
    """Write each notification to ``logger`` (the run's log in a Dagster run)."""

    group_limits = LIMITS
    """The limits of a grouped record (see the module's docstring)."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self.logger = logger

    def send(self, message: Mapping[str, Any]) -> None:
        """Log ``message`` as a warning (firing, reminder, error) or info (resolved, test)."""
        level = logging.INFO if message.get("event") in ("resolved", "test") else logging.WARNING
        shown = fit(message, lambda part: {"chars": len(_record(part.messages[0]))}, LIMITS)
        self.logger.log(level, _record(shown))

    def measure_group(self, part: Part) -> Mapping[str, int]:
        """How big ``part`` is as one record (see :data:`LIMITS`)."""
        return {"chars": len(_group_record(part))}

    def send_group(self, part: Part, key: str) -> None:
        """Log one warning listing every alert of ``part``, one line each."""
        self.logger.warning(_group_record(part))


def _record(message: Mapping[str, Any]) -> str:
    return f"notification {message_text(escape_values(message, log_line))}"


def _group_record(part: Part) -> str:
    lines = "\n".join(f"  {message_text(escape_values(m, log_line))}" for m in part.messages)
    return f"notification {part_headline(part)}\n{lines}"
