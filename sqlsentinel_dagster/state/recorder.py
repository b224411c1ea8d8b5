"""What the store's mixins (:mod:`.watched`, :mod:`.instances`) use of the :class:`.store.StateStore` that
inherits them: a protocol, so each can be type-checked on its own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

import sqlalchemy as sa

from .decision import Decision
from .model import AlertState, Outcome
from .silences import AlertLabels, Silence

__all__ = ["Recorder"]


class Recorder(Protocol):
    """The store's engine, clock and the steps of :meth:`.StateStore.record` its mixins reuse."""

    engine: sa.Engine
    clock: Callable[[], dt.datetime]

    def _lock_state(self, conn: sa.Connection, alert: str, create: bool) -> AlertState | None: ...

    def _silences(self, conn: sa.Connection) -> list[Silence]: ...

    def _write_decision(
        self,
        conn: sa.Connection,
        decision: Decision,
        labels: AlertLabels,
        outcome: Outcome,
        channels: Mapping[str, Collection[str]],
        payload: dict[str, Any],
        run_id: str | None,
        now: dt.datetime,
    ) -> None: ...
