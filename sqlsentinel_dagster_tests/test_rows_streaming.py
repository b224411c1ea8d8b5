"""Streamed results: an alert whose query returns millions of rows costs the memory of the rows it reads (two for
an alert, ``limit + 1`` for a failed-rows alert) and keeps (2 MB), not of the whole result, on PostgreSQL,
MariaDB and SQLite; stopping early neither drains the rest nor leaves the query running.

Memory is measured in a child process: its peak (``ru_maxrss``) after the evaluation against its own baseline
just before it (after the imports and a first evaluation). Both are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sqlsentinel_dagster import AlertQueryError
from sqlsentinel_dagster.config.rows import RowsSpec
from sqlsentinel_dagster.cycle.evaluate import GRACE, evaluate_query
from sqlsentinel_dagster.cycle.results import MAX_CELL_CHARS, MAX_ROWS_BYTES
from sqlsentinel_dagster.sql.drivers import create_warehouse_engine

from .half_dead import stalling_proxy

MAX_GROWTH_MB = 150
"""Peak memory an evaluation may add to its process. Before streaming, 2M rows of 1 KB took 3.9 GB on
PostgreSQL and 1M rows 1.2 GB on MariaDB; streamed, both take a few MB."""

PG_ROWS = "SELECT g AS id, repeat('x', 1000) AS pad FROM generate_series(1, 2000000) g"
PG_ROWS_FORMS = {  # each must become a server-side cursor
    "select": PG_ROWS,
    "comments_parenthesis_semicolon": f"/* orphans */ -- hourly\n ({PG_ROWS});",
    "with": f"WITH big AS ({PG_ROWS}) SELECT * FROM big",
}
PG_STATUS_ROWS = "SELECT 'OK' AS status, g AS id, repeat('x', 1000) AS pad FROM generate_series(1, 2000000) g"
_DIGITS = " UNION ALL ".join(f"SELECT {n}" + (" AS n" if n == 0 else "") for n in range(10))
MARIADB_MILLION = (  # a million rows on any MariaDB or MySQL 8 (no Sequence engine needed), produced as they are sent
    f"WITH d AS ({_DIGITS}) SELECT {{status}}a.n + 10 * b.n + 100 * c.n + 1000 * e.n + 10000 * f.n + 100000 * g.n "
    "AS id, REPEAT('x', 1000) AS {pad} FROM d a, d b, d c, d e, d f, d g"
)
SQLITE_ENDLESS = (  # no end at all: only a reader that stops can finish it
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT {status}x AS id, substr(hex(zeroblob(500)), 1, 1000) AS pad FROM c"
)

CHILD = """
import json, resource, sys
from sqlsentinel_dagster.config.instances import InstancesSpec
from sqlsentinel_dagster.config.rows import RowsSpec
from sqlsentinel_dagster.cycle.evaluate import evaluate_query


class RowsView:  # an instance alert's result in the terms measured below: its instances as the rows kept
    def __init__(self, result):
        self.status, self.actual_value, self.more_rows = result.status, result.actual_value, result.more_rows
        self.rows = [{**r.labels, **r.result.context} for r in result.instances.rows]
from sqlsentinel_dagster.sql.drivers import create_warehouse_engine

