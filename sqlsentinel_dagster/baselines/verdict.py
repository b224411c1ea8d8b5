"""What a baseline says of a value: the band learnt, the verdict, the samples it is learnt from."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Literal

from ..config.baseline import Method
from ..errors import SentinelError

__all__ = ["MAX_SAMPLES", "VS_TOLERANCE", "Band", "BaselineError", "Sample", "Verdict", "VerdictCode"]


MAX_SAMPLES = 100_000
"""The most recorded values one verdict learns from (the newest); the caller need not read more."""

VS_TOLERANCE = 0.1
"""With ``vs``, how far from ``now - vs`` the compared value may be recorded, as a fraction of ``vs``."""

VerdictCode = Literal[
    "learning", "no_reference", "not_finite", "within_band", "within_min_change", "above_band", "below_band"
]


class BaselineError(SentinelError, ValueError):
    """Raised by :func:`judge` when the value to judge is not a finite number (missing, NULL, text, NaN)."""


@dataclass(frozen=True)
class Sample:
    """One recorded evaluation of the alert, as the caller read it from the history."""

    at: dt.datetime
    """When it was evaluated (a naive time is taken as UTC)."""
    value: Any
    """Its ``actual_value`` as recorded (number, numeric text, None...); only finite numbers are learnt from."""
    anomalous: bool
    """Whether it was judged ALERT: such values are never learnt from nor compared with."""


@dataclass(frozen=True)
class Band:
    """The expected range a value was judged against; ``low`` and ``high`` are the alert's thresholds."""

    low: float | None
    """Values below this alert; None when that side is not checked (``direction: up``, no ``below``)."""
    high: float | None
    """Values above this alert; None when that side is not checked (``direction: down``, no ``above``)."""
    center: float
    """The baseline: the median, the mean, or the value compared with (method change)."""
    method: Method
    """How the band was made."""
    count: int
    """How many recorded values it was learnt from (1 for method change)."""
    window_seconds: float
    """How far back values were taken from: ``history``, or ``vs`` when comparing with a value that long ago."""
    season: str | None
    """With seasonality, the values learnt from, e.g. ``on Mondays between 09:00 and 10:00``; else None."""
    vs_seconds: float | None = None
    """Method change with ``vs``: how long before ``now`` the compared value was meant to be; else None."""

    def as_metadata(self) -> dict[str, float | None]:
        """``baseline``, ``threshold_low`` and ``threshold_high``, for run metadata and JSON payloads; None for a
        side not checked, and for a number that is not finite (:func:`judge` never draws one, but an infinity
        must never reach metadata or JSON, whoever built the band)."""
        return {
            "baseline": _finite(self.center),
            "threshold_low": _finite(self.low),
            "threshold_high": _finite(self.high),
        }


@dataclass(frozen=True)
class Verdict:
    """What the baseline says of one value: ALERT or OK, a named reason, and the band used (if any)."""

    status: Literal["ALERT", "OK"]
    """ALERT when the value is outside the band (and past ``min_change``); OK otherwise, also while learning and
    when the band is not finite."""
    code: VerdictCode
    """A stable name for the reason, e.g. ``learning``, ``not_finite``, ``above_band``."""
    reason: str
    """The reason in words, e.g. ``above expected 140-210 (+35% vs median 172)`` (an en dash in the range)."""
    value: float
    """The value judged."""
    band: Band | None
    """The band, or None while learning, with nothing to compare with, or when it is not finite."""

    @property
    def learning(self) -> bool:
        """Whether the history was too short to judge (the status is then OK)."""
        return self.code in ("learning", "no_reference")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
