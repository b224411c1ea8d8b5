"""Evaluating a query: the result contract, read-only execution, timeouts and errors, on real databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sqlsentinel_dagster import AlertQueryError, ResultContractError, evaluate_query, parse_result
from sqlsentinel_dagster.sql.drivers import create_warehouse_engine, resolve_sqlite_path

from .conftest import FIRING_QUERY, drop_table, seed_metrics

SLOW_QUERY = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS status FROM c",
    "postgresql": "SELECT pg_sleep(5) AS status",
    "mysql": "SELECT SLEEP(5) AS status",
}


class TestParseResult:
    def test_status_any_case_values_and_context(self) -> None:
        """'alert' in any case is ALERT; actual_value and threshold are read; other columns become context."""
        result = parse_result("a", ["STATUS", "Actual_Value", "threshold", "endpoint"], [("Alert", 7.5, 5, "/x")])
        assert (result.status, result.actual_value, result.threshold) == ("ALERT", 7.5, 5)
        assert result.context == {"endpoint": "/x"} and result.firing and not result.more_rows

    def test_ok_without_optional_columns(self) -> None:
        """Only `status` is required; the optional values are None."""
        result = parse_result("a", ["status"], [(" ok ",)])
        assert (result.status, result.actual_value, result.threshold, result.context) == ("OK", None, None, {})

    def test_more_than_one_row_uses_the_first_and_says_so(self) -> None:
        """With several rows, the first decides and `more_rows` is set."""
        result = parse_result("a", ["status"], [("OK",), ("ALERT",)])
        assert result.status == "OK" and result.more_rows

    @pytest.mark.parametrize(
        ("columns", "rows", "problem"),
        [
            (["status"], [], "the query returned no rows; the query returned columns: status"),
            (["state", "n"], [("ALERT", 1)], "the result has no 'status' column; the query returned columns: state, n"),
            (
                ["status"],
                [("FIRING",)],
                "'status' is 'FIRING', expected 'ALERT' or 'OK'; the query returned columns: status",
            ),
            (["status"], [(None,)], "'status' is None, expected 'ALERT' or 'OK'"),
        ],
        ids=["no_rows", "no_status_column", "unknown_status", "null_status"],
    )
    def test_contract_violations_name_the_alert_and_the_columns(self, columns, rows, problem) -> None:  # type: ignore[no-untyped-def]
        """No rows, no status column or an unknown status raise an error naming the alert and the columns."""
        with pytest.raises(ResultContractError) as caught:
            parse_result("orders_late", columns, rows)
        assert str(caught.value).startswith("alert 'orders_late': ")
        assert problem in str(caught.value)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path, metrics_table: str) -> Iterator[tuple[sa.Engine, str]]:
    """A real warehouse of each kind with a metrics table where /orders is at 7.5% errors."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'w.db'}"
    else:
        url = request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mariadb_url")
    seed_metrics(url, metrics_table, [("/orders", 7.5), ("/users", 1.0)])
    engine = create_warehouse_engine(url)
    yield engine, metrics_table
    engine.dispose()
    drop_table(url, metrics_table)


