"""The instances of instance alerts (``instances:``), recorded by the :class:`.store.StateStore`.

One evaluation of an instance alert is one transaction, whatever its number of rows: the alert's own state row
is locked (so runs of one alert take turns, as they do for any alert), every instance's state is read in one
query, each is decided by the same pure function as an alert (:func:`.decision.decide`), and the new states,
notification intents and history rows are written in batches. An instance missing from ``missing_after`` results
in a row resolves (:func:`.decision.decide_gone`) and is no longer current; its history stays.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from .channel_holds import with_channel_times
from .decision import Decision, already_evaluated, decide, decide_gone
from .inhibition import firing_labels, inhibited
from .instance_model import InstanceDecision, InstanceLabels, InstanceRow, InstancesRecorded
from .instance_writes import Known, write_instances
from .model import Outcome, StateSettings
from .recorder import Recorder
from .rows import Intent, intent_from_row, state_from_json
from .schema import alert_state, instances, notifications
from .silences import AlertLabels, Silence

__all__ = [
    "InstanceDecision",
    "InstanceLabels",
    "InstanceRecords",
    "InstanceRow",
    "InstancesRecorded",
    "prune_gone",
    "without_collection",
]


F = TypeVar("F", bound=Callable[..., Any])


def without_collection(function: F) -> F:
    """``function`` with the cyclic garbage collector paused while it runs: it makes thousands of acyclic objects
    that live until it returns, whose number alone would trigger collections of the whole heap (measured: a
    quarter of a 10,000-instance evaluation's CPU)."""

    @functools.wraps(function)
    def paused(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return cast(F, paused)


class InstanceRecords:
    """The store's methods for instance alerts."""

    def instances_of(self: Recorder, alert: str, *, current_only: bool = False) -> dict[str, dict[str, str]]:
        """The instances of ``alert`` ever recorded (or only the current ones), by name, with their labels."""
        query = sa.select(instances.c.instance, instances.c.labels).where(instances.c.alert == alert)
        if current_only:
            query = query.where(instances.c.current.is_(True))
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(instances.name):  # a database last written before schema 4
                return {}
            return {name: json.loads(labels) for name, labels in conn.execute(query.order_by(instances.c.instance))}

    def instance_pending(self: Recorder, alert: str) -> dict[str, list[Intent]]:
        """The undelivered notifications of each instance of ``alert`` that has any, oldest first: one query."""
        names = sa.select(instances.c.instance).where(instances.c.alert == alert).scalar_subquery()
        query = (
            sa.select(notifications)
            .where(notifications.c.alert.in_(names), notifications.c.status.in_(("pending", "sending")))
            .order_by(notifications.c.id)
        )
        found: dict[str, list[Intent]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                found.setdefault(row["alert"], []).append(intent_from_row(row))
        return found

    @without_collection
    def record_instances(
        self: Recorder,
        labels: AlertLabels,
        outcome: Outcome,
        settings: StateSettings,
        channels: Mapping[str, Collection[str]],
        payload: dict[str, Any],
        rows: Sequence[InstanceRow] | None,
        run_id: str | None,
        *,
        instance_channels: Callable[[InstanceLabels], Mapping[str, Collection[str]]],
        cut: bool = False,
        missing_after: int = 2,
        most: int = 1000,
        dry_run: bool = False,
        tick: str | None = None,
    ) -> InstancesRecorded:
        """Record one evaluation of the instance alert ``labels.name``: ``outcome`` for the alert itself (ERROR
        when the query failed; its ``channels`` should take only ``error``), and each of ``rows`` for its
        instance, notified on the channels ``instance_channels`` gives for its labels (``rows`` is None when the
        query failed: then no instance is evaluated or counted missing).

        A current instance without a row is missing; after ``missing_after`` results in a row it resolves, unless
        the result was ``cut`` (then nothing counts as missing). A whole result's rows are all instances (there
        are at most ``most``); a cut one adds new instances only while fewer than ``most`` are current. Unless
        ``dry_run``, everything is written in this one transaction. ``tick``: as :meth:`.StateStore.record`'s, for
        the alert's own state (its instances are evaluated with it).
        """
        now = self.clock()
        with self.engine.begin() as conn:
            previous = self._lock_state(conn, labels.name, create=not dry_run)
            if tick is not None and previous is not None and previous.last_tick == tick:
                conn.rollback()
                return InstancesRecorded(already_evaluated(previous, tick), [], 0, 0)
            active = [s for s in self._silences(conn) if s.state(now) == "active"]
            parent = decide(previous, outcome, labels=labels, silences=active, settings=settings, now=now)
            if tick is not None:
                parent = replace(parent, state=parent.state.evolve(last_tick=tick))
            names = [row.labels.name for row in rows or ()]
            known = _known(conn, labels.name, names) if rows is not None else {}
            decided, not_added = [], 0
            kept = sum(1 for k in known.values() if k.current)  # a cut result adds new ones up to the cap only
            firing = firing_labels(conn) if settings.inhibit and rows else []
            memo: dict[int, Any] = {}
            for row in rows or ():
                name, before = row.labels.name, known.get(row.labels.name)
                if cut and (before is None or not before.current):
                    if kept >= most:
                        not_added += 1
                        continue
                    kept += 1
                state = before.state if before else None
                held = inhibited(settings.inhibit, row.labels, firing, settings.upstream) if firing else None
                decision = decide(
                    state, row.outcome, labels=row.labels, silences=active, settings=settings, now=now, inhibited=held
                )
                decision = with_channel_times(decision, row.labels, instance_channels(row.labels), settings, now, memo)
                decided.append(InstanceDecision(name, row.labels.labels, decision, row.outcome))
            seen = set(names)
            if rows is not None and not cut:
                for name, before in known.items():
                    if before.current and name not in seen and before.state is not None:
                        gone = _missing(name, before, labels, active, missing_after, now)
                        of = InstanceLabels.of(labels, name, before.labels)
                        decision = with_channel_times(gone.decision, of, instance_channels(of), settings, now, memo)
                        decided.append(replace(gone, decision=decision))
            alive = {name for name, before in known.items() if before.current} | {d.name for d in decided}
            current = len(alive) - sum(1 for d in decided if d.decision.code.startswith("gone"))
            parent = _summarized(parent, outcome, decided, current, not_added, most) if rows is not None else parent
            recorded = InstancesRecorded(parent, decided, current, not_added)
            if dry_run:
                conn.rollback()
                return recorded
            self._write_decision(conn, parent, labels, outcome, channels, payload, run_id, now)
            write_instances(
                conn,
                labels,
                decided,
                known,
                instance_channels,
                payload,
                {r.labels.name: r for r in rows or ()},
                run_id,
                now,
            )
        return recorded


def _summarized(
    parent: Decision, outcome: Outcome, decided: Sequence[InstanceDecision], current: int, not_added: int, most: int
) -> Decision:
    """The alert's own decision, its reason telling what its instances did: ``2 of 12 instances firing;
    notifying 1 firing, 1 resolved; 1 missing``. The alert itself notifies only errors: when ``outcome`` is one
    (a cut result) its error decision is kept (``error``, ``error_pending``, ``error_already_notified``); its
    firing and resolved are its instances'."""
    firing = sum(1 for d in decided if d.decision.state.condition == "firing")
    events: dict[str, int] = {}
    for item in decided:
        if item.decision.event is not None:
            word = item.decision.event if item.decision.notify else f"{item.decision.event} (silenced)"
            events[word] = events.get(word, 0) + 1
    parts = [f"{firing} of {current} instance{'s' if current != 1 else ''} firing"]
    if events:
        parts.append("notifying " + ", ".join(f"{n} {word}" for word, n in events.items()))
    missing = sum(1 for d in decided if d.outcome is None)
    if missing:
        parts.append(f"{missing} missing from the result")
    if not_added:
        parts.append(f"{not_added} new not added: the alert keeps at most {most:,} (instances.max)")
    summary = "; ".join(parts)
    if outcome.status == "ERROR":  # a cut result: the alert's own error decision stands, with the summary
        return Decision(parent.state, parent.code, f"{parent.reason}; {summary}", parent.event, parent.suppressed_by)
    return Decision(parent.state, "instances", summary)


def _known(conn: sa.Connection, alert: str, names: Sequence[str]) -> dict[str, Known]:
    """The alert's current instances, and those of ``names`` (this result's) that are not current any more, as
    recorded with their states: one query, and one per 500 names of instances new or back in this result."""
    columns = (instances.c.instance, instances.c.labels, instances.c.current, instances.c.missing, alert_state.c.data)
    joined = instances.outerjoin(alert_state, alert_state.c.alert == instances.c.instance)
    known: dict[str, Known] = {}

    def read(*where: Any) -> None:
        for name, raw_labels, current, missing, data in conn.execute(
            sa.select(*columns).select_from(joined).where(*where)
        ):
            state = state_from_json(name, data) if data and data != "{}" else None
            known[name] = Known(json.loads(raw_labels), bool(current), int(missing), state)

    read(instances.c.alert == alert, instances.c.current.is_(True))
    others = sorted(set(names) - known.keys())
    for start in range(0, len(others), 500):
        read(instances.c.alert == alert, instances.c.instance.in_(others[start : start + 500]))
    return known


def _missing(
    name: str, before: Known, parent: AlertLabels, silences: Sequence[Silence], missing_after: int, now: dt.datetime
) -> InstanceDecision:
    """The decision for a current instance whose row is missing: resolved (or ended quietly) after
    ``missing_after`` results in a row, otherwise counted."""
    assert before.state is not None
    missing = before.missing + 1
    labels = InstanceLabels.of(parent, name, before.labels)
    if missing >= missing_after:
        why = f"missing from the last {missing} result{'s' if missing != 1 else ''}"
        decision = decide_gone(before.state, labels=labels, silences=silences, now=now, why=why)
    else:
        reason = f"missing from the result: {missing} of {missing_after} before it resolves"
        decision = Decision(before.state, "missing", reason)
    return InstanceDecision(name, before.labels, decision, None, missing)


def prune_gone(conn: sa.Connection, cutoff: dt.datetime) -> int:
    """Forget the instances that stopped being current before ``cutoff`` (their state, not their alert's)."""
    if not sa.inspect(conn).has_table(instances.name):
        return 0
    stale = (
        sa.select(instances.c.instance)
        .join(alert_state, alert_state.c.alert == instances.c.instance)
        .where(instances.c.current.is_(False), alert_state.c.updated_at < cutoff)
    )
    names = list(conn.execute(stale).scalars())
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        conn.execute(sa.delete(alert_state).where(alert_state.c.alert.in_(chunk)))
        conn.execute(sa.delete(instances).where(instances.c.instance.in_(chunk)))
    return len(names)
