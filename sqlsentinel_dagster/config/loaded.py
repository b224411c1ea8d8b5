"""``LoadedConfig``: a validated alerts file, with what the factory, the CLI and the cycle ask of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigProblem
from ..state.silences import AlertLabels
from .models import AlertConfig, AlertsFile, DatabaseConfig
from .routes import RouteResolver
from .targets import NotifyTarget
from .watch import WatchRule

__all__ = ["LoadedConfig"]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated alerts file, with what the factory needs to turn it into definitions."""

    path: Path
    file: AlertsFile
    notes: list[ConfigProblem] = field(default_factory=list)
    """Things worth knowing that are not errors, e.g. names that were sanitized."""
    environment: dict[str, str | None] = field(default_factory=dict)
    """The variables substituted when loading (structural values only, never secrets), and their values."""
    problems: list[ConfigProblem] = field(default_factory=list)
    """Problems found when loaded with ``strict=False``; the alerts they concern are left out."""
    _resolvers: dict[str, tuple[AlertConfig, RouteResolver]] = field(default_factory=dict, repr=False, compare=False)
    """Per routed alert: the alert and its routes, precomputed on first use."""

    @property
    def alerts(self) -> list[AlertConfig]:
        """The alerts, in file order."""
        return self.file.alerts

    @property
    def alert_names(self) -> list[str]:
        """The alerts' names, in file order."""
        return [alert.name for alert in self.alerts]

    def alert(self, name: str) -> AlertConfig:
        """The alert called ``name`` (KeyError if there is none)."""
        found = next((alert for alert in self.alerts if alert.name == name), None)
        if found is None:
            raise KeyError(name)
        return found

    def database_name(self, alert: AlertConfig) -> str:
        """The name of the warehouse ``alert`` queries."""
        return alert.database or next(iter(self.file.all_databases()))

    def database(self, alert: AlertConfig) -> DatabaseConfig:
        """The warehouse ``alert`` queries."""
        return self.file.all_databases()[self.database_name(alert)]

    def targets(self, alert: AlertConfig) -> list[NotifyTarget]:
        """Where ``alert`` notifies: its notify entries with receiver names expanded."""
        return self.file.targets(alert.notify)

    def routed_positions(self, alert: AlertConfig, labels: AlertLabels) -> list[int] | None:
        """Which of ``self.targets(alert)`` to tell for a notification with ``labels`` (an instance's, say).

        None when the alert's ``notify`` did not come from a list of routes: every target applies. Otherwise the
        positions (in ``self.targets(alert)``, ascending) of the targets of the routes that match ``labels``,
        walked in order, the first match winning unless it has ``continue: true``; when none matches, the
        positions of ``defaults.notify``'s targets if the loader added them (see ``RoutedBy.fallthrough``), else
        none. Only the routes recorded in ``alert.routed_by`` are walked (the others cannot match the alert).
        """
        if alert.routed_by is None or not isinstance(self.file.routes, list):
            return None
        cached = self._resolvers.get(alert.name)
        if cached is None or cached[0] is not alert:
            defaults = self.file.defaults.notify
            resolver = RouteResolver.build(
                alert.notify, alert.routed_by, self.file.routes, self.file.receivers, defaults
            )
            cached = self._resolvers[alert.name] = (alert, resolver)
        return cached[1].positions(labels)

    def fallback_targets(self) -> list[NotifyTarget]:
        """Where problems with alerting itself are reported (the top-level ``fallback:``)."""
        return self.file.targets(self.file.fallback)

    @property
    def watch_rules(self) -> list[WatchRule]:
        """The ``watch:`` rules (asset checks to notify about), in file order."""
        return self.file.watch

    def watch_targets(self, rule: WatchRule) -> list[NotifyTarget]:
        """Where ``rule`` notifies: its notify entries (else from ``routes:``, else ``defaults.notify``) with
        receiver names expanded."""
        return self.file.targets(rule.notify)