url, query, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
engine = create_warehouse_engine(url)
evaluate_query(engine, alert="warm_up", database="w", query="SELECT 'OK' AS status", timeout=30)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
instances = InstancesSpec(**rows.pop("instances")) if rows and "instances" in rows else None
result = evaluate_query(
    engine, alert="big", database="w", query=query, timeout=120, rows=RowsSpec(**rows) if rows else None,
    instances=instances,
)
if result.instances is not None:
    result = RowsView(result)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "baseline_kb": baseline, "peak_kb": peak, "status": result.status, "count": result.actual_value,
    "more_rows": result.more_rows, "kept": len(result.rows),
    "kept_bytes": sum(len(json.dumps(row, default=str)) for row in result.rows),
    "longest_cell": max((len(str(v)) for row in result.rows for v in row.values()), default=0),
}))
"""


@dataclass(frozen=True)
class Measured:
    """One evaluation in a child process: its result in brief, and its memory."""

    baseline_mb: float
    growth_mb: float
    status: str
    count: Any
    more_rows: bool
    kept: int
    kept_bytes: int
    longest_cell: int


def _measure(url: str, query: str, rows: dict[str, Any] | None = None) -> Measured:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, query, json.dumps(rows)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Exception ignored" not in done.stderr, done.stderr[-3000:]  # e.g. a driver draining a dropped result
    data = json.loads(done.stdout.strip().splitlines()[-1])
    baseline, peak = data.pop("baseline_kb") / 1024, data.pop("peak_kb") / 1024
    print(f"\n{sa.make_url(url).get_backend_name()}: baseline {baseline:.0f} MB, peak {peak:.0f} MB, rows={rows}")
    return Measured(baseline_mb=baseline, growth_mb=peak - baseline, **data)


def _evaluate(url: str, query: str, rows: RowsSpec | None = None, timeout: float = 30) -> Any:
    engine = create_warehouse_engine(url)
    try:
        return evaluate_query(engine, alert="big", database="w", query=query, timeout=timeout, rows=rows)
    finally:
        engine.dispose()


class TestPostgres:
    @pytest.mark.parametrize("query", PG_ROWS_FORMS.values(), ids=PG_ROWS_FORMS.keys())
    def test_a_rows_alert_over_two_million_rows_holds_only_its_limit(self, postgres_url: str, query: str) -> None:
        """limit 10 over 2M rows of 1 KB: 10 rows, "at least 10", and a few MB, not the 4 GB of the whole result."""
        measured = _measure(postgres_url, query, {"limit": 10})
        assert (measured.status, measured.count, measured.more_rows, measured.kept) == ("ALERT", 10, True, 10)
        assert measured.growth_mb < MAX_GROWTH_MB

    def test_an_alert_over_two_million_rows_reads_two_and_says_several(self, postgres_url: str) -> None:
        """An alert (no rows:) reads the first row and one more to tell "several rows", not the other 2M."""
        measured = _measure(postgres_url, PG_STATUS_ROWS)
        assert (measured.status, measured.more_rows) == ("OK", True)
        assert measured.growth_mb < MAX_GROWTH_MB

    def test_rows_of_five_megabytes_are_read_one_at_a_time_and_cut(self, postgres_url: str) -> None:
        """100 rows of 5 MB (500 MB in all), all attached: each is cut to 1,000 characters as it arrives."""
        query = "SELECT g AS id, repeat('x', 5000000) AS note FROM generate_series(1, 100) g"
        measured = _measure(postgres_url, query, {"limit": 1000, "attach": "csv"})
        assert (measured.count, measured.more_rows, measured.kept) == (100, False, 100)
        assert MAX_CELL_CHARS < measured.longest_cell < MAX_CELL_CHARS + 50
        assert measured.growth_mb < MAX_GROWTH_MB

    def test_an_instance_alert_reads_rows_of_five_megabytes_one_at_a_time_and_cuts_them(
        self, postgres_url: str
    ) -> None:
        """An instance alert over 100 rows of 5 MB: each row is judged and its cells cut as it arrives, so 100
        instances are kept in a few MB, not the 500 MB of the whole result."""
        query = "SELECT g AS id, 'OK' AS status, repeat('x', 5000000) AS note FROM generate_series(1, 100) g"
        measured = _measure(postgres_url, query, {"instances": {"by": ["id"], "max": 1000}})
        assert (measured.status, measured.count, measured.more_rows, measured.kept) == ("OK", 0, False, 100)
        assert MAX_CELL_CHARS < measured.longest_cell < MAX_CELL_CHARS + 50
        assert measured.growth_mb < MAX_GROWTH_MB

    def test_the_two_megabyte_budget_holds_while_every_row_is_counted(self, postgres_url: str) -> None:
        """limit 100,000 with attach: all 100,000 rows are counted; the rows kept stop at MAX_ROWS_BYTES."""
        query = "SELECT g AS id, repeat('x', 2000) AS note FROM generate_series(1, 100000) g"
        measured = _measure(postgres_url, query, {"limit": 100_000, "attach": "csv"})
        assert (measured.count, measured.more_rows) == (100_000, False)
        assert 1000 < measured.kept < 2000 and measured.kept_bytes <= MAX_ROWS_BYTES
        assert measured.growth_mb < MAX_GROWTH_MB

    def test_rows_that_trickle_in_are_stopped_at_the_timeout(self, postgres_url: str) -> None:
        """Each FETCH takes 0.3 s, within the statement timeout of 1 s; their sum is stopped at 1 s all the same."""
        query = "SELECT g AS id, repeat('x', 2000000) AS pad, pg_sleep(0.3) AS nap FROM generate_series(1, 50) g"
        with pytest.raises(AlertQueryError, match=r"timed out after 1s reading the rows"):
            _evaluate(postgres_url, query, RowsSpec(limit=1000), timeout=1)

    def test_a_server_that_falls_silent_mid_stream_is_cut_at_the_deadline(self, postgres_url: str) -> None:
        """The cursor is declared and a first row read, then the next FETCH is never answered: the checkout
        deadline (timeout + GRACE) cuts the connection, as for any query."""
        with stalling_proxy(sa.make_url(postgres_url).port or 5432) as proxy:
            proxy.marker = b"FETCH FORWARD 10 "  # the first FETCH reads one row; the next asks for the other 10
            url = sa.make_url(postgres_url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)
            with pytest.raises(AlertQueryError, match=f"no answer from the database within {1 + GRACE:g}s"):
                _evaluate(url, PG_ROWS, RowsSpec(limit=10), timeout=1)

    def test_a_statement_that_cannot_be_a_cursor_still_runs(self, postgres_url: str) -> None:
        """SHOW cannot be DECLAREd as a cursor: it runs as it is, and its one row is read."""
        result = _evaluate(postgres_url, "SHOW statement_timeout", RowsSpec())
        assert (result.actual_value, result.columns, result.rows) == (
            1,
            ("statement_timeout",),
            ({"statement_timeout": "30s"},),
        )


# One xdist worker runs these one after another: no stream of another of them adds to the Bytes_sent measured below.
@pytest.mark.xdist_group("mariadb_streams")
class TestMariaDB:
    def test_a_rows_alert_over_a_million_rows_holds_only_its_limit(self, mariadb_url: str) -> None:
        """limit 10 over 1M rows of 1 KB: 10 rows, "at least 10", and a few MB, not the 1.2 GB of the result."""
        measured = _measure(mariadb_url, MARIADB_MILLION.format(status="", pad="pad"), {"limit": 10})
        assert (measured.status, measured.count, measured.more_rows, measured.kept) == ("ALERT", 10, True, 10)
        assert measured.growth_mb < MAX_GROWTH_MB

    def test_an_alert_over_a_million_rows_reads_two_and_says_several(self, mariadb_url: str) -> None:
        """An alert (no rows:) reads two rows of the million, and PyMySQL does not read the rest on close."""
        measured = _measure(mariadb_url, MARIADB_MILLION.format(status="'OK' AS status, ", pad="pad"))
        assert (measured.status, measured.more_rows) == ("OK", True)
        assert measured.growth_mb < MAX_GROWTH_MB

    def test_a_server_that_falls_silent_mid_stream_is_cut_at_the_deadline(self, mariadb_url: str) -> None:
        """Rows of 100 KB stream in, then the server falls silent (0.5 s in): the checkout deadline cuts the
        connection, and the half-read result is dropped without a drain that would fail or hang."""
        query = "SELECT seq AS id, REPEAT('x', 100000) AS pad FROM seq_1_to_100000"  # 10 GB: never done in 0.5 s
        with stalling_proxy(sa.make_url(mariadb_url).port or 3306) as proxy:
            url = sa.make_url(mariadb_url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)
            threading.Timer(0.5, proxy.stall).start()
            with pytest.raises(AlertQueryError, match=f"no answer from the database within {1 + GRACE:g}s"):
                _evaluate(url, query, RowsSpec(limit=100_000), timeout=1)

    def test_an_early_stop_neither_reads_the_rest_nor_leaves_the_query_running(self, mariadb_url: str) -> None:
        """The server sends a fraction of the 1 GB result (Bytes_sent), and the query is gone from its processlist."""
        marker = f"pad_{uuid.uuid4().hex[:12]}"
        monitor = sa.create_engine(mariadb_url)

        def bytes_sent() -> int:
            with monitor.connect() as conn:
                return int(conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Bytes_sent'").one()[1])

        def running() -> list[Any]:
            sql = "SELECT id FROM information_schema.processlist WHERE info LIKE %s AND id <> CONNECTION_ID()"
            with monitor.connect() as conn:
                return list(conn.exec_driver_sql(sql, (f"%{marker}%",)).all())

        before = bytes_sent()
        result = _evaluate(mariadb_url, MARIADB_MILLION.format(status="", pad=marker), RowsSpec(limit=10))
        assert (result.actual_value, result.more_rows) == (10, True)
        assert bytes_sent() - before < 100_000_000  # drained, it would be over 1,000,000,000
        for _ in range(50):
            if not running():
                break
            time.sleep(0.2)
        assert running() == []
        monitor.dispose()

    def test_a_result_read_to_its_end_keeps_its_connection_and_one_left_half_read_drops_it(
        self, mariadb_url: str
    ) -> None:
        """Two one-row evaluations share a pooled connection; after an early stop, the next gets a fresh one."""
        engine = create_warehouse_engine(mariadb_url)
        whoami = "SELECT 'OK' AS status, CONNECTION_ID() AS conn"

        def connection_id() -> Any:
            return evaluate_query(engine, alert="a", database="w", query=whoami, timeout=30).context["conn"]

        try:
            first = connection_id()
            assert connection_id() == first
            spec = RowsSpec(limit=10)
            query = MARIADB_MILLION.format(status="", pad="pad")
            assert evaluate_query(engine, alert="a", database="w", query=query, timeout=30, rows=spec).more_rows
            assert connection_id() != first
        finally:
            engine.dispose()


class TestSQLite:
    def test_an_endless_query_ends_after_the_limit(self, tmp_path: Path) -> None:
        """SQLite steps rows on demand: a rows alert over a result with no end reads 11 rows and stops."""
        url = f"sqlite:///{tmp_path / 'w.db'}"
        measured = _measure(url, SQLITE_ENDLESS.format(status=""), {"limit": 10})
        assert (measured.count, measured.more_rows, measured.kept) == (10, True, 10)
        assert measured.growth_mb < MAX_GROWTH_MB

    def test_an_endless_alert_query_reads_two_rows(self, tmp_path: Path) -> None:
        """An alert over a result with no end reads two rows and says there are several."""
        result = _evaluate(f"sqlite:///{tmp_path / 'w.db'}", SQLITE_ENDLESS.format(status="'OK' AS status, "))
        assert (result.status, result.more_rows) == ("OK", True)


class TestStatementStart:
    @pytest.mark.parametrize(
        ("query", "declarable"),
        [
            (" " * 100_000 + ";SELECT 1", True),  # a backtracking pattern would take longer than the universe
            ("-- the worst\n/* of */ ((SELECT 1))", True),
            ("\t;WITH a AS (SELECT 1) SELECT * FROM a", True),
            ("SHOW server_version", False),
            ("/* never closed SELECT 1", False),
            (" " * 50 + ";" * 50, False),
        ],
        ids=["spaces_then_semicolon", "comments_and_parentheses", "with", "show", "open_comment", "nothing"],
    )
    def test_a_statement_is_found_past_whitespace_comments_and_semicolons_in_one_pass(
        self, query: str, declarable: bool
    ) -> None:
        """Whether a PostgreSQL cursor can be declared is decided in one pass over the query's start."""
        from sqlsentinel_dagster.cycle.evaluate import _DECLARABLE, _statement_start

        assert (_DECLARABLE.match(query, _statement_start(query)) is not None) is declarable
