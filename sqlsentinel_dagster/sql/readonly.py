"""Decide whether an alert query is read-only by parsing it, in the warehouse's SQL dialect.

Parsing, not keyword search: ``SELECT * FROM updates`` or a ``CASE`` whose string mentions 'delete' pass;
``DELETE``, ``INSERT``, DDL, ``SELECT ... INTO``, data-modifying CTEs and several statements do not. Side
effects hidden in function calls cannot be seen by a parser: queries also run in a read-only transaction
where the database supports one (see :mod:`sqlsentinel_dagster.cycle.evaluate`).
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

__all__ = ["dialect_for_url", "read_only_problem"]

# SQLAlchemy backend name -> sqlglot dialect.
_DIALECTS = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "redshift": "redshift",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "mssql": "tsql",
    "oracle": "oracle",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "duckdb": "duckdb",
    "trino": "trino",
    "presto": "presto",
    "databricks": "databricks",
    "clickhouse": "clickhouse",
}

_TOKEN = re.compile(r"<Token token_type: [^,]+, text: ([^,]*),[^>]*>")

_WRITES: tuple[type[exp.Expr], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Into,
    exp.Command,
    exp.Pragma,
    exp.Set,
    exp.Use,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Grant,
    exp.Copy,
    exp.LoadData,
    exp.Lock,
)


def dialect_for_url(url: str) -> str | None:
    """The sqlglot dialect for a SQLAlchemy URL, or ``None`` when the scheme is unknown or not yet resolved."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    backend = scheme.split("+", 1)[0].lower()
    return _DIALECTS.get(backend)


def read_only_problem(sql: str, dialect: str | None) -> str | None:
    """Return why ``sql`` is not a single read-only query, or ``None`` when it is."""
    parser_logger = logging.getLogger("sqlglot")
    previous = parser_logger.level
    parser_logger.setLevel(logging.ERROR)  # sqlglot warns when it falls back to an opaque Command
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        detail = _TOKEN.sub(r"'\1'", str(first.get("description", exc)))
        return f"the SQL could not be parsed{where} ({dialect or 'generic'} dialect): {detail}"
    finally:
        parser_logger.setLevel(previous)
    if not statements:
        return "the query is empty"
    if len(statements) > 1:
        kinds = ", ".join(_kind(s) for s in statements)
        return f"the query must be one statement, found {len(statements)} ({kinds})"
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return f"only read-only queries (SELECT, WITH ... SELECT, UNION) are allowed, found {_kind(statement)}"
    for node in statement.walk():
        if isinstance(node, _WRITES):
            return f"only read-only queries are allowed, found {_kind(node)} inside the query"
    return None


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    if isinstance(node, exp.Into):
        return "SELECT ... INTO"
    if isinstance(node, exp.Lock):
        return "FOR UPDATE/SHARE"
    return node.key.upper()
