"""Benchmark: latency of one evaluate-decide-record-deliver cycle, as overhead over the bare query.

Run:  .venv/bin/python bench/state_latency.py [--iterations 500] [--postgres-url URL]

For each state backend (SQLite file, local Postgres) it times, in the same run and interleaved:
  * the bare query: evaluate_query on a SQLite warehouse (read-only session, timeout, result contract);
  * the full cycle: the same query + StateStore.record (lock, decide, state, intents, history in one
    transaction) + deliver_pending to one log channel.
State work = cycle - bare query, per iteration. Target: p50 under 5 ms on local Postgres.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from sqlsentinel_dagster.cycle.evaluate import evaluate_query
from sqlsentinel_dagster.notifiers import LogNotifier, deliver_pending
from sqlsentinel_dagster.sql.drivers import create_warehouse_engine
from sqlsentinel_dagster.state.model import Outcome, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore

CHANNELS = {"0:log": {"firing", "reminder", "resolved", "error"}}
QUERY = (
    "SELECT CASE WHEN MAX(error_pct) > 5 THEN 'ALERT' ELSE 'OK' END AS status, MAX(error_pct) AS actual_value FROM m"
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(store: StateStore, warehouse: sa.Engine, iterations: int) -> tuple[list[float], list[float]]:
    labels = AlertLabels("bench_alert", "warning", (), {})
    settings = StateSettings()
    logger = logging.getLogger("bench")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    notifiers = {"0:log": LogNotifier(logger)}
    bare, cycle = [], []
    for i in range(iterations):
        started = time.perf_counter()
        evaluate_query(warehouse, alert="bench_alert", database="w", query=QUERY, timeout=10)
        bare.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        result = evaluate_query(warehouse, alert="bench_alert", database="w", query=QUERY, timeout=10)
        status = "ALERT" if (i // 10) % 2 == 0 else "OK"  # a transition every 10 evaluations, steady in between
        outcome = Outcome(status, result.actual_value)  # type: ignore[arg-type]
        store.record(labels, outcome, settings, CHANNELS, {"alert_name": "bench_alert"}, f"run-{i}")
        deliver_pending(store, "bench_alert", notifiers, run_id=f"run-{i}")  # type: ignore[arg-type]
        cycle.append((time.perf_counter() - started) * 1000)
    return bare, cycle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with sqlite3.connect(folder / "w.db") as db:
            db.execute("CREATE TABLE m (endpoint TEXT, error_pct REAL)")
            db.executemany("INSERT INTO m VALUES (?, ?)", [(f"/e{i}", i / 10) for i in range(100)])
        warehouse = create_warehouse_engine(f"sqlite:///{folder / 'w.db'}")
        backends = {"sqlite": f"sqlite:///{folder / 'state.db'}"}
        database = f"sx_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {database}")
            backends["postgres"] = sa.make_url(args.postgres_url).set(database=database).render_as_string(False)
        except sa.exc.OperationalError as exc:
            print(f"postgres skipped: {str(exc.orig).strip()}")
        print(
            f"{'backend':<9} | {'bare query p50':>14} {'p95':>7} | {'cycle p50':>9} {'p95':>7} | "
            f"{'state work p50':>14} {'p95':>7} | {'cycle / bare':>12}"
        )
        try:
            for name, url in backends.items():
                store = StateStore.from_url(url)
                run(store, warehouse, 20)  # warm up connections and caches
                bare, cycle = run(store, warehouse, args.iterations)
                work = [c - b for b, c in zip(bare, cycle, strict=True)]
                print(
                    f"{name:<9} | {statistics.median(bare):>11.2f} ms {percentile(bare, 0.95):>7.2f} | "
                    f"{statistics.median(cycle):>6.2f} ms {percentile(cycle, 0.95):>7.2f} | "
                    f"{statistics.median(work):>11.2f} ms {percentile(work, 0.95):>7.2f} | "
                    f"{statistics.median(cycle) / statistics.median(bare):>11.1f}x"
                )
                store.engine.dispose()
        finally:
            if "postgres" in backends:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    main()
