"""``routes:`` written as a list, as Alertmanager routes: each route matches alerts by label and names receivers;
the first route that matches wins, unless it says ``continue: true`` (then the routes below it are tried too).

.. code-block:: yaml

    routes:
      - match: ["severity=critical"]       # as silences write matchers; every one must match
        receivers: [oncall]
      - match: ["endpoint=/orders"]        # an instance's label column
        receivers: [orders_team]
        continue: true
      - receivers: [data_team]             # no match: every alert

Matchers match what silences match (``alert``, ``severity``, ``owner``, tags) and, for an instance alert, its
label columns and ``instance``. Routes apply to alerts (and watch rules) without a ``notify`` of their own.

**At load** (:func:`walk`) the routes are walked with the labels the alert itself defines. A matcher on a label
only its instances have (a label column, ``instance``, or an ``alert`` pattern that the alert's name does not
match but an instance's name might) is undecided: such a route may match, so its receivers are added and the
walk goes on. Any other matcher is decided by the alert's own labels: a key the alert does not define (say
``endpoint`` on an alert without ``instances:``) has no value, so the matcher does not match, at load as at run
time. The alert's ``notify`` becomes the receivers of every route that may match, in order without
repeats, followed by ``defaults.notify`` when the walk may end without any match (:func:`routed_notify`); which
routes contributed is recorded in :class:`RoutedBy`. No route that may match: ``defaults.notify``, as before.

**At run time** (:class:`RouteResolver`) the contributing routes are walked again with each notification's labels
(an instance's, say): the positions of the targets of the routes that match, or of ``defaults.notify`` when none
does. A route left out at load cannot match at run time: its matchers on the alert's own labels failed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ..naming import MAX_STATE_NAME
from ..state.silences import MAX_MATCHERS, AlertLabels, Matcher, matcher_problems, parse_matcher
from .time_intervals import HeldAt

__all__ = [
    "MATCHER_KEYS",
    "SET_BY_LOADER",
    "KnownLabels",
    "Route",
    "RouteResolver",
    "RoutedBy",
    "known_labels",
    "matcher_text",
    "parse_routes",
    "parsed_matcher",
    "routed_notify",
    "walk",
]

MATCHER_KEYS = "alert, severity, owner, a tag name, or an instance's label column"
SET_BY_LOADER = frozenset({"routed_by"})
"""Fields of an alert the loader sets and alerts.yaml may not write."""

Verdict = Literal["match", "no", "maybe"]


@functools.lru_cache(maxsize=4096)
def parsed_matcher(text: str) -> Matcher:
    """``text`` parsed as a matcher (cached: routes are walked per instance)."""
    return parse_matcher(text)


def matcher_text(text: str) -> str:
    """A validator: ``text`` if it is a matcher RE2 can run, else a ValueError saying what is allowed."""
    try:
        matcher = parsed_matcher(text)
    except ValueError as exc:
        raise ValueError(str(exc).replace("alert, severity, owner or a tag name", MATCHER_KEYS)) from None
    problems = matcher_problems([matcher])
    if problems:
        message = problems[0].replace("silences match regexes", "matchers match regexes")
        raise ValueError(message.replace("several silences", "several matchers"))
    return text


class Route(HeldAt):
    """One route of the list form of ``routes:``: alerts matching every matcher are told ``receivers``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    match: list[Annotated[str, AfterValidator(matcher_text)]] = Field(
        default_factory=list,
        max_length=MAX_MATCHERS,
        description="Matchers as silences write them (key=value, key=~regex, key~glob), all of which must match; "
        "none: every alert",
    )
    receivers: list[str] = Field(min_length=1, description="Names of receivers declared under receivers:")
    continue_: bool = Field(
        default=False, alias="continue", description="After a match, also try the routes below this one"
    )

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        """The parsed ``match`` list."""
        return tuple(parsed_matcher(text) for text in self.match)


