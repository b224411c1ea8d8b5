"""Failed-rows alerts (`rows:`): the query returns the offending rows; the alert fires on their count and the
messages show them (Slack table, email table + CSV attachment, webhook JSON, check metadata). Real databases,
real runs, loopback servers."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.config.rows import RowsSpec
from sqlsentinel_dagster.cycle.evaluate import evaluate_query
from sqlsentinel_dagster.definitions.resources import NotificationsResource
from sqlsentinel_dagster.sql.drivers import create_warehouse_engine

from .loopback import Receiver, loopback_receiver
from .smtp_server import smtp_server

ORPHANS = "SELECT id, created_at, amount FROM orders WHERE customer_id IS NULL ORDER BY id"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A SQLite warehouse with 25 orders, 12 of them without a customer."""
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER, created_at TEXT, amount REAL, customer_id INTEGER)")
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [(i, f"2026-11-{1 + i % 28:02d}", i * 1.5, None if i % 2 else i) for i in range(25)],
        )
    return path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as rec:
        yield rec


def _evaluate(url: str, query: str, spec: RowsSpec) -> Any:
    engine = create_warehouse_engine(url)
    try:
        return evaluate_query(engine, alert="orphans", database="w", query=query, timeout=30, rows=spec)
    finally:
        engine.dispose()


class TestEvaluation:
    def test_the_count_is_the_value_and_max_the_threshold(self, shop: Path) -> None:
        """12 rows, max 0: ALERT with value 12 and threshold 0; the sample holds `sample` rows; no status column."""
        result = _evaluate(f"sqlite:///{shop}", ORPHANS, RowsSpec(sample=3))
        assert (result.status, result.actual_value, result.threshold, result.more_rows) == ("ALERT", 12, 0, False)
        assert result.columns == ("id", "created_at", "amount") and [r["id"] for r in result.rows] == [1, 3, 5]

    def test_within_max_is_ok(self, shop: Path) -> None:
        """12 rows with max 12 is OK."""
        assert _evaluate(f"sqlite:///{shop}", ORPHANS, RowsSpec(max=12)).status == "OK"

    def test_beyond_the_limit_the_count_is_a_lower_bound(self, shop: Path) -> None:
        """limit 5: the count is 5 and says there are more; attach keeps every fetched row, no more."""
        result = _evaluate(f"sqlite:///{shop}", ORPHANS, RowsSpec(limit=5, attach="csv", sample=2))
        assert (result.actual_value, result.more_rows, len(result.rows)) == (5, True, 5)

    def test_postgres_values_of_every_kind_are_safe(self, postgres_url: str) -> None:
        """Dates, decimals, binary and NaN come out as values any channel can carry."""
        query = (
            "SELECT date '2026-11-30' AS day, 12.50::numeric AS amount, decode('ff', 'hex') AS raw, "
            "'NaN'::float8 AS ratio, repeat('x', 5000) AS note"
        )
        (row,) = _evaluate(postgres_url, query, RowsSpec()).rows
        assert (row["raw"], row["ratio"]) == ("<1 bytes: 0xff>", "NaN") and str(row["amount"]) == "12.50"
        assert row["note"].endswith("(5,000 characters, cut)")


def _alerts(tmp_path: Path, shop: Path, notify: str, rows: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        f"""
databases: {{shop: {{url: "sqlite:///{shop}"}}}}
alerts:
  - name: orders_without_customer
    query: "{ORPHANS}"
    schedule: "@hourly"
    rows: {rows}
    notify: {notify}
"""
    )
    return path


def _run(path: Path, mode: str = "jobs", **resources: Any) -> dg.ExecuteInProcessResult:
    defs = build_definitions(path, mode=mode, **resources)  # type: ignore[arg-type]
    name = "sqlsentinel_checks" if mode == "checks" else "sqlsentinel__orders_without_customer"
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(name).execute_in_process(instance=instance)
        assert result.success
        return result


