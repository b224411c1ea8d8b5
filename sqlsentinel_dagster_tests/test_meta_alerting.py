"""Alerting about alerting: fallback receivers, test messages, and the run-failure sensor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from sqlsentinel_dagster import AlertStateResource, NotificationsResource, build_definitions
from sqlsentinel_dagster.cli.main import main

from .conftest import alerts_yaml
from .loopback import Receiver, loopback_receiver

FAST = NotificationsResource(max_attempts=1, retry_base_delay_seconds=0.01)


@pytest.fixture
def fallback() -> Iterator[Receiver]:
    """The fallback receiver: a webhook on loopback."""
    with loopback_receiver() as server:
        yield server


def _file(write_alerts: object, notify: str, fallback_url: str, **extra: str) -> Path:
    lines = [f"notify: {notify}", *(f"{k}: {v}" for k, v in extra.items())]
    body = alerts_yaml("sqlite:///warehouse.db", extra="\n".join(lines), **{})
    return write_alerts(f'fallback:\n  - {{channel: webhook, url: "{fallback_url}"}}\n' + body)  # type: ignore[operator, no-any-return]


def test_fallback_is_told_when_a_notification_is_given_up(
    write_alerts: object, sqlite_warehouse: Path, fallback: Receiver
) -> None:
    """A channel refusing for good (HTTP 400) leaves the firing undeliverable; the fallback hears about it."""
    with loopback_receiver() as refusing:
        refusing.fail_with = 400
        path = _file(write_alerts, f'[{{channel: webhook, url: "{refusing.url}"}}]', fallback.url)
        defs = build_definitions(path, notifications=FAST)
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("sqlsentinel__error_rate").execute_in_process(
                instance=instance, raise_on_error=False
            )
    assert not result.success and len(refusing.requests) == 1
    [told] = [r.body for r in fallback.delivered()]
    assert told["event"] == "error" and told["reason"] == "delivery failed"
    assert "notification(s) of alert 'error_rate' could not be delivered: firing via 0:webhook (failed" in told["error"]


def test_error_notifications_also_go_to_the_fallback(
    write_alerts: object, sqlite_warehouse: Path, fallback: Receiver
) -> None:
    """A query error notifies the alert's channels and the fallback receivers."""
    with loopback_receiver() as own:
        path = write_alerts(  # type: ignore[operator]
            f'fallback:\n  - {{channel: webhook, url: "{fallback.url}"}}\n'
            + alerts_yaml(
                "sqlite:///warehouse.db", table="missing", extra=f'notify: [{{channel: webhook, url: "{own.url}"}}]'
            )
        )
        defs = build_definitions(path, notifications=FAST)
        with dg.instance_for_test() as instance:
            defs.resolve_job_def("sqlsentinel__error_rate").execute_in_process(instance=instance, raise_on_error=False)
    assert [r.body["event"] for r in own.delivered()] == ["error"]
    [told] = [r.body for r in fallback.delivered()]
    assert told["event"] == "error" and "no such table: missing" in told["error"]


def test_test_notify_cli_and_job_send_a_test_message(write_alerts: object, sqlite_warehouse: Path) -> None:
    """`sqlsentinel test-notify` and the sqlsentinel_test_notify job send event 'test' through each channel."""
    with loopback_receiver() as hook:
        path = write_alerts(
            alerts_yaml(
                "sqlite:///warehouse.db", extra=f'notify: [{{channel: webhook, url: "{hook.url}"}}, {{channel: log}}]'
            )
        )  # type: ignore[operator]
        cli = CliRunner().invoke(main, ["test-notify", str(path), "error_rate"])
        defs = build_definitions(path, notifications=FAST)
        with dg.instance_for_test() as instance:
            job = defs.resolve_job_def("sqlsentinel_test_notify").execute_in_process(
                instance=instance,
                run_config={"ops": {"sqlsentinel_test_notify_op": {"config": {"alert": "error_rate"}}}},
            )
    assert cli.exit_code == 0, cli.output
    assert cli.output.splitlines() == ["0:webhook: delivered (1 try)", "1:log: delivered (1 try)"]
    assert job.success
    assert [r.body["event"] for r in hook.delivered()] == ["test", "test"]
    assert hook.requests[0].body["reason"] == "test message: checking this channel works"


def test_test_notify_of_an_unknown_alert_fails_clearly(write_alerts: object, sqlite_warehouse: Path) -> None:
    """Asking for an alert that does not exist says so."""
    path = write_alerts(alerts_yaml("sqlite:///warehouse.db"))  # type: ignore[operator]
    cli = CliRunner().invoke(main, ["test-notify", str(path), "nope"])
    assert cli.exit_code == 1 and "no alert named 'nope'" in cli.output


def test_run_failure_sensor_tells_the_fallback_about_unexpected_failures(
    write_alerts: object, sqlite_warehouse: Path, fallback: Receiver, tmp_path: Path
) -> None:
    """A run that fails before recording an outcome (state database unreachable) reaches the fallback once;
    a run that failed after recording (a query error, already notified) does not."""
    path = _file(write_alerts, "[{channel: log}]", fallback.url)
    broken_state = AlertStateResource(database_url=f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    defs = build_definitions(path, state=broken_state, notifications=FAST)
    sensor = defs.resolve_sensor_def("sqlsentinel_run_failure_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("sqlsentinel__error_rate").execute_in_process(
            instance=instance, raise_on_error=False
        )
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and not result.success and "sqlsentinel/decision" not in run.tags
        failure_event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        step_failure = result.failure_data_for_node("sqlsentinel_evaluate__default")
        assert step_failure is not None and step_failure.error is not None
        assert "alert 'error_rate' is ALERT but the alert state could not be recorded" in step_failure.error.message
        context = dg.build_run_status_sensor_context(
            sensor_name="sqlsentinel_run_failure_sensor",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failure_event,
            resources={"sqlsentinel_notifications": FAST},
        ).for_run_failure()
        sensor(context)
        handled = run.with_tags({**run.tags, "sqlsentinel/decision": "error"})
        sensor(
            dg.build_run_status_sensor_context(
                sensor_name="sqlsentinel_run_failure_sensor",
                dagster_instance=instance,
                dagster_run=handled,
                dagster_event=failure_event,
                resources={"sqlsentinel_notifications": FAST},
            ).for_run_failure()
        )
    [told] = [r.body for r in fallback.delivered()]
    assert (
        told["alert_name"] == "error_rate"
        and told["reason"] == "alert job sqlsentinel__error_rate failed before recording an outcome"
    )
    assert told["idempotency_key"] == f"error_rate/run-failure/{run.run_id}/fallback:0:webhook"
