"""`group: true`: one message per target per run listing every alert, while each alert's notification stays
exactly-once in the ledger. Real batched runs (checks mode), loopback HTTP and SMTP servers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sqlsentinel_dagster import ConfigError, build_definitions, load_config
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.definitions.resources import NotificationsResource
from sqlsentinel_dagster.state.store import StateStore

from .loopback import Receiver, loopback_receiver
from .smtp_server import smtp_server

ALERTS = [f"table_{i}_late" for i in range(8)]
STATUS = "CASE WHEN firing = 1 THEN 'ALERT' ELSE 'OK' END AS status, 7 AS actual_value, 5 AS threshold"


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """A SQLite warehouse whose `flags` table says which alerts fire."""
    path = tmp_path / "w.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE flags (name TEXT PRIMARY KEY, firing INTEGER)")
        db.executemany("INSERT INTO flags VALUES (?, 0)", [(a,) for a in ALERTS])
    return path


def fire(warehouse: Path, *names: str) -> None:
    with sqlite3.connect(warehouse) as db:
        db.executemany("UPDATE flags SET firing = 1 WHERE name = ?", [(n,) for n in names])


def write_alerts(tmp_path: Path, warehouse: Path, receivers: str, notify: str) -> Path:
    """Eight alerts on `warehouse`, each notifying ``notify``."""
    alerts = "\n".join(
        f"""  - name: {name}
    query: "SELECT {STATUS} FROM flags WHERE name = '{name}'"
    schedule: "*/5 * * * *"
    notify: {notify}"""
        for name in ALERTS
    )
    path = tmp_path / "alerts.yaml"
    path.write_text(
        f'databases: {{main: {{url: "sqlite:///{warehouse}"}}}}\nreceivers:\n{receivers}\nalerts:\n{alerts}\n'
    )
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as rec:
        yield rec


def run_batch(path: Path, instance: dg.DagsterInstance, **resources: Any) -> dg.ExecuteInProcessResult:
    defs = build_definitions(path, mode="checks", **resources)
    return defs.resolve_job_def("sqlsentinel_checks").execute_in_process(instance=instance, raise_on_error=False)


def arrays(receiver: Receiver, path: str) -> list[list[dict[str, Any]]]:
    """The JSON arrays delivered to ``path`` (one per grouped message)."""
    return [r.body for r in receiver.delivered() if r.path == path]


class TestOneMessagePerTarget:
    def test_a_batch_of_firing_alerts_is_one_webhook_array_and_one_slack_message(
        self, tmp_path: Path, warehouse: Path, receiver: Receiver
    ) -> None:
        """Eight alerts fire in one batched run: the grouped webhook gets one JSON array of eight, Slack one
        message with a line per alert; an ungrouped webhook still gets eight messages."""
        path = write_alerts(
            tmp_path,
            warehouse,
            f"""  hook: {{channel: webhook, url: "{receiver.url}/grouped", group: true}}
  chat: {{channel: slack, webhook_url: "{receiver.url}/slack", group: true}}
  each: {{channel: webhook, url: "{receiver.url}/each"}}""",
            "[hook, chat, each]",
        )
        fire(warehouse, *ALERTS)
        with dg.instance_for_test() as instance:
            assert run_batch(path, instance).success
        (array,) = arrays(receiver, "/grouped")
        assert sorted(m["alert_name"] for m in array) == ALERTS and {m["event"] for m in array} == {"firing"}
        assert all(m["actual_value"] == 7 and m["threshold"] == 5 for m in array)
        (slack,) = [r.body for r in receiver.delivered() if r.path == "/slack"]
        assert slack["text"] == "8 alerts: 8 firing"
        lines = "\n".join(block["text"]["text"] for block in slack["blocks"]).splitlines()
        assert len(lines) == 9 and all(any(a in line for line in lines) for a in ALERTS)
        assert len([r for r in receiver.delivered() if r.path == "/each"]) == 8

    def test_email_is_one_mail_with_a_table(self, tmp_path: Path, warehouse: Path) -> None:
        """Three alerts fire: one mail whose subject counts them and whose HTML has a row per alert."""
        with smtp_server(tmp_path) as box:
            path = write_alerts(
                tmp_path,
                warehouse,
                "  mail: {channel: email, recipients: [oncall@example.com], group: true}",
                "[mail]",
            )
            fire(warehouse, *ALERTS[:3])
            smtp = NotificationsResource(smtp_host=box.host, smtp_port=box.port, smtp_security="none")
            with dg.instance_for_test() as instance:
                assert run_batch(path, instance, notifications=smtp).success
            (mail,) = box.messages
        assert mail["Subject"] == "[sqlsentinel] 3 alerts: 3 firing"
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert html.count("<tr>") == 4 and all(f"<td>{a}</td>" in html for a in ALERTS[:3])


class TestExactlyOnce:
    def test_a_failed_group_is_retried_whole_and_never_repeats_what_was_delivered(
        self, tmp_path: Path, warehouse: Path, receiver: Receiver
    ) -> None:
        """Run 1: four alerts fire, delivered in one message. Run 2: two more fire, the receiver is down: the
        run fails, both stay pending. Run 3: one message with exactly those two. Run 4: nothing. Every
        notification reached the receiver once."""
        path = write_alerts(
            tmp_path, warehouse, f'  hook: {{channel: webhook, url: "{receiver.url}/grouped", group: true}}', "[hook]"
        )
        with dg.instance_for_test() as instance:
            fire(warehouse, *ALERTS[:4])
            assert run_batch(path, instance).success
            fire(warehouse, *ALERTS[4:6])
            receiver.fail_with = 503
            failed = run_batch(path, instance)
            assert not failed.success
            store = StateStore.from_url(instance_state_url(instance))
            assert sorted(i.alert for a in ALERTS for i in store.pending(a)) == ALERTS[4:6]
            receiver.fail_with = None
            assert run_batch(path, instance).success
            assert run_batch(path, instance).success
        delivered = arrays(receiver, "/grouped")
        assert [sorted(m["alert_name"] for m in array) for array in delivered] == [ALERTS[:4], ALERTS[4:6]]
        keys = [m["idempotency_key"] for array in delivered for m in array]
        assert len(keys) == len(set(keys)) == 6
        failures = [r for r in receiver.requests if r.answered >= 500]
        assert len(failures) == 3 and all(len(r.body) == 2 for r in failures)  # 3 tries, each the same two

    def test_in_jobs_mode_each_run_sends_a_group_of_one(
        self, tmp_path: Path, warehouse: Path, receiver: Receiver
    ) -> None:
        """One alert per run: the grouped webhook still gets the same shape, an array (of one)."""
        path = write_alerts(
            tmp_path, warehouse, f'  hook: {{channel: webhook, url: "{receiver.url}/grouped", group: true}}', "[hook]"
        )
        fire(warehouse, ALERTS[0])
        with dg.instance_for_test() as instance:
            job = build_definitions(path).resolve_job_def(f"sqlsentinel__{ALERTS[0]}")
            assert job.execute_in_process(instance=instance).success
        assert [[m["alert_name"] for m in array] for array in arrays(receiver, "/grouped")] == [[ALERTS[0]]]


class TestValidation:
    @pytest.mark.parametrize(
        ("receiver_yaml", "message"),
        [
            ("{channel: pagerduty, routing_key: R, group: true}", "PagerDuty keeps one incident per alert"),
            ("{channel: webhook, url: 'http://x', body: '{{ alert_name }}', group: true}", "so body"),
            ("{channel: email, recipients: [a@example.com], subject: 'x', group: true}", "so subject"),
        ],
        ids=["pagerduty", "webhook-body", "email-subject"],
    )
    def test_group_where_it_cannot_apply_is_a_located_error(
        self, tmp_path: Path, warehouse: Path, receiver_yaml: str, message: str
    ) -> None:
        """Grouping a channel that cannot show many alerts in one message is refused when the file loads."""
        path = write_alerts(tmp_path, warehouse, f"  r: {receiver_yaml}", "[r]")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert message in str(caught.value) and "alerts.yaml:3 receivers.r" in str(caught.value)
