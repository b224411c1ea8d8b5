"""Delivering what watched checks and subjects owe (:func:`.watch.watch_tick`), and when a firing one may be
reminded."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from ..config import LoadedConfig
from ..config.targets import NotifyTarget
from ..config.watch import WatchRule
from ..notifiers import DeliveryReport
from ..state.store import StateStore
from ..state.watched import WatchedCheck
from .delivery import CycleSettings, deliver_to, deliver_to_groups, grouped_channels, tell_fallback_lost

if TYPE_CHECKING:
    from .watch import WatchTick

__all__ = ["deliver_watched", "may_notify"]

Logger = logging.Logger | logging.LoggerAdapter[Any]


def may_notify(watched: WatchedCheck, rule: WatchRule, store: StateStore) -> bool:
    """Whether re-deciding a firing check on its last evaluation may notify: a reminder is due, or a
    notification is owed since a silence (the decision itself, under the state's lock, has the last word)."""
    state = watched.state
    if state.episode_suppressed:
        return True  # owed once its silence ends: the decision checks the silences
    if rule.repeat_interval is None:
        return False
    last = state.last_notified_at or state.firing_since
    return last is None or store.clock() - last >= dt.timedelta(seconds=rule.repeat_interval)


def deliver_watched(
    due: dict[str, tuple[WatchRule, dict[str, Any]]],
    config: LoadedConfig,
    store: StateStore,
    settings: CycleSettings,
    logger: Logger,
    deadline: float | None,
    tick: WatchTick,
) -> list[DeliveryReport]:
    """Deliver the pending notifications of ``due``: each check alone on its targets, then one message per
    ``group: true`` target listing every check of the tick (in parts when over the channel's limits)."""
    fallback = config.fallback_targets()
    reports: list[DeliveryReport] = []
    members: dict[str, list[tuple[str, NotifyTarget]]] = {}
    for name, (rule, payload) in sorted(due.items()):
        if deadline is not None and time.monotonic() > deadline:
            tick.out_of_time = True  # still pending: delivered at the next tick
            break
        targets = config.watch_targets(rule)
        members[name] = grouped_channels(targets, fallback)
        skip = [channel for channel, _ in members[name]]
        reports += deliver_to(store, name, targets, fallback, payload, settings, logger, skip=skip)
    for name, group_reports in deliver_to_groups(members, store, settings, logger).items():
        reports += group_reports
        tell_fallback_lost(name, due[name][1], [r for r in group_reports if r.given_up], fallback, settings, logger)
    return reports
