"""Demo code location: creates a small SQLite warehouse next to this file, then loads alerts.yaml, beside a
team asset with its own asset check (watched by the file's `watch:` rule).

SQLSENTINEL_DEMO_MODE=checks serves the same alerts as asset checks (one batched job) instead of one job each.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import dagster as dg

from sqlsentinel_dagster import build_definitions

HERE = Path(__file__).parent


def ensure_demo_warehouse(path: Path) -> None:
    """Create the demo warehouse once: API metrics that breach 5%, a normal day of orders, customers."""
    if path.exists():
        return
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE api_metrics (endpoint TEXT, requests INTEGER, errors INTEGER, error_pct REAL);
            INSERT INTO api_metrics VALUES ('/orders', 1200, 90, 7.5), ('/users', 800, 8, 1.0);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, order_date TEXT, amount REAL);
            INSERT INTO orders (order_date, amount) VALUES
                ('2026-01-01', 20.0), ('2026-01-01', 35.5), ('2026-01-01', 12.0), ('2026-01-01', 99.9);
            CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT);
            INSERT INTO customers (email) VALUES ('ana@example.com'), (NULL), ('li@example.com');
            """
        )


@dg.asset(key=["shop", "orders"], description="The team's orders table (the demo's warehouse.db)")
def orders() -> None:
    """A team asset: materialize it in the UI to run its check."""


@dg.asset_check(asset=orders, description="Every order has an amount")
def orders_have_amounts() -> dg.AssetCheckResult:
    """A team's own check: fails when an order has no amount. The `team_checks` watch rule alerts on it."""
    with sqlite3.connect(HERE / "warehouse.db") as db:
        missing = db.execute("SELECT COUNT(*) FROM orders WHERE amount IS NULL").fetchone()[0]
    return dg.AssetCheckResult(passed=missing == 0, metadata={"orders_without_amount": missing})


ensure_demo_warehouse(HERE / "warehouse.db")
defs = dg.Definitions.merge(
    build_definitions(HERE / "alerts.yaml", mode=os.environ.get("SQLSENTINEL_DEMO_MODE", "jobs")),  # type: ignore[arg-type]
    dg.Definitions(assets=[orders], asset_checks=[orders_have_amounts]),
)
