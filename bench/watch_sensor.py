"""Benchmark: the ``sqlsentinel_watch`` sensor over 10,000 asset check evaluations, against the bare event-log read.

Run:  .venv/bin/python bench/watch_sensor.py [--evaluations 10000] [--checks 200] [--postgres-url URL]

For each Dagster storage (the default SQLite instance, whose event log keeps each run's events in its own
database; and dagster-postgres on the local Postgres), it stores --evaluations asset check evaluations of
--checks checks (Dagster's public ``report_runless_asset_event``; 10% of the checks fail in runs of 5, so
checks fire and resolve), watched by one rule notifying a ``log`` channel. Then it ticks the sensor as the
daemon would, with alert state in the instance's database, in two phases, each on a fresh state:

  * steady: 10,000 evaluations an hour at the sensor's 30 s interval is 84 new evaluations a tick; ticks of
    84 over all the evaluations (an hour of them at --evaluations 10000);
  * backlog: ticks of MAX_EVALUATIONS_PER_TICK (1,000), the most a tick reads, e.g. after downtime.

Each tick is timed (CPU: process time; wall) and, interleaved with it, the baseline: the bare read of the same
page of evaluations from the event log (what any sensor reading them pays). It prints per-tick medians and
p95, the ratio of medians, the work per evaluation, and the sensor's CPU for the whole run (for the steady
phase at 10,000: its CPU per hour of 10,000 evaluations).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.definitions.resources import AlertStateResource, NotificationsResource
from sqlsentinel_dagster.definitions.watch_sensor import MAX_EVALUATIONS_PER_TICK
from sqlsentinel_dagster.definitions.watch_sensor_reads import check_evaluations_after

sys.path.insert(0, str(Path(__file__).parent))
from storage_homes import measured, storage_homes

STEADY_PER_TICK = 84
"""10,000 evaluations an hour, ticked every 30 s."""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def store_evaluations(instance: dg.DagsterInstance, total: int, checks: int) -> None:
    """``total`` evaluations round-robin over ``checks`` checks on 20 assets; every tenth check fails in runs
    of five of its evaluations (fires, then resolves)."""
    for i in range(total):
        check, turn = i % checks, i // checks
        failing = check % 10 == 0 and (turn // 5) % 2 == 1
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(["shop", f"table_{check % 20}"]),
                check_name=f"check_{check}",
                passed=not failing,
                severity=dg.AssetCheckSeverity.ERROR if check % 20 == 0 else dg.AssetCheckSeverity.WARN,
                metadata={"failed_rows": 12 if failing else 0, "sql": "select * from t where id is null"},
                description="rows with a null id" if failing else None,
            )
        )


def run_phase(
    instance: dg.DagsterInstance, path: Path, per_tick: int, newest: int
) -> tuple[list[float], list[float], list[float], list[float], int]:
    """Tick from the first evaluation until the cursor reaches ``newest``, ``per_tick`` evaluations a tick;
    the bare read of each tick's page (baseline) and the tick itself, CPU and wall, in ms."""
    import sqlsentinel_dagster.definitions.watch_sensor as watch_sensor

    watch_sensor.MAX_EVALUATIONS_PER_TICK = per_tick
    sensor = build_definitions(path).resolve_sensor_def("sqlsentinel_watch")
    resources = {"sqlsentinel_state": AlertStateResource(), "sqlsentinel_notifications": NotificationsResource()}
    cursor: str | None = json.dumps({"after": 0})  # read everything, tick by tick (the first tick would skip it)
    bare_cpu: list[float] = []
    bare_wall: list[float] = []
    tick_cpu: list[float] = []
    tick_wall: list[float] = []
    evaluations = 0
    while json.loads(cursor or "{}").get("after", 0) < newest:
        after = json.loads(cursor or "{}")["after"]
        with measured() as elapsed:
            page = check_evaluations_after(instance, after, per_tick)
        cpu, wall = elapsed()
        bare_cpu.append(cpu * 1000)
        bare_wall.append(wall * 1000)
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        with measured() as elapsed, contextlib.redirect_stderr(io.StringIO()):  # its log lines, as in a daemon
            sensor(context)
        cpu, wall = elapsed()
        tick_cpu.append(cpu * 1000)
        tick_wall.append(wall * 1000)
        cursor = context.cursor
        evaluations += len(page)
    watch_sensor.MAX_EVALUATIONS_PER_TICK = MAX_EVALUATIONS_PER_TICK
    return bare_cpu, bare_wall, tick_cpu, tick_wall, evaluations


def reset_state(instance: dg.DagsterInstance) -> None:
    """Empty the sqlsentinel tables in the instance's database (each phase starts from no state)."""
    store = AlertStateResource().get_store(instance)
    with store.engine.begin() as conn:
        for table in ("sqlsentinel_watched", "sqlsentinel_notifications", "sqlsentinel_history"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.exec_driver_sql("DELETE FROM sqlsentinel_alert_state")


def bench(name: str, home: Path, args: argparse.Namespace, folder: Path) -> None:
    path = folder / "alerts.yaml"
    path.write_text('watch:\n  - {name: bench, checks: "shop/*", repeat_interval: 4h, notify: [{channel: log}]}\n')
    with dg.DagsterInstance.from_config(str(home)) as instance:
        started = time.perf_counter()
        store_evaluations(instance, args.evaluations, args.checks)
        stored = time.perf_counter() - started
        newest = check_evaluations_after(instance, 0, args.evaluations)[-1].storage_id
        for phase, per_tick in (("steady", STEADY_PER_TICK), ("backlog", MAX_EVALUATIONS_PER_TICK)):
            reset_state(instance)
            bare_cpu, bare_wall, tick_cpu, tick_wall, seen = run_phase(instance, path, per_tick, newest)
            total_cpu = sum(tick_cpu) / 1000
            print(
                f"{name:<8} | {phase:<7} | {len(tick_cpu):>5} x {per_tick:<5} | "
                f"{statistics.median(bare_cpu):>7.1f} ms {statistics.median(bare_wall):>7.1f} ms | "
                f"{statistics.median(tick_cpu):>7.1f} ms {percentile(tick_cpu, 0.95):>7.1f} ms "
                f"{statistics.median(tick_wall):>7.1f} ms {percentile(tick_wall, 0.95):>7.1f} ms | "
                f"{statistics.median(tick_cpu) / max(statistics.median(bare_cpu), 1e-6):>6.1f}x | "
                f"{total_cpu * 1000 / max(seen, 1):>6.2f} ms | {total_cpu:>7.1f} s | "
                f"{sum(tick_wall) / 1000:>7.1f} s"
            )
        print(f"{name:<8} | (storing the {args.evaluations:,} evaluations took {stored:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(
        f"{'storage':<8} | {'phase':<7} | {'ticks x size':>13} | {'bare read CPU / wall':>20} | "
        f"{'tick CPU p50 / p95':>21} {'wall p50 / p95':>21} | {'ratio':>7} | "
        f"{'CPU/eval':>9} | {'CPU total':>9} | {'wall total':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for storage, home in storage_homes(Path(tmp), args.postgres_url):
            bench(storage, home, args, Path(tmp))


if __name__ == "__main__":
    main()
