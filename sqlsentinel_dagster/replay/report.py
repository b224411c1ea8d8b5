"""One alert's replay as data (``--json``, the Launchpad job's metadata), as lines for a terminal, and as Markdown."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..durations import format_duration
from ..state.model import StateSettings
from .baseline import Baselines, Side, baseline_json, describe_baseline
from .core import EVENTS, Comparison, Incident, IncidentReplay, SettingsReplay
from .holds import HELD_BY

__all__ = ["AlertReplay", "as_json", "describe_settings", "markdown", "summary", "text"]


@dataclass(frozen=True)
class AlertReplay:
    """One alert's recorded evaluations in a period, replayed under its current and proposed settings."""

    alert: str
    comparison: Comparison
    start: dt.datetime
    end: dt.datetime
    history_starts: dt.datetime | None
    """The oldest evaluation of the alert still recorded; None when none is."""
    timeline: list[str]
    notes: list[str]
    """What limits the replay: pruned or cut history, no recorded version, settings taken from the file, statuses
    re-judged by a baseline."""
    baselines: Baselines = field(default_factory=Baselines)
    """The baseline of each side, and the one the evaluations were recorded under."""


def describe_settings(settings: StateSettings) -> str:
    """``for 3, recover_after 1, error_after 1, repeat_interval 4h`` (``none`` when reminders are off), and
    ``, min_interval 30m``, ``, mute_time_intervals nightly`` and ``, active_time_intervals office`` when set."""
    interval = format_duration(settings.repeat_interval) if settings.repeat_interval else "none"
    least = f", min_interval {format_duration(settings.min_interval)}" if settings.min_interval else ""
    least += f", mute_time_intervals {', '.join(i.name for i in settings.mute)}" if settings.mute else ""
    least += f", active_time_intervals {', '.join(i.name for i in settings.active)}" if settings.active else ""
    return (
        f"for {settings.for_count}, recover_after {settings.recover_after}, "
        f"error_after {settings.error_after}, repeat_interval {interval}{least}"
    )


def as_json(replay: AlertReplay, incident_limit: int | None = None, notes: Sequence[str] = ()) -> dict[str, Any]:
    """The replay as JSON values, with stable keys: ``alert``, ``period``, ``settings`` (each side's, with its
    ``baseline`` as written in YAML or None), ``evaluations``, ``current``, ``proposed`` (each with
    ``notifications``, ``total``, ``suppressed``, ``suppressed_by`` silence / muted / inhibited,
    ``acknowledged_quiet`` and ``incidents``), ``difference``, ``missed``, ``timeline``, ``notes`` (``notes``
    first, then the replay's own).

    ``incident_limit``: list at most that many incidents per setting (and missed incidents), and say in
    ``incidents_omitted`` / ``missed_omitted`` how many were left out."""
    comparison, baselines = replay.comparison, replay.baselines
    missed = comparison.missed
    shown_missed = missed if incident_limit is None else missed[:incident_limit]
    return {
        "alert": replay.alert,
        "period": {
            "from": _iso(replay.start),
            "to": _iso(replay.end),
            "history_starts": _iso(replay.history_starts),
        },
        "settings": {
            "current": {**_settings_json(comparison.current.settings), "baseline": baseline_json(baselines.current)},
            "proposed": {
                **_settings_json(comparison.proposed.settings),
                "baseline": baseline_json(baselines.proposed),
            },
        },
        "evaluations": comparison.evaluations,
        "current": _side_json(comparison.current, incident_limit),
        "proposed": _side_json(comparison.proposed, incident_limit),
        "difference": comparison.difference,
        "missed": [{"started_at": _iso(i.started_at), "ended_at": _iso(i.ended_at)} for i in shown_missed],
        **({"missed_omitted": len(missed) - len(shown_missed)} if len(shown_missed) < len(missed) else {}),
        "timeline": replay.timeline,
        "notes": [*notes, *replay.notes],
    }


