"""Query results that would break a channel or flood the state: NaN and infinities, binary columns, huge text,
too many columns, repeated reserved columns. Each is made safe once, when the result is read."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from sqlsentinel_dagster import ResultContractError, build_definitions
from sqlsentinel_dagster.cycle.evaluate import evaluate_query
from sqlsentinel_dagster.cycle.results import MAX_CELL_CHARS, MAX_CONTEXT_COLUMNS, parse_result
from sqlsentinel_dagster.definitions.resources import NotificationsResource
from sqlsentinel_dagster.sql.drivers import create_warehouse_engine
from sqlsentinel_dagster.state.store import StateStore

from .loopback import loopback_receiver

NON_FINITE = (
    "SELECT 'ALERT' AS status, 'NaN'::float8 AS actual_value, 'Infinity'::numeric AS threshold, "
    "'-Infinity'::float8 AS low, decode('00ff10', 'hex') AS payload, repeat('x', 10000000) AS big"
)


class TestValues:
    def test_non_finite_numbers_binary_and_huge_text_from_postgres_are_safe(self, postgres_url: str) -> None:
        """NaN/Infinity become text valid in any JSON; bytea is a hex summary, not '<memory at 0x...>'; a 10 MB
        text column is cut to MAX_CELL_CHARS and says so."""
        engine = create_warehouse_engine(postgres_url)
        result = evaluate_query(engine, alert="a", database="pg", query=NON_FINITE, timeout=30)
        engine.dispose()
        assert (result.actual_value, result.threshold, result.context["low"]) == ("NaN", "Infinity", "-Infinity")
        assert result.context["payload"] == "<3 bytes: 0x00ff10>"
        assert result.context["big"].endswith("... (10,000,000 characters, cut)")
        assert len(result.context["big"]) < MAX_CELL_CHARS + 50
        json.dumps(result.context, allow_nan=False)  # strict JSON, as requests and PagerDuty require

    def test_too_many_columns_are_counted_not_kept(self) -> None:
        """Context keeps MAX_CONTEXT_COLUMNS columns and says how many more there were."""
        columns = ["status", *(f"c{i}" for i in range(MAX_CONTEXT_COLUMNS + 7))]
        result = parse_result("a", columns, [("OK", *range(MAX_CONTEXT_COLUMNS + 7))])
        assert len(result.context) == MAX_CONTEXT_COLUMNS + 1 and result.context["..."] == "7 more columns not shown"

    def test_two_context_columns_of_one_name_are_both_kept(self) -> None:
        """A join's two 'id' columns: the second is 'id (2)', not a silent overwrite."""
        result = parse_result("a", ["status", "id", "id"], [("OK", 1, 2)])
        assert result.context == {"id": 1, "id (2)": 2}

    @pytest.mark.parametrize("column", ["status", "actual_value", "threshold"])
    def test_a_repeated_reserved_column_is_a_contract_error(self, column: str) -> None:
        """Two 'status' columns (in any case) is an error naming it, not 'the last one wins'."""
        with pytest.raises(ResultContractError, match=f"more than one '{column}' column"):
            parse_result("a", ["status", column, column.upper()], [("OK", "ALERT", 1)])

    def test_a_binary_status_is_named_without_its_bytes_repr(self) -> None:
        """A status that is not text is refused, shown safely."""
        with pytest.raises(ResultContractError, match=r"'status' is '<5 bytes: 0x414c455254>'"):
            parse_result("a", ["status"], [(b"ALERT",)])


def test_a_nan_alert_is_delivered_to_pagerduty_and_a_webhook_and_stored(postgres_url: str, tmp_path: Path) -> None:
    """End to end: the run records the alert, and both HTTP channels get valid JSON, delivered at once (before
    this, PagerDuty's payload could not be encoded and stayed pending until it expired)."""
    path = tmp_path / "alerts.yaml"
    with loopback_receiver() as receiver:
        path.write_text(
            f"""
databases: {{pg: {{url: "{postgres_url}"}}}}
receivers:
  hook: {{channel: webhook, url: "{receiver.url}/hook"}}
  page: {{channel: pagerduty, routing_key: R0UTING}}
alerts:
  - name: weird_numbers
    database: pg
    schedule: "@hourly"
    query: "{NON_FINITE}"
    notify: [hook, page]
"""
        )
        notifications = NotificationsResource(pagerduty_events_url=f"{receiver.url}/v2/enqueue")
        with dg.instance_for_test() as instance:
            job = build_definitions(path, notifications=notifications).resolve_job_def("sqlsentinel__weird_numbers")
            assert job.execute_in_process(instance=instance).success
            store = StateStore.from_url(f"sqlite:///{Path(instance.root_directory) / 'sqlsentinel.db'}")
            assert store.pending("weird_numbers") == []
        bodies = {r.path: r.body for r in receiver.delivered()}
    assert bodies["/hook"]["actual_value"] == "NaN" and bodies["/hook"]["threshold"] == "Infinity"
    assert bodies["/v2/enqueue"]["event_action"] == "trigger"
