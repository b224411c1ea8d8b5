"""What a new user trips on in the first hour: a cron field out of range, a variable set but empty, a query
without a status column or with several rows, counts in plain words, and a Slack message without its
description."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqlsentinel_dagster.cli.main import main

from .loopback import Receiver, loopback_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook (or Slack incoming-webhook) receiver on loopback."""
    with loopback_receiver() as server:
        yield server


@pytest.fixture
def warehouse(sqlite_warehouse: Path) -> Path:
    """The shared SQLite warehouse: api_metrics with two endpoints."""
    return sqlite_warehouse


def _alerts(tmp_path: Path, warehouse: Path, body: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(f'database: {{url: "sqlite:///{warehouse}"}}\nalerts:\n{body}')
    return path


def _run(alerts: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["run", str(alerts), *args], env=env)
    return result.exit_code, result.output


def test_validate_names_the_cron_field_out_of_range(tmp_path: Path, warehouse: Path) -> None:
    """`0 25 * * *` has five fields: the problem is the hour, and the message says its range."""
    alerts = _alerts(tmp_path, warehouse, '  - {name: a, query: "SELECT \'OK\' AS status", schedule: "0 25 * * *"}\n')
    result = CliRunner().invoke(main, ["validate", str(alerts)])
    assert result.exit_code == 1
    assert "invalid cron expression '0 25 * * *': the hour is 25, outside 0-23" in result.output
    assert "use five fields" not in result.output


def test_a_query_returning_several_rows_says_so_in_text_and_json(tmp_path: Path, warehouse: Path) -> None:
    """Only the first row is judged: `sqlsentinel run` says so in its text and its JSON; one row does not."""
    body = (
        "  - name: per_endpoint\n"
        "    query: \"SELECT CASE WHEN error_pct > 5 THEN 'ALERT' ELSE 'OK' END AS status, error_pct AS actual_value"
        ' FROM api_metrics ORDER BY error_pct DESC"\n'
        '    schedule: "@hourly"\n'
        "  - name: worst\n"
        "    query: \"SELECT 'OK' AS status FROM api_metrics LIMIT 1\"\n"
        '    schedule: "@hourly"\n'
    )
    alerts = _alerts(tmp_path, warehouse, body)
    code, text = _run(alerts, "--dry-run")
    assert code == 0, text
    assert "per_endpoint: ALERT (value 7.5); decision:" in text
    assert "  note: the query returned more than one row; the first was used" in text
    assert text.count("note:") == 1
    code, output = _run(alerts, "--dry-run", "--json")
    rows = {row["alert"]: row for row in json.loads(output[output.index("[") :])}
    assert rows["per_endpoint"]["several_rows"] is True and rows["worst"]["several_rows"] is False


def test_a_query_without_values_shows_none_in_parentheses(tmp_path: Path, warehouse: Path) -> None:
    """A result with a status and no actual_value or threshold reads `OK; decision`, not `(value None, ...)`;
    an error without a status column reads `ERROR; decision` with the error."""
    body = (
        "  - {name: plain, query: \"SELECT 'OK' AS status\", schedule: '@hourly'}\n"
        '  - {name: no_status, query: "SELECT 1 AS x", schedule: "@hourly"}\n'
    )
    code, text = _run(_alerts(tmp_path, warehouse, body), "--dry-run")
    assert "plain: OK; decision:" in text
    assert "no_status: ERROR; decision:" in text and "status" in text.split("no_status: ERROR", 1)[1]
    assert "None" not in text
    assert code == 1  # the error is the run's outcome


def test_a_variable_set_but_empty_is_named_as_written_and_called_empty(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """`url: ${HOOK_URL}` with HOOK_URL="" names HOOK_URL and says it is empty (not that WEBHOOK_URL is unset)."""
    body = (
        "  - name: fires\n"
        "    query: \"SELECT 'ALERT' AS status\"\n"
        '    schedule: "@hourly"\n'
        '    notify: [{channel: webhook, url: "${HOOK_URL}"}]\n'
    )
    code, text = _run(
        _alerts(tmp_path, warehouse, body), "--database-url", f"sqlite:///{tmp_path / 'state.db'}", env={"HOOK_URL": ""}
    )
    assert code == 1
    assert "environment variable 'HOOK_URL' is set but empty" in text
    assert "WEBHOOK_URL" not in text


def test_a_delivery_counts_one_try_in_words_and_slack_carries_the_description(
    tmp_path: Path, warehouse: Path, receiver: Receiver
) -> None:
    """A Slack notification delivered at once reads 'after 1 try', and the message shows the alert's
    description under its headline, as SQL Sentinel's did."""
    body = (
        "  - name: fires\n"
        '    description: "Error rate of the worst endpoint above 5%"\n'
        "    query: \"SELECT 'ALERT' AS status, 7.5 AS actual_value, 5 AS threshold\"\n"
        '    schedule: "@hourly"\n'
        f'    notify: [{{channel: slack, webhook_url: "{receiver.url}"}}]\n'
    )
    code, text = _run(_alerts(tmp_path, warehouse, body), "--database-url", f"sqlite:///{tmp_path / 'state.db'}")
    assert code == 0, text
    assert "delivered after 1 try" in text and "1 tries" not in text
    [posted] = receiver.delivered()
    first_section = posted.body["attachments"][0]["blocks"][0]["text"]["text"]
    assert first_section.splitlines()[1] == "Error rate of the worst endpoint above 5%"
