"""Every wait ends: warehouses, state databases and HTTP receivers that accept and then never answer end as
named errors within bounded time, recorded and notified, with nothing lost and no secret shown.

Ceilings are generous (the point is "ends", not "fast"): a regression hangs, which the ceilings catch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sqlsentinel_dagster import AlertQueryError, build_definitions
from sqlsentinel_dagster.cycle.evaluate import GRACE, evaluate_query
from sqlsentinel_dagster.notifiers.base import DeliveryError
from sqlsentinel_dagster.notifiers.webhook import WebhookNotifier
from sqlsentinel_dagster.sql.drivers import create_warehouse_engine
from sqlsentinel_dagster.state.model import Outcome, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore, create_state_engine

from .half_dead import StallingProxy, dripping_http_server, stalling_proxy
from .loopback import loopback_receiver

STALLING_QUERY = "SELECT 'OK' AS status, 'stall_here' AS marker"
PASSWORD = "Hunter2Secret"


def _port(url: str) -> int:
    return sa.make_url(url).port or 5432


def _via(url: str, proxy: StallingProxy, password: str = "") -> str:
    parsed = sa.make_url(url).set(host="127.0.0.1", port=proxy.port)
    if password:
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[StallingProxy]:
    with stalling_proxy(_port(postgres_url)) as proxy:
        yield proxy


def _evaluate_ceiling(url: str, query: str, timeout: float = 1) -> tuple[str, float]:
    engine = create_warehouse_engine(url)
    started = time.monotonic()
    try:
        with pytest.raises(AlertQueryError) as caught:
            evaluate_query(engine, alert="stuck", database="main", query=query, timeout=timeout, secrets=[PASSWORD])
        return str(caught.value), time.monotonic() - started
    finally:
        engine.dispose()


class TestWarehouse:
    @pytest.mark.slow
    def test_a_server_that_accepts_and_never_answers_fails_the_connect_in_bounded_time(
        self, postgres_url: str, postgres_proxy: StallingProxy
    ) -> None:
        """No connect_timeout in the URL: ours (10 s) applies, and the error says it could not connect."""
        postgres_proxy.stall()
        message, elapsed = _evaluate_ceiling(_via(postgres_url, postgres_proxy, PASSWORD), "SELECT 'OK' AS status")
        assert "could not connect in time" in message and PASSWORD not in message
        assert elapsed < 30

    def test_a_query_the_server_never_answers_is_cut_at_the_timeout_plus_grace(
        self, postgres_url: str, postgres_proxy: StallingProxy
    ) -> None:
        """The server never sees the query, so statement_timeout cannot fire: the deadline cuts the connection."""
        message, elapsed = _evaluate_ceiling(_via(postgres_url, postgres_proxy), STALLING_QUERY, timeout=1)
        assert f"no answer from the database within {1 + GRACE:g}s" in message
        assert message.startswith("alert 'stuck': query on database 'main' failed")
        assert 1 + GRACE - 0.5 < elapsed < 30

    @pytest.mark.slow
    def test_a_pooled_connection_whose_server_fell_silent_is_not_a_hang(
        self, postgres_url: str, postgres_proxy: StallingProxy
    ) -> None:
        """The pre-use ping runs under the deadline; the next connection attempt times out; both are bounded."""
        engine = create_warehouse_engine(_via(postgres_url, postgres_proxy))
        assert evaluate_query(engine, alert="a", database="m", query="SELECT 'OK' AS status", timeout=1).status == "OK"
        postgres_proxy.stall()
        started = time.monotonic()
        with pytest.raises(AlertQueryError):
            evaluate_query(engine, alert="a", database="m", query="SELECT 'OK' AS status", timeout=1)
        assert time.monotonic() - started < 45
        engine.dispose()

    def test_mariadb_is_cut_too(self, mariadb_url: str) -> None:
        """PyMySQL's socket is shut down at the deadline like libpq's."""
        with stalling_proxy(sa.make_url(mariadb_url).port or 3306) as proxy:
            message, elapsed = _evaluate_ceiling(_via(mariadb_url, proxy), STALLING_QUERY, timeout=1)
        assert f"no answer from the database within {1 + GRACE:g}s" in message and elapsed < 30


class TestStateDatabase:
    @pytest.mark.slow
    def test_a_state_database_that_falls_silent_ends_the_transaction_in_bounded_time(
        self, postgres_url: str, postgres_proxy: StallingProxy
    ) -> None:
        """A recorded evaluation, then silence: the next record fails within the deadline, not never."""
        store = StateStore(create_state_engine(_via(postgres_url, postgres_proxy), deadline=2))
        labels = AlertLabels(f"stuck_{time.monotonic_ns()}")
        settings = StateSettings(None, 1, 1, 1)
        store.record(labels, Outcome("OK"), settings, {}, {}, run_id="r1")
        postgres_proxy.stall()
        started = time.monotonic()
        with pytest.raises(sa.exc.SQLAlchemyError):
            store.record(labels, Outcome("ALERT"), settings, {}, {}, run_id="r2")
        assert time.monotonic() - started < 45
        store.engine.dispose()


class TestHttp:
    @pytest.mark.parametrize("headers_first", [True, False], ids=["endless-body", "endless-headers"])
    def test_a_dripping_answer_is_cut_at_the_channel_timeout(self, headers_first: bool) -> None:
        """One byte every 0.2 s never trips a per-read timeout; the whole-exchange deadline does."""
        with dripping_http_server(headers_first) as url:
            notifier = WebhookNotifier(f"{url}?token={PASSWORD}", timeout=2)
            started = time.monotonic()
            with pytest.raises(DeliveryError) as caught:
                notifier.send({"alert_name": "a", "status": "ALERT", "event": "firing"})
        elapsed = time.monotonic() - started
        assert "no complete answer from 127.0.0.1" in str(caught.value) and "within 2s" in str(caught.value)
        assert caught.value.retryable and PASSWORD not in str(caught.value)
        assert 1.5 < elapsed < 15


def test_a_silent_warehouse_is_a_recorded_and_notified_error_while_other_alerts_run(
    postgres_url: str, postgres_proxy: StallingProxy, tmp_path: Path
) -> None:
    """Checks mode: the stuck alert's check fails with the named error, the webhook hears it once, and the
    alert on a healthy warehouse in the same run is evaluated and recorded."""
    with loopback_receiver() as receiver:
        path = tmp_path / "alerts.yaml"
        path.write_text(
            f"""
databases:
  stuck: {{url: "{_via(postgres_url, postgres_proxy)}"}}
  fine: {{url: "sqlite:///fine.db"}}
receivers:
  hook: {{channel: webhook, url: "{receiver.url}"}}
defaults: {{schedule: "@hourly", notify: [hook], timeout: 1}}
alerts:
  - {{name: stuck, database: stuck, query: "{STALLING_QUERY}"}}
  - {{name: fine, database: fine, query: "SELECT 'ALERT' AS status"}}
"""
        )
        with dg.instance_for_test() as instance:
            started = time.monotonic()
            job = build_definitions(path, mode="checks").resolve_job_def("sqlsentinel_checks")
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            elapsed = time.monotonic() - started
            checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        sent = {(r.body["alert_name"], r.body["event"]) for r in receiver.delivered()}
    assert elapsed < 60
    assert not checks["stuck"].passed and checks["fine"].passed is False
    error = checks["stuck"].metadata["error"].value
    assert isinstance(error, str) and f"no answer from the database within {1 + GRACE:g}s" in error
    assert sent == {("stuck", "error"), ("fine", "firing")}
