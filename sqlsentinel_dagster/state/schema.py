"""Our tables in the Dagster instance's database (all prefixed ``sqlsentinel_``), and their migrations.

Dagster's key-value table is not public API, has no compare-and-set and on SQLite can drop keys, so alert state
lives in tables of our own, created and migrated here under a schema version.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

__all__ = [
    "SCHEMA_VERSION",
    "UTCDateTime",
    "alert_state",
    "configs",
    "history",
    "installed_version",
    "instances",
    "metadata",
    "migrate",
    "notifications",
    "silences",
    "watched",
]

SCHEMA_VERSION = 4  # 2: sqlsentinel_configs; 3: sqlsentinel_watched; 4: sqlsentinel_instances, binary names


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite included), stored as naive UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; use timezone-aware UTC times")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        stamp: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


metadata = sa.MetaData()
NAME = sa.String(255).with_variant(mysql.VARCHAR(255, collation="utf8mb4_bin"), "mysql", "mariadb")
"""A name (alert, instance, ledger key): compared byte for byte everywhere, also on MySQL and MariaDB, whose
default collation would make ``us`` and ``US`` (or ``é`` and ``e``) the same key."""

schema_version = sa.Table(
    "sqlsentinel_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

alert_state = sa.Table(
    "sqlsentinel_alert_state",
    metadata,
    sa.Column("alert", NAME, primary_key=True),
    sa.Column("condition", sa.String(16), nullable=False, server_default="inactive"),
    sa.Column("last_status", sa.String(8)),
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
    sa.Column("labels", sa.Text, nullable=False, server_default="{}"),
    sa.Column("updated_at", UTCDateTime),
)

notifications = sa.Table(
    "sqlsentinel_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", NAME, nullable=False, unique=True),
    sa.Column("alert", NAME, nullable=False, index=True),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("reason", sa.Text),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("receipt", sa.Text),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("run_id", sa.String(64)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
)

silences = sa.Table(
    "sqlsentinel_silences",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("matchers", sa.Text, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False, index=True),
    sa.Column("author", NAME, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

history = sa.Table(
    "sqlsentinel_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert", NAME, nullable=False),
    sa.Column("evaluated_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("actual_value", sa.Text),
    sa.Column("threshold", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Float),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("run_id", sa.String(64)),
    sa.Index("ix_sqlsentinel_history_alert_time", "alert", "evaluated_at"),
)


configs = sa.Table(
    "sqlsentinel_configs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("path_key", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("loaded_at", UTCDateTime, nullable=False),
    sa.Column("alerts", sa.Integer, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Index("ix_sqlsentinel_configs_path", "path_key", "id"),
)

watched = sa.Table(
    "sqlsentinel_watched",
    metadata,
    sa.Column("alert", NAME, primary_key=True),
    sa.Column("rule", NAME, nullable=False, index=True),
    sa.Column("storage_id", sa.BigInteger, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
"""Watched asset checks (``watch:``): the Dagster event-log storage id of the latest evaluation recorded for each
(so an evaluation is recorded once however often it is read), and that evaluation's outcome, labels and message
(so reminders can be sent between evaluations)."""

instances = sa.Table(
    "sqlsentinel_instances",
    metadata,
    sa.Column("instance", NAME, primary_key=True),
    sa.Column("alert", NAME, nullable=False, index=True),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("current", sa.Boolean, nullable=False),
    sa.Column("missing", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_seen", UTCDateTime, nullable=False),
)
"""The instances of instance alerts (``instances:``): the alert each belongs to, its labels, whether it is current
(in the latest results, or missing from fewer than ``missing_after`` of them) and for how many results in a row it
has been missing. Each instance's state is an ``alert_state`` row named after it, as an alert's is."""


def migrate(engine: sa.Engine) -> None:
    """Create missing tables and record the schema version; refuse a database from a newer version."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # several runs may start at once on a fresh database
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(5151001)")
        metadata.create_all(conn, checkfirst=True)
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
        _refuse_newer(current)
        if current is not None and current < 4 and conn.dialect.name in ("mysql", "mariadb"):
            _binary_names(conn)
        if current is None or current < SCHEMA_VERSION:  # new tables were created just above
            conn.execute(sa.insert(schema_version).values(version=SCHEMA_VERSION, applied_at=dt.datetime.now(dt.UTC)))


def _binary_names(conn: sa.Connection) -> None:
    """Tables made before schema 4 on MySQL/MariaDB: their name columns compared byte for byte (see :data:`NAME`)."""
    quote = conn.dialect.identifier_preparer.quote  # `key` is a reserved word
    for table in metadata.sorted_tables:
        for column in table.columns:
            if column.type is NAME:
                null = "" if column.nullable else " NOT NULL"
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(table.name)} MODIFY {quote(column.name)} VARCHAR(255) "
                    f"CHARACTER SET utf8mb4 COLLATE utf8mb4_bin{null}"
                )


def installed_version(engine: sa.Engine) -> int | None:
    """The schema version of the sqlsentinel tables in ``engine``'s database, creating nothing: None when it has
    none (nothing was ever recorded there); refuse a database from a newer version."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(schema_version.name):
            return None
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    _refuse_newer(current)
    return int(current) if current is not None else None


def _refuse_newer(current: int | None) -> None:
    if current is not None and current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the sqlsentinel tables are at schema version {current}, newer than this package "
            f"({SCHEMA_VERSION}); upgrade sqlsentinel-dagster"
        )
