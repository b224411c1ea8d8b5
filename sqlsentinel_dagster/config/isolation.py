"""Per-alert isolation: a problem takes out the alerts it concerns, not the whole file.

A problem inside an alert takes out that alert. A problem in something alerts share takes out the alerts that
use it: a database (its alerts), a receiver (the alerts that notify it), a route (the alerts routed by it: by
severity, or, in a list of routes, the alerts whose ``routed_by`` names it; the routes after it are renumbered),
a ``defaults:`` key (the alerts that inherit it), a time interval (the alerts naming it). A broken ``fallback:``
or ``heartbeat:`` is dropped (no alert depends on it), and so is an unknown top-level key. No warehouse, or no
``alerts:`` list, takes out everything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ALL", "affected", "without"]

ALL = frozenset({-1})
"""Every alert is affected."""


def affected(
    paths: Sequence[tuple[Any, ...]], data: Mapping[str, Any], inherited: Mapping[int, set[str]]
) -> tuple[set[int], set[tuple[Any, ...]]]:
    """The indexes of the alerts ``paths`` (the problems' locations) take out (``ALL`` inside: every alert),
    and the shared entries to leave out of the file (e.g. ``("receivers", "oncall")``)."""
    alerts = _alerts(data)
    drop: set[int] = set()
    remove: set[tuple[Any, ...]] = set()
    for path in paths:
        head = path[0] if path else None
        if head == "alerts" and len(path) > 1 and isinstance(path[1], int):
            drop.add(path[1])
        elif head == "time_intervals" and len(path) > 1 and isinstance(path[1], int):
            remove.add(path[:2])  # a broken interval: the alerts naming it go with it
            named = _interval_name(data, path[1])
            drop |= {i for i, alert in enumerate(alerts) if named is not None and _names_interval(alert, named)}
        elif head in ("defaults", "routes", "receivers", "databases") and len(path) > 1:
            remove.add(path[:2])
            drop |= {i for i, alert in enumerate(alerts) if _uses(alert, path[:2], data, inherited.get(i, set()))}
        elif head == "database":
            remove.add(("database",))
            drop |= {i for i, alert in enumerate(alerts) if _database_of(alert, data) == "default"}
        elif head in ("fallback", "heartbeat") or (head is not None and head != "alerts" and len(path) == 1):
            remove.add((head,))  # a broken fallback or heartbeat, or an unknown top-level key: no alert uses it
        else:
            drop |= ALL  # no warehouse at all, no alerts list, or the file itself
    return drop, remove


def without(data: Mapping[str, Any], drop: set[int], remove: set[tuple[Any, ...]]) -> tuple[dict[str, Any], list[int]]:
    """``data`` without the dropped alerts and the removed entries; and the original index of each kept alert."""
    reduced: dict[str, Any] = {key: value for key, value in data.items() if (key,) not in remove}
    for key, name in (entry for entry in remove if len(entry) == 2):
        if isinstance(reduced.get(key), dict):
            reduced[key] = {k: v for k, v in reduced[key].items() if k != name}
    alerts = _alerts(data)
    kept = [] if drop >= ALL else [i for i in range(len(alerts)) if i not in drop]
    reduced["alerts"] = [alerts[i] for i in kept]
    intervals = reduced.get("time_intervals")
    if isinstance(intervals, list):
        reduced["time_intervals"] = [e for i, e in enumerate(intervals) if ("time_intervals", i) not in remove]
    routes = reduced.get("routes")
    if isinstance(routes, list) and any(("routes", i) in remove for i in range(len(routes))):
        reduced["routes"], reduced["alerts"] = _without_routes(routes, reduced["alerts"], remove)
    return reduced, kept


def _without_routes(routes: list[Any], alerts: list[Any], remove: set[tuple[Any, ...]]) -> tuple[list[Any], list[Any]]:
    """A list of routes without the removed ones, and ``alerts`` with ``routed_by`` renumbered to match (no kept
    alert is routed by a removed route: it was dropped with it)."""
    kept = [i for i in range(len(routes)) if ("routes", i) not in remove]
    position = {old: new for new, old in enumerate(kept)}
    renumbered = []
    for alert in alerts:
        routed = alert.get("routed_by") if isinstance(alert, dict) else None
        if isinstance(routed, dict) and isinstance(routed.get("routes"), list):
            numbers = [position[i] for i in routed["routes"] if i in position]
            alert = {**alert, "routed_by": {**routed, "routes": numbers}}
        renumbered.append(alert)
    return [routes[i] for i in kept], renumbered


def _interval_name(data: Mapping[str, Any], index: int) -> str | None:
    """The name of ``time_intervals[index]``, if it has one."""
    intervals = data.get("time_intervals")
    entry = intervals[index] if isinstance(intervals, list) and index < len(intervals) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) else None


def _names_interval(alert: Any, name: str) -> bool:
    """Whether ``alert`` (after inheritance) mutes or acts in the interval ``name``."""
    if not isinstance(alert, dict):
        return False
    named = [alert.get("mute_time_intervals"), alert.get("active_time_intervals")]
    return any(isinstance(names, list) and name in names for names in named)


def _alerts(data: Mapping[str, Any]) -> list[Any]:
    alerts = data.get("alerts")
    return alerts if isinstance(alerts, list) else []


def _uses(alert: Any, entry: tuple[Any, ...], data: Mapping[str, Any], inherited: set[str]) -> bool:
    if not isinstance(alert, dict):
        return False
    kind, name = entry
    if kind == "defaults":
        return name in inherited
    if kind == "routes" and isinstance(name, int):
        routed = alert.get("routed_by")
        return isinstance(routed, dict) and name in (routed.get("routes") or [])
    if kind == "routes":
        return "notify" in inherited and alert.get("severity", "warning") == name
    if kind == "receivers":
        notify = alert.get("notify")
        return isinstance(notify, list) and bool(name in notify)
    return bool(_database_of(alert, data) == name)  # databases


def _database_of(alert: Any, data: Mapping[str, Any]) -> str | None:
    if isinstance(alert, dict) and isinstance(alert.get("database"), str):
        return str(alert["database"])
    named: dict[str, Any] = data["databases"] if isinstance(data.get("databases"), dict) else {}
    names = [*named, *(["default"] if data.get("database") is not None else [])]
    return names[0] if len(names) == 1 else None