class TestEvaluateOnRealDatabases:
    def test_firing_and_ok_results(self, warehouse: tuple[sa.Engine, str]) -> None:
        """The same query fires above the data's maximum and is OK below it, with values and context."""
        engine, table = warehouse
        firing = evaluate_query(
            engine, alert="a", database="w", query=FIRING_QUERY.format(threshold=5, table=table), timeout=10
        )
        ok = evaluate_query(
            engine, alert="a", database="w", query=FIRING_QUERY.format(threshold=10, table=table), timeout=10
        )
        assert (firing.status, float(firing.actual_value), int(firing.threshold)) == ("ALERT", 7.5, 5)
        assert ok.status == "OK" and int(firing.context["endpoints"]) == 2

    def test_percent_and_colon_in_literals_reach_the_database_unchanged(self, warehouse: tuple[sa.Engine, str]) -> None:
        """'%' and ':name' inside string literals are not taken for driver placeholders."""
        engine, table = warehouse
        query = f"SELECT 'OK' AS status, COUNT(*) AS n, '50%:x' AS label FROM {table} WHERE endpoint LIKE '/o%'"
        result = evaluate_query(engine, alert="a", database="w", query=query, timeout=10)
        assert result.context == {"n": 1, "label": "50%:x"}

    def test_writes_are_refused_by_the_database_itself(self, warehouse: tuple[sa.Engine, str]) -> None:
        """Even if a write got past the parser, the read-only session refuses it and the rows stay."""
        engine, table = warehouse
        with pytest.raises(
            AlertQueryError, match=r"alert 'cleanup': query on database 'w' failed: .*(read-?only|READ ONLY)"
        ):
            evaluate_query(engine, alert="cleanup", database="w", query=f"DELETE FROM {table}", timeout=10)
        with engine.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar() == 2

    def test_timeout_stops_the_query_and_says_so(self, warehouse: tuple[sa.Engine, str]) -> None:
        """A query running past the alert's timeout is stopped by the database and reported as a timeout."""
        engine, _ = warehouse
        with pytest.raises(AlertQueryError, match=r"alert 'slow': query on database 'w' failed: timed out after 0.5s"):
            evaluate_query(engine, alert="slow", database="w", query=SLOW_QUERY[engine.dialect.name], timeout=0.5)

    def test_missing_table_names_the_alert_and_the_database_error(self, warehouse: tuple[sa.Engine, str]) -> None:
        """A database error is wrapped with the alert and database names and the driver's message."""
        engine, _ = warehouse
        with pytest.raises(AlertQueryError) as caught:
            evaluate_query(engine, alert="ghost", database="w", query="SELECT status FROM no_such_table", timeout=10)
        assert str(caught.value).startswith("alert 'ghost': query on database 'w' failed: ")
        assert "no_such_table" in str(caught.value)

    def test_connection_is_usable_after_a_failure(self, warehouse: tuple[sa.Engine, str]) -> None:
        """A failed evaluation leaves the pooled connection clean for the next one."""
        engine, table = warehouse
        with pytest.raises(AlertQueryError):
            evaluate_query(engine, alert="a", database="w", query="SELECT * FROM no_such_table", timeout=10)
        result = evaluate_query(
            engine, alert="a", database="w", query=FIRING_QUERY.format(threshold=5, table=table), timeout=10
        )
        assert result.status == "ALERT"


def test_postgres_side_effect_functions_are_refused_by_the_read_only_transaction(postgres_url: str) -> None:
    """nextval() passes any parser but writes; the read-only transaction refuses it."""
    engine = create_warehouse_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SEQUENCE IF NOT EXISTS sx_test_seq")
    with pytest.raises(AlertQueryError, match="read-only transaction"):
        evaluate_query(engine, alert="seq", database="pg", query="SELECT nextval('sx_test_seq') AS status", timeout=10)
    engine.dispose()


def test_unreachable_warehouse_error_never_contains_the_password() -> None:
    """A connection failure names the alert and the cause, and the password is not in the message."""
    engine = create_warehouse_engine("postgresql://alerts:Hunter2Secret@127.0.0.1:1/warehouse?connect_timeout=2")
    with pytest.raises(AlertQueryError) as caught:
        evaluate_query(
            engine, alert="down", database="main", query="SELECT 'OK' AS status", timeout=5, secrets=["Hunter2Secret"]
        )
    message = str(caught.value)
    assert message.startswith("alert 'down': query on database 'main' failed: ") and "Hunter2Secret" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_relative_sqlite_paths_are_relative_to_the_alerts_file(tmp_path: Path) -> None:
    """sqlite:///warehouse.db next to alerts.yaml means that file, wherever the process runs."""
    assert resolve_sqlite_path("sqlite:///warehouse.db", tmp_path) == f"sqlite:///{tmp_path / 'warehouse.db'}"
    assert resolve_sqlite_path("sqlite:////abs/w.db", tmp_path) == "sqlite:////abs/w.db"
    assert resolve_sqlite_path("sqlite://", tmp_path) == "sqlite://"
    assert resolve_sqlite_path("postgresql://h/db", tmp_path) == "postgresql://h/db"
