"""``rows:`` on an alert: the query returns the offending rows, and the alert fires when there are too many."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_ROWS_LIMIT", "MAX_SAMPLE", "RowsSpec"]

MAX_ROWS_LIMIT = 100_000
"""The most rows any failed-rows alert may fetch."""
MAX_SAMPLE = 100
"""The most rows a message may show."""


class RowsSpec(BaseModel):
    """A failed-rows alert: no ``status`` column; ``actual_value`` is the row count and ``threshold`` is ``max``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(default=0, ge=0, description="ALERT when the query returns more rows than this")
    sample: int = Field(default=10, ge=0, le=MAX_SAMPLE, description="Rows shown in the message")
    attach: Literal["csv"] | None = Field(
        default=None,
        description="csv: email attaches every fetched row as CSV, and the webhook payload carries them all",
    )
    limit: int = Field(
        default=10_000,
        ge=1,
        le=MAX_ROWS_LIMIT,
        description="Fetch at most this many rows; beyond it the message says 'at least <limit>'",
    )
