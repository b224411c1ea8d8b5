"""Thresholds learned from an alert's own recorded values (``baseline:``): a pure function of the value, the
recorded evaluations, the settings and ``now`` (:mod:`.judging`), what it says (:mod:`.verdict`) and how that
reads (:mod:`.words`). No Dagster and no database here."""

from .judging import judge, lookback, numeric
from .verdict import MAX_SAMPLES, VS_TOLERANCE, Band, BaselineError, Sample, Verdict, VerdictCode
from .words import describe, expected_range

__all__ = [
    "MAX_SAMPLES",
    "VS_TOLERANCE",
    "Band",
    "BaselineError",
    "Sample",
    "Verdict",
    "VerdictCode",
    "describe",
    "expected_range",
    "judge",
    "lookback",
    "numeric",
]
