"""Shared fixtures: real SQLite warehouses in tmp_path, the local Postgres and MariaDB, Dagster instances.

The suite runs on several pytest-xdist workers at once (``-n`` in pyproject.toml), so nothing here may be shared
between tests that can run at the same time: every database a test writes to is created for it (unique name),
every port is picked free, every folder is under the test's tmp_path.
"""

from __future__ import annotations

import os
import sqlite3
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent

POSTGRES_URL = os.environ.get("SQLSENTINEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("SQLSENTINEL_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _reachable_or_skip(url: str, what: str) -> None:
    """Skip when the server is down, except under CI (CI set), where a missing service is a failure."""
    try:
        with sa.create_engine(url).connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        message = f"{what} is not reachable at {url}: {str(exc.orig).strip().splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: services are required)")
        pytest.skip(message)


SLOW_HELPERS = {
    "sqlsentinel_dagster_tests.processes": {"dagster_daemon", "webserver"},
    "sqlsentinel_dagster_tests.celery_cluster": {"celery_workers"},
}
"""Helpers that run the real daemon, a webserver or Celery workers, by module: a test calling one of them waits for
real ticks or code loads for a minute or so, and is marked slow without being told."""


def _calls_a_slow_helper(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    code, names = getattr(function, "__code__", None), getattr(function, "__globals__", {})
    if code is None:
        return False
    for name in code.co_names:  # the global names it uses (and attribute names, ruled out below)
        helper = names.get(name)
        if name in SLOW_HELPERS.get(getattr(helper, "__module__", ""), ()):
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow tests first (marked ``slow``, or calling a helper of SLOW_HELPERS), the rest in their order.

    Longest first: spread over the xdist workers, the slow tests (most of them waiting for the daemon's ticks)
    overlap each other and the short tests fill the gaps, instead of one of them starting last and running alone.
    The order is the same in every worker, as xdist requires."""
    for item in items:
        if item.get_closest_marker("slow") is None and _calls_a_slow_helper(item):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the order is kept otherwise


@pytest.fixture(autouse=True)
def _each_test_is_its_own_definitions_load() -> Iterator[None]:
    """Dagster's loaders leave their load context set for the rest of the process; alerts files built in one
    load are one code location (``code_location``), so a test must not inherit another test's load."""
    from dagster._core.definitions.definitions_load_context import DefinitionsLoadContext  # test-only

    DefinitionsLoadContext._instance = None
    yield
    DefinitionsLoadContext._instance = None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the local Postgres ``test`` database (skips locally, fails under CI, when unreachable)."""
    _reachable_or_skip(POSTGRES_URL, "PostgreSQL")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """URL of the local MariaDB ``test`` database (skips locally, fails under CI, when unreachable)."""
    _reachable_or_skip(MARIADB_URL, "MariaDB")
    return MARIADB_URL


@pytest.fixture
def empty_mariadb(mariadb_url: str) -> Iterator[str]:
    """A new, empty database on the local MariaDB (same character set and collation as ``mariadb_url``'s), dropped
    afterwards: for tests that create or drop the state tables, which no other test may see meanwhile."""
    name = f"sx_test_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(mariadb_url)
    with server.begin() as conn:
        charset, collation = conn.exec_driver_sql(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
            "WHERE SCHEMA_NAME = DATABASE()"
        ).one()
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET {charset} COLLATE {collation}")
    yield sa.make_url(mariadb_url).set(database=name).render_as_string(hide_password=False)
    with server.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    server.dispose()


@pytest.fixture
def metrics_table() -> str:
    """A unique table name, so parallel or repeated runs on a shared server never collide."""
    return f"sx_metrics_{uuid.uuid4().hex[:10]}"


def seed_metrics(url: str, table: str, rows: list[tuple[str, float]]) -> None:
    """Create ``table(endpoint, error_pct)`` with ``rows`` on any SQLAlchemy URL."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        conn.exec_driver_sql(f"CREATE TABLE {table} (endpoint VARCHAR(50), error_pct FLOAT)")
        for endpoint, pct in rows:
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (:e, :p)"), {"e": endpoint, "p": pct})
    engine.dispose()


def drop_table(url: str, table: str) -> None:
    """Drop ``table`` if it exists."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


@pytest.fixture
def sqlite_warehouse(tmp_path: Path) -> Path:
    """A SQLite warehouse with ``api_metrics``: /orders at 7.5% errors (fires above 5), /users at 1%."""
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE api_metrics (endpoint TEXT, error_pct REAL)")
        db.executemany("INSERT INTO api_metrics VALUES (?, ?)", [("/orders", 7.5), ("/users", 1.0)])
    return path


@pytest.fixture
def write_alerts(tmp_path: Path) -> Callable[[str], Path]:
    """Write an alerts file (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "alerts.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


FIRING_QUERY = (
    "SELECT CASE WHEN MAX(error_pct) > {threshold} THEN 'ALERT' ELSE 'OK' END AS status, "
    "MAX(error_pct) AS actual_value, {threshold} AS threshold, COUNT(*) AS endpoints FROM {table}"
)


def alerts_yaml(url: str, table: str = "api_metrics", threshold: float = 5, extra: str = "") -> str:
    """An alerts file with one alert ``error_rate`` on ``url`` that fires when max(error_pct) > threshold."""
    query = FIRING_QUERY.format(threshold=threshold, table=table)
    return f"""
database:
  url: "{url}"
alerts:
  - name: error_rate
    description: Error rate above {threshold}%
    query: "{query}"
    schedule: "*/5 * * * *"
{textwrap.indent(textwrap.dedent(extra).strip(), "    ") if extra else ""}
"""


@pytest.fixture
def dagster_home(tmp_path: Path) -> Iterator[Path]:
    """An empty, persistent DAGSTER_HOME directory (SQLite storage)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    yield home


@pytest.fixture(params=["sqlite", "postgres"])
def any_home(request: pytest.FixtureRequest) -> Path:
    """DAGSTER_HOME with SQLite storage, or with dagster-postgres on the local Postgres."""
    folder: Path = request.getfixturevalue("dagster_home" if request.param == "sqlite" else "postgres_home")
    return folder


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    """An instance with Dagster's default SQLite storage (each run's events in its own database)."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as inst:
        yield inst


@pytest.fixture
def postgres_home(postgres_url: str, tmp_path: Path) -> Iterator[Path]:
    """A DAGSTER_HOME whose dagster.yaml keeps runs in a fresh Postgres database via dagster-postgres."""
    name = f"sx_dagster_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    home = tmp_path / "pg_home"
    home.mkdir()
    url = sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    (home / "dagster.yaml").write_text(
        f'storage:\n  postgres:\n    postgres_url: "{url}"\ntelemetry:\n  enabled: false\n'
    )
    yield home
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def compiled_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compiled alerts files go to a folder of this test session (inherited by child processes), not ~/.cache."""
    folder = tmp_path_factory.mktemp("sqlsentinel_cache")
    previous = os.environ.get("SQLSENTINEL_CACHE_DIR")
    os.environ["SQLSENTINEL_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("SQLSENTINEL_CACHE_DIR", None)
    else:
        os.environ["SQLSENTINEL_CACHE_DIR"] = previous


@pytest.fixture
def empty_postgres(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the local Postgres, dropped afterwards."""
    name = f"sx_test_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    with server.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    server.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state database: a SQLite file, or a new database on the local Postgres."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("empty_postgres")
    return url
