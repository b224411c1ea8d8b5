"""A baseline alert's evaluation: the query's result judged against the values the alert has recorded.

No Dagster here. :func:`judged` reads the alert's recent evaluations from the state store, asks
:func:`.baselines.judge`, and returns the result with the combined status (ALERT when the query's own
``status`` or the baseline says so) and the band as its threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import sqlalchemy as sa

from ..baselines import MAX_SAMPLES, BaselineError, Sample, describe, expected_range, judge, lookback
from ..config import AlertConfig
from ..errors import StateDatabaseError
from ..redact import redact_text
from ..state.history import evaluations_between, values_of_many
from ..state.store import StateStore
from .instances import InstanceResult
from .results import AlertResult

__all__ = ["baseline_payload", "judged"]


def judged(alert: AlertConfig, result: AlertResult, store: Callable[[], StateStore]) -> AlertResult:
    """``result`` after ``alert``'s baseline: status ALERT if the query or the band says so, ``threshold`` the
    band, ``verdict`` set. Raises :class:`BaselineError` (naming the alert) when the value is not a number or
    the recorded values cannot be read."""
    spec = alert.baseline
    assert spec is not None
    if result.instances is not None:
        return _judged_instances(alert, result.instances, store)
    try:
        state = store()
        now = state.clock()
        rows, _ = evaluations_between(state, alert.name, now - lookback(spec), now, limit=MAX_SAMPLES)
    except (sa.exc.SQLAlchemyError, StateDatabaseError) as exc:
        cause = redact_text(str(getattr(exc, "orig", None) or exc).splitlines()[0])
        raise BaselineError(f"alert '{alert.name}': cannot read its recorded values: {cause}") from None
    samples = [Sample(row["evaluated_at"], row["actual_value"], row["status"] == "ALERT") for row in rows]
    try:
        verdict = judge(result.actual_value, samples, spec, now, alert.timezone)
    except BaselineError as exc:
        raise BaselineError(f"alert '{alert.name}': {exc}") from None
    status: Literal["ALERT", "OK"] = "ALERT" if "ALERT" in (result.status, verdict.status) else "OK"
    return replace(result, status=status, threshold=expected_range(verdict), verdict=verdict)


MAX_INSTANCE_SAMPLES = 300_000
"""The most recorded evaluations one evaluation of an instance alert with a baseline learns from, all instances
together (each instance learns from its own): past it the evaluation is an error saying so."""


def _judged_instances(alert: AlertConfig, found: InstanceResult, store: Callable[[], StateStore]) -> AlertResult:
    """Each row of ``found`` judged as :func:`judged` judges an alert's, against its own instance's recorded
    values; the alert's result from them (ALERT when any row is)."""
    spec = alert.baseline
    assert spec is not None
    try:
        state = store()
        now = state.clock()
        names = [row.name for row in found.rows]
        recorded = values_of_many(state, names, now - lookback(spec), now, MAX_INSTANCE_SAMPLES)
    except ValueError as exc:
        raise BaselineError(
            f"alert '{alert.name}': {exc} (at most {MAX_INSTANCE_SAMPLES:,}); shorten baseline.history or lower "
            "instances.max"
        ) from None
    except (sa.exc.SQLAlchemyError, StateDatabaseError) as exc:
        cause = redact_text(str(getattr(exc, "orig", None) or exc).splitlines()[0])
        raise BaselineError(f"alert '{alert.name}': cannot read its instances' recorded values: {cause}") from None
    rows = []
    for row in found.rows:
        samples = [Sample(at, value, status == "ALERT") for at, value, status in recorded.get(row.name, ())]
        try:
            verdict = judge(row.result.actual_value, samples, spec, now, alert.timezone)
        except BaselineError as exc:
            raise BaselineError(f"alert '{alert.name}': instance {row.name[len(alert.name) :]}: {exc}") from None
        status: Literal["ALERT", "OK"] = "ALERT" if "ALERT" in (row.result.status, verdict.status) else "OK"
        judged_row = replace(row.result, status=status, threshold=expected_range(verdict), verdict=verdict)
        rows.append(replace(row, result=judged_row))
    return replace(found, rows=tuple(rows)).summary()


def baseline_payload(result: AlertResult | None) -> dict[str, Any]:
    """What messages add for a baseline alert: ``expected`` (the sentence), and ``baseline``,
    ``threshold_low``, ``threshold_high`` as numbers (None when there is no band yet)."""
    verdict = result.verdict if result is not None else None
    if verdict is None:
        return {}
    numbers = verdict.band.as_metadata() if verdict.band is not None else {}
    return {"expected": describe(verdict), "baseline_reason": verdict.reason, **numbers}
