"""The checks across an alerts file's parts, which its model cannot make alone.

Receiver names exist, and ``recipients_from`` is used by alerts with instances only; warehouse drivers are
installed (SQLite files that cannot be opened are noted); alert and watch rule names are unique and fit Dagster;
each alert has a trigger and a database it can name, and its query only reads. :class:`ReferenceChecks` is
inherited by the loader's checker, which supplies ``_add`` and what it read of the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._yaml import Located
from ..naming import safe_name
from ..sql.drivers import driver_problem, missing_sqlite_file, sqlite_file
from ..sql.readonly import dialect_for_url, read_only_problem
from .recipients import recipients_from_problems

__all__ = ["ReferenceChecks"]


class ReferenceChecks:
    """The cross-reference, name, database, trigger and watch rule checks of one file; each adds to the problems
    through ``_add`` instead of raising."""

    file: str
    """The alerts file, as given: relative SQLite paths are read from its folder."""
    located: Located
    inherited: dict[int, set[str]]
    """The keys each alert took from ``routes:``, ``defaults:`` or its database (``timeout``), by alert index."""
    watch_inherited: dict[int, tuple[str, str]]
    """Watch rules whose ``notify`` came from ``routes:`` or ``defaults:``, and from which entry."""

    def _add(self, path: tuple[Any, ...], message: str, line: int | None = None, note: bool = False) -> None:
        """Record a problem (or, with ``note``, a note) at ``path``: defined by the checker that inherits this."""
        raise NotImplementedError

    def _check_receiver_names(self, data: dict[str, Any]) -> None:
        raw_receivers = data.get("receivers")
        receivers: dict[str, Any] = raw_receivers if isinstance(raw_receivers, dict) else {}
        lists: list[tuple[tuple[Any, ...], Any]] = [(("fallback",), data.get("fallback"))]
        defaults = data.get("defaults")
        if isinstance(defaults, dict):
            lists.append((("defaults", "notify"), defaults.get("notify")))
        routes = data.get("routes")
        if isinstance(routes, dict):
            lists.extend(((("routes", severity), names) for severity, names in routes.items()))
        elif isinstance(routes, list):
            lists.extend(
                ((("routes", i, "receivers"), r.get("receivers")) for i, r in enumerate(routes) if isinstance(r, dict))
            )
        alerts = data.get("alerts")
        for index, alert in enumerate(alerts if isinstance(alerts, list) else []):
            if isinstance(alert, dict) and "notify" not in self.inherited.get(index, set()):
                lists.append((("alerts", index, "notify"), alert.get("notify")))
        rules = data.get("watch")
        for index, rule in enumerate(rules if isinstance(rules, list) else []):
            if isinstance(rule, dict) and index not in self.watch_inherited:
                lists.append((("watch", index, "notify"), rule.get("notify")))
        for path, entries in lists:
            for position, entry in enumerate(entries if isinstance(entries, list) else []):
                if isinstance(entry, str) and entry not in receivers:
                    defined = ", ".join(sorted(receivers)) or "(none: declare them under 'receivers:')"
                    hint = difflib.get_close_matches(entry, list(receivers), n=1)
                    suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                    self._add((*path, position), f"unknown receiver '{entry}'; defined: {defined}{suggestion}")

    def _check_time_interval_names(self, data: dict[str, Any]) -> None:
        """Names in ``mute_time_intervals`` and ``active_time_intervals`` are defined under ``time_intervals:``,
        and each defined name once."""
        intervals = data.get("time_intervals")
        defined: list[str] = []
        for index, entry in enumerate(intervals if isinstance(intervals, list) else []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name in defined:
                self._add(("time_intervals", index, "name"), f"time interval '{name}' is defined twice")
            elif isinstance(name, str):
                defined.append(name)
        alerts = data.get("alerts")
        places: list[tuple[tuple[Any, ...], Any]] = []
        defaults = data.get("defaults")
        for key in ("mute_time_intervals", "active_time_intervals"):
            if isinstance(defaults, dict):
                places.append((("defaults", key), defaults.get(key)))
            for index, alert in enumerate(alerts if isinstance(alerts, list) else []):
                if isinstance(alert, dict) and key not in self.inherited.get(index, set()):
                    places.append((("alerts", index, key), alert.get(key)))
        places += self._target_interval_places(data)
        for path, names in places:
            for position, name in enumerate(names if isinstance(names, list) else []):
                if isinstance(name, str) and name not in defined:
                    listed = ", ".join(defined) or "(none: declare them under 'time_intervals:')"
                    hint = difflib.get_close_matches(name, defined, n=1)
                    suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                    self._add((*path, position), f"unknown time interval '{name}'; defined: {listed}{suggestion}")

    def _target_interval_places(self, data: dict[str, Any]) -> list[tuple[tuple[Any, ...], Any]]:
        """Where receivers, targets written in a ``notify`` and routes name time intervals, with their paths."""
        targets: list[tuple[tuple[Any, ...], Any]] = []
        receivers = data.get("receivers")
        for name, entry in receivers.items() if isinstance(receivers, dict) else []:
            many = isinstance(entry, list)
            targets += [
                (("receivers", name, i) if many else ("receivers", name), t)
                for i, t in enumerate(entry if many else [entry])
            ]
        defaults = data.get("defaults")
        lists: list[tuple[tuple[Any, ...], Any]] = [(("fallback",), data.get("fallback"))]
        lists += [(("defaults", "notify"), defaults.get("notify"))] if isinstance(defaults, dict) else []
        for kind, inherited in (("alerts", self.inherited), ("watch", self.watch_inherited)):
            items = data.get(kind)
            for index, item in enumerate(items if isinstance(items, list) else []):
                own = index not in inherited if kind == "watch" else "notify" not in inherited.get(index, set())
                if isinstance(item, dict) and own:
                    lists.append(((kind, index, "notify"), item.get("notify")))
        for path, entries in lists:
            targets += [((*path, i), t) for i, t in enumerate(entries if isinstance(entries, list) else [])]
        routes = data.get("routes")
        targets += [(("routes", i), r) for i, r in enumerate(routes if isinstance(routes, list) else [])]
        keys = ("mute_time_intervals", "active_time_intervals")
        return [((*path, k), item[k]) for path, item in targets if isinstance(item, dict) for k in keys if k in item]

    def _check_cross_references(self, data: dict[str, Any]) -> None:
        self._check_receiver_names(data)
        self._check_time_interval_names(data)
        for path, message in recipients_from_problems(data, self.inherited, self.watch_inherited):
            self._add(path, message)
        self._check_drivers(data)
        self._check_watch_names(data)
        databases = self._databases(data)
        alerts = data.get("alerts")
        if not isinstance(alerts, list):
            return
        seen_names: dict[str, int] = {}
        seen_safe: dict[str, str] = {}
        for index, alert in enumerate(alerts):
            if not isinstance(alert, dict):
                continue
            name = alert.get("name")
            if isinstance(name, str) and name:
                self._check_name(index, name, seen_names, seen_safe)
            self._check_triggers(index, alert)
            dialect = self._check_database(index, alert, databases)
            query = alert.get("query")
            if isinstance(query, str) and query.strip() and dialect is not None:
                problem = read_only_problem(query, dialect or None)
                if problem:
                    self._add(("alerts", index, "query"), problem)

    def _check_watch_names(self, data: dict[str, Any]) -> None:
        """Watch rule names are unique among rules and alerts, and no alert is named like a watched check
        (``<rule>:...``), so every name in the alert state means one thing."""
        rules, alerts = data.get("watch"), data.get("alerts")
        alert_names: dict[str, int] = {}
        for index, alert in enumerate(alerts if isinstance(alerts, list) else []):
            if isinstance(alert, dict) and isinstance(alert.get("name"), str):
                alert_names.setdefault(alert["name"], index)
        seen: dict[str, int] = {}
        for index, rule in enumerate(rules if isinstance(rules, list) else []):
            name = rule.get("name") if isinstance(rule, dict) else None
            if not isinstance(name, str) or not name:
                continue
            path = ("watch", index, "name")
            if name in seen:
                first = self.located.line_of(("watch", seen[name], "name"))
                message = f"duplicate watch rule name '{name}' (first used on line {first}); names must be unique"
                self._add(path, message)
                continue
            seen[name] = index
            if name in alert_names:
                line = self.located.line_of(("alerts", alert_names[name], "name"))
                self._add(path, f"'{name}' is also the name of an alert (line {line}); rename the rule or the alert")
                continue
            clash = next((a for a in alert_names if a.startswith(f"{name}:")), None)
            if clash is not None:
                line = self.located.line_of(("alerts", alert_names[clash], "name"))
                self._add(
                    path,
                    f"alert '{clash}' (line {line}) is named like a check this rule watches "
                    f"('{name}:<asset>:<check>'); rename the rule or the alert",
                )

    def _check_drivers(self, data: dict[str, Any]) -> None:
        """Every warehouse URL parses and its driver is installed (else every run of its alerts would fail)."""
        for path, url in _database_urls(data):
            problem = driver_problem(url)
            if problem:
                self._add(path, problem)
            else:
                self._check_sqlite_file(path, url)

    def _check_sqlite_file(self, path: tuple[Any, ...], url: str) -> None:
        """A SQLite file that cannot be opened, because neither it nor its folder exists (SQLite would create the
        file in an existing folder), or because it is a folder, is a note: the alerts are kept. A deployment may
        create it later (the demo creates its warehouse when its definitions load), and whether a file exists
        now is no property of the alerts file; their runs fail until it exists, naming the path tried.
        """
        if "${" in url:
            return  # resolved inside the run
        folder = Path(self.file).resolve().parent
        problem = missing_sqlite_file(url, folder)
        file = sqlite_file(url, folder) if problem else None  # the URL parses: missing_sqlite_file parsed it
        if file is None:
            return
        if file.is_dir():
            self._add(path, f"{problem}; runs of its alerts fail until it is a file", note=True)
        elif not file.parent.is_dir():
            because = "its folder does not exist either, so SQLite cannot create it"
            self._add(path, f"{problem}; runs of its alerts fail until it exists ({because})", note=True)

    def _check_triggers(self, index: int, alert: dict[str, Any]) -> None:
        """An alert needs a schedule, unless it runs after its asset's materializations."""
        if alert.get("schedule") is not None:
            return
        if alert.get("on_materialization") is not True:
            self._add(
                ("alerts", index, "schedule"),
                "required key 'schedule' is missing; give a cron schedule, or set 'asset:' and "
                "'on_materialization: true' to evaluate after each materialization",
            )
        elif alert.get("asset") is None:
            self._add(("alerts", index, "on_materialization"), "'on_materialization: true' needs 'asset:'")

    def _databases(self, data: dict[str, Any], quiet: bool = False) -> dict[str, dict[str, Any]]:
        named = data.get("databases") if isinstance(data.get("databases"), dict) else {}
        single = data.get("database")
        merged: dict[str, Any] = {k: v for k, v in (named or {}).items() if isinstance(v, dict)}
        if isinstance(single, dict):
            merged.setdefault("default", single)
        if not merged and isinstance(data.get("alerts"), list) and data["alerts"] and not quiet:
            self._add(
                (), "no warehouse configured; add 'database: {url: ...}', a 'databases:' mapping, or set DATABASE_URL"
            )
        return merged

    def _check_name(self, index: int, name: str, seen: dict[str, int], seen_safe: dict[str, str]) -> None:
        path = ("alerts", index, "name")
        if name in seen:
            first = self.located.line_of(("alerts", seen[name], "name"))
            self._add(path, f"duplicate alert name '{name}' (first used on line {first}); names must be unique")
            return
        seen[name] = index
        safe = safe_name(name)
        if not safe.strip("_"):
            self._add(path, f"alert name '{name}' has no letters or digits; Dagster names need some")
            return
        if safe in seen_safe:
            self._add(
                path,
                f"alert name '{name}' becomes Dagster name '{safe}', the same as alert '{seen_safe[safe]}'; "
                "rename one of them",
            )
            return
        seen_safe[safe] = name
        if safe != name:
            self._add(
                path,
                f"alert name '{name}' contains characters Dagster does not allow; its job and schedule use '{safe}'",
                note=True,
            )

    def _check_database(self, index: int, alert: dict[str, Any], databases: dict[str, dict[str, Any]]) -> str | None:
        """Check the alert's database reference; return the sqlglot dialect ('' for generic) or None if unknown."""
        wanted = alert.get("database")
        if wanted is None:
            if len(databases) > 1:
                names = ", ".join(sorted(databases))
                self._add(
                    ("alerts", index),
                    f"several databases are configured ({names}); set 'database:' on this alert or in defaults",
                )
                return None
            target = next(iter(databases.values()), None)
        elif not isinstance(wanted, str) or wanted not in databases:
            names = ", ".join(sorted(databases)) or "(none)"
            self._add(("alerts", index, "database"), f"unknown database {wanted!r}; configured: {names}")
            return None
        else:
            target = databases[wanted]
        if target is None:
            return None
        dialect = target.get("dialect") or dialect_for_url(str(target.get("url", "")))
        return dialect or ""


def _database_urls(data: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Each warehouse URL written in ``data`` (``database:`` and ``databases:``) with the path to it."""
    single = data.get("database")
    named = data.get("databases")
    written: list[tuple[tuple[Any, ...], Any]] = [(("database", "url"), single)]
    written += [(("databases", name, "url"), db) for name, db in (named.items() if isinstance(named, dict) else [])]
    for path, db in written:
        url = db.get("url") if isinstance(db, dict) else None
        if isinstance(url, str):
            yield path, url
