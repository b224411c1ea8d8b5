"""``instances:`` on an alert: each row the query returns is one instance of the alert, named by its label columns,
with its own state, silences and notifications (as Grafana, Prometheus and Datadog alert per series)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["MAX_INSTANCES_LIMIT", "MAX_LABELS", "RESERVED_COLUMNS", "InstancesSpec"]

MAX_LABELS = 10
"""The most label columns (``by``) an alert may name."""
MAX_INSTANCES_LIMIT = 100_000
"""The highest ``max`` an alert may set: the most rows one evaluation reads."""
RESERVED_COLUMNS = ("status", "actual_value", "threshold")
"""Columns of the result contract, which cannot be labels."""


class InstancesSpec(BaseModel):
    """One instance per row: ``by`` names the label columns; an instance whose row is missing from ``missing_after``
    results in a row resolves; at most ``max`` instances are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: list[str] = Field(
        min_length=1,
        max_length=MAX_LABELS,
        description="Label columns: the values of these columns name each row's instance, e.g. [endpoint]",
    )
    missing_after: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="An instance whose row is absent from this many results in a row resolves (a failed query "
        "never counts)",
    )
    max: int = Field(
        default=1000,
        ge=1,
        le=MAX_INSTANCES_LIMIT,
        description="The most instances the alert keeps; rows past it are not read and the result is reported cut",
    )

    @field_validator("by")
    @classmethod
    def _labels(cls, by: list[str]) -> list[str]:
        problems = []
        for column in by:
            if not column.strip():
                problems.append("a label column name is empty")
            elif column.lower() in RESERVED_COLUMNS:
                problems.append(
                    f"'{column}' is part of the result contract and cannot be a label; label columns are the "
                    f"columns that name a row (e.g. endpoint, region), not {', '.join(RESERVED_COLUMNS)}"
                )
        lowered = [c.lower() for c in by]
        repeated = sorted({c for c in by if lowered.count(c.lower()) > 1})
        if repeated:
            problems.append(f"label column '{repeated[0]}' is named more than once")
        if problems:
            raise ValueError("; ".join(problems))
        return by
