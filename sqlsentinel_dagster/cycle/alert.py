"""One alert's cycle, without Dagster: evaluate the query, decide and record, deliver, tell the fallback.

Every way of running alerts (a job per alert, a batch of asset checks, the CLI) calls :func:`run_cycle` and
only differs in how it shows the returned :class:`AlertCycle`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..config import AlertConfig, LoadedConfig
from ..errors import SentinelError, StateDatabaseError
from ..notifiers import DeliveryReport
from ..redact import redact_text
from ..state.decision import Decision
from ..state.model import Outcome, StateSettings
from ..state.silences import AlertLabels
from ..state.store import StateStore
from .delivery import (
    CycleSettings,
    Logger,
    _what_next,
    deliver_to,
    deliver_to_groups,
    grouped_channels,
    ledger_channels,
    tell_fallback_lost,
)
from .learned import baseline_payload, judged
from .results import AlertResult

__all__ = ["AlertCycle", "deliver_groups", "json_safe", "run_cycle", "settings_of"]


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
            lines = "; ".join(f"{r.event} via {r.channel}: {r.error} ({_what_next(r)})" for r in self.undelivered)
            return f"alert '{self.alert.name}': {len(self.undelivered)} notification(s) not delivered: {lines}"
        return None

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
        """Why only the first row counted, when a query (not a failed-rows alert) returned more than one."""
        if self.result is None or not self.result.more_rows or self.alert.rows is not None:
            return None
        return "the query returned more than one row; the first was used (return one row, e.g. with LIMIT 1)"

    def summary(self) -> str:
        """One line: the alert, its status and values, and the decision."""
        prefix = "dry run: " if self.dry_run else ""
        shown = f" ({self.values_text()})" if self.values_text() else ""
        reason = self.decision.reason if self.decision else "not recorded"
        return f"{prefix}alert '{self.alert.name}' is {self.outcome.status}{shown}; decision: {reason}"


_SHOWN = (("actual_value", "value"), ("threshold", "threshold"))


def run_cycle(
    alert: AlertConfig,
    config: LoadedConfig,
    evaluate: Callable[[AlertConfig], AlertResult],
    store: Callable[[], StateStore],
    settings: CycleSettings,
    logger: Logger,
) -> AlertCycle:
    """Evaluate ``alert``, record the decision, deliver what is pending; never raises for the alert's own errors."""
    query_error: str | None = None
    result: AlertResult | None = None
    try:
        result = evaluate(alert) if alert.baseline is None else judged(alert, evaluate(alert), store)
        outcome = Outcome(
            result.status, result.actual_value, result.threshold, result.context, None, result.duration_ms
        )
    except SentinelError as exc:
        query_error = str(exc)
        outcome = Outcome("ERROR", error=str(exc))
    targets, fallback = config.targets(alert), config.fallback_targets()
    channels = ledger_channels(targets, fallback)
    labels = AlertLabels(alert.name, alert.severity, tuple(alert.owners), dict(alert.tags))
    run_url = settings.channels.run_url(settings.run_id) if settings.run_id else None
    payload = {
        **_payload(alert, outcome, settings.run_id, run_url),
        **_rows_payload(alert, result),
        **baseline_payload(result),
    }
    cycle = AlertCycle(alert, outcome, result, query_error=query_error, dry_run=settings.dry_run)
    try:
        state = store()
        decision = state.record(
            labels, outcome, settings_of(alert), channels, payload, settings.run_id, dry_run=settings.dry_run
        )
    except (sa.exc.SQLAlchemyError, RuntimeError, StateDatabaseError) as exc:
        cause = redact_text(str(getattr(exc, "orig", None) or exc).splitlines()[0])
        state_error = (
            f"alert '{alert.name}' is {outcome.status} but the alert state could not be recorded "
            f"(nothing was notified): {cause}"
        )
        return replace(cycle, state_error=state_error)
    cycle = replace(cycle, decision=decision)
    if settings.dry_run:
        return cycle
    skip = [c for c, _ in grouped_channels(config.targets(alert), config.fallback_targets())]
    about = _payload(alert, outcome, settings.run_id, run_url)
    reports = deliver_to(state, alert.name, targets, fallback, about, settings, logger, skip=skip)
    cycle = replace(cycle, reports=reports)
    return cycle if settings.group_later else deliver_groups([cycle], config, state, settings, logger)[0]


def settings_of(alert: AlertConfig) -> StateSettings:
    """The state-machine settings of ``alert``."""
    interval = dt.timedelta(seconds=alert.repeat_interval) if alert.repeat_interval else None
    return StateSettings(interval, alert.for_, alert.recover_after, alert.error_after)


def json_safe(values: Any) -> Any:
    """Database values (Decimal, datetime, ...) as JSON values: numbers stay numbers, the rest become text."""
    return json.loads(json.dumps(values, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)))


def _rows_payload(alert: AlertConfig, result: AlertResult | None) -> dict[str, Any]:
    """A failed-rows alert's rows for its messages: the count (``row_count_more``: at least that many), the
    columns, the rows kept, how many of them to show, and whether to attach them all as CSV."""
    if alert.rows is None or result is None:
        return {}
    rows: dict[str, Any] = json_safe(
        {
            "row_count": result.actual_value,
            "row_count_more": result.more_rows,
            "columns": list(result.columns),
            "rows": list(result.rows),
            "rows_shown": alert.rows.sample,
            "rows_attach": alert.rows.attach,
        }
    )
    return rows


def _payload(alert: AlertConfig, outcome: Outcome, run_id: str | None, run_url: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = json_safe(
        {
            "alert_name": alert.name,
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
    about = _payload(alert, outcome, settings.run_id, run_url)
    tell_fallback_lost(alert.name, about, given_up, config.fallback_targets(), settings, logger)
