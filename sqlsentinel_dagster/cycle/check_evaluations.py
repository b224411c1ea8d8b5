"""What an asset check's evaluation becomes for a ``watch:`` rule: its watched name (with the partition), its
labels, outcome, state settings and message."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import LoadedConfig
from ..config.watch import WatchRule
from ..naming import MAX_STATE_NAME, state_name
from ..notifiers import channel_id
from ..state.channel_holds import ChannelTimes
from ..state.model import Outcome, StateSettings
from ..state.silences import AlertLabels
from ..state.watched import WatchedLabels
from .cycles import json_safe
from .platform import platform_rule_of, watched_message
from .results import MAX_CONTEXT_COLUMNS, safe_value

__all__ = [
    "MAX_NAME",
    "CheckEvaluation",
    "CheckKey",
    "check_url",
    "labels_of",
    "message_of",
    "outcome_of",
    "payload_of",
    "place_of",
    "rule_of",
    "state_settings",
    "watched_name",
]


MAX_NAME = MAX_STATE_NAME
"""The longest watched check's name the state keeps (:func:`~..naming.state_name`)."""

_SEVERITY = {"ERROR": "error", "WARN": "warning"}
"""Dagster's check severity as an alert severity (for routes, silences' ``severity=`` and channels)."""

_PARTITIONED = re.compile(r"^(?P<asset>.*?):(?P<check>[A-Za-z0-9_]+)\[(?P<partition>.*)\]$", re.DOTALL)
"""``<asset>:<check>[<partition>]`` after the rule: check names are letters, digits and ``_`` (Dagster's rule), so the
first ``[`` after one starts the partition, whatever the partition key holds (``:``, ``[``, ``]``...)."""

CheckKey = tuple[tuple[str, ...], str]
"""An asset check as (asset key path, check name)."""


@dataclass(frozen=True)
class CheckEvaluation:
    """One asset check evaluation from Dagster's event log, as plain values."""

    storage_id: int
    """The event's storage id: evaluations are read, and recorded, in this order."""
    asset: tuple[str, ...]
    check: str
    passed: bool
    severity: str
    """As Dagster gives it: ``ERROR`` or ``WARN``."""
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """The evaluation's metadata as plain values (numbers, text, JSON)."""
    run_id: str | None = None
    timestamp: float = 0.0
    partition: str | None = None


def watched_name(rule: str, asset: Sequence[str], check: str, partition: str | None = None) -> str:
    """``<rule>:<asset key path>:<check>`` (``dbt_tests:shop/orders:not_null_id``), and for one partition of a
    partitioned check ``<rule>:<asset key path>:<check>[<partition>]`` (``...:not_null_id[2024-01-31]``), at most
    :data:`MAX_NAME` characters: a longer one is cut and ends in ``~`` and 12 hex digits of the full name's
    sha256."""
    return state_name(f"{rule}:{'/'.join(asset)}:{check}" + (f"[{partition}]" if partition else ""))


def rule_of(rules: Sequence[WatchRule], name: str) -> WatchRule | None:
    """The rule whose subjects ``name`` names, or None: for a checks rule ``<rule>:<asset>:<check>`` of a check
    it watches, the name of one of its partitions (``<rule>:<asset>:<check>[<partition>]``) or a cut name of
    either; for another kind, see :func:`.platform.platform_rule_of`."""
    rule_name, _, rest = name.partition(":")
    rule = next((r for r in rules if r.name == rule_name), None)
    if rule is None or not rest:
        return None
    if rule.kind != "checks":
        return platform_rule_of([rule], name)
    partitioned = _PARTITIONED.match(rest)
    asset, check = (partitioned["asset"], partitioned["check"]) if partitioned else rest.rpartition(":")[::2]
    if asset and check and rule.watches(tuple(asset.split("/")), check):
        return rule
    return rule if len(name) == MAX_NAME and "~" in name[-13:] else None


def state_settings(rule: WatchRule, config: LoadedConfig | None = None) -> StateSettings:
    """The state-machine settings of ``rule`` (checks never error: a check that cannot run records no evaluation),
    with its receivers' own time intervals from ``config``."""
    interval = dt.timedelta(seconds=rule.repeat_interval) if rule.repeat_interval else None
    targets = config.watch_targets(rule) if config is not None else []
    windows = config.file.time_windows if config is not None else None
    by_id = {
        channel_id(i, t): ChannelTimes((windows(t.mute_time_intervals), windows(t.active_time_intervals)))
        for i, t in enumerate(targets)
        if windows is not None and (t.mute_time_intervals or t.active_time_intervals)
    }
    return StateSettings(interval, rule.for_, rule.recover_after, channel_times=(lambda _: by_id) if by_id else None)


