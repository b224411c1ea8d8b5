"""Deliver an alert's pending notifications: claim each with a lease, send with retries, record the result.

A notification that still fails after this run's retries stays pending and is retried by the alert's next
evaluation, until delivered, refused for good (a non-retryable error) or older than the expiry (expired).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..config.targets import NotifyTarget
from ..errors import SentinelError
from ..state.store import Intent, StateStore
from .base import DeliveryError, Notifier
from .parts import Part, split_parts
from .registry import ChannelSettings, build_notifier
from .retry import RetryPolicy, send_with_retries, tries

__all__ = ["NO_LONGER_LISTED", "DeliveryReport", "channel_id", "deliver_grouped", "deliver_pending", "notifiers_for"]

DEFAULT_RETRY = RetryPolicy()
NO_LONGER_LISTED = "this notify entry no longer exists in the alerts file"
"""Why a notification whose notify entry was removed from the file is given up."""


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one notification in this run."""

    channel: str
    event: str
    outcome: str
    """delivered, retry (stays pending), failed (refused for good), expired, or in_flight (another run that
    may still be alive is sending it)."""
    attempts: int = 0
    error: str | None = None
    interrupted_run: str | None = None
    """The run that was killed while sending it, when this run took it over."""
    group_size: int = 0
    """Sent in one message with this many notifications (``group: true``); 0 when sent alone."""
    part: str = ""
    """``part 2 of 5`` when a group was sent in several parts to fit the channel's limits."""

    def as_dict(self) -> dict[str, Any]:
        """The report as data (metadata, JSON); ``interrupted_run``, ``group_size`` and ``part`` only when they
        apply."""
        data = asdict(self)
        for optional in ("interrupted_run", "group_size", "part"):
            if not data[optional]:
                del data[optional]
        return data

    def describe(self) -> str:
        """One line: ``firing via 0:slack: delivered after 1 try (...)``."""
        error = f" ({self.error})" if self.error else ""
        taken = f"; taken over from run {self.interrupted_run}, killed while sending it" if self.interrupted_run else ""
        grouped = f" in one message for {self.group_size} notifications" if self.group_size else ""
        grouped += f" ({self.part})" if self.part else ""
        return f"{self.event} via {self.channel}: {self.outcome}{grouped} after {tries(self.attempts)}{error}{taken}"

    @property
    def given_up(self) -> bool:
        """The notification will never be delivered."""
        return self.outcome in ("failed", "expired")


def channel_id(index: int, target: NotifyTarget, prefix: str = "") -> str:
    """How a notify entry is named in the ledger: ``<position>:<channel>`` (``fallback:0:email`` for fallback)."""
    return f"{prefix}{index}:{target.channel}"


def notifiers_for(
    name: str,
    targets: Sequence[NotifyTarget],
    settings: ChannelSettings,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    prefix: str = "",
) -> dict[str, Notifier | SentinelError]:
    """A notifier per target, secrets resolved now (in the run); an error in place of one that cannot be
    built (e.g. an unset variable), so the other channels still deliver."""
    built: dict[str, Notifier | SentinelError] = {}
    for index, target in enumerate(targets):
        where = f"alert '{name}': {prefix or 'notify'}[{index}] ({target.channel})"
        try:
            built[channel_id(index, target, prefix)] = build_notifier(target, settings, logger, where)
        except SentinelError as exc:
            built[channel_id(index, target, prefix)] = exc
    return built


def deliver_pending(
    store: StateStore,
    alert: str,
    notifiers: Mapping[str, Notifier | SentinelError],
    *,
    run_id: str | None,
    retry: RetryPolicy = DEFAULT_RETRY,
    lease: dt.timedelta = dt.timedelta(minutes=5),
    expire_after: dt.timedelta = dt.timedelta(hours=24),
    run_ended: Callable[[str], bool] | None = None,
    skip: Collection[str] = (),
) -> list[DeliveryReport]:
    """Send every pending notification of ``alert`` that this run can claim (except on the ``skip`` channels,
    which are delivered grouped); report each outcome.

    A notification another run is sending is reported ``in_flight``; if ``run_ended`` says that run has
    ended (killed mid-send: it will never finish the send), this run takes it over at once instead of
    waiting for the lease to lapse. The receiver may then see it twice (the first send may have reached it)
    with the same idempotency key; it is never lost.
    """
    claimed, reports = _claim(store, alert, run_id, lease, expire_after, run_ended, lambda c: c not in skip)
    for intent, holder in claimed:
        report = _deliver(store, intent, notifiers.get(intent.channel), retry)
        reports.append(replace(report, interrupted_run=holder))
    return reports