def text(replay: AlertReplay, incident_limit: int = 20) -> list[str]:
    """Lines for a terminal: counts side by side, delays, when the incidents the proposal fires on fire and resolve
    under each setting, the incidents it misses (at most ``incident_limit`` of each), the timeline."""
    comparison = replay.comparison
    current, proposed = comparison.current, comparison.proposed
    lines = [
        f"{replay.alert}: {comparison.evaluations} evaluations from {_iso(replay.start)} to {_iso(replay.end)}, "
        f"{len(comparison.incidents)} incident{'s' if len(comparison.incidents) != 1 else ''}",
        *(f"  note: {note}" for note in replay.notes),
        f"  current:  {describe_settings(current.settings)}",
        *_baseline_line(replay.baselines, "current"),
        f"  proposed: {describe_settings(proposed.settings)}",
        *_baseline_line(replay.baselines, "proposed"),
        "",
        f"  {'notifications':<14}{'current':>9}{'proposed':>10}{'difference':>12}",
    ]
    rows = _counts(current, proposed)
    lines += [f"  {name:<14}{before:>9}{after:>10}{_signed(after - before):>12}" for name, before, after in rows]
    lines += ["", f"  delay to fire: current {_delays(current)}; proposed {_delays(proposed)}"]
    pairs = list(zip(current.incidents, proposed.incidents, strict=True))
    fired = [(c, p) for c, p in pairs if not p.missed]
    missed = [c.incident for c, p in pairs if p.missed and not c.missed]
    neither = sum(1 for c, p in pairs if c.missed and p.missed)
    lines += ["", f"  incidents the proposal fires on: {len(fired)}{_first(len(fired), incident_limit)}"]
    lines += [
        f"    {_period(c.incident)}  current: {_fate(c)}; proposed: {_fate(p)}" for c, p in fired[:incident_limit]
    ]
    lines += [
        f"  missed by the proposal (the current settings fired): {len(missed)}{_first(len(missed), incident_limit)}"
    ]
    shown = [_period(incident).strip() for incident in missed[:incident_limit]]
    lines += ["    " + ", ".join(shown[i : i + 4]) for i in range(0, len(shown), 4)]
    if neither:
        lines.append(f"  missed by both: {neither}")
    return [*lines, "", *(f"  {line}" for line in replay.timeline)]


def summary(replays: Sequence[AlertReplay]) -> list[str]:
    """One line per alert, as given (largest change first): notifications under each setting, the difference."""
    lines = ["notifications per alert, largest change first:", "  current  proposed  difference  alert"]
    for replay in replays:
        current, proposed = replay.comparison.current.total, replay.comparison.proposed.total
        lines.append(f"  {current:>7}{proposed:>10}{_signed(replay.comparison.change):>12}  {replay.alert}")
    return lines


def markdown(replays: Sequence[AlertReplay], notes: Sequence[str] = (), detailed: int = 20) -> str:
    """A summary table of every alert (largest change first, as given), then the details and timeline of the
    first ``detailed`` ones."""
    parts = [f"- {note}" for note in notes]
    parts += [
        "",
        "| alert | current | proposed | difference | missed incidents |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {_cell(r.alert)} | {r.comparison.current.total} | {r.comparison.proposed.total} | "
            f"{_signed(r.comparison.change)} | {len(r.comparison.missed)} |"
            for r in replays
        ),
    ]
    for replay in replays[:detailed]:
        parts += ["", *_markdown_details(replay)]
    if len(replays) > detailed:
        parts += ["", f"Details of {len(replays) - detailed} more alert(s) are in the JSON metadata."]
    return "\n".join(parts).strip() + "\n"


def _markdown_details(replay: AlertReplay) -> list[str]:
    comparison = replay.comparison
    current, proposed = comparison.current, comparison.proposed
    rows = [("settings", describe_settings(current.settings), describe_settings(proposed.settings), "")]
    baselines = replay.baselines
    if baselines.current is not None or baselines.proposed is not None:
        rows.append(("baseline", describe_baseline(baselines.current), describe_baseline(baselines.proposed), ""))
    counts = [*_counts(current, proposed), ("missed incidents", _missed(current), _missed(proposed))]
    rows += [(name.strip(), str(c), str(p), _signed(p - c)) for name, c, p in counts]
    rows.append(("delay to fire", _delays(current), _delays(proposed), ""))
    return [
        f"### {_cell(replay.alert)}",
        "",
        f"{comparison.evaluations} evaluations from {_iso(replay.start)} to {_iso(replay.end)}, "
        f"{len(comparison.incidents)} incident(s).",
        *(f"- {_cell(note)}" for note in replay.notes),
        "",
        "| | current | proposed | difference |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {name} | {now} | {then} | {diff} |" for name, now, then, diff in rows),
        "",
        "```text",
        *replay.timeline,
        "```",
    ]


def _baseline_line(baselines: Baselines, side: Side) -> list[str]:
    """``baseline {method: mad, ...}`` under a side's settings, when either side has a baseline."""
    if baselines.current is None and baselines.proposed is None:
        return []
    return [f"            baseline {describe_baseline(baselines.rule(side))}"]


_HELD_WORDS = {"silence": "  by a silence", "muted": "  muted", "inhibited": "  inhibited"}


