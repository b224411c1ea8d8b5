"""Silences: time windows with an author and a reason, matching alerts by name, tags, severity or owners.

A silence's state (pending, active, expired) is derived from its start, end and now; it is never stored.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["AlertLabels", "Matcher", "Silence", "SilenceState", "parse_matcher"]

SilenceState = Literal["pending", "active", "expired"]
Operator = Literal["=", "=~", "~"]
_MATCHER = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_.:/-]*)(?P<op>=~|=|~)(?P<value>.*)$")


@dataclass(frozen=True)
class AlertLabels:
    """What silences match against: the alert's name, severity, owners and tags."""

    name: str
    severity: str = ""
    owners: Sequence[str] = ()
    tags: Mapping[str, str] | None = None

    def values(self, key: str) -> list[str]:
        """The values of ``key``: ``alert``/``name``, ``severity``, ``owner``/``owners``, or a tag."""
        if key in ("alert", "name"):
            return [self.name]
        if key == "severity":
            return [self.severity]
        if key in ("owner", "owners"):
            return list(self.owners)
        tag = key.removeprefix("tag:")
        tags = self.tags or {}
        return [tags[tag]] if tag in tags else []


@dataclass(frozen=True)
class Matcher:
    """``key=value`` (exact), ``key=~regex`` (full match) or ``key~glob`` (``*``, ``?``, ``[...]``)."""

    key: str
    op: Operator
    value: str

    def matches(self, labels: AlertLabels) -> bool:
        """Whether any of the alert's values for ``key`` matches."""
        candidates = labels.values(self.key)
        if self.op == "=":
            return self.value in candidates
        if self.op == "=~":
            pattern = re.compile(self.value)
            return any(pattern.fullmatch(c) for c in candidates)
        return any(fnmatch.fnmatchcase(c, self.value) for c in candidates)

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Parse ``key=value``, ``key=~regex`` or ``key~glob``; raise ValueError saying what is allowed."""
    match = _MATCHER.match(text.strip())
    if not match or not match.group("value"):
        raise ValueError(
            f"invalid matcher {text!r}; write key=value (exact), key=~regex or key~glob, "
            "with key one of alert, severity, owner or a tag name"
        )
    op: Operator = match.group("op")  # type: ignore[assignment]
    if op == "=~":
        try:
            re.compile(match.group("value"))
        except re.error as exc:
            raise ValueError(f"invalid regular expression in matcher {text!r}: {exc}") from None
    return Matcher(match.group("key"), op, match.group("value"))


@dataclass(frozen=True)
class Silence:
    """A window during which matching alerts are evaluated and recorded, but not notified."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: dt.datetime
    ends_at: dt.datetime
    author: str
    reason: str
    created_at: dt.datetime

    def state(self, now: dt.datetime) -> SilenceState:
        """pending before it starts, active until it ends, expired after."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: AlertLabels) -> bool:
        """Whether every matcher matches the alert."""
        return all(m.matches(labels) for m in self.matchers)

    def describe(self) -> str:
        """``silenced by <author> until <time>: <reason>``."""
        return f"silenced by {self.author} until {self.ends_at.isoformat(timespec='seconds')}: {self.reason}"
