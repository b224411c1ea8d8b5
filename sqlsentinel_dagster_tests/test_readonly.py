"""Read-only is decided by parsing the SQL in the warehouse's dialect, not by looking for keywords."""

from __future__ import annotations

import pytest

from sqlsentinel_dagster.sql.readonly import dialect_for_url, read_only_problem

READ_ONLY = {
    "table_named_updates": "SELECT * FROM updates",
    "case_string_mentions_delete": "SELECT CASE WHEN a = 'delete' THEN 'ALERT' ELSE 'OK' END AS status FROM t",
    "column_named_drop_count": "SELECT drop_count AS actual_value, 'OK' AS status FROM insert_log",
    "comment_mentions_drop": "SELECT 'OK' AS status -- DROP TABLE x",
    "cte": "WITH x AS (SELECT 1 AS n) SELECT 'OK' AS status FROM x",
    "union": "SELECT 'OK' AS status UNION ALL SELECT 'ALERT'",
    "trailing_semicolon": "SELECT 'OK' AS status;",
}

NOT_READ_ONLY = {
    "delete": ("DELETE FROM t", "found DELETE"),
    "insert": ("INSERT INTO t VALUES (1)", "found INSERT"),
    "update": ("UPDATE t SET a = 1", "found UPDATE"),
    "drop": ("DROP TABLE t", "found DROP"),
    "create": ("CREATE TABLE t (a INT)", "found CREATE"),
    "truncate": ("TRUNCATE TABLE t", "found TRUNCATE"),
    "select_then_drop": ("SELECT 1; DROP TABLE x", "must be one statement, found 2 (SELECT, DROP)"),
    "two_selects": ("SELECT 1; SELECT 2", "must be one statement, found 2"),
    "data_modifying_cte": ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "found DELETE inside the query"),
    "select_into": ("SELECT * INTO copy FROM t", "found SELECT ... INTO inside the query"),
    "for_update": ("SELECT * FROM t FOR UPDATE", "found FOR UPDATE/SHARE inside the query"),
    "vacuum": ("VACUUM", "found VACUUM"),
    "empty": ("  ;  ", "the query is empty"),
    "unparseable": ("SELECT FROM WHERE (", "could not be parsed at line 1, column 17"),
}


class TestReadOnlyProblem:
    @pytest.mark.parametrize("dialect", ["postgres", "mysql", "sqlite", None])
    @pytest.mark.parametrize("sql", READ_ONLY.values(), ids=READ_ONLY.keys())
    def test_read_only_queries_pass_in_every_dialect(self, sql: str, dialect: str | None) -> None:
        """Queries that only read pass, whatever words their identifiers or strings contain."""
        assert read_only_problem(sql, dialect) is None

    @pytest.mark.parametrize(("sql", "reason"), NOT_READ_ONLY.values(), ids=NOT_READ_ONLY.keys())
    def test_writes_and_several_statements_are_rejected_with_the_reason(self, sql: str, reason: str) -> None:
        """Writes, DDL, locking reads and multi-statement text are refused and the reason names what was found."""
        problem = read_only_problem(sql, "postgres")
        assert problem is not None and reason in problem


@pytest.mark.parametrize(
    ("url", "dialect"),
    [
        ("postgresql+psycopg2://u:p@h/db", "postgres"),
        ("mysql+pymysql://root@h/test", "mysql"),
        ("mariadb://root@h/test", "mysql"),
        ("sqlite:///w.db", "sqlite"),
        ("${WAREHOUSE_URL}", None),
        ("unknowndb://h", None),
    ],
)
def test_dialect_comes_from_the_url_scheme(url: str, dialect: str | None) -> None:
    """The SQLAlchemy backend picks the sqlglot dialect; an unresolved or unknown URL gives the generic one."""
    assert dialect_for_url(url) == dialect