def deliver_grouped(
    store: StateStore,
    members: Mapping[str, Collection[str]],
    notifier: Notifier | SentinelError,
    *,
    run_id: str | None,
    retry: RetryPolicy = DEFAULT_RETRY,
    lease: dt.timedelta = dt.timedelta(minutes=5),
    expire_after: dt.timedelta = dt.timedelta(hours=24),
    run_ended: Callable[[str], bool] | None = None,
) -> dict[str, list[DeliveryReport]]:
    """Send the pending notifications of several alerts to one target as one message (``group: true``), or as
    several parts (``part 2 of 5``) when one message would be over the channel's limits.

    ``members`` maps each alert to its channel ids that are this target. The parts are planned over the
    notifications not delivered yet (:func:`.parts.split_parts`); each part's notifications are then claimed,
    each on its own, just before the part is sent, and the part holds exactly those claimed (a retry never
    repeats an alert another message delivered). Each part is delivered, or retried, as a whole, and recorded
    for its own notifications only: one part refused leaves the others delivered. Reports are per alert.
    """
    candidates: list[Intent] = []
    reports: dict[str, list[DeliveryReport]] = {}
    pending = store.pending_of(list(members))  # one query per 500 members, not one per member
    for alert, channels in members.items():
        wanted = set(channels).__contains__
        found, reports[alert] = _candidates(store, alert, expire_after, wanted, pending.get(alert, []))
        candidates += found
    for part in _plan(notifier, [i.payload for i in candidates]):
        claimed, busy = _claim_each(store, [candidates[p] for p in part.positions], run_id, lease, run_ended)
        for intent, report in busy:
            reports[intent.alert].append(report)
        if claimed:
            ids = {i.id for i, _ in claimed}
            part = part.only([p for p in part.positions if candidates[p].id in ids])
            for intent, report in _send_part(store, notifier, part, claimed, retry):
                reports[intent.alert].append(report)
    return reports


def _plan(notifier: Notifier | SentinelError, messages: list[dict[str, Any]]) -> list[Part]:
    """The parts ``notifier`` sends ``messages`` in: split by its limits, or all in one when it has none (or is
    an error: the send reports it)."""
    if not messages:
        return []
    limits, measure = getattr(notifier, "group_limits", None), getattr(notifier, "measure_group", None)
    if limits is None or measure is None:
        return [Part(tuple(messages), tuple(range(len(messages))))]
    return split_parts(messages, measure, limits)


def _send_part(
    store: StateStore,
    notifier: Notifier | SentinelError,
    part: Part,
    claimed: list[tuple[Intent, str | None]],
    retry: RetryPolicy,
) -> list[tuple[Intent, DeliveryReport]]:
    """Send one part (with retries) and record the outcome for each of its ``claimed`` notifications."""
    key = "group/" + hashlib.sha256("\n".join(sorted(i.key for i, _ in claimed)).encode()).hexdigest()[:24]
    try:
        if isinstance(notifier, SentinelError):
            raise notifier
        _, attempts = send_with_retries(_Group(notifier, part, key), {}, retry)
    except SentinelError as exc:
        retryable = exc.retryable if isinstance(exc, DeliveryError) else True
        attempts = exc.attempts if isinstance(exc, DeliveryError) else 1
        outcome, error = ("retry" if retryable else "failed"), str(exc)
    else:
        outcome, error = "delivered", ""
    ids = [intent.id for intent, _ in claimed]
    store.finish_many(ids, delivered=outcome == "delivered", error=error or None, permanent=outcome == "failed")
    done = []
    for intent, holder in claimed:
        report = DeliveryReport(
            intent.channel, intent.event, outcome, attempts, error or None, holder, len(claimed), part.label
        )
        done.append((intent, report))
    return done


class _Group:
    """One part of a group of messages, sent through a notifier's ``send_group`` and retried as one message."""

    def __init__(self, notifier: Notifier, part: Part, key: str) -> None:
        self.notifier, self.part, self.key = notifier, part, key

    def send(self, _message: Mapping[str, Any]) -> None:
        send_group = getattr(self.notifier, "send_group", None)
        if send_group is None:
            raise DeliveryError("group", "this channel cannot send grouped messages", retryable=False)
        send_group(self.part, self.key)


