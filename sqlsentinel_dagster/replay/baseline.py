"""Baseline alerts in a replay: each side's statuses re-judged by its ``baseline:`` when that is not the one the
evaluations were recorded under. Pure, like :mod:`.core`.

Rules:

- The recorded statuses are taken as judged by the ``recorded`` baseline (the deployed version's). A side whose
  baseline is the same (same settings; same timezone too with seasonality) replays them as they are, so the
  replay of unchanged settings is exact. A side without a baseline replays them as they are too.
- Any other side re-judges every evaluation, oldest first: its recorded ``actual_value`` against the values of
  the evaluations before it, as :func:`..baselines.judge` does in a run, each earlier evaluation being anomalous
  when *this side* judged it ALERT (what the side would have learned). It learns first from the evaluations
  recorded in the baseline's lookback before the period (``before``); that chain starts with what is recorded,
  so the first evaluations of a young or pruned history are learning, as they were in the alert's first runs.
- A re-judged status is the value's alone: a query's own ``status`` column was combined with the baseline's
  verdict when recorded and cannot be told apart, so a query-side ALERT is lost on a side that re-judges.
- A recorded ERROR stays ERROR; a value that is not a finite number is ERROR, as a run records it.

What a side has learned by each evaluation is kept incrementally, in a :class:`.window.Window`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any, Literal

from ..baselines import lookback, numeric
from ..config.baseline import short_span
from .core import Evaluation
from .window import Rule, Window

__all__ = ["Baselines", "Judged", "baseline_json", "describe_baseline", "judge_sides", "rejudge"]

Side = Literal["current", "proposed"]
SIDES: tuple[Side, ...] = ("current", "proposed")
_BAND_FIELDS = ("sensitivity", "history", "min_history", "direction", "seasonality")


@dataclass(frozen=True)
class Baselines:
    """The baselines of one alert's replay: the one its evaluations were recorded under, and each side's."""

    recorded: Rule | None = None
    """What the recorded statuses are taken as judged by: the deployed version's baseline."""
    current: Rule | None = None
    proposed: Rule | None = None

    def rule(self, side: Side) -> Rule | None:
        """The baseline of ``side``."""
        return self.current if side == "current" else self.proposed

    def rejudges(self, side: Side) -> bool:
        """Whether ``side`` re-judges the statuses: it has a baseline, not the recorded one."""
        rule = self.rule(side)
        return rule is not None and not rule.same_as(self.recorded)

    @property
    def any(self) -> bool:
        """Whether either side re-judges the statuses."""
        return any(self.rejudges(side) for side in SIDES)

    @property
    def lookback(self) -> dt.timedelta:
        """How far before the period the sides that re-judge learn from (0 when none does)."""
        spans = [lookback(r.spec) for s in SIDES if self.rejudges(s) and (r := self.rule(s)) is not None]
        return max(spans, default=dt.timedelta(0))


@dataclass(frozen=True)
class Judged:
    """The evaluations each side decides, and notes on what the baselines did."""

    current: list[Evaluation]
    proposed: list[Evaluation]
    notes: list[str]


