"""What alerts and watch rules take from the rest of the file when they do not set it: ``notify`` from ``routes:``
(by severity, or walking a list of routes by label: see :mod:`.routes`) else ``defaults.notify``; the other
``defaults:``; an alert's ``timeout`` from its database. :class:`Inheritance` is inherited by the loader's checker,
which supplies ``_add``."""

from __future__ import annotations

from typing import Any

from ..state.silences import AlertLabels
from .routes import SET_BY_LOADER, KnownLabels, Route, known_labels, routed_notify, walk

__all__ = ["Inheritance"]

RoutesAsRead = dict[str, Any] | list[Route | None]
"""``routes:`` by severity as written, or the list of routes parsed (None for a route that is not valid)."""


class Inheritance:
    """Fills in what alerts and watch rules inherit, recording where it came from (for isolation and for
    reporting a problem once, where it is written)."""

    inherited: dict[int, set[str]]
    """The keys each alert took from ``routes:``, ``defaults:`` or its database (``timeout``), by alert index."""
    watch_inherited: dict[int, tuple[str, str]]
    """Watch rules whose ``notify`` came from ``routes:`` (``("routes", severity)``, or ``("routes", "list")``) or
    ``defaults:`` (``("defaults", "notify")``)."""
    watch_sources: dict[int, list[tuple[Any, ...]]]
    """For watch rules routed by a list of routes: each route (``("routes", position)``) and, when added,
    ``("defaults", "notify")`` its ``notify`` came from."""

    def _add(self, path: tuple[Any, ...], message: str, line: int | None = None, note: bool = False) -> None:
        """Record a problem at ``path``: defined by the checker that inherits this."""
        raise NotImplementedError

    def _inherit(
        self, index: int, alert: Any, defaults: dict[str, Any], routes: RoutesAsRead, databases: dict[str, Any]
    ) -> Any:
        """Fill the keys ``alert`` does not set: ``notify`` from ``routes`` (by severity; or the routes of the list
        that may match it, with ``routed_by`` saying which), else from ``defaults``; ``timeout`` from ``defaults``,
        else from its database's ``timeout``."""
        if not isinstance(alert, dict):
            return alert
        merged = dict(alert)
        for key in SET_BY_LOADER & set(alert):
            del merged[key]
            self._add(
                ("alerts", index, key),
                f"unknown key '{key}': the loader sets it on alerts that take notify from routes:; do not write it",
            )
        severity = alert.get("severity", defaults.get("severity", "warning"))
        if "notify" not in alert and isinstance(routes, dict) and isinstance(severity, str) and severity in routes:
            merged["notify"] = routes[severity]
            self.inherited.setdefault(index, set()).add("notify")
        for key, value in defaults.items():
            if key == "tags" and isinstance(value, dict) and isinstance(alert.get("tags"), dict):
                merged["tags"] = {**value, **alert["tags"]}
            elif key not in merged:
                merged[key] = value
                self.inherited.setdefault(index, set()).add(key)
        if "notify" not in alert and isinstance(routes, list):
            routed = self._routed(routes, known_labels(merged), defaults)
            if routed is not None:
                merged["notify"], picked, fallthrough = routed
                merged["routed_by"] = {"routes": picked, "fallthrough": fallthrough}
                self.inherited.setdefault(index, set()).add("notify")
        only = next(iter(databases)) if len(databases) == 1 else None
        database = databases.get(merged.get("database", only))  # type: ignore[arg-type]
        if "timeout" not in merged and isinstance(database, dict) and "timeout" in database:
            merged["timeout"] = database["timeout"]
            self.inherited.setdefault(index, set()).add("timeout")
        return merged

    def _inherit_watch(self, index: int, rule: Any, defaults: dict[str, Any], routes: RoutesAsRead) -> Any:
        """A watch rule without ``notify`` takes ``routes[error]`` when it watches ERROR failures (else
        ``routes[warning]``), else ``defaults.notify``; no other default applies to watch rules.

        With a list of routes, the rule is routed as an alert named like the rule, of that severity (``error`` or
        ``warning``), with no owners, tags or label columns: a matcher on any other key does not match it.
        """
        if not isinstance(rule, dict) or "notify" in rule:
            return rule
        severity = rule.get("severity", ["ERROR"])
        listed = [severity] if isinstance(severity, str) else severity if isinstance(severity, list) else []
        route = "error" if any(str(s).strip().upper() == "ERROR" for s in listed) else "warning"
        if isinstance(routes, list):
            routed = self._routed(routes, KnownLabels(AlertLabels(str(rule.get("name", "")), route)), defaults)
            if routed is not None:
                notify, picked, fallthrough = routed
                self.watch_inherited[index] = ("routes", "list")
                self.watch_sources[index] = [("routes", i) for i in picked]
                self.watch_sources[index] += [("defaults", "notify")] if fallthrough else []
                return {**rule, "notify": notify}
        elif route in routes:
            self.watch_inherited[index] = ("routes", route)
            return {**rule, "notify": routes[route]}
        if "notify" in defaults:
            self.watch_inherited[index] = ("defaults", "notify")
            return {**rule, "notify": defaults["notify"]}
        return rule

    @staticmethod
    def _routed(
        routes: list[Route | None], known: KnownLabels, defaults: dict[str, Any]
    ) -> tuple[list[Any], list[int], bool] | None:
        """The ``notify`` the routes that may match ``known`` give, their positions, and whether
        ``defaults.notify`` was added (the walk may end without a match); None when no route may match."""
        picked, may_fall_through = walk(routes, known)
        if not picked:
            return None
        fallthrough = may_fall_through and "notify" in defaults
        return routed_notify(routes, picked, defaults.get("notify") if fallthrough else None), picked, fallthrough
