"""``load_config(path)``: read ``alerts.yaml``, substitute the environment, validate, report every problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .. import envsubst
from .._yaml import Located, Unreadable, load_located, read_text
from ..errors import ConfigError, ConfigProblem, SecretResolutionError
from .inheritance import Inheritance, RoutesAsRead
from .isolation import affected, without
from .loaded import LoadedConfig
from .messages import describe_error, display_location
from .models import AlertsFile
from .references import ReferenceChecks
from .routes import parse_routes

__all__ = ["load_config"]

# Values that may hold secrets keep their ${VAR} text until the run resolves them.
_DEFERRED_KEYS = frozenset(
    {
        "url",
        "notify",
        "fallback",
        "receivers",
        "webhook_url",
        "routing_key",
        "headers",
        "recipients",
        "subject",
        "body",
        "text",
        "bot_token",
        "password",
        "bearer_token",
    }
)


def load_config(
    path: str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
    *,
    text: str | None = None,
    strict: bool = True,
) -> LoadedConfig:
    """Load and validate an alerts file.

    ``strict`` (default): raise :class:`ConfigError` listing every problem found. ``strict=False``: never
    raise; the problems are in ``problems`` and the alerts they concern are left out (every alert when the file
    cannot be read or parsed). ``text``: the file's content when the caller has already read it.
    """
    source = Path(path)
    env = os.environ if environ is None else environ
    if text is None:
        try:
            text = read_text(source)  # at most _yaml.MAX_FILE_BYTES, UTF-8
        except (OSError, Unreadable) as exc:
            line, cause = (exc.line, str(exc)) if isinstance(exc, Unreadable) else (0, exc.strerror)
            problem = ConfigProblem(line, "", f"cannot read the file: {cause}", str(source))
            if strict:
                raise ConfigError(str(source), [problem]) from None
            return LoadedConfig(path=source.resolve(), file=AlertsFile(alerts=[]), problems=[problem])
    checker = _Checker(str(source), load_located(text))
    checker.run(env)
    if checker.problems and strict:
        raise ConfigError(str(source), checker.problems)
    model = checker.model if not checker.problems else checker.isolated()
    return LoadedConfig(
        path=source.resolve(),
        file=model or AlertsFile(alerts=[]),
        notes=checker.notes,
        environment=checker.environment,
        problems=checker.problems,
    )


class _Checker(ReferenceChecks, Inheritance):
    """Collects every problem of one file; each check adds to ``problems`` instead of raising (the checks across
    the file's parts are in :class:`.references.ReferenceChecks`, what alerts inherit in
    :class:`.inheritance.Inheritance`)."""

    def __init__(self, file: str, located: Located) -> None:
        self.file = file
        self.located = located
        self.problems: list[ConfigProblem] = []
        self.notes: list[ConfigProblem] = []
        self.model: AlertsFile | None = None
        self.inherited: dict[int, set[str]] = {}
        self.watch_inherited: dict[int, tuple[str, str]] = {}
        """Watch rules whose ``notify`` came from ``routes:`` or ``defaults:``, and from which entry."""
        self.watch_sources: dict[int, list[tuple[Any, ...]]] = {}
        self.unresolved: set[tuple[Any, ...]] = set()
        self.environment: dict[str, str | None] = {}
        self.paths: list[tuple[Any, ...]] = []
        """Where each problem is, as a path into the file (for isolating the alerts it concerns)."""
        self.data: dict[str, Any] | None = None
        """The file after substitution and inheritance, once parsed."""
        for line, path, message in located.problems:
            self._add(path, message, line=line)

    def run(self, env: Mapping[str, str]) -> None:
        data = self.located.data
        if self.problems:
            return
        if not isinstance(data, dict):
            self._add((), "the file must be a mapping with an 'alerts:' list (and usually 'database:')")
            return
        data = self._substitute(data, (), env)
        if "database" not in data and not data.get("databases") and env.get("DATABASE_URL"):
            data["database"] = {"url": "${DATABASE_URL}"}  # SQL Sentinel's default; resolved inside each run
        if "watch" in data and "alerts" not in data:
            data["alerts"] = []  # a file of watch rules only needs no alerts
        alerts = data.get("alerts")
        defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
        written = data.get("routes")
        routes: RoutesAsRead = parse_routes(written) if isinstance(written, list) else {}
        if isinstance(written, dict):
            routes = written
        if isinstance(alerts, list):
            databases = self._databases(data, quiet=True)
            data["alerts"] = [self._inherit(i, a, defaults, routes, databases) for i, a in enumerate(alerts)]
        if isinstance(data.get("watch"), list):
            data["watch"] = [self._inherit_watch(i, r, defaults, routes) for i, r in enumerate(data["watch"])]
        self.data = data
        try:
            self.model = AlertsFile.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                self._add_validation_error(error)
        self._check_cross_references(data)

    def isolated(self) -> AlertsFile | None:
        """The file without what the problems concern (see ``isolation``), or None if nothing can be kept."""
        if self.data is None:
            return None
        in_watch = [path for path in self.paths if path[:1] == ("watch",)]
        drop, remove = affected([path for path in self.paths if path[:1] != ("watch",)], self.data, self.inherited)
        drop_watch = {path[1] if len(path) > 1 and isinstance(path[1], int) else -1 for path in in_watch}
        for _ in range(3):  # a reduced file that still fails names more alerts (or watch rules) to leave out
            reduced, kept = without(self.data, drop, remove)
            reduced, kept_watch = self._without_watch(reduced, drop_watch, remove)
            try:
                return AlertsFile.model_validate(reduced)
            except ValidationError as exc:
                locations = [e["loc"] for e in exc.errors()]
                more = {kept[int(loc[1])] for loc in locations if loc[:1] == ("alerts",) and len(loc) > 1}
                more_watch = {kept_watch[int(loc[1])] for loc in locations if loc[:1] == ("watch",) and len(loc) > 1}
                if not more and not more_watch:
                    return None
                drop |= more
                drop_watch |= more_watch
        return None

    def _without_watch(
        self, reduced: dict[str, Any], drop: set[int], remove: set[tuple[Any, ...]]
    ) -> tuple[dict[str, Any], list[int]]:
        """``reduced`` without the watch rules that have a problem (all of them for -1 in ``drop``), or that use
        a receiver, route or ``defaults.notify`` left out; and the original index of each kept rule."""
        rules = self.data.get("watch") if self.data is not None else None
        if not isinstance(rules, list):  # absent, or not a list (a problem already): no rules
            return ({**reduced, "watch": []} if "watch" in reduced else reduced), []
        kept = [
            i
            for i, rule in enumerate(rules)
            if -1 not in drop and i not in drop and not self._watch_uses(i, rule, remove)
        ]
        return {**reduced, "watch": [rules[i] for i in kept]}, kept

    def _watch_uses(self, index: int, rule: Any, remove: set[tuple[Any, ...]]) -> bool:
        if index in self.watch_inherited and self.watch_inherited[index] in remove:
            return True
        if any(source in remove for source in self.watch_sources.get(index, [])):
            return True
        notify = rule.get("notify") if isinstance(rule, dict) else None
        names = [entry for entry in notify if isinstance(entry, str)] if isinstance(notify, list) else []
        return any(("receivers", name) in remove for name in names)

    def _add(self, path: tuple[Any, ...], message: str, line: int | None = None, note: bool = False) -> None:
        where = display_location(path, self.located.data)
        if line is None:
            line = self.located.line_of(_in_config_block(path, self.located.lines) or path)
        problem = ConfigProblem(line, where, message, self.file)
        (self.notes if note else self.problems).append(problem)
        if not note:
            self.paths.append(path)

    def _add_validation_error(self, error: Any) -> None:
        path, message = describe_error(error)
        if len(path) > 2 and path[0] == "alerts" and path[2] in self.inherited.get(path[1], set()):
            return  # reported once, at defaults.<key>
        if len(path) > 2 and path[0] == "watch" and path[2] == "notify" and path[1] in self.watch_inherited:
            return  # reported once, at defaults.notify (the rule is left out with it)
        if path in self.unresolved:
            return  # the missing variable is the problem, already reported
        self._add(path, message)

    def _substitute(self, value: Any, path: tuple[Any, ...], env: Mapping[str, str]) -> Any:
        if isinstance(value, dict):
            return {k: self._substitute(v, (*path, k), env) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(v, (*path, i), env) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        if any(isinstance(part, str) and part in _DEFERRED_KEYS for part in path):
            return value  # checked for syntax by the model, resolved inside the run
        problem = envsubst.find_syntax_error(value)
        if problem:
            self._add(path, problem)
            self.unresolved.add(path)
            return value
        self.environment.update({name: env.get(name) for name in envsubst.references(value)})
        try:
            return envsubst.resolve(value, "", env)
        except SecretResolutionError as exc:
            self._add(path, f"environment variable '{exc.variable}' is not set (write ${{{exc.variable}:-default}})")
            self.unresolved.add(path)
            return value


def _in_config_block(path: tuple[Any, ...], lines: Mapping[tuple[Any, ...], int]) -> tuple[Any, ...] | None:
    """Where a notify target's setting is written when the model's path to it is not in the file: under SQL
    Sentinel's nested ``config:``, and/or in a receiver written as one mapping instead of a list
    (``receivers: {team: {channel: log}}``, which the model reads as ``team[0]``)."""
    if path in lines:
        return None
    if path[:1] in (("fallback",), ("receivers",)):
        at = 3 if path[0] == "receivers" else 2  # past the entry's index
    elif "notify" in path:
        at = path.index("notify") + 2
    else:
        return None
    head, tail = path[:at], path[at:]
    candidates = [(*head, "config", *tail)]
    if path[0] == "receivers" and head[-1] == 0:
        candidates += [(*head[:-1], "config", *tail), (*head[:-1], *tail)]
    return next((candidate for candidate in candidates if candidate in lines), None)