def _counts(current: SettingsReplay, proposed: SettingsReplay) -> list[tuple[str, int, int]]:
    """Notifications by event, in all, and suppressed, under each setting; then what held them, when anything but a
    silence did, and the reminders an acknowledgement kept quiet (``quiet (ack)``), when there are any."""
    rows: list[tuple[str, int, int]] = [(e, current.notifications[e], proposed.notifications[e]) for e in EVENTS]
    rows += [("total", current.total, proposed.total), ("suppressed", current.suppressed, proposed.suppressed)]
    if any(side.suppressed_by[k] for side in (current, proposed) for k in HELD_BY if k != "silence"):
        rows += [(_HELD_WORDS[k], current.suppressed_by[k], proposed.suppressed_by[k]) for k in HELD_BY]
    if current.acknowledged_quiet or proposed.acknowledged_quiet:
        rows.append(("quiet (ack)", current.acknowledged_quiet, proposed.acknowledged_quiet))
    return rows


def _settings_json(settings: StateSettings) -> dict[str, Any]:
    interval = settings.repeat_interval
    return {
        "for": settings.for_count,
        "recover_after": settings.recover_after,
        "error_after": settings.error_after,
        "repeat_interval_seconds": interval.total_seconds() if interval else None,
        "min_interval_seconds": settings.min_interval.total_seconds() if settings.min_interval else None,
        "mute_time_intervals": [interval.name for interval in settings.mute],
        "active_time_intervals": [interval.name for interval in settings.active],
    }


def _side_json(side: SettingsReplay, incident_limit: int | None) -> dict[str, Any]:
    incidents = side.incidents if incident_limit is None else side.incidents[:incident_limit]
    return {
        "notifications": dict(side.notifications),
        "total": side.total,
        "suppressed": side.suppressed,
        "suppressed_by": dict(side.suppressed_by),
        "acknowledged_quiet": side.acknowledged_quiet,
        "incidents": [_incident_json(i) for i in incidents],
        **({"incidents_omitted": len(side.incidents) - len(incidents)} if len(incidents) < len(side.incidents) else {}),
    }


def _incident_json(replay: IncidentReplay) -> dict[str, Any]:
    delay = replay.delay
    return {
        "started_at": _iso(replay.incident.started_at),
        "ended_at": _iso(replay.incident.ended_at),
        "fired_at": _iso(replay.fired_at),
        "delay_seconds": delay.total_seconds() if delay is not None else None,
        "resolved_at": _iso(replay.resolved_at),
        "missed": replay.missed,
        "suppressed": replay.suppressed,
    }


def _missed(side: SettingsReplay) -> int:
    return sum(1 for i in side.incidents if i.missed)


def _delays(side: SettingsReplay) -> str:
    delays = [d for i in side.incidents if (d := i.delay) is not None]
    if not delays:
        return "no incident fired"
    median = dt.timedelta(seconds=statistics.median(d.total_seconds() for d in delays))
    return f"median {format_duration(median)}, max {format_duration(max(delays))}"


def _fate(replay: IncidentReplay) -> str:
    if replay.fired_at is None:
        return "missed"
    delay = replay.delay or dt.timedelta()
    silenced = f" ({_HELD_FATE[replay.held_by or 'silence']})" if replay.suppressed else ""
    resolved = _short(replay.resolved_at, replay.incident.started_at) if replay.resolved_at else "still firing"
    return f"fired +{format_duration(delay)}{silenced}, resolved {resolved}"


_HELD_FATE = {"silence": "suppressed by a silence", "muted": "muted", "inhibited": "inhibited"}


def _period(incident: Incident) -> str:
    """``2026-11-04 13:20 -> 14:05`` (the end's date only when it is another day); ``-> open`` when still open."""
    end = _short(incident.ended_at, incident.started_at) if incident.ended_at else "open"
    return f"{incident.started_at:%Y-%m-%d %H:%M} -> {end:<5}"


def _first(count: int, limit: int) -> str:
    return f" (the first {limit}; --json lists all)" if count > limit else ""


def _short(value: dt.datetime, day_of: dt.datetime) -> str:
    return f"{value:%H:%M}" if value.date() == day_of.date() else f"{value:%Y-%m-%d %H:%M}"


def _signed(number: int) -> str:
    """``+3``, ``-2``, ``0``."""
    return f"{number:+d}" if number else "0"


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _cell(text: str) -> str:
    """``text`` fit for one Markdown table cell or heading: pipes escaped, on one line."""
    return " ".join(text.replace("|", "\\|").split())
