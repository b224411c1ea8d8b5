"""``watch:`` rules on the platform, read for one pass of the watch sensor: runs (:mod:`.platform_runs`), failed
materializations (:mod:`.platform_assets`), schedule and sensor ticks and code locations, as
:class:`~..cycle.platform.Observation` values.

Ticks come from the instance, like runs. Whether a code location loads is known only
to the processes that load it: the webserver serves it (``workspaceOrError`` in its GraphQL API), and the
daemon's own workspace is not visible from a sensor. A webserver that does not answer is itself observed, as
the subject ``<rule>:webserver:<host:port>``, so a wrong URL cannot go unnoticed.

A reader that fails (a storage error, say) leaves its cursor where it was: the pass reports the problem and the
next pass reads the same again.
"""

# No `from __future__ import annotations`: the module sits with Dagster-facing code that is inspected at runtime.

import datetime as dt
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import requests

from ..config.watch import WatchRule
from ..cycle.platform import Observation, selects, subject_of
from ..redact import redact_text
from ..state.watched import WatchedCheck
from .platform_assets import failed_asset_observations
from .platform_runs import error_text, failed_run_observations, failed_runs_since, run_events, slow_run_observations

__all__ = ["PlatformPass", "location_observations", "platform_pass", "tick_observations"]

WEBSERVER_TIMEOUT = (5.0, 15.0)
"""Seconds to connect to the webserver, and to wait for its answer."""
_WORKSPACE = """{ workspaceOrError { __typename ... on PythonError { message } ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message errorChain { error { message } } } }
} } } }"""
_MESSAGE_CHARS = 500
_FINISHED = ("SUCCESS", "SKIPPED", "FAILURE")


@dataclass
class PlatformPass:
    """What one pass read: the observations, the cursor to keep, and the readers that failed."""

    observations: list[Observation] = field(default_factory=list)
    cursor: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def platform_pass(
    instance: dg.DagsterInstance,
    rules: Sequence[WatchRule],
    cursor: dict[str, Any],
    active: Sequence[WatchedCheck],
    now: dt.datetime,
    base_url: str | None,
) -> PlatformPass:
    """Read everything the platform ``rules`` watch (``active``: their subjects that are pending or firing)."""
    done = PlatformPass(cursor=dict(cursor))
    pending = _active_subjects(active)
    failures = [r for r in rules if r.runs is not None and not r.runs.slow]
    slow = [r for r in rules if r.runs is not None and r.runs.slow]
    ticks = [r for r in rules if r.ticks is not None]
    locations = [r for r in rules if r.code_locations is not None]
    assets = [r for r in rules if r.assets is not None]

    def read(what: str, reader: Callable[[], list[Observation]]) -> None:
        try:
            done.observations += reader()
        except Exception as exc:  # the others still read; this one reads the same again next pass
            done.problems.append(redact_text(f"could not read {what}: {type(exc).__name__}: {exc}"))

    if failures or assets:

        def failed_runs() -> list[Observation]:
            after, seen = cursor.get("runs", now.timestamp()), cursor.get("runs_seen", [])
            failed, done.cursor["runs"], done.cursor["runs_seen"] = failed_runs_since(instance, after, seen)
            events = run_events(instance)
            jobs, made = _keys(pending, failures, "job"), _keys(pending, assets, "asset")
            found = failed_run_observations(instance, failures, failed, jobs, base_url, events)
            return found + failed_asset_observations(instance, assets, failed, made, base_url, events)

        read("failed runs", failed_runs)
    if slow:
        read("running runs", lambda: slow_run_observations(instance, slow, _keys(pending, slow, "job"), now, base_url))
    if ticks:
        read("schedule and sensor ticks", lambda: tick_observations(instance, ticks, pending, now, base_url))
    for rule in locations:

        def locations_of(rule: WatchRule = rule) -> list[Observation]:
            return location_observations(rule, pending, now, base_url)

        read(f"code locations ({rule.name})", locations_of)
    return done


