"""Benchmark: sustained alert evaluations per minute under the real Dagster daemon, on Postgres storage.

Run:  .venv/bin/python bench/throughput.py [--alerts 1000] [--minutes 5] [--compare-minutes 3]

Needs the local PostgreSQL (SQLSENTINEL_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test).
Each phase gets a fresh Dagster storage database (dagster-postgres) and a DAGSTER_HOME, then runs
`dagster-daemon run` on a code location of N alerts, all on `* * * * *`, querying a table in the local
Postgres warehouse; state is kept in the instance's database, as in production. Phases, in this order:

  checks  build_definitions(mode="checks"): one batched run per tick evaluates every alert;
  shards  the same with shard_size = alerts / 4: each tick is four runs (what a cluster spreads over machines);
  jobs    build_definitions() (jobs mode): one run per alert per tick;
  bare    bare Dagster: N one-op jobs, each with a `* * * * *` schedule (what Dagster itself sustains).

For each phase it counts the evaluations recorded per tick (checks: asset check evaluations; jobs and bare:
finished runs) and the delay from the tick's scheduled time to the recorded result (p50/p95), over the ticks
that fall inside the phase. It prints evaluations per minute and the ratio to bare Dagster, and for the checks
phases the runs per tick, the delay from the tick to each run's start (the per-run start cost: the daemon's tick,
the queue, the run process and its load) and from the tick to its last result. The target: checks >= 1,000 per
minute held for the whole phase, p95 delay <= 60 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

POSTGRES = os.environ.get("SQLSENTINEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BIN = Path(sys.executable).parent

BARE = """
import dagster as dg

def make(i):
    @dg.op(name=f"bare_{i}__evaluate")
    def evaluate(context):
        return None

    job = dg.JobDefinition(graph_def=dg.GraphDefinition(name=f"bare_{i}", node_defs=[evaluate]),
                           executor_def=dg.in_process_executor)
    return job, dg.ScheduleDefinition(name=f"bare_{i}__schedule", cron_schedule="* * * * *", job=job,
                                      default_status=dg.DefaultScheduleStatus.RUNNING)

