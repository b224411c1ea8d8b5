"""``LoadedConfig``: a validated alerts file, with what the factory, the CLI and the cycle ask of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigProblem
from ..state.channel_holds import ChannelTimes
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
    _times: dict[tuple[str, Any], tuple[AlertConfig, dict[int, ChannelTimes]]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """Per alert and routes reaching its targets: the targets' time intervals (see :meth:`channel_times`)."""

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
        resolver = self._resolver(alert)
        return resolver.positions(labels) if resolver is not None else None

    def channel_times(self, alert: AlertConfig, labels: AlertLabels) -> dict[int, ChannelTimes]:
        """By position in ``self.targets(alert)``, the time intervals that hold what that target is told for
        ``labels``: its own (a receiver's or target's ``mute_time_intervals``/``active_time_intervals``) and
        those of the routes that reach it. Targets held by nothing are left out."""
        resolver = self._resolver(alert)
        reaching = (resolver.reaching(labels) if resolver is not None else None) or {}
        key = (alert.name, tuple((p, tuple(r)) for p, r in sorted(reaching.items())))
        cached = self._times.get(key)
        if cached is not None and cached[0] is alert:
            return cached[1]
        routes = self.file.routes if isinstance(self.file.routes, list) else []
        windows = self.file.time_windows
        found: dict[int, ChannelTimes] = {}
        for position, target in enumerate(self.targets(alert)):
            via = [routes[r] for r in reaching.get(position, ())]
            times = ChannelTimes(
                (windows(target.mute_time_intervals), windows(target.active_time_intervals)),
                tuple((windows(r.mute_time_intervals), windows(r.active_time_intervals)) for r in via),
            )
            if not any(r.mute_time_intervals or r.active_time_intervals for r in via):
                times = ChannelTimes(times.own)
            if times:
                found[position] = times
        self._times[key] = (alert, found)
        return found

    def has_channel_times(self, alert: AlertConfig) -> bool:
        """Whether a target of ``alert``, or a route, names time intervals (else :meth:`channel_times` is empty)."""
        routes = self.file.routes if isinstance(self.file.routes, list) else []
        named = [*self.targets(alert), *routes]
        return any(item.mute_time_intervals or item.active_time_intervals for item in named)

    def _resolver(self, alert: AlertConfig) -> RouteResolver | None:
        """The alert's routes, precomputed on first use; None when its ``notify`` did not come from them."""
        if alert.routed_by is None or not isinstance(self.file.routes, list):
            return None
        cached = self._resolvers.get(alert.name)
        if cached is None or cached[0] is not alert:
            defaults = self.file.defaults.notify
            resolver = RouteResolver.build(
                alert.notify, alert.routed_by, self.file.routes, self.file.receivers, defaults
            )
            cached = self._resolvers[alert.name] = (alert, resolver)
        return cached[1]

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