def tick_observations(
    instance: dg.DagsterInstance,
    rules: Sequence[WatchRule],
    active: dict[tuple[str, str, str], int],
    now: dt.datetime,
    base_url: str | None,
) -> list[Observation]:
    """For each running schedule and sensor a ``ticks`` rule selects: failing while its latest finished tick
    failed, fine otherwise (stopped ones are fine: they do not tick)."""
    key = int(now.timestamp() * 1000)
    states = [s for s in instance.all_instigator_state() if s.instigator_type.value in ("SCHEDULE", "SENSOR")]
    chosen = [
        (rule, state, "schedule" if state.instigator_type.value == "SCHEDULE" else "sensor")
        for state in states
        for rule in rules
        if selects(rule, "schedule" if state.instigator_type.value == "SCHEDULE" else "sensor", state.name)
    ]
    running = [state for state in {id(s): s for _, s, _ in chosen}.values() if state.is_running]
    # The newest ticks of each, the one in progress included: get_batch_ticks fails when given statuses
    # (Dagster 1.13's SQL storage calls .where on a subquery), so the finished one is picked here.
    newest = instance.get_batch_ticks([s.selector_id for s in running], limit=3)
    latest = {key: [t for t in ticks if t.status.value in _FINISHED][:1] for key, ticks in newest.items()}
    found: list[Observation] = []
    failing: set[tuple[str, str, str]] = set()
    for rule, state, kind in chosen:
        ticks = (latest.get(state.selector_id) or []) if state.is_running else []
        if not ticks or ticks[0].status.value != "FAILURE":
            continue
        tick = ticks[0]
        failing.add((rule.name, kind, state.name))
        error = error_text(tick.error) if tick.error is not None else "no error recorded"
        location = state.origin.repository_origin.code_location_origin.location_name
        repository = state.origin.repository_origin.repository_name
        found.append(
            Observation(
                rule=rule.name,
                kind=kind,  # type: ignore[arg-type]
                subject=state.name,
                key=key,
                failed=True,
                description=f"{kind} {state.name} failed at {_iso(tick.timestamp)}: {error}",
                context={"tick_at": _iso(tick.timestamp), "error": error, "failures": tick.failure_count},
                url=_ui(base_url, f"locations/{repository}@{location}/{kind}s/{state.name}"),
                timestamp=tick.timestamp,
                steady=True,
                location=location,
            )
        )
    for rule_name, kind, name in sorted(set(active) - failing):
        if kind in ("schedule", "sensor") and any(r.name == rule_name for r in rules):
            found.append(_fine(rule_name, kind, name, key, f"{kind} {name} no longer fails"))
    return found


def location_observations(
    rule: WatchRule, active: dict[tuple[str, str, str], int], now: dt.datetime, base_url: str | None
) -> list[Observation]:
    """For each code location the rule selects, as the webserver at ``code_locations.webserver`` lists them:
    failing while it fails to load (one still loading is left as it was); and the webserver itself, failing
    while it does not answer."""
    assert rule.code_locations is not None
    url = rule.code_locations.webserver
    parts = urllib.parse.urlsplit(url)
    server = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else url
    key = int(now.timestamp() * 1000)
    try:
        reply = requests.post(f"{url.rstrip('/')}/graphql", json={"query": _WORKSPACE}, timeout=WEBSERVER_TIMEOUT)
        reply.raise_for_status()
        workspace = reply.json()["data"]["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise ValueError(f"the webserver could not load its workspace: {workspace.get('message', '')}")
        entries = workspace["locationEntries"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        problem = _one_line(redact_text(f"{type(exc).__name__}: {exc}"))
        description = f"the Dagster webserver at {server} did not answer: {problem}"
        return [Observation(rule.name, "webserver", server, key, True, description, {"error": problem}, steady=True)]
    found = [_fine(rule.name, "webserver", server, key, f"the Dagster webserver at {server} answers again")]
    failing: set[str] = set()
    for entry in entries:
        name, loaded = entry["name"], entry.get("locationOrLoadError") or {}
        if not selects(rule, "location", name) or loaded.get("__typename") != "PythonError":
            continue
        failing.add(name)
        chain = [link["error"]["message"] for link in loaded.get("errorChain") or [] if link.get("error")]
        error = _one_line(redact_text((chain[-1] if chain else loaded.get("message")) or "no message"))
        found.append(
            Observation(
                rule=rule.name,
                kind="location",
                subject=name,
                key=key,
                failed=True,
                description=f"code location {name} fails to load: {error}",
                context={"error": error, "webserver": server},
                url=_ui(base_url, "locations"),
                steady=True,
            )
        )
    loading = {entry["name"] for entry in entries if entry.get("loadStatus") == "LOADING"}
    for rule_name, kind, name in sorted(active):
        if rule_name == rule.name and kind == "location" and name not in failing | loading:
            found.append(_fine(rule.name, "location", name, key, f"code location {name} loads again"))
    return found


def _active_subjects(active: Sequence[WatchedCheck]) -> dict[tuple[str, str, str], int]:
    """(rule, kind, subject) of each pending or firing platform subject, with its latest recorded key."""
    found = {}
    for watched in active:
        subject = subject_of(watched.labels)
        if subject is not None:
            found[(watched.rule, *subject)] = watched.storage_id
    return found


def _keys(active: dict[tuple[str, str, str], int], rules: Sequence[WatchRule], kind: str) -> dict[tuple[str, str], int]:
    names = {rule.name for rule in rules}
    return {(rule, name): key for (rule, k, name), key in active.items() if k == kind and rule in names}


def _fine(rule: str, kind: Any, subject: str, key: int, description: str) -> Observation:
    return Observation(rule, kind, subject, key, False, description, steady=True)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 3] + "..."


def _ui(base_url: str | None, path: str) -> str | None:
    return f"{base_url.rstrip('/')}/{path}" if base_url else None


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")
