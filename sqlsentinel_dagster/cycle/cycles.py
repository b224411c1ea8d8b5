"""What one evaluation of one alert did (:class:`AlertCycle`), and the message its notifications carry."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..config import AlertConfig, LoadedConfig
from ..errors import StateDatabaseError
from ..notifiers import DeliveryReport, channel_id
from ..redact import redact_text
from ..state.channel_holds import ChannelTimes
from ..state.decision import Decision
from ..state.model import Outcome, StateSettings
from ..state.silences import AlertLabels
from ..state.store import StateStore
from .delivery import (
    CycleSettings,
    Lineage,
    Logger,
    deliver_to_groups,
    grouped_channels,
    tell_fallback_lost,
    what_next,
)
from .results import AlertResult

if TYPE_CHECKING:
    from ..state.instances import InstancesRecorded

__all__ = [
    "MAX_REPORTS",
    "STATE_ERRORS",
    "AlertCycle",
    "alert_labels",
    "alert_payload",
    "cut_result",
    "deliver_groups",
    "json_safe",
    "settings_of",
    "state_failure",
]


MAX_REPORTS = 50
"""The most notifications a run's log, metadata and ``sqlsentinel run`` describe one by one; past it they are
counted by channel, event, outcome and part (an instance alert may notify thousands at once)."""


@dataclass(frozen=True)
class AlertCycle:
    """What one evaluation of one alert did: its outcome, the decision, and each notification's fate."""

    alert: AlertConfig
    outcome: Outcome
    result: AlertResult | None = None
    decision: Decision | None = None
    reports: list[DeliveryReport] = field(default_factory=list)
    query_error: str | None = None
    """The query failed or broke the result contract (the outcome is ERROR)."""
    state_error: str | None = None
    """The outcome could not be recorded, so nothing was notified; worth retrying the run."""
    dry_run: bool = False
    instances: InstancesRecorded | None = None
    """An instance alert's instances as this evaluation decided them (``outcome`` is then the worst of them)."""

    @property
    def undelivered(self) -> list[DeliveryReport]:
        """Notifications this cycle tried and did not deliver (not those another run is sending)."""
        return [r for r in self.reports if r.outcome not in ("delivered", "in_flight")]

    @property
    def failure(self) -> str | None:
        """Why the run evaluating this alert must fail, or None."""
        if self.state_error:
            return self.state_error
        if self.query_error:
            return self.query_error
        if self.undelivered:
            shown = self.undelivered[:MAX_REPORTS]
            lines = "; ".join(f"{r.event} via {r.channel}: {r.error} ({what_next(r)})" for r in shown)
            lines += f"; and {len(self.undelivered) - len(shown):,} more" if len(self.undelivered) > len(shown) else ""
            return f"alert '{self.alert.name}': {len(self.undelivered)} notification(s) not delivered: {lines}"
        return None

    def report_data(self) -> list[dict[str, Any]]:
        """Each notification's fate as data or, past :data:`MAX_REPORTS` of them, their counts by channel, event,
        outcome and part (with the first error of each)."""
        if len(self.reports) <= MAX_REPORTS:
            return [r.as_dict() for r in self.reports]
        counted: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for report in self.reports:
            key = (report.channel, report.event, report.outcome, report.part)
            line = counted.setdefault(key, {"channel": key[0], "event": key[1], "outcome": key[2], "count": 0})
            line["count"] += 1
            if report.part:
                line["part"] = report.part
            if report.error and "error" not in line:
                line["error"] = report.error
        return list(counted.values())

    def shown_values(self) -> dict[str, Any]:
        """``actual_value``, ``threshold`` and ``context`` as JSON values (for metadata and logs)."""
        values: dict[str, Any] = json_safe(
            {
                "actual_value": self.outcome.actual_value,
                "threshold": self.outcome.threshold,
                "context": self.outcome.context,
            }
        )
        return values

    def values_text(self) -> str:
        """``value 7.5, threshold 5``: only what the query returned (empty for neither)."""
        values = self.shown_values()
        shown = (f"{word} {values[key]!r}" for key, word in _SHOWN if values[key] is not None)
        return ", ".join(shown)

    @property
    def several_rows(self) -> str | None:
        """Why some rows did not count: a query (not a failed-rows alert) returned more than one and the first
        was used, or an instance alert's query returned more than its ``max`` rows."""
        if self.result is None or not self.result.more_rows or self.alert.rows is not None:
            return None
        if self.alert.instances is not None:
            return cut_result(self.alert.instances.max)
        return "the query returned more than one row; the first was used (return one row, e.g. with LIMIT 1)"

    def summary(self) -> str:
        """One line: the alert, its status and values, and the decision."""
        prefix = "dry run: " if self.dry_run else ""
        shown = f" ({self.values_text()})" if self.values_text() else ""
        reason = self.decision.reason if self.decision else "not recorded"
        return f"{prefix}alert '{self.alert.name}' is {self.outcome.status}{shown}; decision: {reason}"


_SHOWN = (("actual_value", "value"), ("threshold", "threshold"))


def json_safe(values: Any) -> Any:
    """Database values (Decimal, datetime, ...) as JSON values: numbers stay numbers, the rest become text."""
    return json.loads(json.dumps(values, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)))


