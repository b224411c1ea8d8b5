"""Code location of the one-box example (docker-compose.yaml): a small SQLite warehouse created next to this file on
first load, and alerts.yaml served in checks mode.

Point alerts.yaml's database at your own warehouse and this file is only its last line.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlsentinel_dagster import build_definitions

HERE = Path(__file__).parent


def ensure_example_warehouse(path: Path) -> None:
    """Create the example warehouse once: API metrics where /orders breaches 5% errors, and a day of orders."""
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
            """
        )


ensure_example_warehouse(HERE / "warehouse.db")
defs = build_definitions(HERE / "alerts.yaml", mode="checks")
