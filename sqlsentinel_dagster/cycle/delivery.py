"""Delivering what a cycle decided: alone on each target, or grouped (one message per ``group: true`` target for
a whole batch, alerts and watched checks alike), and telling the fallback receivers about any given up."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.targets import NotifyTarget
from ..notifiers import ChannelSettings, DeliveryReport, channel_id, deliver_grouped, deliver_pending, notifiers_for
from ..notifiers.probe import broadcast
from ..notifiers.retry import tries
from ..state.store import StateStore

__all__ = [
    "FALLBACK",
    "CycleSettings",
    "Lineage",
    "Logger",
    "deliver_to",
    "deliver_to_groups",
    "delivery_options",
    "grouped_channels",
    "ledger_channels",
    "tell_fallback_lost",
    "what_next",
]


def ledger_channels(
    targets: Sequence[NotifyTarget], fallback: Sequence[NotifyTarget], *, send_resolved: bool = True
) -> dict[str, set[str]]:
    """The events each notify entry takes in the ledger, by channel id: a target takes firing, reminder, error
    and, unless its ``send_resolved`` (or ``send_resolved`` here) is off, resolved (PagerDuty also acknowledged);
    a fallback target only error."""
    channels: dict[str, set[str]] = {
        channel_id(i, t): {
            "firing",
            "reminder",
            "error",
            *(["resolved"] if t.send_resolved and send_resolved else []),
            *(["acknowledged"] if t.channel == "pagerduty" else []),  # an incident's own state; others show it
        }
        for i, t in enumerate(targets)
    }
    channels.update({channel_id(i, t, FALLBACK): {"error"} for i, t in enumerate(fallback)})
    return channels


def deliver_to(
    store: StateStore,
    name: str,
    targets: Sequence[NotifyTarget],
    fallback: Sequence[NotifyTarget],
    about: dict[str, Any],
    settings: CycleSettings,
    logger: Logger,
    *,
    skip: Sequence[str] = (),
) -> list[DeliveryReport]:
    """Deliver what is pending for the alert ``name`` on its targets and fallback (except the ``skip`` channels,
    delivered grouped), then tell the fallback about any notification given up (``about``: the alert's message)."""
    notifiers = {
        **notifiers_for(name, targets, settings.channels, logger),
        **notifiers_for(name, fallback, settings.channels, logger, FALLBACK),
    }
    reports = deliver_pending(store, name, notifiers, **delivery_options(settings), skip=skip)
    tell_fallback_lost(name, about, [r for r in reports if r.given_up], fallback, settings, logger)
    return reports


def grouped_channels(
    targets: Sequence[NotifyTarget], fallback: Sequence[NotifyTarget]
) -> list[tuple[str, NotifyTarget]]:
    """The channel ids of the ``targets`` and ``fallback`` entries that deliver grouped, with the targets."""
    return [
        *((channel_id(i, t), t) for i, t in enumerate(targets) if t.group),
        *((channel_id(i, t, FALLBACK), t) for i, t in enumerate(fallback) if t.group),
    ]


def deliver_to_groups(
    members: Mapping[str, Sequence[tuple[str, NotifyTarget]]],
    store: StateStore,
    settings: CycleSettings,
    logger: Logger,
) -> dict[str, list[DeliveryReport]]:
    """For each ``group: true`` target, one message listing every member that notifies it (several, ``part 2 of
    5``, when one would be over the channel's limits), each notification still claimed and recorded on its own.
    ``members``: each alert's (or watched check's) name, with its grouped channels. The reports by name."""
    groups: dict[str, tuple[NotifyTarget, dict[str, list[str]]]] = {}
    for name, channels in members.items():
        for channel, target in channels:
            groups.setdefault(target.model_dump_json(), (target, {}))[1].setdefault(name, []).append(channel)
    added: dict[str, list[DeliveryReport]] = {}
    for target, grouped in groups.values():
        notifier = next(iter(notifiers_for(f"group of {len(grouped)}", [target], settings.channels, logger).values()))
        for name, reports in deliver_grouped(store, grouped, notifier, **delivery_options(settings)).items():
            added.setdefault(name, []).extend(reports)
    return added


def delivery_options(settings: CycleSettings) -> dict[str, Any]:
    """The keyword arguments ``deliver_pending`` and ``deliver_grouped`` take from ``settings``."""
    return {
        "run_id": settings.run_id,
        "retry": settings.channels.retry,
        "lease": settings.lease,
        "expire_after": settings.expire_after,
        "run_ended": settings.run_ended,
    }


def tell_fallback_lost(
    name: str,
    about: dict[str, Any],
    given_up: Sequence[DeliveryReport],
    fallback: Sequence[NotifyTarget],
    settings: CycleSettings,
    logger: Logger,
) -> None:
    """Tell the ``fallback`` receivers that notifications of the alert ``name`` (``about``: its message) will
    never be delivered."""
    if not given_up or not fallback:
        return
    counted: dict[tuple[str, str, str], list[DeliveryReport]] = {}
    for report in given_up:  # an instance alert may give up thousands: told once per channel, event and outcome
        counted.setdefault((report.event, report.channel, report.outcome), []).append(report)
    lost = "; ".join(
        f"{f'{len(reports)} x ' if len(reports) > 1 else ''}{event} via {channel} ({outcome}: {reports[0].error})"
        for (event, channel, outcome), reports in list(counted.items())[:_TOLD_GROUPS]
    )
    if len(counted) > _TOLD_GROUPS:
        lost += f"; and {sum(len(r) for r in list(counted.values())[_TOLD_GROUPS:]):,} more"
    message = {
        **about,
        "event": "error",
        "error": f"notification(s) of alert '{name}' could not be delivered: {lost}",
        "reason": "delivery failed",
    }
    channels = hashlib.sha256("+".join(sorted(r.channel for r in given_up)).encode()).hexdigest()[:16]
    key = f"{name}/fallback/{settings.run_id}/{channels}"
    for result in broadcast(name, fallback, message, key, settings.channels, logger, FALLBACK):
        if result.delivered:
            logger.warning(f"told fallback {result.channel} that notifications of '{name}' were lost")
        else:
            logger.error(f"fallback {result.channel} could not be told either: {result.error}")


def what_next(report: DeliveryReport) -> str:
    attempts = tries(report.attempts)
    return {
        "retry": f"{attempts}; will retry at the next evaluation",
        "failed": f"{attempts}; not retryable, given up",
        "expired": "undelivered past the expiry, given up",
    }[report.outcome]


_TOLD_GROUPS = 20
"""The most (event, channel, outcome) kinds a fallback notice lists; the others are counted."""

FALLBACK = "fallback:"

Logger = logging.Logger | logging.LoggerAdapter[Any]


Lineage = Callable[[tuple[str, ...]], frozenset[tuple[str, ...]]]
"""The keys of the assets upstream of an asset (any depth), as the deployment's lineage knows them."""


@dataclass(frozen=True)
class CycleSettings:
    """What every cycle of a run shares: channel settings, delivery lease and expiry, the run's identity."""

    channels: ChannelSettings
    lease: dt.timedelta
    expire_after: dt.timedelta
    run_id: str | None
    dry_run: bool = False
    run_ended: Callable[[str], bool] | None = None
    """Whether another run has ended (then a notification it was sending is taken over at once)."""
    group_later: bool = False
    """Leave notifications for ``group: true`` targets to :func:`deliver_groups` over the whole batch (checks
    mode); otherwise each cycle delivers its own as a group of one."""
    tick: str | None = None
    """The scheduled time of the schedule tick that launched the run (None: manual, sensor): an alert already
    evaluated for it is not evaluated again."""
    lineage: Lineage | None = None
    """The deployment's asset lineage (from the Dagster instance), for ``inhibit: [{upstream: true}]``."""