class TestMessages:
    def test_email_has_a_table_and_the_csv_of_every_row(self, tmp_path: Path, shop: Path) -> None:
        """attach: csv: the mail shows 3 rows in its HTML table and attaches all 12 as CSV."""
        with smtp_server(tmp_path) as box:
            path = _alerts(
                tmp_path, shop, "[{channel: email, recipients: [data@example.com]}]", "{sample: 3, attach: csv}"
            )
            _run(
                path, notifications=NotificationsResource(smtp_host=box.host, smtp_port=box.port, smtp_security="none")
            )
            (mail,) = box.messages
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert html.count("<tr>") == 4 and "12 rows, more than 0 allowed" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        (attachment,) = list(mail.iter_attachments())
        assert attachment.get_filename() == "orders_without_customer.csv"
        table = list(csv.reader(io.StringIO(attachment.get_content())))
        assert table[0] == ["id", "created_at", "amount"] and len(table) == 13 and table[1][0] == "1"

    def test_webhook_gets_the_count_and_rows_as_objects(self, tmp_path: Path, shop: Path, receiver: Receiver) -> None:
        """Without attach, the webhook JSON has `row_count` and the sample as objects keyed by column."""
        path = _alerts(tmp_path, shop, f'[{{channel: webhook, url: "{receiver.url}"}}]', "{sample: 2}")
        _run(path)
        (request,) = receiver.delivered()
        body = request.body
        assert body["row_count"] == 12 and body["actual_value"] == 12 and body["threshold"] == 0
        assert body["rows"] == [
            {"id": 1, "created_at": "2026-11-02", "amount": 1.5},
            {"id": 3, "created_at": "2026-11-04", "amount": 4.5},
        ]

    def test_slack_shows_the_sample_as_a_table(self, tmp_path: Path, shop: Path, receiver: Receiver) -> None:
        """A code-block table with the header and `sample` rows, and how many of how many."""
        path = _alerts(tmp_path, shop, f'[{{channel: slack, webhook_url: "{receiver.url}"}}]', "{sample: 2}")
        _run(path)
        (request,) = receiver.delivered()
        texts = [b.get("text", {}).get("text", "") for b in request.body["attachments"][0]["blocks"]]
        table = next(t for t in texts if t.startswith("```"))
        assert table.splitlines()[0] == "```id  created_at  amount" and len(table.splitlines()) == 3
        assert any("2 of 12 rows" in str(b) for b in request.body["attachments"][0]["blocks"])

    def test_checks_mode_puts_the_count_and_a_markdown_sample_in_the_evaluation(
        self, tmp_path: Path, shop: Path
    ) -> None:
        """The asset check evaluation carries row_count and a markdown table of the sample."""
        path = _alerts(tmp_path, shop, "[{channel: log}]", "{sample: 2}")
        (evaluation,) = _run(path, mode="checks").get_asset_check_evaluations()
        assert not evaluation.passed and evaluation.metadata["row_count"].value == 12
        markdown = evaluation.metadata["rows"].value
        assert markdown.startswith("12 rows, the first 2:") and "| id | created_at | amount |" in markdown
        assert markdown.count("\n| ") == 4  # header, rule, two rows


def test_a_rows_alert_needs_no_status_column_in_validation(tmp_path: Path, shop: Path) -> None:
    """`sqlsentinel validate` accepts it, and `limit` past the maximum is a located error."""
    from sqlsentinel_dagster import ConfigError, load_config

    assert load_config(_alerts(tmp_path, shop, "[{channel: log}]", "{max: 3}")).alert("orders_without_customer").rows
    with pytest.raises(ConfigError, match=r"alerts.yaml:7 .*rows.limit: must be at most 100000, got 1000000"):
        load_config(_alerts(tmp_path, shop, "[{channel: log}]", "{limit: 1000000}"))


def test_pagerduty_gets_a_short_summary_with_the_count(tmp_path: Path, shop: Path, receiver: Receiver) -> None:
    """PagerDuty's summary names the count; its details carry row_count, not the rows."""
    path = _alerts(tmp_path, shop, "[{channel: pagerduty, routing_key: R0UTING}]", "{sample: 2}")
    _run(path, notifications=NotificationsResource(pagerduty_events_url=f"{receiver.url}/v2/enqueue"))
    (request,) = receiver.delivered()
    payload = request.body["payload"]
    assert payload["summary"].endswith("(12 rows)") and payload["custom_details"]["row_count"] == 12
    assert "rows" not in payload["custom_details"]