def _claim(
    store: StateStore,
    alert: str,
    run_id: str | None,
    lease: dt.timedelta,
    expire_after: dt.timedelta,
    run_ended: Callable[[str], bool] | None,
    wanted: Callable[[str], bool],
) -> tuple[list[tuple[Intent, str | None]], list[DeliveryReport]]:
    """Claim ``alert``'s pending notifications on the ``wanted`` channels: each with the run it was taken
    over from (None when it was simply pending), and reports for those expired or in flight elsewhere."""
    intents, expired = _candidates(store, alert, expire_after, wanted, store.pending(alert))
    claimed, busy = _claim_each(store, intents, run_id, lease, run_ended)
    return claimed, [*expired, *(report for _, report in busy)]


def _candidates(
    store: StateStore,
    alert: str,
    expire_after: dt.timedelta,
    wanted: Callable[[str], bool],
    pending: Sequence[Intent],
) -> tuple[list[Intent], list[DeliveryReport]]:
    """``alert``'s undelivered notifications on the ``wanted`` channels (pending or being sent; ``pending``: all
    of them, as just read), after giving up on those pending past ``expire_after`` (reported ``expired``)."""
    intents = [i for i in pending if wanted(i.channel)]
    reports: list[DeliveryReport] = []
    cutoff = store.clock() - expire_after
    if any(i.status == "pending" and i.created_at < cutoff for i in intents):
        reports = [
            DeliveryReport(i.channel, i.event, "expired", i.attempts, i.last_error)
            for i in store.expire(alert, expire_after)
            if wanted(i.channel)
        ]
        intents = [i for i in store.pending(alert) if wanted(i.channel)]
    return intents, reports


def _claim_each(
    store: StateStore,
    intents: Sequence[Intent],
    run_id: str | None,
    lease: dt.timedelta,
    run_ended: Callable[[str], bool] | None,
) -> tuple[list[tuple[Intent, str | None]], list[tuple[Intent, DeliveryReport]]]:
    """Claim each of ``intents``: those claimed, with the run each was taken over from (None when it was simply
    pending), and those another live run is sending, each with its ``in_flight`` report."""
    now = store.clock()
    claimed: list[tuple[Intent, str | None]] = []
    reports: list[tuple[Intent, DeliveryReport]] = []
    taken = store.claim_many([i.id for i in intents], run_id, lease)  # all that are free, in one transaction
    for intent in intents:
        holder = intent.run_id if intent.status == "sending" and intent.run_id != run_id else None
        leased = holder is not None and intent.lease_until is not None and intent.lease_until > now
        orphaned = leased and run_ended is not None and holder is not None and run_ended(holder)
        if intent.id in taken:
            claimed.append((intent, None))
        elif orphaned and store.claim(intent.id, run_id, lease, take_over_from=holder):
            claimed.append((intent, holder))
        elif leased:
            sender = f"being sent by run {holder}"
            reports.append((intent, DeliveryReport(intent.channel, intent.event, "in_flight", intent.attempts, sender)))
    return claimed, reports


def _deliver(
    store: StateStore, intent: Intent, notifier: Notifier | SentinelError | None, retry: RetryPolicy
) -> DeliveryReport:
    message = dict(intent.payload)
    if intent.event in ("reminder", "resolved"):
        message["receipt"] = store.last_receipt(intent.alert, intent.channel)
    try:
        if notifier is None:
            raise DeliveryError(intent.channel, NO_LONGER_LISTED, retryable=False)
        if isinstance(notifier, SentinelError):
            raise notifier
        receipt, attempts = send_with_retries(notifier, message, retry)
    except SentinelError as exc:
        retryable = exc.retryable if isinstance(exc, DeliveryError) else True  # e.g. an unset ${VAR}: may be fixed
        attempts = exc.attempts if isinstance(exc, DeliveryError) else 1
        store.finish(intent.id, delivered=False, error=str(exc), permanent=not retryable)
        return DeliveryReport(intent.channel, intent.event, "retry" if retryable else "failed", attempts, str(exc))
    store.finish(intent.id, delivered=True, receipt=receipt)
    return DeliveryReport(intent.channel, intent.event, "delivered", attempts)
