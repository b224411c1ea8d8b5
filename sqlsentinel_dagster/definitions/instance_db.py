"""Where the Dagster instance keeps its data, so alert state can live in the same database.

Dagster has no public API for this. We read the run storage's connection settings, which dagster-postgres and
Dagster's SQLite storage expose as attributes (``postgres_url``; ``_conn_string``); this is the only place that
does so, so a Dagster upgrade that renames them breaks one function with a clear message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["instance_state_url"]

STATE_FILE = "sqlsentinel.db"


def instance_state_url(instance: Any) -> str:
    """The SQLAlchemy URL for alert state: the instance's Postgres (or MySQL) database, or, for SQLite
    storage, ``sqlsentinel.db`` beside the instance's ``runs.db`` under ``DAGSTER_HOME``."""
    storage = instance.run_storage
    for attribute in ("postgres_url", "mysql_url"):
        url = getattr(storage, attribute, None)
        if isinstance(url, str) and url:
            return url
    conn_string = getattr(storage, "_conn_string", None)
    if isinstance(conn_string, str) and conn_string.startswith("sqlite"):
        database = sa.make_url(conn_string).database
        if database and database != ":memory:":
            return f"sqlite:///{Path(database).parent / STATE_FILE}"
    raise RuntimeError(
        f"cannot find where the Dagster instance stores its data (run storage {type(storage).__name__}); "
        "set AlertStateResource(database_url=...) to a SQLAlchemy URL for the alert state"
    )
