"""``watch:`` on the platform: runs, ticks, code locations and failed materializations as alerts, without Dagster.

The Dagster layer (:mod:`..definitions.platform_reads`) reads what it finds in the instance (or the webserver) as
:class:`Observation` values; each becomes an evaluation of one watched subject, named
``<rule>:<kind>:<subject>`` (``failed_runs:job:nightly_orders``, ``broken_automation:sensor:orders_sensor``,
``code_locations:location:team_a``, ``failed_materializations:asset:shop/orders``), decided, recorded and
delivered as a watched asset check's is (:func:`.watch.watch_tick`).

Two sorts of observation:

- *events* (a run that failed or succeeded, a materialization that failed or succeeded): each is recorded once,
  in the order of its ``key`` (the run's or the event's storage id);
- *conditions* (``steady``: a run running too long, a tick that failed, a location that does not load): read
  again at every pass with the pass's time as ``key``; only one that can change the state is recorded (a
  subject that stays firing, or stays fine, writes nothing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config.watch import WatchRule
from ..config.watch_kinds import matches_name
from ..naming import state_name
from ..state.model import AlertState, Outcome
from ..state.silences import AlertLabels
from .cycles import json_safe
from .results import MAX_CONTEXT_COLUMNS, safe_value

__all__ = [
    "SUBJECT_KINDS",
    "Observation",
    "SubjectKind",
    "changes_state",
    "observation_labels",
    "observation_outcome",
    "observation_payload",
    "platform_rule_of",
    "selects",
    "subject_name",
    "subject_of",
    "watched_message",
]

SubjectKind = Literal["job", "schedule", "sensor", "location", "webserver", "asset"]
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("job", "schedule", "sensor", "location", "webserver", "asset")
_RULE_KINDS = {
    "job": "runs",
    "schedule": "ticks",
    "sensor": "ticks",
    "location": "code_locations",
    "webserver": "code_locations",
    "asset": "assets",
}


@dataclass(frozen=True)
class Observation:
    """One fact about a watched subject, as plain values."""

    rule: str
    """The watch rule's name."""
    kind: SubjectKind
    subject: str
    """The job, schedule, sensor or location name, the webserver's URL, or the asset key path (``shop/orders``)."""
    key: int
    """Its order: an observation is recorded only when its key is not below the latest recorded one of the
    subject (an event's or run's storage id; for a condition, the pass's time in milliseconds)."""
    failed: bool
    description: str
    """What happened, for the message (``run 1a2b3c4d of job nightly_orders failed: ...``)."""
    context: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    url: str | None = None
    """Its page in the Dagster UI, when the UI's base URL is known."""
    timestamp: float = 0.0
    """When it happened (seconds since the epoch); 0: now."""
    steady: bool = False
    """A condition read again at every pass, not an event: an unchanged one is not recorded again."""
    location: str | None = None
    """The code location the subject belongs to, when known (a tag, for silences and routes)."""


def subject_name(rule: str, kind: SubjectKind, subject: str) -> str:
    """``<rule>:<kind>:<subject>``, at most 200 characters (a longer name is cut as :func:`~..naming.state_name`
    cuts it)."""
    return state_name(f"{rule}:{kind}:{subject}")


def selects(rule: WatchRule, kind: str, subject: str) -> bool:
    """Whether ``rule`` watches the subject ``subject`` of kind ``kind``."""
    if _RULE_KINDS.get(kind) != rule.kind:
        return False
    if rule.runs is not None:
        return matches_name(rule.runs.jobs, subject)
    if rule.ticks is not None:
        return rule.ticks.selects("schedule" if kind == "schedule" else "sensor", subject)
    if rule.code_locations is not None:
        return kind == "webserver" or matches_name(rule.code_locations.names, subject)
    return rule.watches_asset(tuple(subject.split("/")))


def platform_rule_of(rules: Sequence[WatchRule], name: str) -> WatchRule | None:
    """The platform rule (not ``checks``) whose subjects ``name`` names, or None."""
    rule_name, _, rest = name.partition(":")
    kind, _, subject = rest.partition(":")
    rule = next((r for r in rules if r.name == rule_name and r.kind != "checks"), None)
    if rule is None or not subject:
        return None
    return rule if selects(rule, kind, subject) or (len(name) == 200 and "~" in name[-13:]) else None


def subject_of(labels: AlertLabels) -> tuple[str, str] | None:
    """(kind, subject) of a platform subject's labels (its tags), or None for anything else."""
    tags = labels.tags or {}
    kind = tags.get("kind")
    if kind not in SUBJECT_KINDS or kind not in tags:
        return None
    return kind, tags[kind]


def observation_labels(observation: Observation) -> AlertLabels:
    """What silences and routes match: the subject's name, severity ``error``, and the tags ``watch`` (the
    rule), ``kind``, the kind itself (``job: nightly_orders``) and, when known, ``location``."""
    tags = {"watch": observation.rule, "kind": observation.kind, observation.kind: observation.subject}
    if observation.location and observation.kind != "location":
        tags["location"] = observation.location
    return AlertLabels(subject_name(observation.rule, observation.kind, observation.subject), "error", (), tags)


def observation_outcome(observation: Observation) -> Outcome:
    """``ALERT`` for a failure (or a run too long, a location not loading), else ``OK``; the context names the
    subject, then the observation's own context (made safe, at most 50 entries)."""
    context: dict[str, Any] = {observation.kind: observation.subject}
    if observation.location and observation.kind != "location":
        context["location"] = observation.location
    entries = list(observation.context.items())[: MAX_CONTEXT_COLUMNS - len(context)]
    context.update((label, safe_value(value)) for label, value in entries if label not in context)
    return Outcome("ALERT" if observation.failed else "OK", context=json_safe(context))


def observation_payload(observation: Observation, labels: AlertLabels, outcome: Outcome) -> dict[str, Any]:
    """The notification message; ``run_url`` links to the run, tick, location or asset in the UI when its base
    URL is set."""
    stamp = dt.datetime.fromtimestamp(observation.timestamp, dt.UTC) if observation.timestamp else None
    return watched_message(labels, outcome, observation.description, stamp, observation.run_id, observation.url)


def watched_message(
    labels: AlertLabels,
    outcome: Outcome,
    description: str,
    stamp: dt.datetime | None,
    run_id: str | None,
    url: str | None,
) -> dict[str, Any]:
    """A watched subject's message (a check's, a job's...), with the keys an alert's message has (``stamp``
    None: now)."""
    payload: dict[str, Any] = json_safe(
        {
            "alert_name": labels.name,
            "status": outcome.status,
            "actual_value": None,
            "threshold": None,
            "context": outcome.context,
            "error": None,
            "description": safe_value(description),
            "severity": labels.severity,
            "owners": [],
            "tags": dict(labels.tags or {}),
            "timestamp": (stamp or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
            "run_id": run_id,
            "run_url": url,
        }
    )
    return payload


def changes_state(observation: Observation, state: AlertState | None) -> bool:
    """Whether recording ``observation`` can change the subject's state (``state``, None if never recorded): a
    fine one only matters to a subject that is pending or firing, and a condition still failing only to one that
    is not steadily firing. Every failed event counts (``for: 2`` is two failed runs in a row)."""
    if not observation.failed:
        return state is not None and state.condition != "inactive"
    if observation.steady and state is not None:
        return not (state.condition == "firing" and state.consecutive_oks == 0)
    return True
