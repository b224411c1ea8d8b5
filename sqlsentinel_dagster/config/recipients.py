"""Where ``recipients_from`` may be used: an email target with it reads a column of each instance's row, so it may
only tell alerts with ``instances:``. Each use is checked (a receiver may be used by several alerts, and reach
an alert through its own ``notify``, ``routes:`` or ``defaults.notify``); each use that cannot work is a problem
located where the use is written."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["NO_INSTANCES", "recipients_from_problems"]

NO_INSTANCES = "recipients_from reads a column of each instance's row; the alert has no instances:"

Problem = tuple[tuple[Any, ...], str]


def recipients_from_problems(
    data: Mapping[str, Any], inherited: Mapping[int, set[str]], watch_inherited: Mapping[int, tuple[str, str]]
) -> Iterator[Problem]:
    """Each use of ``recipients_from`` in ``data`` (the file after inheritance) where there is no instance row:
    alerts without ``instances:``, ``fallback:`` and watch rules."""
    written = data.get("receivers")
    receivers: Mapping[str, Any] = written if isinstance(written, dict) else {}
    alerts = data.get("alerts")
    for index, alert in enumerate(alerts if isinstance(alerts, list) else []):
        if isinstance(alert, dict) and alert.get("instances") is None:
            routed = "notify" in inherited.get(index, set())
            source = functools.partial(_source, alert=alert, data=data) if routed else None
            yield from _uses(("alerts", index), alert.get("notify"), receivers, source, NO_INSTANCES)
    no_row = "recipients_from reads a column of each instance's row; {} no row"
    fallback = no_row.format("fallback notifications (about alerting itself) have")
    yield from _uses((), data.get("fallback"), receivers, None, fallback, key="fallback")
    rules = data.get("watch")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, dict):
            taken = watch_inherited.get(index)
            inherits = functools.partial(_watch_source, taken=taken) if taken is not None else None
            message = no_row.format("a watch rule notifies about asset checks, which have")
            yield from _uses(("watch", index), rule.get("notify"), receivers, inherits, message)


def _watch_source(entry: Any, taken: tuple[str, str]) -> str:
    """Where a watch rule's inherited ``notify`` came from: ``routes.error``, ``routes:`` (a list) or
    ``defaults.notify``."""
    kind, name = taken
    return "routes:" if (kind, name) == ("routes", "list") else f"{kind}.{name}"


def _source(entry: Any, alert: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """Where ``entry`` of an alert's inherited ``notify`` came from, as written in the file."""
    routes, routed = data.get("routes"), alert.get("routed_by")
    if isinstance(routed, dict) and isinstance(routes, list):
        named = [
            f"routes[{i}]"
            for i in routed.get("routes", [])
            if isinstance(entry, str) and i < len(routes) and entry in _receivers_of(routes[i])
        ]
        return ", ".join(named) or "defaults.notify"
    severity = alert.get("severity", "warning")
    if isinstance(routes, dict) and isinstance(severity, str) and severity in routes:
        return f"routes.{severity}"
    return "defaults.notify"


def _receivers_of(route: Any) -> list[Any]:
    names = route.get("receivers") if isinstance(route, dict) else None
    return names if isinstance(names, list) else []


def _uses(
    owner: tuple[Any, ...],
    notify: Any,
    receivers: Mapping[str, Any],
    sources: Callable[[Any], str] | None,
    message: str,
    key: str = "notify",
) -> Iterator[Problem]:
    """The uses of ``recipients_from`` in one ``notify`` list: at the entry when the list is written where it is
    used (``sources`` None), else at ``owner``, naming where the entry came from (``sources(entry)``)."""
    for position, entry in enumerate(notify if isinstance(notify, list) else []):
        if isinstance(entry, str):
            targets = receivers.get(entry)
            listed = targets if isinstance(targets, list) else [targets]
            if not any(_reads_a_column(target) for target in listed):
                continue
            what = f"receiver '{entry}'"
        elif _reads_a_column(entry):
            what = "an email target"
        else:
            continue
        if sources is None:
            path = (*owner, key, position) if isinstance(entry, str) else (*owner, key, position, "recipients_from")
            yield path, message if not isinstance(entry, str) else f"{what}: {message}"
        else:
            yield owner, f"{what} (notify from {sources(entry)}): {message}"


def _reads_a_column(target: Any) -> bool:
    """Whether ``target`` (a target as written: flat, or SQL Sentinel's nested ``config:``) sets recipients_from."""
    if not isinstance(target, dict):
        return False
    nested = target.get("config")
    return target.get("recipients_from") is not None or (
        isinstance(nested, dict) and nested.get("recipients_from") is not None
    )
