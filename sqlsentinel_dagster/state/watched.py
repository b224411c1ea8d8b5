"""The state of watched asset checks (``watch:``), recorded by the :class:`.store.StateStore`.

Each evaluation of a watched check, read from Dagster's event log, is decided and recorded as an alert's is,
at most once: :class:`WatchedChecks` (inherited by the store) keeps the latest recorded evaluation's storage id
in the same transaction as the decision, finds the checks that still need work between evaluations, and ends
the episode of a check that no longer exists (:meth:`WatchedChecks.resolve_gone_watched`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from .channel_holds import by_channel, with_channel_times
from .decision import Decision, decide, decide_gone
from .model import AlertState, Outcome, StateSettings
from .recorder import Recorder
from .rows import dumps, state_from_json
from .schema import alert_state, notifications, watched
from .silences import AlertLabels

__all__ = ["WatchedCheck", "WatchedChecks", "WatchedLabels"]


@dataclass(frozen=True)
class WatchedLabels(AlertLabels):
    """The labels of one partition of a watched check: an ``alert=`` (or ``name=``) matcher matches the
    partition's own name and also :attr:`check_name`, so silencing the check silences every partition."""

    check_name: str = ""
    """The check's name without the partition (``<rule>:<asset>:<check>``)."""

    def values(self, key: str) -> list[str]:
        """As :meth:`AlertLabels.values`, with the check's name among the names."""
        found = super().values(key)
        if key in ("alert", "name") and self.check_name and self.check_name not in found:
            found.append(self.check_name)
        return found


@dataclass(frozen=True)
class WatchedCheck:
    """A watched asset check (``watch:``) as last recorded: its state, and the evaluation it was decided on."""

    name: str
    rule: str
    storage_id: int
    """The Dagster event-log storage id of the latest evaluation recorded."""
    state: AlertState
    outcome: Outcome
    labels: AlertLabels
    payload: dict[str, Any]
    undelivered: bool
    """It has notifications pending or being sent."""
    asset: tuple[str, ...] = ()
    """The asset key path of the check."""
    check: str = ""
    partition: str | None = None
    """The partition this state is of, or None for an unpartitioned check."""


