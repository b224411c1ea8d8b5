"""The state store on real SQLite and Postgres: atomic records, exclusive claims, silences, history, restarts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from sqlsentinel_dagster.state import admin
from sqlsentinel_dagster.state.history import alert_history, history_stats
from sqlsentinel_dagster.state.model import Outcome, StateSettings
from sqlsentinel_dagster.state.schema import SCHEMA_VERSION, metadata
from sqlsentinel_dagster.state.silences import AlertLabels, parse_matcher
from sqlsentinel_dagster.state.store import StateStore

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
LABELS = AlertLabels("orders_late", "critical", ("team:sales",), {"domain": "sales"})
CHANNELS = {"0:webhook": {"firing", "reminder", "resolved", "error"}, "1:log": {"firing", "reminder", "error"}}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _record(store: StateStore, status: str, dry_run: bool = False, **settings: object):  # type: ignore[no-untyped-def]
    return store.record(
        LABELS,
        Outcome(status),
        StateSettings(**settings),
        CHANNELS,
        {"alert_name": "orders_late"},
        "run-1",  # type: ignore[arg-type]
        dry_run=dry_run,
    )


class TestRecord:
    def test_transition_writes_state_intents_and_history_together(self, state_url: str, clock: FakeClock) -> None:
        """OK -> ALERT creates one pending intent per channel with a unique key; history has both evaluations."""
        store = StateStore.from_url(state_url, clock)
        _record(store, "OK")
        clock.advance(minutes=5)
        decision = _record(store, "ALERT")
        assert decision.code == "first_notification"
        pending = store.pending("orders_late")
        assert [(i.channel, i.event, i.status) for i in pending] == [
            ("0:webhook", "firing", "pending"),
            ("1:log", "firing", "pending"),
        ]
        assert (
            pending[0].key == "orders_late/2/firing/0:webhook"
            and pending[0].payload["idempotency_key"] == pending[0].key
        )
        assert [row["status"] for row in alert_history(store, "orders_late")] == ["ALERT", "OK"]

    def test_send_resolved_false_skips_that_channel_for_resolved(self, state_url: str, clock: FakeClock) -> None:
        """A channel with send_resolved: false gets no resolved notification."""
        store = StateStore.from_url(state_url, clock)
        _record(store, "ALERT")
        for intent in store.pending("orders_late"):
            assert store.claim(intent.id, "r", dt.timedelta(minutes=1))
            store.finish(intent.id, delivered=True)
        _record(store, "OK")
        assert [(i.channel, i.event) for i in store.pending("orders_late")] == [("0:webhook", "resolved")]

    def test_dry_run_changes_nothing(self, state_url: str, clock: FakeClock) -> None:
        """A dry run returns the decision but stores no state, intent or history."""
        store = StateStore.from_url(state_url, clock)
        decision = _record(store, "ALERT", dry_run=True)
        assert decision.code == "first_notification" and decision.event == "firing"
        assert store.pending("orders_late") == [] and alert_history(store, "orders_late") == []
        assert _record(store, "ALERT").code == "first_notification"  # still the first real one

    def test_state_survives_a_new_store_on_the_same_database(self, state_url: str, clock: FakeClock) -> None:
        """Reopening the database (a restart) keeps the firing state: no second firing notification."""
        _record(StateStore.from_url(state_url, clock), "ALERT")
        reopened = StateStore.from_url(state_url, clock)
        assert _record(reopened, "ALERT").code == "already_firing"
        with reopened.engine.connect() as conn:
            versions = conn.exec_driver_sql("SELECT version FROM sqlsentinel_schema_version").scalars().all()
            assert versions == [SCHEMA_VERSION]  # recorded once, not again by the second store
        assert all(table.startswith("sqlsentinel_") for table in metadata.tables)


class TestDelivery:
    def test_claim_is_exclusive_until_the_lease_expires(self, state_url: str, clock: FakeClock) -> None:
        """Only one run can claim an intent; after the lease another may take it over; delivered is final."""
        store = StateStore.from_url(state_url, clock)
        _record(store, "ALERT")
        intent = store.pending("orders_late")[0]
        assert store.claim(intent.id, "run-a", dt.timedelta(minutes=5))
        assert not store.claim(intent.id, "run-b", dt.timedelta(minutes=5))
        clock.advance(minutes=6)
        assert store.claim(intent.id, "run-b", dt.timedelta(minutes=5))
        store.finish(intent.id, delivered=True)
        assert not store.claim(intent.id, "run-c", dt.timedelta(minutes=5))
        assert [i.channel for i in store.pending("orders_late")] == ["1:log"]

    def test_failed_delivery_stays_pending_until_expiry(self, state_url: str, clock: FakeClock) -> None:
        """A retryable failure returns the intent to pending with its error; past the expiry it is expired."""
        store = StateStore.from_url(state_url, clock)
        _record(store, "ALERT")
        intent = store.pending("orders_late")[0]
        store.claim(intent.id, "run-a", dt.timedelta(minutes=5))
        store.finish(intent.id, delivered=False, error="webhook: HTTP 500")
        again = store.pending("orders_late")[0]
        assert (again.status, again.attempts, again.last_error) == ("pending", 1, "webhook: HTTP 500")
        clock.advance(hours=25)
        assert [i.channel for i in store.expire("orders_late", dt.timedelta(hours=24))] == ["0:webhook", "1:log"]
        assert store.pending("orders_late") == []


class TestAdmin:
    def test_silence_suppresses_and_is_listed_until_it_ends(self, state_url: str, clock: FakeClock) -> None:
        """A silence records the firing as suppressed; status shows it; after unsilence it is owed and sent."""
        store = StateStore.from_url(state_url, clock)
        silence = admin.add_silence(
            store, [parse_matcher("domain=sales")], ends_at=T0 + dt.timedelta(hours=2), author="ana", reason="deploy"
        )
        decision = _record(store, "ALERT")
        assert decision.code == "suppressed" and store.pending("orders_late") == []
        [status] = admin.alert_statuses(store)
        assert status.silenced_by is not None and status.silenced_by.id == silence.id
        assert (status.notification_count, status.delivered_per_channel, status.failed_notifications) == (0, {}, 0)
        assert admin.end_silences(store, "orders_late") == []  # a tag silence is ended by id, not by alert name
        assert [s.id for s in admin.end_silences(store, silence.id)] == [silence.id]
        clock.advance(seconds=1)
        assert _record(store, "ALERT").code == "silence_ended"
        assert admin.list_silences(store) == [] and len(admin.list_silences(store, include_expired=True)) == 1
        webhook, log = store.pending("orders_late")
        for intent, delivered in ((webhook, True), (log, False)):
            store.claim(intent.id, "r", dt.timedelta(minutes=1))
            store.finish(intent.id, delivered=delivered, error=None if delivered else "refused", permanent=True)
        [status] = admin.alert_statuses(store)
        assert status.delivered_per_channel == {"0:webhook": clock.now} and status.failed_notifications == 1

    def test_add_silence_requires_author_reason_and_an_end(self, state_url: str, clock: FakeClock) -> None:
        """A silence that could be forgotten is refused: no author, no reason, or no end after its start."""
        store = StateStore.from_url(state_url, clock)
        with pytest.raises(ValueError, match="an author is required; a reason is required; the end"):
            admin.add_silence(store, [parse_matcher("alert=x")], ends_at=T0, author=" ", reason="")

    def test_history_stats_and_prune(self, state_url: str, clock: FakeClock) -> None:
        """Stats count runs, firing share and notifications; prune removes what is older than the cutoff."""
        store = StateStore.from_url(state_url, clock)
        for status in ["OK", "ALERT", "ALERT", "ERROR", "OK"]:
            store.record(LABELS, Outcome(status, duration_ms=10.0), StateSettings(), CHANNELS, {}, "r")  # type: ignore[arg-type]
            clock.advance(minutes=1)
        stats = history_stats(store, "orders_late")
        assert (stats.runs, stats.alert, stats.ok, stats.error) == (5, 2, 2, 1)
        assert stats.firing_share == 0.5 and stats.duration_p50_ms == 10.0
        assert stats.notifications == {"pending": 5}  # firing and error on 2 channels, resolved on 1
        clock.advance(days=31)
        removed = admin.prune_history(store, dt.timedelta(days=30))
        assert removed["history"] == 5 and removed["notifications"] == 0  # pending ones are kept
        assert history_stats(store, "orders_late").runs == 0


def test_a_version_1_database_is_migrated_to_the_current_schema(tmp_path: Path) -> None:
    """A state database made by schema 1 (no sqlsentinel_configs) gets the new table and the new version row."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    StateStore.from_url(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE sqlsentinel_configs")
        conn.exec_driver_sql("UPDATE sqlsentinel_schema_version SET version = 1")
    StateStore.from_url(url)
    with engine.connect() as conn:
        versions = conn.exec_driver_sql("SELECT version FROM sqlsentinel_schema_version ORDER BY version").scalars()
        assert list(versions) == [1, SCHEMA_VERSION]
        assert "sqlsentinel_configs" in sa.inspect(conn).get_table_names()


class TestLongestNames:
    def test_the_longest_alert_name_fits_every_column_past_many_evaluations(
        self, state_url: str, clock: FakeClock
    ) -> None:
        """A 200-character name (the most alerts.yaml allows) with the longest fallback channel id: ledger keys
        stay within their column at evaluation 1,000,000 too (Postgres enforces the length; SQLite does not)."""
        name = "n" * 200
        channels = {"fallback:99:pagerduty": {"error"}}
        store = StateStore.from_url(state_url, clock)
        store.record(AlertLabels(name), Outcome("OK"), StateSettings(), channels, {}, "r")
        with store.engine.begin() as conn:  # jump to a large evaluation count, as after years of runs
            state = json.loads(conn.execute(sa.text("SELECT data FROM sqlsentinel_alert_state")).scalar_one())
            state["evaluation_count"] = 999_999
            conn.execute(sa.text("UPDATE sqlsentinel_alert_state SET data = :d"), {"d": json.dumps(state)})
        store.record(AlertLabels(name), Outcome("ERROR", error="x"), StateSettings(), channels, {}, "r")
        (key,) = [i.key for i in store.pending(name)]
        assert key == f"{name}/1000000/error/fallback:99:pagerduty" and len(key) <= 255