class RoutedBy(BaseModel):
    """Set by the loader, never written in alerts.yaml: the alert's ``notify`` came from the list of routes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[Annotated[int, Field(ge=0)]] = Field(
        description="Positions in routes: of the routes that may match the alert, in order"
    )
    fallthrough: bool = Field(description="defaults.notify was added, for when no route matches at run time")


def parse_routes(raw: Sequence[Any]) -> list[Route | None]:
    """Each route of a ``routes:`` list as written, validated on its own; None for one that is not valid (its
    problems are reported with the file's)."""
    parsed: list[Route | None] = []
    for item in raw:
        try:
            parsed.append(Route.model_validate(item))
        except ValidationError:
            parsed.append(None)
    return parsed


@dataclass(frozen=True)
class KnownLabels:
    """An alert's labels as the file gives them, and the label columns its instances add (``by``; None for an
    alert without ``instances:``)."""

    labels: AlertLabels
    by: frozenset[str] | None = None

    def verdict(self, matcher: Matcher) -> Verdict:
        """Whether ``matcher`` matches, does not, or may match an instance (checked in the order in which
        ``InstanceLabels.values`` looks keys up)."""
        if self.by is not None:
            if matcher.key in ("alert", "name"):
                if matcher.matches(self.labels):
                    return "match"
                instance_prefix = (self.labels.name + "{")[: MAX_STATE_NAME - 13]  # as cut by naming.state_name
                exact = matcher.op == "="
                return "no" if exact and not matcher.value.startswith(instance_prefix) else "maybe"
            if matcher.key == "instance" or matcher.key in self.by:
                return "maybe"
        return "match" if matcher.matches(self.labels) else "no"


def _text(value: Any) -> str:
    """A tag value as the model reads it (``true``, ``3``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def known_labels(alert: Mapping[str, Any]) -> KnownLabels:
    """The labels of an alert as written (defaults merged in), before validation: values of the wrong type are
    left out (they are reported as problems)."""
    owners, tags, instances = alert.get("owners"), alert.get("tags"), alert.get("instances")
    by = instances.get("by") if isinstance(instances, dict) else None
    labels = AlertLabels(
        name=str(alert.get("name", "")),
        severity=str(alert.get("severity", "warning")),
        owners=[o for o in owners if isinstance(o, str)] if isinstance(owners, list) else [],
        tags={str(k): _text(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
    )
    columns = frozenset(c for c in by if isinstance(c, str)) if isinstance(by, list) else frozenset()
    return KnownLabels(labels, columns if isinstance(instances, dict) else None)


def walk(routes: Sequence[Route | None], known: KnownLabels) -> tuple[list[int], bool]:
    """The positions of the routes that may match an alert with ``known`` labels, in order, and whether the walk
    may end without a match. A route that surely matches and does not continue ends the walk; one that may match
    does not. A route that is not valid (None) may match and does not end the walk."""
    picked: list[int] = []
    matched = False
    for index, route in enumerate(routes):
        verdicts = {known.verdict(m) for m in route.matchers} if route is not None else {"maybe"}
        if "no" in verdicts:
            continue
        picked.append(index)
        if "maybe" not in verdicts:
            matched = True
            if route is not None and not route.continue_:
                break
    return picked, not matched


def routed_notify(routes: Sequence[Route | None], picked: Sequence[int], fallthrough: Any = None) -> list[Any]:
    """The ``notify`` of an alert routed by the routes at ``picked``: their receivers in order without repeats,
    then the entries of ``fallthrough`` (``defaults.notify``, when the walk may end without a match) not already
    there."""
    notify: list[Any] = []
    for index in picked:
        route = routes[index]
        notify.extend(name for name in (route.receivers if route else []) if name not in notify)
    extra = fallthrough if isinstance(fallthrough, list) else []
    notify.extend(entry for entry in extra if not (isinstance(entry, str) and entry in notify))
    return notify


@dataclass(frozen=True)
class _Step:
    matchers: tuple[Matcher, ...]
    continue_: bool
    positions: tuple[int, ...]
    route: int
    """The route's position in ``routes:``."""


@dataclass(frozen=True)
class RouteResolver:
    """One routed alert's routes, precomputed: :meth:`positions` walks them for one set of labels."""

    steps: tuple[_Step, ...]
    fallthrough: tuple[int, ...]
    """The positions of ``defaults.notify``'s targets, told when no route matches."""

    @classmethod
    def build(
        cls,
        notify: Sequence[Any],
        routed_by: RoutedBy,
        routes: Sequence[Route],
        receivers: Mapping[str, Sequence[Any]],
        defaults_notify: Sequence[Any] | None,
    ) -> RouteResolver:
        """The resolver of an alert whose ``notify`` (as loaded) came from ``routes`` as ``routed_by`` says."""
        spans: list[range] = []
        start = 0
        for entry in notify:
            size = len(receivers.get(entry, ())) if isinstance(entry, str) else 1
            spans.append(range(start, start + size))
            start += size
        named = {entry: spans[i] for i, entry in reversed(list(enumerate(notify))) if isinstance(entry, str)}
        steps = []
        for index in routed_by.routes:
            if index < len(routes):
                route = routes[index]
                found = sorted({p for name in route.receivers for p in named.get(name, ())})
                steps.append(_Step(route.matchers, route.continue_, tuple(found), index))
        fallthrough: set[int] = set()
        for entry in (defaults_notify or []) if routed_by.fallthrough else []:
            if isinstance(entry, str):
                fallthrough.update(named.get(entry, ()))
            else:
                at = next((i for i, e in enumerate(notify) if not isinstance(e, str) and e == entry), None)
                fallthrough.update(spans[at] if at is not None else ())
        return cls(tuple(steps), tuple(sorted(fallthrough)))

    def positions(self, labels: AlertLabels) -> list[int]:
        """The positions of the targets told for ``labels``: those of the routes that match, first match
        winning unless it continues; ``defaults.notify``'s when none matches (empty without it)."""
        reaching = self.reaching(labels)
        return sorted(reaching) if reaching is not None else list(self.fallthrough)

    def reaching(self, labels: AlertLabels) -> dict[int, list[int]] | None:
        """For each target told for ``labels`` through a route, the positions in ``routes:`` of the routes that
        reach it; None when no route matches (``defaults.notify`` is told)."""
        found: dict[int, list[int]] = {}
        matched = False
        for step in self.steps:
            if all(matcher.matches(labels) for matcher in step.matchers):
                matched = True
                for position in step.positions:
                    found.setdefault(position, []).append(step.route)
                if not step.continue_:
                    break
        return found if matched else None
