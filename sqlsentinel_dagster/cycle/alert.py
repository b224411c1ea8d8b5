"""One alert's cycle, without Dagster: evaluate the query, decide and record, deliver, tell the fallback.

Every way of running alerts (a job per alert, a batch of asset checks, the CLI) calls :func:`run_cycle` and
only differs in how it shows the returned :class:`AlertCycle`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..config import AlertConfig, LoadedConfig
from ..errors import SentinelError
from ..state.decision import Decision
from ..state.model import AlertState, Outcome
from ..state.store import StateStore
from .cycles import (
    STATE_ERRORS,
    AlertCycle,
    alert_labels,
    alert_payload,
    deliver_groups,
    json_safe,
    settings_of,
    state_failure,
)
from .delivery import (
    CycleSettings,
    Logger,
    deliver_to,
    grouped_channels,
    ledger_channels,
)
from .instance_cycle import deliver_instances, run_instances
from .learned import baseline_payload, judged
from .results import AlertResult

__all__ = ["AlertCycle", "deliver_groups", "deliver_recorded", "json_safe", "run_cycle", "settings_of"]


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
        result = evaluate(alert)
        if alert.baseline is not None and result.no_data is None:  # no rows: no value to judge, no_data decides
            result = judged(alert, result, store)
        outcome = Outcome(
            result.status,
            result.actual_value,
            result.threshold,
            result.context,
            None,
            result.duration_ms,
            keep=result.no_data == "keep",
        )
    except SentinelError as exc:
        query_error = str(exc)
        outcome = Outcome("ERROR", error=str(exc))
    if alert.instances is not None:
        return run_instances(alert, config, result, outcome, store, settings, logger)
    targets, fallback = config.targets(alert), config.fallback_targets()
    channels = ledger_channels(targets, fallback)
    labels = alert_labels(alert)
    run_url = settings.channels.run_url(settings.run_id) if settings.run_id else None
    payload = {
        **alert_payload(alert, outcome, settings.run_id, run_url),
        **_rows_payload(alert, result),
        **baseline_payload(result),
    }
    cycle = AlertCycle(alert, outcome, result, query_error=query_error, dry_run=settings.dry_run)
    try:
        state = store()
        decision = state.record(
            labels,
            outcome,
            settings_of(alert, config, settings.lineage),
            channels,
            payload,
            settings.run_id,
            dry_run=settings.dry_run,
            tick=None if settings.dry_run else settings.tick,
        )
    except STATE_ERRORS as exc:
        return replace(cycle, state_error=state_failure(alert, outcome, exc))
    if outcome.keep:  # the status the state gave the empty result (no_data: keep)
        outcome = replace(outcome, status=decision.state.last_status or "OK", keep=False)
    cycle = replace(cycle, outcome=outcome, decision=decision)
    if settings.dry_run:
        return cycle
    skip = [c for c, _ in grouped_channels(config.targets(alert), config.fallback_targets())]
    about = alert_payload(alert, outcome, settings.run_id, run_url)
    reports = deliver_to(state, alert.name, targets, fallback, about, settings, logger, skip=skip)
    cycle = replace(cycle, reports=reports)
    return cycle if settings.group_later else deliver_groups([cycle], config, state, settings, logger)[0]


def deliver_recorded(
    alert: AlertConfig,
    config: LoadedConfig,
    store: Callable[[], StateStore],
    settings: CycleSettings,
    logger: Logger,
) -> AlertCycle:
    """``alert``, already evaluated for the run's schedule tick by another run of it (a retried shard): not
    evaluated again, but what that evaluation left undelivered (its run died while sending) is delivered now,
    claims of ended runs taken over, so nothing it owed is held until the alert's next tick."""
    reason = f"already evaluated for the tick of {settings.tick}: not evaluated again"
    outcome = Outcome("OK")  # not evaluated: shown nowhere (no check result, no history row)
    cycle = AlertCycle(alert, outcome, decision=Decision(AlertState(alert.name), "already_evaluated", reason))
    try:
        state = store()
        targets, fallback = config.targets(alert), config.fallback_targets()
        skip = [c for c, _ in grouped_channels(targets, fallback)]
        about = alert_payload(alert, outcome, settings.run_id, None)
        reports = deliver_to(state, alert.name, targets, fallback, about, settings, logger, skip=skip)
        if alert.instances is not None:
            reports += deliver_instances(state, alert, targets, fallback, about, settings, logger)
    except STATE_ERRORS as exc:
        return replace(cycle, state_error=state_failure(alert, outcome, exc))
    cycle = replace(cycle, reports=reports)
    return cycle if settings.group_later else deliver_groups([cycle], config, state, settings, logger)[0]


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
