"""``checks:`` and ``runs:`` in the file: how checks-mode batches are split into runs (shards), and what every alert
run carries for Dagster's run launchers, run queue, run monitoring and run retries.

.. code-block:: yaml

    checks:
      shard_size: 50                       # a batch of more alerts is launched as several runs
    runs:
      tags: {dagster-celery/queue: alerts, dagster-k8s/config: {container_config: {resources: {limits: {cpu: "1"}}}}}
      max_runtime: 10m                     # dagster/max_runtime: run monitoring fails a run running longer
      max_retries: 2                       # dagster/max_retries: the daemon retries a failed run
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from ..durations import parse_duration
from .fields import TagKey

__all__ = ["MAX_RUN_TAGS", "OWN_TAG_PREFIX", "ChecksSettings", "RunSettings"]

MAX_RUN_TAGS = 50
"""Tags ``runs.tags`` may pass on."""
OWN_TAG_PREFIX = "sqlsentinel/"
"""Tags we set ourselves (``sqlsentinel/shard``, ``sqlsentinel/database``, ...): not for ``runs.tags``."""
_BY_FIELD = {"dagster/max_runtime": "max_runtime", "dagster/max_retries": "max_retries"}


def _tag_value(value: Any) -> Any:
    """A tag value as Dagster takes it: text; a mapping or list (``dagster-k8s/config``) as JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int | float) else value


def _duration_or_none(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


class ChecksSettings(BaseModel):
    """Checks mode's batches (``checks:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shard_size: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="A batch schedule tick with more alerts is launched as several runs (shards) of at most this many "
        "alerts, each database's alerts apart; unset: one run per tick",
    )


class RunSettings(BaseModel):
    """What every alert run carries (``runs:``): tags for the run launcher and queue, and Dagster's run limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: dict[TagKey, Annotated[str, BeforeValidator(_tag_value), Field(max_length=10_000)]] = Field(
        default_factory=dict,
        max_length=MAX_RUN_TAGS,
        description="Tags of every alert run, passed to Dagster as they are (e.g. dagster-celery/queue, "
        "dagster-k8s/config, ecs/cpu); a mapping value is passed as JSON",
    )
    max_runtime: Annotated[float | None, BeforeValidator(_duration_or_none)] = Field(
        default=None,
        ge=1,
        le=7 * 86_400,
        description="Dagster's run monitoring fails an alert run running longer than this (dagster/max_runtime)",
    )
    max_retries: int | None = Field(
        default=None,
        ge=0,
        le=10,
        description="Dagster's run retries relaunch a failed alert run up to this many times (dagster/max_retries)",
    )

    @field_validator("tags")
    @classmethod
    def _not_ours(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in tags:
            if key.startswith(OWN_TAG_PREFIX):
                raise ValueError(f"tag '{key}' is set by sqlsentinel itself; use another name")
            if key in _BY_FIELD:
                raise ValueError(f"write runs.{_BY_FIELD[key]} instead of the tag '{key}'")
        return tags

    def run_tags(self) -> dict[str, str]:
        """The tags as Dagster takes them: ``tags`` and Dagster's own for ``max_runtime`` and ``max_retries``."""
        extra = {}
        if self.max_runtime is not None:
            extra["dagster/max_runtime"] = f"{self.max_runtime:g}"
        if self.max_retries is not None:
            extra["dagster/max_retries"] = str(self.max_retries)
        return {**self.tags, **extra}