class WatchedChecks:
    """The store's methods for watched asset checks (``watch:``)."""

    def record_watched(
        self: Recorder,
        labels: AlertLabels,
        outcome: Outcome,
        settings: StateSettings,
        channels: Mapping[str, Collection[str]],
        payload: dict[str, Any],
        run_id: str | None,
        *,
        rule: str,
        storage_id: int,
        asset: Sequence[str] = (),
        check: str = "",
        partition: str | None = None,
    ) -> Decision | None:
        """:meth:`.StateStore.record` for a watched asset check's evaluation, read from Dagster's event log with
        ``storage_id``: each evaluation is recorded at most once, however many readers see it. ``asset``,
        ``check`` and ``partition`` say which check (and partition) it is, kept to tell later whether it is gone.

        In the same transaction as the decision: an evaluation older than the latest recorded one is ignored
        (None); the latest one again is a re-decision on the same evaluation, kept only when it notifies a
        reminder or an owed firing (a check that stays failed is reminded without new evaluations); a newer one
        is recorded as any evaluation is, and becomes the latest.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            previous = self._lock_state(conn, labels.name, create=True)
            query = sa.select(watched.c.storage_id).where(watched.c.alert == labels.name)
            latest = conn.execute(query if conn.dialect.name == "sqlite" else query.with_for_update()).scalar()
            if latest is not None and storage_id < latest:
                conn.rollback()
                return None
            decision = decide(
                previous, outcome, labels=labels, silences=self._silences(conn), settings=settings, now=now
            )
            decision = with_channel_times(decision, labels, channels, settings, now)
            again = latest is not None and storage_id == latest
            reminding = previous is not None and previous.condition == "firing"
            if again and not (reminding and (decision.event in ("firing", "reminder") or decision.released)):
                conn.rollback()
                return None
            self._write_decision(conn, decision, labels, outcome, channels, payload, run_id, now)
            source = {"asset": list(asset), "check": check, "partition": partition}
            data = dumps({"outcome": asdict(outcome), "labels": asdict(labels), "payload": payload, "check": source})
            values = {"rule": rule, "storage_id": storage_id, "data": data, "updated_at": now}
            if latest is None:
                conn.execute(sa.insert(watched).values(alert=labels.name, **values))
            else:
                conn.execute(sa.update(watched).where(watched.c.alert == labels.name).values(**values))
        return decision

    def resolve_gone_watched(
        self: Recorder,
        watched_check: WatchedCheck,
        channels: Mapping[str, Collection[str]],
        payload: dict[str, Any],
        run_id: str | None,
        *,
        why: str,
    ) -> Decision | None:
        """End the firing episode of ``watched_check``, whose check no longer exists (``why`` says how that is
        known), with :func:`.decision.decide_gone`: a ``resolved`` notice (``payload``) on ``channels`` when the
        episode was notified, and no reminders after.

        In one transaction: None, and nothing written, when the state moved on since ``watched_check`` was read
        (a newer evaluation was recorded, or it is no longer firing), as then the check is evidently not gone.
        """
        now = self.clock()
        name = watched_check.name
        with self.engine.begin() as conn:
            previous = self._lock_state(conn, name, create=False)
            query = sa.select(watched.c.storage_id).where(watched.c.alert == name)
            latest = conn.execute(query if conn.dialect.name == "sqlite" else query.with_for_update()).scalar()
            if previous is None or previous.condition != "firing" or latest != watched_check.storage_id:
                conn.rollback()
                return None
            labels = watched_check.labels
            decision = decide_gone(previous, labels=labels, silences=self._silences(conn), now=now, why=why)
            decision = by_channel(decision, channels, {})  # its resolved notice only to channels told it fired
            self._write_decision(conn, decision, labels, watched_check.outcome, channels, payload, run_id, now)
            conn.execute(sa.update(watched).where(watched.c.alert == name).values(updated_at=now))
        return decision

    def watched_needing_work(self: Recorder, rules: Collection[str]) -> list[WatchedCheck]:
        """The checks watched by ``rules`` that are firing (a reminder may be due, or a silence may have ended)
        or have notifications not delivered yet."""
        if not rules:
            return []
        undelivered = (
            sa.select(notifications.c.id)
            .where(notifications.c.alert == watched.c.alert, notifications.c.status.in_(("pending", "sending")))
            .exists()
        )
        query = (
            sa.select(watched, alert_state.c.data.label("state"), undelivered.label("undelivered"))
            .join(alert_state, alert_state.c.alert == watched.c.alert)
            .where(watched.c.rule.in_(list(rules)), sa.or_(alert_state.c.condition == "firing", undelivered))
            .order_by(watched.c.alert)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_watched_from_row(row) for row in rows]

    def watched_active(self: Recorder, rules: Collection[str]) -> list[WatchedCheck]:
        """What ``rules`` watch that is pending or firing (each with its state and latest recorded key)."""
        if not rules:
            return []
        query = (
            sa.select(watched, alert_state.c.data.label("state"), sa.literal(False).label("undelivered"))
            .join(alert_state, alert_state.c.alert == watched.c.alert)
            .where(watched.c.rule.in_(list(rules)), alert_state.c.condition != "inactive")
            .order_by(watched.c.alert)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_watched_from_row(row) for row in rows]


def _watched_from_row(row: Any) -> WatchedCheck:
    data = json.loads(row["data"])
    outcome, labels, source = data.get("outcome") or {}, data.get("labels") or {}, data.get("check") or {}
    label_type = WatchedLabels if labels.get("check_name") else AlertLabels
    tags = labels.get("tags") or {}  # which check: from its tags for a state recorded before "check" was kept
    return WatchedCheck(
        name=row["alert"],
        rule=row["rule"],
        storage_id=int(row["storage_id"]),
        state=state_from_json(row["alert"], row["state"]),
        outcome=Outcome(
            status=outcome.get("status", "OK"),
            actual_value=outcome.get("actual_value"),
            threshold=outcome.get("threshold"),
            context=outcome.get("context") or {},
            error=outcome.get("error"),
            duration_ms=outcome.get("duration_ms") or 0.0,
        ),
        labels=label_type(
            name=labels.get("name", row["alert"]),
            severity=labels.get("severity", ""),
            owners=tuple(labels.get("owners") or ()),
            tags=labels.get("tags") or {},
            **({"check_name": labels["check_name"]} if labels.get("check_name") else {}),
        ),
        payload=data.get("payload") or {},
        undelivered=bool(row["undelivered"]),
        asset=tuple(source["asset"]) if source.get("asset") else tuple(filter(None, tags.get("asset", "").split("/"))),
        check=source.get("check") or tags.get("check", ""),
        partition=source.get("partition") or tags.get("partition"),
    )
