"""What else the state database recorded that holds a replayed alert's notifications: its acknowledgements, and the
alerts that may inhibit it with when each fired (see :mod:`.holds`). Only reads.

A run checks the inhibition rules against every alert, instance and watched check firing in the state database
(:func:`..state.inhibition.firing_labels`); a replay takes the same ones, with the labels their state rows record,
keeps those a rule could let inhibit the replayed alert, and replays each one's evaluations in the period, once,
under its current settings, to tell when it fired.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from ..config import AlertConfig, LoadedConfig
from ..cycle.check_evaluations import state_settings
from ..cycle.cycles import settings_of
from ..state.acks import read_ack_reason
from ..state.history import evaluations_between
from ..state.inhibition import InhibitRule
from ..state.instance_model import InstanceLabels
from ..state.labels import labels_from_json
from ..state.model import StateSettings
from ..state.schema import alert_state, history, instances, watched
from ..state.silences import AlertLabels
from ..state.store import StateStore
from .core import Evaluation
from .holds import Acknowledgement, SourceFiring, firing_of

__all__ = ["MAX_ACKS_READ", "MAX_SOURCES", "NO_LINEAGE", "Sources", "acknowledgements"]

MAX_ACKS_READ = 10_000
"""The most acknowledgements of one alert a replay reads in its period (the oldest)."""
MAX_SOURCES = 200
"""The most alerts replayed to tell when they fired, per replayed alert that they may inhibit (the first by name)."""

NO_LINEAGE = (
    "inhibit rules with upstream: true are not replayed: they follow the asset lineage the Dagster instance "
    "records, which the sqlsentinel_replay job reads and the command does not"
)
"""The note of a replay without the deployment's lineage, of a file with ``upstream`` rules."""


def acknowledgements(store: StateStore, name: str, start: dt.datetime, end: dt.datetime) -> list[Acknowledgement]:
    """The acknowledgements of ``name`` recorded from ``start`` to ``end`` (both included), oldest first: the
    ``ACK`` rows ``sqlsentinel ack`` writes in the history."""
    query = (
        sa.select(history.c.evaluated_at, history.c.reason)
        .where(
            history.c.alert == name,
            history.c.status == "ACK",
            history.c.evaluated_at >= start,
            history.c.evaluated_at <= end,
        )
        .order_by(history.c.evaluated_at, history.c.id)
        .limit(MAX_ACKS_READ)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Acknowledgement(at, *read_ack_reason(reason)) for at, reason in rows]


class Sources:
    """The alerts, instances and watched checks of the state database that may inhibit a replayed alert, and when
    each fired from ``start`` to ``end``: an alert under its settings in ``alerts`` (the current version of each),
    an instance under its alert's, a watched check under its ``watch:`` rule's in ``config``. Each is read and
    replayed once, however many replayed alerts it may inhibit."""

    def __init__(
        self,
        store: StateStore,
        config: LoadedConfig,
        alerts: Mapping[str, AlertConfig],
        *,
        start: dt.datetime,
        end: dt.datetime,
    ) -> None:
        self._store, self._config, self._alerts = store, config, alerts
        self._start, self._end = start, end
        self._known: list[tuple[AlertLabels, str | None]] | None = None
        self._by_rule: dict[InhibitRule, list[tuple[AlertLabels, str | None]]] = {}
        self._fired: dict[str, tuple[SourceFiring, bool]] = {}

    def of(
        self, target: AlertLabels, rules: Sequence[InhibitRule], upstream: Mapping[str, str]
    ) -> tuple[list[SourceFiring], list[str]]:
        """When each alert that a rule of ``rules`` lets inhibit ``target`` fired (``upstream``: the alerts on the
        target's upstream assets, for ``upstream`` rules), and notes saying which were replayed and what limits
        them."""
        found: dict[str, tuple[AlertLabels, str | None]] = {}
        for rule in rules:
            if all(m.matches(target) for m in rule.target):
                sources = self._sources_of(rule)
                found.update((s.name, (s, watch)) for s, watch in sources if rule.holds(target, s, upstream))
        candidates = [found[name] for name in sorted(found)]
        notes = []
        if len(candidates) > MAX_SOURCES:
            notes.append(
                f"{len(candidates):,} recorded alerts may inhibit it: only the first {MAX_SOURCES} by name are "
                "replayed, the others' firing is not applied"
            )
            candidates = candidates[:MAX_SOURCES]
        replayed = [self._replayed(labels, watch) for labels, watch in candidates]
        fired = [firing.labels.name for firing, _ in replayed if firing.intervals]
        if fired:
            shown = ", ".join(fired[:5]) + (f" and {len(fired) - 5} more" if len(fired) > 5 else "")
            notes.append(
                f"inhibition: may be inhibited by {shown}, which fired in the period (each as replayed from its own "
                "recorded evaluations under its current settings)"
            )
        guessed = [firing.labels.name for firing, known in replayed if not known and firing.intervals]
        if guessed:
            notes.append(
                f"{', '.join(guessed[:5])}{' and more' if len(guessed) > 5 else ''}: not in {self._config.path}, "
                "so when they fired is replayed with for 1 and recover_after 1"
            )
        return [firing for firing, _ in replayed], notes

    def _replayed(self, labels: AlertLabels, watch: str | None) -> tuple[SourceFiring, bool]:
        """When ``labels`` fired (``watch``: the rule of a watched check), and whether its settings are known (else
        the defaults are used)."""
        if labels.name not in self._fired:
            settings = self._settings(labels, watch)
            rows, _ = evaluations_between(self._store, labels.name, self._start, self._end)
            evaluations = [
                Evaluation(row["evaluated_at"], row["status"], row["actual_value"], row["error"])
                for row in rows
                if row["status"] in ("ALERT", "OK", "ERROR")
            ]
            firing = firing_of(evaluations, labels, settings or StateSettings())
            self._fired[labels.name] = (firing, settings is not None)
        return self._fired[labels.name]

    def _sources_of(self, rule: InhibitRule) -> list[tuple[AlertLabels, str | None]]:
        """What is recorded that matches ``rule``'s source, whatever the target (found once per rule)."""
        if rule not in self._by_rule:
            self._by_rule[rule] = [(s, w) for s, w in self._recorded() if all(m.matches(s) for m in rule.source)]
        return self._by_rule[rule]

    def _settings(self, labels: AlertLabels, watch: str | None) -> StateSettings | None:
        if watch is not None:
            found = next((r for r in self._config.watch_rules if r.name == watch), None)
            return state_settings(found) if found is not None else None
        name = labels.alert_name if isinstance(labels, InstanceLabels) else labels.name
        alert = self._alerts.get(name)
        return settings_of(alert, self._config) if alert is not None else None

    def _recorded(self) -> list[tuple[AlertLabels, str | None]]:
        """Every alert, instance and watched check recorded (an instance alert's own row left out: its instances
        stand for it, as in a run), by name, with its labels and, for a watched check, its rule's name."""
        if self._known is None:
            with self._store.engine.connect() as conn:
                inspector = sa.inspect(conn)
                query = sa.select(alert_state.c.alert, alert_state.c.labels).order_by(alert_state.c.alert)
                if inspector.has_table(instances.name):  # not in a database last written before schema 4
                    query = query.where(alert_state.c.alert.not_in(sa.select(instances.c.alert).distinct()))
                rows = conn.execute(query).all()
                rules: dict[str, str] = {}
                if inspector.has_table(watched.name):
                    rules = dict(conn.execute(sa.select(watched.c.alert, watched.c.rule)).tuples().all())
            self._known = [(labels_from_json(name, raw), rules.get(name)) for name, raw in rows]
        return self._known
