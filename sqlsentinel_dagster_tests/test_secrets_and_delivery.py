"""Secrets never leak, whichever channel fails; one channel down never stops the others; the whole path
(`dagster job execute` of a firing alert) delivers one email and one webhook call."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.remote_representation.external_data import RepositorySnap  # test-only: the UI's snapshot
from dagster_shared.serdes import serialize_value

from sqlsentinel_dagster import NotificationsResource, build_definitions
from sqlsentinel_dagster.cli.main import main

from .conftest import alerts_yaml
from .loopback import Receiver, loopback_receiver
from .smtp_server import Mailbox, smtp_server

SECRET = "S3cret-Value-4f9a1c"


@pytest.fixture
def failing_receiver() -> Iterator[Receiver]:
    """An HTTP server that answers 500 to everything."""
    with loopback_receiver() as server:
        server.fail_with = 500
        yield server


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    """An SMTP server requiring STARTTLS and the login alerts / correct-password."""
    with smtp_server(tmp_path, "starttls", password="correct-password") as box:
        yield box


def _notify(channel: str, url: str) -> str:
    return {
        "webhook": f'[{{channel: webhook, url: "{url}/hook/${{SX_SECRET}}", bearer_token: "${{SX_SECRET}}"}}]',
        "slack_webhook": f'[{{channel: slack, webhook_url: "{url}/services/${{SX_SECRET}}"}}]',
        "slack_bot": '[{channel: slack, bot_token: "${SX_SECRET}", slack_channel: "#alerts"}]',
        "pagerduty": '[{channel: pagerduty, routing_key: "${SX_SECRET}"}]',
        "msteams": f'[{{channel: msteams, webhook_url: "{url}/teams/${{SX_SECRET}}"}}]',
        "email": "[{channel: email, recipients: [oncall@example.com]}]",
    }[channel]


@pytest.mark.parametrize("channel", ["webhook", "slack_webhook", "slack_bot", "pagerduty", "msteams", "email"])
def test_failing_channel_never_shows_its_secret(
    channel: str,
    write_alerts: object,
    sqlite_warehouse: Path,
    failing_receiver: Receiver,
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The channel fails; its secret is in no error, log line, event log, run config, UI snapshot or CLI output."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("SX_SECRET", SECRET)
    path = write_alerts(
        alerts_yaml("sqlite:///warehouse.db", extra=f"notify: {_notify(channel, failing_receiver.url)}")
    )  # type: ignore[operator]
    notifications = NotificationsResource(
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        smtp_username="alerts",
        smtp_password=dg.EnvVar("SX_SECRET"),
        smtp_ca_file=mailbox.ca_file,
        slack_api_url=failing_receiver.url,
        pagerduty_events_url=f"{failing_receiver.url}/v2/enqueue",
        max_attempts=2,
        retry_base_delay_seconds=0.01,
    )
    defs = build_definitions(path, notifications=notifications)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("sqlsentinel__error_rate").execute_in_process(
            instance=instance, raise_on_error=False
        )
        failure = result.failure_data_for_node("sqlsentinel_evaluate__default")
        assert failure is not None and failure.error is not None
        assert "1 notification(s) not delivered" in failure.error.message  # it did fail...
        run = instance.get_run_by_id(result.run_id)
        events = "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))
    env = {
        "SX_SECRET": SECRET,
        "SMTP_HOST": mailbox.host,
        "SMTP_PORT": str(mailbox.port),
        "SMTP_USERNAME": "alerts",
        "SMTP_PASSWORD": SECRET,
        "SMTP_USE_TLS": "true",
    }
    cli = CliRunner().invoke(main, ["test-notify", str(path), "error_rate"], env=env)
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert cli.exit_code == 1 and "FAILED" in cli.output
    places = {
        "error": failure.error.message,
        "event log": events,
        "run config": str(run.run_config if run else ""),
        "captured logs": caplog.text,
        "UI snapshot": snapshot,
        "CLI output": cli.output,
    }
    leaks = [where for where, text in places.items() if SECRET in text]
    assert leaks == [], f"{channel} leaked its secret into: {', '.join(leaks)}"


def test_one_channel_down_does_not_stop_the_others(
    write_alerts: object, sqlite_warehouse: Path, failing_receiver: Receiver
) -> None:
    """With a webhook answering 500 and a second healthy webhook, the healthy one still gets the firing."""
    with loopback_receiver() as healthy:
        notify = f'[{{channel: webhook, url: "{failing_receiver.url}"}}, {{channel: webhook, url: "{healthy.url}"}}]'
        path = write_alerts(alerts_yaml("sqlite:///warehouse.db", extra=f"notify: {notify}"))  # type: ignore[operator]
        defs = build_definitions(
            path, notifications=NotificationsResource(max_attempts=2, retry_base_delay_seconds=0.01)
        )
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("sqlsentinel__error_rate").execute_in_process(
                instance=instance, raise_on_error=False
            )
    assert [r.body["event"] for r in healthy.delivered()] == ["firing"]
    assert len(failing_receiver.requests) == 2  # tried twice in this run, left pending for the next
    failure = result.failure_data_for_node("sqlsentinel_evaluate__default")
    assert failure is not None and failure.error is not None
    assert (
        "firing via 0:webhook: webhook: HTTP 500 Internal Server Error: fail (2 tries; will retry"
        in failure.error.message
    )


def test_job_execute_of_a_firing_alert_sends_one_email_and_one_webhook(tmp_path: Path, dagster_home: Path) -> None:
    """End to end in a separate process: SMTP_* from the environment, one email and one webhook call."""
    (tmp_path / "warehouse.db").write_bytes(b"")
    import sqlite3

    with sqlite3.connect(tmp_path / "warehouse.db") as db:
        db.execute("CREATE TABLE api_metrics (endpoint TEXT, error_pct REAL)")
        db.execute("INSERT INTO api_metrics VALUES ('/orders', 7.5)")
    with smtp_server(tmp_path) as box, loopback_receiver() as hook:
        notify = (
            "[{channel: email, recipients: [oncall@example.com], subject: 'Critical: {alert_name}'},"
            ' {channel: webhook, url: "${SX_HOOK_URL}"}]'
        )
        (tmp_path / "alerts.yaml").write_text(alerts_yaml("sqlite:///warehouse.db", extra=f"notify: {notify}"))
        (tmp_path / "defs.py").write_text(
            textwrap.dedent(
                """
                from sqlsentinel_dagster import build_definitions
                defs = build_definitions("alerts.yaml")
                """
            )
        )
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home),
            "SX_HOOK_URL": hook.url,
            "SMTP_HOST": box.host,
            "SMTP_PORT": str(box.port),
            "SMTP_USE_TLS": "false",
            "SMTP_FROM_ADDRESS": "sentinel@example.com",
        }
        dagster = str(Path(sys.executable).parent / "dagster")
        result = subprocess.run(
            [dagster, "job", "execute", "-f", "defs.py", "-j", "sqlsentinel__error_rate"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [m["Subject"] for m in box.messages] == ["Critical: error_rate"]
    assert box.envelopes == [("sentinel@example.com", ["oncall@example.com"])]
    assert [r.body["event"] for r in hook.delivered()] == ["firing"]
    assert hook.requests[0].body["actual_value"] == 7.5
