"""Alert state: the pure decision, silences, and the store in the Dagster instance's database."""

from .decision import Decision, decide
from .model import AlertState, Outcome, StateSettings
from .silences import AlertLabels, Matcher, Silence, parse_matcher
from .store import StateStore

__all__ = [
    "AlertLabels",
    "AlertState",
    "Decision",
    "Matcher",
    "Outcome",
    "Silence",
    "StateSettings",
    "StateStore",
    "decide",
    "parse_matcher",
]
