"""What the watch benchmarks share: a Dagster home on each storage (SQLite, then Postgres on a fresh database
dropped afterwards), quiet instance settings, and a CPU and wall clock for a block."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa

__all__ = ["QUIET", "measured", "storage_homes"]

QUIET = "telemetry:\n  enabled: false\npython_logs:\n  python_log_level: WARNING\n"
"""dagster.yaml settings of every benchmark home: no telemetry, and warnings only (the watch sensor logs every
decision, the ``log`` channel every notification)."""


@contextlib.contextmanager
def measured() -> Iterator[Callable[[], tuple[float, float]]]:
    """Yields a function giving (CPU seconds, wall seconds) since the block started."""
    cpu, wall = time.process_time(), time.perf_counter()
    yield lambda: (time.process_time() - cpu, time.perf_counter() - wall)


def storage_homes(folder: Path, postgres_url: str) -> Iterator[tuple[str, Path]]:
    """("sqlite", a home under ``folder``), then ("postgres", a home on a new database of ``postgres_url``'s server,
    dropped once the caller moves on). Prints why and stops after SQLite when that server cannot be reached."""
    sqlite_home = folder / "sqlite_home"
    sqlite_home.mkdir()
    (sqlite_home / "dagster.yaml").write_text(QUIET)
    yield "sqlite", sqlite_home
    database = f"sx_bench_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {database}")
    except sa.exc.OperationalError as exc:
        print(f"postgres skipped: {str(exc.orig).strip()}")
        server.dispose()
        return
    try:
        url = sa.make_url(postgres_url).set(database=database).render_as_string(hide_password=False)
        pg_home = folder / "pg_home"
        pg_home.mkdir()
        (pg_home / "dagster.yaml").write_text(f'storage:\n  postgres:\n    postgres_url: "{url}"\n{QUIET}')
        yield "postgres", pg_home
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        server.dispose()
