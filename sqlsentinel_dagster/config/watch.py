"""``watch:`` in alerts.yaml: rules that turn the deployment's asset checks, runs, ticks, code locations and
failed materializations into notifications.

A rule selects what it watches (one kind: ``checks``, ``runs``, ``ticks``, ``code_locations`` or ``assets``, see
:mod:`.watch_kinds`) and says whom to tell and how often to remind, with the same state machine as alerts
(``for``, ``recover_after``, ``repeat_interval``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .targets import NotifyEntry
from .watch_kinds import Locations, RunsWatch, TicksWatch

__all__ = [
    "CHECK_SEVERITIES",
    "KINDS",
    "MAX_RULE_NAME",
    "CheckPattern",
    "CheckSeverity",
    "WatchKind",
    "WatchRule",
    "parse_pattern",
]

CheckSeverity = Literal["ERROR", "WARN"]
WatchKind = Literal["checks", "runs", "ticks", "code_locations", "assets"]
KINDS: tuple[WatchKind, ...] = ("checks", "runs", "ticks", "code_locations", "assets")
"""What a rule may watch: exactly one of these keys."""
CHECK_SEVERITIES: tuple[CheckSeverity, ...] = ("ERROR", "WARN")
"""The severities Dagster gives a failed asset check (``dg.AssetCheckSeverity``)."""
MAX_RULE_NAME = 64
"""The longest watch rule name: it prefixes the state name of every check it watches (at most 200 characters)."""

_RULE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_KEY_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_CHECK_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_FORMS = (
    "'*' (every check), 'shop/*' (every check on an asset whose key starts with shop/), 'shop/orders' (every "
    "check on that asset) or 'shop/orders:not_null_id' (one check)"
)


@dataclass(frozen=True)
class CheckPattern:
    """A parsed ``checks:`` pattern: an asset key (or key prefix) and, optionally, one check name."""

    asset: tuple[str, ...]
    """The asset key, or the key prefix when :attr:`prefix`."""
    prefix: bool = False
    """The pattern matches every asset under :attr:`asset` (``shop/*``; ``*`` is the empty prefix)."""
    check: str | None = None
    """The one check name it matches, or None for every check of the asset(s)."""

    def matches(self, asset: tuple[str, ...], check: str) -> bool:
        """Whether the check ``check`` on the asset with key ``asset`` is selected."""
        if self.prefix:
            return len(asset) > len(self.asset) and asset[: len(self.asset)] == self.asset
        return asset == self.asset and (self.check is None or self.check == check)

    def __str__(self) -> str:
        if self.prefix:
            return "/".join([*self.asset, "*"])
        return "/".join(self.asset) + (f":{self.check}" if self.check else "")


def parse_pattern(text: str) -> CheckPattern:
    """``*``, ``shop/*``, ``shop/orders`` or ``shop/orders:not_null_id`` as a :class:`CheckPattern`; ValueError
    saying which forms are allowed otherwise."""
    shown = repr(text) if len(text) <= 80 else repr(text[:77] + "...")
    value = text.strip()
    if value == "*":
        return CheckPattern((), prefix=True)
    asset_text, _, check = value.partition(":")
    parts = asset_text.split("/")
    prefix = parts[-1] == "*"
    if prefix:
        parts = parts[:-1]
        if check:
            raise ValueError(f"invalid check pattern {shown}: a prefix ('shop/*') selects every check; use {_FORMS}")
    bad = [p for p in parts if not _KEY_PART.match(p)]
    if not parts or bad:
        raise ValueError(
            f"invalid check pattern {shown}: asset key parts are letters, digits, '_', '-' and '.'; use {_FORMS}"
        )
    if ":" in value and not _CHECK_NAME.match(check):
        raise ValueError(f"invalid check pattern {shown}: a check name is letters, digits and '_'; use {_FORMS}")
    return CheckPattern(tuple(parts), prefix, check or None)


def _patterns(value: Any) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValueError(f"expected a pattern or a non-empty list of patterns: {_FORMS}")
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"expected patterns as strings: {_FORMS}")
    return tuple(parse_pattern(item) for item in items)


def _asset_patterns(value: Any) -> Any:
    patterns = _patterns(value)
    if any(pattern.check for pattern in patterns):
        raise ValueError("an assets pattern names assets, not checks: '*', 'shop/*' or 'shop/orders'")
    return patterns


def _severities(value: Any) -> Any:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
        raise ValueError("expected a list of failed-check severities: [ERROR, WARN], [ERROR] or [WARN]")
    upper = [item.strip().upper() for item in items]
    bad = [item for item, up in zip(items, upper, strict=True) if up not in CHECK_SEVERITIES]
    if bad:
        raise ValueError(f"invalid severity {bad[0]!r}; Dagster's asset check severities are ERROR and WARN")
    return tuple(dict.fromkeys(upper))


def _rule_name(value: Any) -> Any:
    if isinstance(value, str) and not _RULE_NAME.match(value):
        raise ValueError(
            f"invalid watch rule name {value!r}; use letters, digits and '_' (it names the checks it watches, "
            "as '<rule>:<asset>:<check>')"
        )
    return value


def _duration(value: Any) -> float:
    from ..durations import parse_duration  # models imports this module for AlertsFile.watch

    return parse_duration(value)


Patterns = Annotated[tuple[CheckPattern, ...], BeforeValidator(_patterns)]
AssetPatterns = Annotated[tuple[CheckPattern, ...], BeforeValidator(_asset_patterns)]
Severities = Annotated[tuple[CheckSeverity, ...], BeforeValidator(_severities)]
RuleName = Annotated[str, BeforeValidator(_rule_name), Field(min_length=1, max_length=MAX_RULE_NAME)]
Duration = Annotated[float, BeforeValidator(_duration)]
Streak = Annotated[int, Field(ge=1, le=1000)]


class WatchRule(BaseModel):
    """Notify about what the rule selects in the deployment (asset checks, runs, ticks, code locations or failed
    materializations), as if each selected check, job, schedule, sensor, location or asset were an alert."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False, arbitrary_types_allowed=True)

    name: RuleName = Field(description="Unique among watch rules and alerts; letters, digits and '_'")
    checks: Patterns | None = Field(
        default=None, description="Asset checks: '*', 'shop/*', 'shop/orders', 'shop/orders:not_null_id', or a list"
    )
    runs: RunsWatch | None = Field(
        default=None, description="Runs: {jobs: '*', status: failure} or {jobs: 'nightly_*', longer_than: 2h}"
    )
    ticks: TicksWatch | None = Field(
        default=None, description="Schedule and sensor ticks that fail: {schedules: '*', sensors: '*'}"
    )
    code_locations: Locations | None = Field(
        default=None, description="Code locations that fail to load: '*', a list, or {names, webserver}"
    )
    assets: AssetPatterns | None = Field(
        default=None, description="Failed materializations of these assets: '*', 'shop/*', 'shop/orders'"
    )
    severity: Severities = Field(
        default=CHECK_SEVERITIES,
        description="checks only: failed severities that count (ERROR, WARN); other failures count as OK",
    )
    notify: list[NotifyEntry] = Field(
        default_factory=list, description="Targets inline, or receiver names; default from routes and defaults"
    )
    repeat_interval: Duration | None = Field(
        default=None, description="While a check stays failed, remind this often (e.g. '4h'); unset: never remind"
    )
    for_: Streak = Field(default=1, alias="for", description="Consecutive failed evaluations needed before firing")
    recover_after: Streak = Field(default=1, description="Consecutive passing evaluations needed before resolving")
    send_resolved: bool = Field(default=True, description="Tell the targets when a failed check passes again")

    @model_validator(mode="after")
    def _one_kind(self) -> WatchRule:
        chosen = [kind for kind in KINDS if getattr(self, kind) is not None]
        if len(chosen) != 1:
            found = f"found {' and '.join(chosen)}" if chosen else "found none"
            raise ValueError(f"a watch rule watches exactly one of {', '.join(KINDS)} ({found})")
        if chosen[0] != "checks" and "severity" in self.model_fields_set:
            raise ValueError("severity applies to checks rules only")
        return self

    @property
    def kind(self) -> WatchKind:
        """What the rule watches."""
        return next(kind for kind in KINDS if getattr(self, kind) is not None)

    def watches(self, asset: tuple[str, ...], check: str) -> bool:
        """Whether this rule selects the check ``check`` on the asset with key ``asset``."""
        return any(pattern.matches(asset, check) for pattern in self.checks or ())

    def watches_asset(self, asset: tuple[str, ...]) -> bool:
        """Whether this ``assets`` rule selects the asset with key ``asset``."""
        return any(p.matches(asset, "") if p.prefix else p.asset == asset for p in self.assets or ())

    @property
    def route_severity(self) -> str:
        """The alert severity whose ``routes:`` entry a rule without ``notify`` uses: ``error`` when it watches
        ERROR failures (or anything but checks), else ``warning``."""
        return "error" if self.kind != "checks" or "ERROR" in self.severity else "warning"