def alert_payload(alert: AlertConfig, outcome: Outcome, run_id: str | None, run_url: str | None) -> dict[str, Any]:
    """The message of ``alert``'s notifications about ``outcome``, as JSON values."""
    payload: dict[str, Any] = json_safe(
        {
            "alert_name": alert.name,
            "instance": None,
            "labels": {},
            "status": outcome.status,
            "actual_value": outcome.actual_value,
            "threshold": outcome.threshold,
            "context": outcome.context,
            "error": outcome.error,
            "description": alert.description,
            "severity": alert.severity,
            "owners": list(alert.owners),
            "tags": dict(alert.tags),
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "run_id": run_id,
            "run_url": run_url,
        }
    )
    return payload


def deliver_groups(
    cycles: Sequence[AlertCycle], config: LoadedConfig, store: StateStore, settings: CycleSettings, logger: Logger
) -> list[AlertCycle]:
    """Deliver the notifications of ``cycles`` bound for ``group: true`` targets (:func:`.delivery.deliver_to_groups`).
    Returns the cycles with those deliveries added to their reports (the fallback hears about any given up)."""
    fallback = config.fallback_targets()
    members = {
        cycle.alert.name: grouped_channels(config.targets(cycle.alert), fallback)
        for cycle in cycles
        if cycle.decision is not None and not cycle.dry_run
    }
    added = deliver_to_groups(members, store, settings, logger)
    done = []
    for cycle in cycles:
        new = added.get(cycle.alert.name, [])
        _tell_fallback(cycle.alert, cycle.outcome, [r for r in new if r.given_up], config, settings, logger)
        done.append(replace(cycle, reports=[*cycle.reports, *new]) if new else cycle)
    return done


def _tell_fallback(
    alert: AlertConfig,
    outcome: Outcome,
    given_up: list[DeliveryReport],
    config: LoadedConfig,
    settings: CycleSettings,
    logger: Logger,
) -> None:
    """Tell the fallback receivers about notifications that will never be delivered."""
    if not given_up:
        return
    run_url = settings.channels.run_url(settings.run_id) if settings.run_id else None
    about = alert_payload(alert, outcome, settings.run_id, run_url)
    tell_fallback_lost(alert.name, about, given_up, config.fallback_targets(), settings, logger)


def alert_labels(alert: AlertConfig) -> AlertLabels:
    """What silences, routes and inhibition rules match ``alert`` on, as its runs record it."""
    return AlertLabels(alert.name, alert.severity, tuple(alert.owners), dict(alert.tags))


def settings_of(
    alert: AlertConfig, config: LoadedConfig | None = None, lineage: Lineage | None = None
) -> StateSettings:
    """The state-machine settings of ``alert`` (its time intervals from ``config``'s ``time_intervals:``; the alerts
    on its asset's upstream assets, from ``lineage``, when a rule inhibits along it)."""
    interval = dt.timedelta(seconds=alert.repeat_interval) if alert.repeat_interval else None
    least = dt.timedelta(seconds=alert.min_interval) if alert.min_interval else None
    if config is None:
        return StateSettings(interval, alert.for_, alert.recover_after, alert.error_after, least)
    upstream: dict[str, str] = {}
    if lineage is not None and alert.asset is not None and any(rule.upstream for rule in config.file.inhibit):
        above = lineage(alert.asset)
        upstream = {a.name: "/".join(a.asset) for a in config.alerts if a.asset is not None and a.asset in above}
    return StateSettings(
        interval,
        alert.for_,
        alert.recover_after,
        alert.error_after,
        least,
        mute=config.file.time_windows(alert.mute_time_intervals),
        active=config.file.time_windows(alert.active_time_intervals),
        inhibit=tuple(rule.compiled() for rule in config.file.inhibit),
        upstream=upstream,
        channel_times=_channel_times(alert, config) if config.has_channel_times(alert) else None,
    )


def _channel_times(alert: AlertConfig, config: LoadedConfig) -> Callable[[AlertLabels], Mapping[str, ChannelTimes]]:
    """By channel id, the time intervals holding what each of ``alert``'s targets is told for given labels."""
    targets = config.targets(alert)
    by_id: dict[int, tuple[object, dict[str, ChannelTimes]]] = {}

    def times(labels: AlertLabels) -> Mapping[str, ChannelTimes]:
        found = config.channel_times(alert, labels)  # cached by the routes that reach the targets
        if id(found) not in by_id:  # kept with its ids, so its id is not reused meanwhile
            by_id[id(found)] = (found, {channel_id(i, targets[i]): t for i, t in found.items()})
        return by_id[id(found)][1]

    return times


def cut_result(most: int) -> str:
    """Why an instance alert's result was cut: more rows than its ``instances.max``."""
    return (
        f"the result was cut: the query returned more than instances.max = {most:,} rows, and only the first "
        f"{most:,} were read; no instance is resolved as missing while the result is cut (raise instances.max, "
        "or return fewer rows)"
    )


STATE_ERRORS = (sa.exc.SQLAlchemyError, RuntimeError, StateDatabaseError)
"""What recording a cycle in the state database may raise: the cycle then notifies nothing and fails its run."""


def state_failure(alert: AlertConfig, outcome: Outcome, exc: BaseException) -> str:
    """Why ``alert``'s cycle recorded and notified nothing: the state database's error, secrets redacted."""
    cause = redact_text(str(getattr(exc, "orig", None) or exc).splitlines()[0])
    return (
        f"alert '{alert.name}' is {outcome.status} but the alert state could not be recorded "
        f"(nothing was notified): {cause}"
    )