def judge_sides(evaluations: Sequence[Evaluation], baselines: Baselines, before: Sequence[Evaluation] = ()) -> Judged:
    """``evaluations`` (oldest first) as each side decides them: re-judged by its baseline when
    :meth:`Baselines.rejudges`, else as recorded; ``before``: the evaluations recorded before them, to learn from."""
    sides: dict[Side, list[Evaluation]] = {}
    notes: list[str] = []
    recorded_alerts = sum(1 for e in evaluations if e.status == "ALERT")
    for side in SIDES:
        rule = baselines.rule(side)
        if rule is None or not baselines.rejudges(side):
            sides[side] = list(evaluations)
            if rule is None and baselines.recorded is not None:
                notes.append(
                    f"{side}: no baseline, so the recorded statuses are replayed as they are; they include the "
                    "recorded baseline's verdicts (a query's own status cannot be told apart from them)"
                )
            continue
        judged, learning = _rejudge(evaluations, rule, before)
        sides[side] = judged
        alerts = sum(1 for e in judged if e.status == "ALERT")
        errors = sum(1 for e in judged if e.status == "ERROR")
        not_numbers = errors - sum(1 for e in evaluations if e.status == "ERROR")
        note = (
            f"{side}: statuses re-judged by its baseline: {alerts:,} ALERT, {errors:,} ERROR, {learning:,} learning "
            f"of {len(judged):,} evaluations (recorded: {recorded_alerts:,} ALERT)"
        )
        if not_numbers:
            note += f"; {not_numbers:,} without a numeric actual_value are ERROR, as a run records them"
        notes.append(note)
    if baselines.any and evaluations:
        since = _aware(before[0].at if before else evaluations[0].at)
        notes.append(
            "a re-judged status is the baseline's verdict on the recorded actual_value alone (a query's own status "
            "column is not replayed), learned from the values that side did not judge ALERT, recorded since "
            f"{since.isoformat(timespec='seconds')}; the incidents are still those of the recorded history"
        )
    return Judged(sides["current"], sides["proposed"], notes)


def rejudge(evaluations: Sequence[Evaluation], rule: Rule, before: Sequence[Evaluation] = ()) -> list[Evaluation]:
    """``evaluations`` (oldest first, else ValueError) with each status as ``rule`` judges its value against the
    evaluations before it, ``before`` included, anomalous where this judging said ALERT. ERRORs stay ERROR."""
    return _rejudge(evaluations, rule, before)[0]


def baseline_json(rule: Rule | None) -> dict[str, Any] | None:
    """The settings ``rule`` judges with, as ``baseline:`` is written (``history: 14d``, ``min_change: 5%``), every
    one that applies to its method; None without a baseline."""
    if rule is None:
        return None
    spec = rule.spec
    shown: dict[str, Any] = spec.model_dump(mode="json", exclude_none=True)
    if spec.method == "change":
        shown = {k: v for k, v in shown.items() if k not in _BAND_FIELDS or (k == "history" and spec.vs is None)}
    for key in ("history", "vs"):
        if key in shown:
            shown[key] = short_span(shown[key])
    return shown


def describe_baseline(rule: Rule | None) -> str:
    """``{method: mad, sensitivity: 3, history: 14d, ...}`` as in YAML's flow style; ``none`` without a baseline."""
    shown = baseline_json(rule)
    if shown is None:
        return "none"
    return "{" + ", ".join(f"{k}: {f'{v:g}' if isinstance(v, float) else v}" for k, v in shown.items()) + "}"


def _rejudge(
    evaluations: Sequence[Evaluation], rule: Rule, before: Sequence[Evaluation]
) -> tuple[list[Evaluation], int]:
    """The re-judged evaluations, and how many of them were learning."""
    window = Window(rule)
    judged: list[Evaluation] = []
    learning = 0
    for index, evaluation in enumerate(chain(before, evaluations)):
        at = _aware(evaluation.at)
        window.move_to(at)
        number = numeric(evaluation.actual_value)
        status, error, was_learning = evaluation.status, evaluation.error, False
        if status != "ERROR" and number is None:
            status, error = "ERROR", _not_a_number(evaluation.actual_value)
        elif status != "ERROR" and number is not None:
            status, was_learning = window.judge(at, number)
            error = None
        window.learn(at, number, anomalous=status == "ALERT")
        if index >= len(before):
            judged.append(replace(evaluation, status=status, error=error))
            learning += was_learning
    return judged, learning


def _not_a_number(value: Any) -> str:
    text = repr(value)
    shown = text if len(text) <= 60 else text[:57] + "..."
    got = "none (no actual_value column, or NULL)" if value is None else f"{shown}"
    return f"the baseline needs a numeric actual_value (a finite number); the recorded value is {got}"


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
