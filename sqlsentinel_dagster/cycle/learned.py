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
from ..state.history import evaluations_between
from ..state.store import StateStore
from .results import AlertResult

__all__ = ["baseline_payload", "judged"]


def judged(alert: AlertConfig, result: AlertResult, store: Callable[[], StateStore]) -> AlertResult:
    """``result`` after ``alert``'s baseline: status ALERT if the query or the band says so, ``threshold`` the
    band, ``verdict`` set. Raises :class:`BaselineError` (naming the alert) when the value is not a number or
    the recorded values cannot be read."""
    spec = alert.baseline
    assert spec is not None
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


def baseline_payload(result: AlertResult | None) -> dict[str, Any]:
    """What messages add for a baseline alert: ``expected`` (the sentence), and ``baseline``,
    ``threshold_low``, ``threshold_high`` as numbers (None when there is no band yet)."""
    verdict = result.verdict if result is not None else None
    if verdict is None:
        return {}
    numbers = verdict.band.as_metadata() if verdict.band is not None else {}
    return {"expected": describe(verdict), "baseline_reason": verdict.reason, **numbers}