def outcome_of(rule: WatchRule, evaluation: CheckEvaluation) -> Outcome:
    """``ALERT`` when the check failed with a severity ``rule`` watches; otherwise ``OK`` (a failure of another
    severity counts as passing for this rule: it resolves). The context names the asset, the check and its
    severity, then the evaluation's metadata (made safe, at most 50 entries in all)."""
    failed = not evaluation.passed and evaluation.severity in rule.severity
    context: dict[str, Any] = {
        "asset": "/".join(evaluation.asset),
        "check": evaluation.check,
        "check_severity": evaluation.severity,
        **({"partition": evaluation.partition} if evaluation.partition else {}),
    }
    entries = list(evaluation.metadata.items())
    room = MAX_CONTEXT_COLUMNS - len(context)
    for label, value in entries[:room]:
        context[label if label not in context else f"metadata: {label}"] = safe_value(value)
    if len(entries) > room:
        context["..."] = f"{len(entries) - room} more metadata entries not shown"
    return Outcome("ALERT" if failed else "OK", context=json_safe(context))


def labels_of(rule: WatchRule, evaluation: CheckEvaluation) -> AlertLabels:
    """What silences match: the watched name, the severity (``error`` for ERROR, ``warning`` for WARN) and the
    tags ``watch`` (the rule), ``asset`` and ``check``; for a partition also the tag ``partition``, and the check's
    name matches as well as the partition's (:class:`.state.watched.WatchedLabels`): silencing the check
    silences all its partitions."""
    tags = {"watch": rule.name, "asset": "/".join(evaluation.asset), "check": evaluation.check}
    severity = _SEVERITY.get(evaluation.severity, "error")
    check_name = watched_name(rule.name, evaluation.asset, evaluation.check)
    if not evaluation.partition:
        return AlertLabels(check_name, severity, (), tags)
    name = watched_name(rule.name, evaluation.asset, evaluation.check, evaluation.partition)
    return WatchedLabels(name, severity, (), {**tags, "partition": evaluation.partition}, check_name=check_name)


def check_url(base_url: str | None, asset: Sequence[str], check: str) -> str | None:
    """The check's page in the Dagster UI (``<base>/assets/shop/orders?view=checks&checkDetail=not_null_id``),
    or None without a base URL."""
    if not base_url:
        return None
    path = "/".join(urllib.parse.quote(part, safe="") for part in asset)
    query = urllib.parse.urlencode({"view": "checks", "checkDetail": check})
    return f"{base_url.rstrip('/')}/assets/{path}?{query}"


def payload_of(rule: WatchRule, evaluation: CheckEvaluation, base_url: str | None) -> dict[str, Any]:
    """The message of an evaluation, with the keys an alert's message has: the description names the asset,
    the check and how it ended (``failed (ERROR): <the check's description>``); ``run_url`` links to the check
    in the UI when ``base_url`` is set; ``run_id`` is the run that evaluated it."""
    return message_of(labels_of(rule, evaluation), outcome_of(rule, evaluation), evaluation, base_url)


def message_of(
    labels: AlertLabels, outcome: Outcome, evaluation: CheckEvaluation, base_url: str | None
) -> dict[str, Any]:
    """The notification message of ``evaluation``, decided as ``outcome`` (``base_url``: the Dagster UI's, for
    links)."""
    verdict = "passed" if evaluation.passed else f"failed ({evaluation.severity})"
    detail = f": {safe_value(evaluation.description)}" if evaluation.description else ""
    where = place_of(evaluation.asset, evaluation.partition)
    stamp = dt.datetime.fromtimestamp(evaluation.timestamp, dt.UTC) if evaluation.timestamp else None
    description = f"asset check {evaluation.check} on {where} {verdict}{detail}"
    url = check_url(base_url, evaluation.asset, evaluation.check)
    return watched_message(labels, outcome, description, stamp, evaluation.run_id, url)


def place_of(asset: Sequence[str], partition: str | None) -> str:
    """``shop/orders``, or ``shop/orders (partition 2024-01-31)``."""
    return "/".join(asset) + (f" (partition {partition})" if partition else "")
