"""The ``log`` channel: writes the message to the Dagster run log. For demos and dry runs; no network."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .base import group_headline, message_text

__all__ = ["LogNotifier"]


class LogNotifier:
    """Write each notification to ``logger`` (the run's log in a Dagster run)."""

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self.logger = logger

    def send(self, message: Mapping[str, Any]) -> None:
        """Log ``message`` as a warning (firing, reminder, error) or info (resolved, test)."""
        level = logging.INFO if message.get("event") in ("resolved", "test") else logging.WARNING
        self.logger.log(level, f"notification {message_text(message)}")

    def send_group(self, messages: Sequence[Mapping[str, Any]], key: str) -> None:
        """Log one warning listing every alert of the group, one line each."""
        lines = "\n".join(f"  {message_text(m)}" for m in messages)
        self.logger.warning(f"notification {group_headline(messages)}\n{lines}")
