"""Replay: an alert's recorded evaluations through the real decision, under its current and proposed settings.

No Dagster import: :mod:`.core` replays (pure), :mod:`.holds` applies acknowledgements and inhibitions as they were
(pure), :mod:`.recorded` reads them, :mod:`.baseline` re-judges a baseline alert's statuses under
another ``baseline:`` (pure, over the incremental window of :mod:`.window`), :mod:`.timeline` draws the period,
:mod:`.report` shows the result as JSON, text or Markdown, and :mod:`.source` reads the state database and the
alerts file. The ``sqlsentinel replay`` command and the ``sqlsentinel_replay`` job are thin layers over
:func:`replay_config`.
"""

from .baseline import Baselines, Judged, baseline_json, describe_baseline, judge_sides, rejudge
from .changes import DEFAULT_DAYS, Changes, parse_period
from .core import (
    EVENTS,
    Comparison,
    Evaluation,
    Incident,
    IncidentReplay,
    SettingsReplay,
    compare,
    find_incidents,
    mark,
    replay,
)
from .holds import HELD_BY, Acknowledgement, SourceFiring, firing_of
from .recorded import Sources, acknowledgements
from .report import AlertReplay, as_json, describe_settings, markdown, summary, text
from .source import ReplayRun, labels_of, replay_alert, replay_config
from .timeline import WIDTH, timeline
from .window import Rule

__all__ = [
    "DEFAULT_DAYS",
    "EVENTS",
    "HELD_BY",
    "WIDTH",
    "Acknowledgement",
    "AlertReplay",
    "Baselines",
    "Changes",
    "Comparison",
    "Evaluation",
    "Incident",
    "IncidentReplay",
    "Judged",
    "ReplayRun",
    "Rule",
    "SettingsReplay",
    "SourceFiring",
    "Sources",
    "acknowledgements",
    "as_json",
    "baseline_json",
    "compare",
    "describe_baseline",
    "describe_settings",
    "find_incidents",
    "firing_of",
    "judge_sides",
    "labels_of",
    "mark",
    "markdown",
    "parse_period",
    "rejudge",
    "replay",
    "replay_alert",
    "replay_config",
    "summary",
    "text",
    "timeline",
]
