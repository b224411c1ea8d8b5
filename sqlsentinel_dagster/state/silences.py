"""Silences: time windows with an author and a reason, matching alerts by name, tags, severity or owners.

A silence's state (pending, active, expired) is derived from its start, end and now; it is never stored.

Regex matchers (``key=~regex``) run on RE2 (the ``google-re2`` package), whose matching time is linear in the
text: a pattern such as ``(a+)+$``, which makes a backtracking engine run for hours, costs microseconds. RE2
has no backreferences or lookarounds; new silences using them are refused (:func:`matcher_problems`), and one
stored before (Python's ``re`` accepted them) matches nothing, so it cannot swallow alerts unseen.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import re2

__all__ = [
    "MAX_MATCHERS",
    "MAX_MATCHER_LENGTH",
    "AlertLabels",
    "Matcher",
    "Silence",
    "SilenceState",
    "matcher_problems",
    "parse_matcher",
]

MAX_MATCHERS = 20
"""The most matchers one silence may have."""
MAX_MATCHER_LENGTH = 1_000
"""The longest value (exact text, regex or glob) a matcher of a new silence may have, in characters."""

SilenceState = Literal["pending", "active", "expired"]
Operator = Literal["=", "=~", "~"]
_MATCHER = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_.:/-]*)(?P<op>=~|=|~)(?P<value>.*)$")
_RE2_LIMITS = (
    "silences match regexes with RE2, which runs in linear time and so has no backreferences (\\1, (?P=name)), "
    "lookarounds ((?=...), (?!...), (?<=...), (?<!...)), atomic groups or possessive quantifiers, and writes "
    "the end of the text \\z; rewrite the pattern, or use key~glob or several silences"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_log = logging.getLogger(__name__)


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
    """``key=value`` (exact), ``key=~regex`` (full match, RE2 syntax) or ``key~glob`` (``*``, ``?``, ``[...]``)."""

    key: str
    op: Operator
    value: str

    def matches(self, labels: AlertLabels) -> bool:
        """Whether any of the alert's values for ``key`` matches.

        A regex RE2 cannot run (see :meth:`problem`) matches nothing, with a warning in the log: a silence that
        cannot be evaluated must not silence alerts, or whoever is on call would never hear of them.
        """
        candidates = labels.values(self.key)
        if self.op == "=":
            return self.value in candidates
        if self.op == "=~":
            program, problem = _compile(self.value)
            if program is None:
                _warn_unusable(str(self), problem or "")
                return False
            return any(_fullmatch(program, c) for c in candidates)
        return any(fnmatch.fnmatchcase(c, self.value) for c in candidates)

    def problem(self) -> str | None:
        """Why this matcher cannot be evaluated (a regex RE2 cannot run), or None when it can."""
        return _compile(self.value)[1] if self.op == "=~" else None

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Parse ``key=value``, ``key=~regex`` or ``key~glob``; raise ValueError saying what is allowed.

    A regex that Python's ``re`` accepts but RE2 cannot run still parses, so that silences stored before RE2
    still load (and match nothing); :func:`matcher_problems` refuses it for a new silence.
    """
    match = _MATCHER.match(text.strip())
    if not match or not match.group("value"):
        raise ValueError(
            f"invalid matcher {_quote(text)}; write key=value (exact), key=~regex or key~glob, "
            "with key one of alert, severity, owner or a tag name"
        )
    op: Operator = match.group("op")  # type: ignore[assignment]
    value = match.group("value")
    if op == "=~" and _compile(value)[0] is None:
        try:
            re.compile(value)
        except (re.error, RecursionError, OverflowError) as exc:
            raise ValueError(f"invalid regular expression in matcher {_quote(text)}: {exc}") from None
    return Matcher(match.group("key"), op, value)


def matcher_problems(matchers: Sequence[Matcher]) -> list[str]:
    """Why ``matchers`` cannot make a new silence (empty when they can): more than :data:`MAX_MATCHERS`, a value
    longer than :data:`MAX_MATCHER_LENGTH`, or a regex RE2 cannot run."""
    problems = []
    if len(matchers) > MAX_MATCHERS:
        problems.append(f"{len(matchers)} matchers given; a silence takes at most {MAX_MATCHERS}")
    for matcher in matchers:
        if len(matcher.value) > MAX_MATCHER_LENGTH:
            problems.append(
                f"matcher {_quote(str(matcher))} is {len(matcher.value)} characters long; "
                f"at most {MAX_MATCHER_LENGTH} are allowed"
            )
        elif (problem := matcher.problem()) is not None:
            problems.append(f"matcher {_quote(str(matcher))} cannot be used: {problem}; {_RE2_LIMITS}")
    return problems


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> tuple[Any, str | None]:
    """The RE2 program for ``pattern`` and None, or None and why RE2 cannot run it."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    try:
        return re2.compile(pattern, options), None
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        return None, f"RE2 cannot run this regular expression ({_CONTROL.sub('?', detail)})"
    except UnicodeEncodeError:
        return None, "the regular expression is not valid UTF-8 text"


@functools.lru_cache(maxsize=1024)
def _warn_unusable(matcher: str, problem: str) -> None:
    """Log, once per process and matcher, that a stored matcher matches nothing."""
    _log.warning("silence matcher %s matches nothing: %s", _quote(matcher), problem)


def _fullmatch(program: Any, text: str) -> bool:
    try:
        return program.fullmatch(text) is not None
    except UnicodeEncodeError:  # a lone surrogate: no regex can be meant to match it
        return False


def _quote(text: str, limit: int = 80) -> str:
    """``text`` in quotes for a message: control characters escaped (``\\n``, ``\\x1b``), cut at ``limit``."""
    shown = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text[:limit])
    return f"'{shown}'" + (f"... ({len(text)} characters)" if len(text) > limit else "")


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
        """Whether every matcher matches the alert (a matcher that cannot be evaluated matches nothing)."""
        return all(m.matches(labels) for m in self.matchers)

    def problems(self) -> list[str]:
        """Why some of the silence's matchers cannot be evaluated: then it silences nothing."""
        return [f"{_quote(str(m))}: {p}" for m in self.matchers if (p := m.problem()) is not None]

    def describe(self) -> str:
        """``silenced by <author> until <time>: <reason>``."""
        return f"silenced by {self.author} until {self.ends_at.isoformat(timespec='seconds')}: {self.reason}"
