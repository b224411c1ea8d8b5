"""The notification ledger's delivery side, inherited by the :class:`.store.StateStore`: find what is pending,
claim it with a lease (so concurrent runs never send twice), record how it went, give up on what is too old.

Every method takes many notifications at once where a run may have many (an instance alert's thousands of
instances): one query per :data:`CHUNK` of them, not one per notification.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from .rows import Intent, dumps, intent_from_row
from .schema import notifications

__all__ = ["CHUNK", "Ledger", "chunks"]

CHUNK = 500
"""Names or ids per ``IN (...)`` list: well within every database's limit on bound parameters."""

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Ledger:
    """Delivery bookkeeping on ``sqlsentinel_notifications`` (needs ``engine`` and ``clock``)."""

    engine: sa.Engine
    clock: Callable[[], dt.datetime]

    def pending(self, alert: str) -> list[Intent]:
        """The alert's undelivered notifications, oldest first."""
        return self.pending_of([alert]).get(alert, [])

    def pending_of(self, alerts: Collection[str]) -> dict[str, list[Intent]]:
        """The undelivered notifications (pending or being sent) of each of ``alerts`` that has any, oldest first."""
        found: dict[str, list[Intent]] = {}
        names = sorted(set(alerts))
        with self.engine.connect() as conn:
            for names_chunk in chunks(names):
                query = (
                    sa.select(notifications)
                    .where(notifications.c.alert.in_(names_chunk), notifications.c.status.in_(("pending", "sending")))
                    .order_by(notifications.c.id)
                )
                for row in conn.execute(query).mappings():
                    found.setdefault(row["alert"], []).append(intent_from_row(row))
        return found

    def claim(
        self, intent_id: int, run_id: str | None, lease: dt.timedelta, *, take_over_from: str | None = None
    ) -> bool:
        """Take the right to send ``intent_id`` for ``lease``; False if delivered or claimed by another run.

        ``take_over_from``: a run known to have ended while sending it (killed mid-send): its lease is void.
        """
        return intent_id in self.claim_many([intent_id], run_id, lease, take_over_from=take_over_from)

    def claim_many(
        self, intent_ids: Sequence[int], run_id: str | None, lease: dt.timedelta, *, take_over_from: str | None = None
    ) -> set[int]:
        """Claim each of ``intent_ids`` as :meth:`claim` does, in one transaction: the ids claimed.

        The claimable rows are read under a write lock (``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``), so every
        id returned was updated by this call and by no concurrent one.
        """
        now = self.clock()
        claimable = sa.or_(
            notifications.c.status == "pending",
            sa.and_(notifications.c.status == "sending", notifications.c.lease_until < now),
            *(
                [sa.and_(notifications.c.status == "sending", notifications.c.run_id == take_over_from)]
                if take_over_from
                else []
            ),
        )
        claimed: set[int] = set()
        with self.engine.begin() as conn:
            for ids in chunks(sorted(set(intent_ids))):
                query = sa.select(notifications.c.id).where(notifications.c.id.in_(ids), claimable)
                if conn.dialect.name != "sqlite":
                    query = query.with_for_update()
                free = [int(i) for i in conn.execute(query).scalars()]
                if free:
                    conn.execute(
                        sa.update(notifications)
                        .where(notifications.c.id.in_(free))
                        .values(
                            status="sending",
                            lease_until=now + lease,
                            run_id=run_id,
                            updated_at=now,
                            attempts=notifications.c.attempts + 1,
                        )
                    )
                    claimed.update(free)
        return claimed

    def finish(
        self,
        intent_id: int,
        *,
        delivered: bool,
        error: str | None = None,
        permanent: bool = False,
        receipt: Mapping[str, Any] | None = None,
    ) -> None:
        """Mark a claimed intent delivered (with the channel's receipt), failed for good, or pending again
        (to be retried at the next evaluation)."""
        self.finish_many([intent_id], delivered=delivered, error=error, permanent=permanent, receipt=receipt)

    def finish_many(
        self,
        intent_ids: Sequence[int],
        *,
        delivered: bool,
        error: str | None = None,
        permanent: bool = False,
        receipt: Mapping[str, Any] | None = None,
    ) -> None:
        """:meth:`finish` for each of ``intent_ids`` (sent in one message), in one transaction."""
        now = self.clock()
        status = "delivered" if delivered else "failed" if permanent else "pending"
        with self.engine.begin() as conn:
            for ids in chunks(list(intent_ids)):
                conn.execute(
                    sa.update(notifications)
                    .where(notifications.c.id.in_(ids))
                    .values(
                        status=status,
                        last_error=error,
                        lease_until=None,
                        updated_at=now,
                        delivered_at=now if delivered else None,
                        receipt=dumps(receipt) if receipt else None,
                    )
                )

    def last_receipt(self, alert: str, channel: str) -> dict[str, Any] | None:
        """The receipt of the latest delivered firing notification on ``channel`` (e.g. a Slack thread)."""
        query = (
            sa.select(notifications.c.receipt)
            .where(
                notifications.c.alert == alert,
                notifications.c.channel == channel,
                notifications.c.event == "firing",
                notifications.c.status == "delivered",
            )
            .order_by(notifications.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            raw = conn.execute(query).scalar()
        return json.loads(raw) if raw else None

    def expire(self, alert: str, older_than: dt.timedelta) -> list[Intent]:
        """Give up on the alert's pending notifications created more than ``older_than`` ago; return them."""
        cutoff = self.clock() - older_than
        stale = (
            notifications.c.alert == alert,
            notifications.c.status == "pending",
            notifications.c.created_at < cutoff,
        )
        with self.engine.begin() as conn:
            query = sa.select(notifications).where(*stale).order_by(notifications.c.id)
            expired = [intent_from_row(row) for row in conn.execute(query).mappings()]
            if expired:
                for ids in chunks([i.id for i in expired]):
                    conn.execute(
                        sa.update(notifications)
                        .where(notifications.c.id.in_(ids))
                        .values(status="expired", updated_at=self.clock())
                    )
        return expired