pairs = [make(i) for i in range(__COUNT__)]
defs = dg.Definitions(jobs=[j for j, _ in pairs], schedules=[s for _, s in pairs])
"""

OURS = "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml', mode=%r)\n"
SHARDED = (
    "from sqlsentinel_dagster import build_definitions\n"
    "defs = build_definitions('alerts.yaml', mode='checks', shard_size=%d)\n"
)


def write_alerts(path: Path, count: int, table: str) -> None:
    lines = [f'database:\n  url: "{POSTGRES}"\ndefaults:\n  schedule: "* * * * *"\n  notify: [{{channel: log}}]\n']
    lines.append("alerts:\n")
    for i in range(count):
        query = (
            f"SELECT CASE WHEN error_pct > 5 THEN 'ALERT' ELSE 'OK' END AS status, error_pct AS actual_value, "
            f"5 AS threshold FROM {table} WHERE service_id = {i}"
        )
        lines.append(f'  - {{name: alert_{i}, query: "{query}"}}\n')
    path.write_text("".join(lines))


def fresh_storage(admin: sa.Engine) -> str:
    name = f"sx_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    return sa.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)


def run_phase(name: str, folder: Path, code: str, minutes: float, storage_url: str) -> dict[str, float]:
    """Run the daemon on ``code`` for ``minutes`` (whole ticks), then measure what was recorded."""
    phase = folder / name
    home = phase / "home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        f'storage:\n  postgres:\n    postgres_url: "{storage_url}"\ntelemetry:\n  enabled: false\n'
    )
    (phase / "defs.py").write_text(code)
    if (folder / "alerts.yaml").exists():
        (phase / "alerts.yaml").write_text((folder / "alerts.yaml").read_text())
    (phase / "workspace.yaml").write_text(
        f"load_from:\n  - python_file: {{relative_path: defs.py, location_name: {name}, working_directory: .}}\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)):
        pass  # create the storage tables before the daemon's processes race to
    started = dt.datetime.now(dt.UTC)
    first_tick = (started + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
    last_tick = first_tick + dt.timedelta(minutes=minutes - 1)
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=phase,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(phase / "daemon.log").open("w"),
        start_new_session=True,
    )
    try:
        # every tick in the window, then up to 90 s for the last tick's results
        time.sleep(max(0.0, (last_tick - dt.datetime.now(dt.UTC)).total_seconds() + 90))
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-f", str(phase)], check=False)  # run workers still going
    result = measure(storage_url, first_tick, last_tick, checks=name in ("checks", "shards"))
    if not result["per_minute"]:
        print((phase / "daemon.log").read_text()[-4000:], file=sys.stderr)
    return result


def measure(storage_url: str, first_tick: dt.datetime, last_tick: dt.datetime, checks: bool) -> dict[str, float]:
    """Results per tick in [first_tick, last_tick]: check evaluations (checks) or finished runs (jobs, bare)."""
    events = ["ASSET_CHECK_EVALUATION"] if checks else ["PIPELINE_SUCCESS", "PIPELINE_FAILURE"]
    query = sa.text(
        "SELECT e.timestamp, t.value FROM event_logs e JOIN run_tags t "
        "ON t.run_id = e.run_id AND t.key = '.dagster/scheduled_execution_time' "
        "WHERE e.dagster_event_type IN :events"
    ).bindparams(sa.bindparam("events", expanding=True))
    engine = sa.create_engine(storage_url)
    with engine.connect() as conn:
        rows = conn.execute(query, {"events": events}).all()
    engine.dispose()
    per_tick: dict[dt.datetime, int] = {}
    delays: list[float] = []
    for recorded, scheduled in rows:
        tick = dt.datetime.fromisoformat(scheduled).astimezone(dt.UTC)
        if first_tick <= tick <= last_tick:
            per_tick[tick] = per_tick.get(tick, 0) + 1
            delays.append((recorded.replace(tzinfo=dt.UTC) - tick).total_seconds())
    ticks = int((last_tick - first_tick).total_seconds() // 60) + 1
    counts = [per_tick.get(first_tick + dt.timedelta(minutes=i), 0) for i in range(ticks)]
    delays.sort()
    print(f"  recorded per tick: {counts}", flush=True)
    result = {
        "per_minute": sum(counts) / ticks,
        "min_tick": min(counts),
        "p50": statistics.median(delays) if delays else float("nan"),
        "p95": delays[int(0.95 * (len(delays) - 1))] if delays else float("nan"),
    }
    if checks:
        result.update(run_starts(storage_url, first_tick, last_tick, rows))
    return result


def run_starts(
    storage_url: str, first_tick: dt.datetime, last_tick: dt.datetime, results: list[Any]
) -> dict[str, float]:
    """Runs per tick, the delay from the tick to each run's start (p50), and from the tick to its last result."""
    query = sa.text(
        "SELECT e.timestamp, t.value FROM event_logs e JOIN run_tags t "
        "ON t.run_id = e.run_id AND t.key = '.dagster/scheduled_execution_time' "
        "WHERE e.dagster_event_type = 'PIPELINE_START'"
    )
    engine = sa.create_engine(storage_url)
    with engine.connect() as conn:
        starts = conn.execute(query).all()
    engine.dispose()
    per_tick: dict[dt.datetime, int] = {}
    start_delays: list[float] = []
    for started, scheduled in starts:
        tick = dt.datetime.fromisoformat(scheduled).astimezone(dt.UTC)
        if first_tick <= tick <= last_tick:
            per_tick[tick] = per_tick.get(tick, 0) + 1
            start_delays.append((started.replace(tzinfo=dt.UTC) - tick).total_seconds())
    last: dict[dt.datetime, float] = {}
    for recorded, scheduled in results:
        tick = dt.datetime.fromisoformat(scheduled).astimezone(dt.UTC)
        if first_tick <= tick <= last_tick:
            last[tick] = max(last.get(tick, 0.0), (recorded.replace(tzinfo=dt.UTC) - tick).total_seconds())
    return {
        "runs_per_tick": statistics.mean(per_tick.values()) if per_tick else float("nan"),
        "start_p50": statistics.median(start_delays) if start_delays else float("nan"),
        "done_p50": statistics.median(last.values()) if last else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=5, help="ticks measured in checks mode")
    parser.add_argument("--compare-minutes", type=int, default=3, help="ticks measured in jobs mode and bare")
    parser.add_argument("--phases", nargs="+", default=["checks", "shards", "jobs", "bare"])
    args = parser.parse_args()
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    table = f"sx_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (service_id INTEGER PRIMARY KEY, error_pct FLOAT)")
        conn.exec_driver_sql(
            f"INSERT INTO {table} SELECT i, CASE WHEN mod(i, 100) = 0 THEN 7.5 ELSE 1.0 END "
            f"FROM generate_series(0, {args.alerts - 1}) AS i"
        )
    databases: list[str] = []
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_alerts(folder / "alerts.yaml", args.alerts, table)
            codes = {
                "checks": OURS % "checks",
                "shards": SHARDED % max(1, args.alerts // 4),
                "jobs": OURS % "jobs",
                "bare": BARE.replace("__COUNT__", str(args.alerts)),
            }
            for phase in args.phases:
                storage = fresh_storage(admin)
                databases.append(sa.make_url(storage).database or "")
                minutes = args.minutes if phase in ("checks", "shards") else args.compare_minutes
                print(f"{phase}: {args.alerts} alerts on '* * * * *', {minutes} tick(s)...", flush=True)
                results[phase] = run_phase(phase, folder, codes[phase], minutes, storage)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            for name in databases:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    bare = results.get("bare", {}).get("per_minute")
    print(
        f"\n{'phase':>7} | {'evaluations/min':>15} | {'worst tick':>10} | {'p50 delay':>9} | {'p95 delay':>9} | vs bare"
    )
    for phase, r in results.items():
        ratio = f"{r['per_minute'] / bare:6.1f}x" if bare else "   n/a"
        print(
            f"{phase:>7} | {r['per_minute']:>15.0f} | {r['min_tick']:>10.0f} | {r['p50']:>8.1f}s | {r['p95']:>8.1f}s "
            f"| {ratio}"
        )
    sharded = [(phase, r) for phase, r in results.items() if "runs_per_tick" in r]
    if sharded:
        print(f"\n{'phase':>7} | {'runs/tick':>9} | {'tick -> run start p50':>21} | {'tick -> last result p50':>23}")
        for phase, r in sharded:
            print(f"{phase:>7} | {r['runs_per_tick']:>9.1f} | {r['start_p50']:>20.1f}s | {r['done_p50']:>22.1f}s")


if __name__ == "__main__":
    main()
