"""What a ``watch:`` rule watches besides asset checks: the deployment's runs, schedule and sensor ticks, code
locations and asset materializations (alerting on the platform itself).

Each kind selects Dagster objects by name pattern (``*`` and ``?`` wildcards, as in shell globs) and turns each
selected object into one watched subject with the state machine of an alert:

- ``runs: {jobs, status: failure}``: a job fires when a run of it fails and resolves on its next success;
- ``runs: {jobs, longer_than}``: a job fires while one of its runs has been running longer than that;
- ``ticks: {schedules, sensors}``: a schedule or sensor fires while its latest tick failed;
- ``code_locations``: a code location fires while it fails to load (read from the webserver);
- ``assets``: an asset fires when a materialization of it failed and resolves when one succeeds.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_WEBSERVER",
    "Locations",
    "LocationsWatch",
    "NamePatterns",
    "RunsWatch",
    "TicksWatch",
    "matches_name",
    "parse_name_patterns",
]

DEFAULT_WEBSERVER = "http://localhost:3000"
"""Where ``code_locations`` rules read the workspace without ``webserver:`` (``dagster dev``'s default)."""
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_*?.\-\[\]!]+$")
_NAME_FORMS = "'*' (every one), a name ('nightly_orders') or a pattern ('nightly_*')"


def parse_name_patterns(value: Any) -> tuple[str, ...]:
    """A name pattern, or a non-empty list of them, as a tuple; ValueError saying which forms are allowed."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or not all(isinstance(item, str) for item in items):
        raise ValueError(f"expected a name pattern or a non-empty list of them: {_NAME_FORMS}")
    stripped = [item.strip() for item in items]
    bad = [item for item in stripped if not _NAME_PATTERN.match(item)]
    if bad:
        shown = bad[0] if len(bad[0]) <= 80 else bad[0][:77] + "..."
        raise ValueError(f"invalid name pattern {shown!r}: use letters, digits, '_', '-', '.' and '*'; {_NAME_FORMS}")
    return tuple(dict.fromkeys(stripped))


def matches_name(patterns: tuple[str, ...], name: str) -> bool:
    """Whether ``name`` matches one of ``patterns`` (case-sensitive shell-style wildcards)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _duration(value: Any) -> float:
    from ..durations import parse_duration  # models imports this module through watch.py

    return parse_duration(value)


NamePatterns = Annotated[tuple[str, ...], BeforeValidator(parse_name_patterns)]


class _Kind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunsWatch(_Kind):
    """``runs:``: the runs of the jobs ``jobs`` selects, in every code location."""

    jobs: NamePatterns = Field(default=("*",), description="Job names or patterns ('*', 'nightly_*'); default '*'")
    status: Literal["failure"] | None = Field(
        default=None,
        description="'failure': a job fires when a run of it fails, resolves on its next success (the default "
        "without longer_than)",
    )
    longer_than: Annotated[float, BeforeValidator(_duration), Field(ge=1)] | None = Field(
        default=None, description="A job fires while one of its runs has been running longer than this (e.g. '2h')"
    )

    @model_validator(mode="after")
    def _one_condition(self) -> RunsWatch:
        if self.status is not None and self.longer_than is not None:
            raise ValueError("set status: failure or longer_than, not both (use two watch rules)")
        return self

    @property
    def slow(self) -> bool:
        """It watches runs that take too long (``longer_than``), not failed ones."""
        return self.longer_than is not None


class TicksWatch(_Kind):
    """``ticks:``: the schedules and sensors, in every code location, whose latest tick failed."""

    schedules: NamePatterns | None = Field(default=None, description="Schedule names or patterns ('*')")
    sensors: NamePatterns | None = Field(default=None, description="Sensor names or patterns ('*')")

    @model_validator(mode="after")
    def _something(self) -> TicksWatch:
        if self.schedules is None and self.sensors is None:
            raise ValueError("name the schedules, the sensors or both: {schedules: '*', sensors: '*'}")
        return self

    def selects(self, kind: Literal["schedule", "sensor"], name: str) -> bool:
        """Whether the schedule (or sensor) ``name`` is watched."""
        patterns = self.schedules if kind == "schedule" else self.sensors
        return patterns is not None and matches_name(patterns, name)


def _locations(value: Any) -> Any:
    return {"names": value} if isinstance(value, str | list) else value


class LocationsWatch(_Kind):
    """``code_locations:``: the code locations whose load fails, as the Dagster webserver shows them."""

    names: NamePatterns = Field(default=("*",), description="Code location names or patterns; default '*'")
    webserver: str = Field(
        default=DEFAULT_WEBSERVER,
        description="The Dagster webserver's URL as the daemon reaches it (its GraphQL API lists the locations)",
        pattern=r"^https?://[^\s]+$",
        max_length=500,
    )


Locations = Annotated[LocationsWatch, BeforeValidator(_locations)]
"""``code_locations:`` as written: a pattern, a list of them, or ``{names, webserver}``."""
