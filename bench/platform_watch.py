"""Benchmark: one pass of the ``sqlsentinel_watch`` sensor over platform rules, against the bare Dagster reads it needs.

Run:  .venv/bin/python bench/platform_watch.py [--runs 2000] [--jobs 20] [--instigators 100] [--postgres-url URL]

For each Dagster storage (the default SQLite instance in a temporary DAGSTER_HOME, whose event log keeps each run's
events in its own database; and dagster-postgres in a fresh database on the local Postgres, dropped afterwards),
it stores --runs finished runs of --jobs jobs (10% failed), each job materializing one asset, plus --running runs
still going (a quarter of them for 3 h), and --instigators schedules and sensors with --ticks ticks each (the
latest tick of one in ten failed). Failed and running runs are written through Dagster's instance API (``add_run``,
then the events the sensor reads: asset planned, step failure and run failure, or run start), successful runs and
ticks as rows (see :class:`Writer`), with timestamps a minute apart in the past, so that each run's update time is
its own.

The sensor watches with five rules, each notifying a ``log`` channel, its alert state in the instance's database:
``runs: {jobs: "*", status: failure}``, ``runs: {jobs: "*", longer_than: 2h}``, ``ticks: {schedules: "*", sensors:
"*"}``, ``assets: "*"`` and ``code_locations`` read from a loopback HTTP server that answers the webserver's
GraphQL workspace query with a fixed reply (5 locations, one failing). Its first passes read the last hour of runs
(untimed); then, timed, each pass on a fresh instance as the code server gives each sensor evaluation (the
instance's creation is not timed):

  * steady: nothing new (the few jobs whose latest run failed are firing);
  * N new failed runs: --new failed runs of every job (default MAX_RUNS_PER_PASS, the most a pass reads) stored
    within 30 s, read by one pass (--bursts times, each with new runs);
  * steady, all firing: nothing new after them, every job and asset firing (each firing subject is looked up).

Interleaved with each pass, on its own fresh instance, the baseline: the bare Dagster reads a pass needs at the same
cursor (the failed runs updated after it, limit MAX_RUNS_PER_PASS; the running runs; every instigator state; the
newest ticks of the running ones; the GraphQL query), and the same plus the one event read per failed run that any
notifier quoting a run's error pays ("+ events"). It prints medians of CPU (process time) and wall per pass, the
share of the pass spent in the platform readers (the rest is deciding, recording and notifying), and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.server
import io
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import requests
from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, StepFailureData, StepMaterializationData
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.storage.runs.schema import RunsTable
from dagster._core.storage.schedules.schema import JobTickTable
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._serdes import serialize_value
from dagster._utils.error import SerializableErrorInfo

import sqlsentinel_dagster.definitions.watch_sensor as watch_sensor
from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.definitions.platform_reads import platform_pass
from sqlsentinel_dagster.definitions.platform_runs import MAX_RUNS_PER_PASS
from sqlsentinel_dagster.definitions.resources import AlertStateResource, NotificationsResource

sys.path.insert(0, str(Path(__file__).parent))
from storage_homes import measured, storage_homes

RULES = """watch:
  - {{name: failed_runs, runs: {{jobs: "*", status: failure}}, notify: [{{channel: log}}]}}
  - {{name: slow_runs, runs: {{jobs: "*", longer_than: 2h}}, notify: [{{channel: log}}]}}
  - {{name: automation, ticks: {{schedules: "*", sensors: "*"}}, notify: [{{channel: log}}]}}
  - {{name: materializations, assets: "*", notify: [{{channel: log}}]}}
  - {{name: locations, code_locations: {{names: "*", webserver: "{webserver}"}}, notify: [{{channel: log}}]}}
"""
LOADED = "RepositoryLocation"
WORKSPACE = {
    "data": {
        "workspaceOrError": {
            "__typename": "Workspace",
            "locationEntries": [
                {
                    "name": f"team_{i}",
                    "loadStatus": "LOADED",
                    "locationOrLoadError": {"__typename": "RepositoryLocation"},
                }
                for i in range(4)
            ]
            + [
                {
                    "name": "broken",
                    "loadStatus": "LOADED",
                    "locationOrLoadError": {
                        "__typename": "PythonError",
                        "message": "ModuleNotFoundError: No module named 'team_x'",
                        "errorChain": [],
                    },
                }
            ],
        }
    }
}
"""The webserver's answer to the workspace query: five code locations, one that fails to load."""
GRAPHQL = "{ workspaceOrError { __typename } }"
FAILURE_TYPES = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
GOING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
SPACING = 60.0
"""Seconds between the stored runs' timestamps."""


class Workspace(http.server.BaseHTTPRequestHandler):
    """A webserver's GraphQL endpoint answering the workspace query with :data:`WORKSPACE`."""

    body = json.dumps(WORKSPACE).encode()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def webserver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Workspace)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- the instance ------------------------------------------------------------------------------------------------


class Writer:
    """Writes runs, events and ticks into a Dagster instance as Dagster does, only faster: the runs whose events the
    sensor reads (failed and running ones) through the instance (``add_run``, then their events, which also move the
    run's status); the successful runs and the ticks, which it reads only as rows, inserted many at a time with the
    values Dagster's ``add_run`` and ``create_tick`` write. On Postgres it keeps its connections
    (``optimize_for_webserver``); on SQLite each run's event database is a copy of an empty one (Dagster creates and
    stamps each; the result is the same file). The sensor reads with plain instances."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.successes: list[tuple[dg.DagsterRun, float]] = []
        storage: Any = instance.event_log_storage
        self.template: Path | None = None
        if hasattr(storage, "path_for_shard") and hasattr(storage, "_initialized_dbs"):  # SQLite: a database a run
            with storage.run_connection("bench_template"):
                pass
            self.template = Path(storage.path_for_shard("bench_template"))
        else:
            instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=10)

    def add_run(self, job: int, status: dg.DagsterRunStatus) -> dg.DagsterRun:
        """A run added as a launcher adds it, with its own event database."""
        self.flush()  # the successes before it come first (storage ids in run order)
        run = self.instance.add_run(dg.DagsterRun(job_name=f"job_{job}", run_id=str(uuid.uuid4()), status=status))
        if self.template is not None:
            storage: Any = self.instance.event_log_storage
            shutil.copyfile(self.template, storage.path_for_shard(run.run_id))
            storage._initialized_dbs.add(run.run_id)
        return run

    def add_success(self, job: int, at: float) -> dg.DagsterRun:
        """A run of ``job`` that ran the minute before ``at`` and succeeded (stored at the next :meth:`flush`)."""
        run = dg.DagsterRun(job_name=f"job_{job}", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.SUCCESS)
        self.successes.append((run, at))
        return run

    def flush(self) -> None:
        """Insert the pending successes as ``add_run`` and the run events would leave them, in one statement."""
        if not self.successes:
            return
        storage: Any = self.instance.run_storage
        rows = [
            {
                **storage._get_run_insertion_values(run, dt.datetime.fromtimestamp(at - 61, dt.UTC)),
                "update_timestamp": dt.datetime.fromtimestamp(at, dt.UTC),
                "start_time": at - 60,
                "end_time": at,
            }
            for run, at in self.successes
        ]
        with storage.connect() as conn:
            conn.execute(RunsTable.insert(), rows)
        self.successes = []

    def event(
        self, run: dg.DagsterRun, kind: dg.DagsterEventType, at: float, step: str | None = None, data: Any = None
    ) -> None:
        """Store one event of ``run`` as its run worker would (a run event also moves the run's status)."""
        self.instance.report_dagster_event(
            DagsterEvent(event_type_value=kind.value, job_name=run.job_name, step_key=step, event_specific_data=data),
            run.run_id,
            timestamp=at,
        )

    def failed_run(self, job: int, at: float) -> None:
        """A run of ``job`` that failed at ``at`` in the step of its asset: the events the sensor reads."""
        run, step = self.add_run(job, dg.DagsterRunStatus.STARTED), f"table_{job}"
        error = SerializableErrorInfo("RuntimeError: orders table is locked\n", [], "RuntimeError")
        planned = AssetMaterializationPlannedData(dg.AssetKey(["shop", step]), None)
        self.event(run, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, at - 59, step, planned)
        self.event(run, dg.DagsterEventType.STEP_FAILURE, at - 1, step, StepFailureData(error, None))
        self.event(run, dg.DagsterEventType.RUN_FAILURE, at)

    def add_ticks(self, ticks: list[TickData]) -> None:
        """Insert finished ticks as ``create_tick`` does, in one statement."""
        rows = [
            {
                "job_origin_id": tick.instigator_origin_id,
                "selector_id": tick.selector_id,
                "status": tick.status.value,
                "type": tick.instigator_type.value,
                "timestamp": dt.datetime.fromtimestamp(tick.timestamp, dt.UTC),
                "tick_body": serialize_value(tick),
            }
            for tick in ticks
        ]
        with self.instance.schedule_storage.connect() as conn:  # type: ignore[union-attr]
            conn.execute(JobTickTable.insert(), rows)


@contextlib.contextmanager
def writer(home: Path) -> Iterator[Writer]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield Writer(instance)


def store_runs(w: Writer, args: argparse.Namespace, start: float) -> float:
    """--runs finished runs a minute apart from ``start`` (10% failed, at random), each job's latest success with its
    materialization, and --running runs going (a quarter of them for 3 h); the last run's timestamp."""
    chance = random.Random(7)
    last_success: dict[int, dg.DagsterRun] = {}
    at = start
    for i in range(args.runs):
        job, at = i % args.jobs, start + i * SPACING
        if chance.random() < 0.1:
            w.failed_run(job, at)
        else:
            last_success[job] = w.add_success(job, at)
    w.flush()
    for job, run in last_success.items():
        made = StepMaterializationData(dg.AssetMaterialization(dg.AssetKey(["shop", f"table_{job}"])))
        w.event(run, dg.DagsterEventType.ASSET_MATERIALIZATION, at, f"table_{job}", made)
    now = time.time()
    for i in range(args.running):
        run = w.add_run(i % args.jobs, dg.DagsterRunStatus.NOT_STARTED)
        w.event(run, dg.DagsterEventType.RUN_START, now - (3 * 3600 if i % 4 == 0 else 300))
    return at


def store_instigators(w: Writer, count: int, ticks: int) -> None:
    """``count`` running schedules and sensors of one code location, ``ticks`` finished ticks each a minute apart;
    the latest tick of one in ten failed."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__), location_name="team")
    repository = RemoteRepositoryOrigin(location, "__repository__")
    now = time.time()
    error = SerializableErrorInfo("KeyError: 'orders' (raised by the sensor)", [], "KeyError")
    stored: list[TickData] = []
    for i in range(count):
        schedule = i % 2 == 0
        name = f"{'schedule' if schedule else 'sensor'}_{i}"
        kind = InstigatorType.SCHEDULE if schedule else InstigatorType.SENSOR
        data = ScheduleInstigatorData("* * * * *", now - 86400) if schedule else SensorInstigatorData()
        origin = RemoteInstigatorOrigin(repository, name)
        state = w.instance.add_instigator_state(InstigatorState(origin, kind, InstigatorStatus.RUNNING, data))
        for t in range(ticks):
            failed = i % 10 == 0 and t == ticks - 1
            stored.append(
                TickData(
                    instigator_origin_id=state.instigator_origin_id,
                    instigator_name=name,
                    instigator_type=kind,
                    status=TickStatus.FAILURE if failed else TickStatus.SKIPPED,
                    timestamp=now - (ticks - t) * 60,
                    selector_id=state.selector_id,
                    error=error if failed else None,
                )
            )
    w.add_ticks(stored)


# -- the passes --------------------------------------------------------------------------------------------------

LAST_READ = {"cpu": 0.0, "observations": 0.0}
"""The platform readers' CPU seconds and observations in the last pass (:func:`timed_platform_pass`)."""
_platform_pass = platform_pass


def timed_platform_pass(*args: Any, **kwargs: Any) -> Any:
    """The sensor's ``platform_pass``, timed: the readers' share of the pass."""
    started = time.process_time()
    read = _platform_pass(*args, **kwargs)
    LAST_READ.update(cpu=time.process_time() - started, observations=len(read.observations))
    return read


setattr(watch_sensor, "platform_pass", timed_platform_pass)  # what the sensor calls  # noqa: B010


class Sensor:
    """``sqlsentinel_watch`` ticked as the daemon ticks it: each pass gets the last cursor and a fresh instance."""

    def __init__(self, home: Path, rules: Path) -> None:
        self.home = home
        self.definition = build_definitions(rules).resolve_sensor_def("sqlsentinel_watch")
        self.resources = {
            "sqlsentinel_state": AlertStateResource(),
            "sqlsentinel_notifications": NotificationsResource(),
        }
        self.cursor: str | None = None
        self.summary = ""

    @property
    def runs_cursor(self) -> float:
        return float(json.loads(self.cursor or "{}").get("platform", {}).get("runs", 0.0))

    @property
    def reading(self) -> float:
        return LAST_READ["cpu"]

    @property
    def observations(self) -> float:
        return LAST_READ["observations"]

    def tick(self) -> tuple[float, float]:
        """One pass; its (CPU, wall) seconds."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            context = dg.build_sensor_context(instance=instance, cursor=self.cursor, resources=self.resources)
            with measured() as elapsed, contextlib.redirect_stderr(io.StringIO()):  # its log lines
                result = self.definition(context)
            cpu, wall = elapsed()
        self.cursor = context.cursor
        self.summary = getattr(result, "skip_message", "") or ""
        return cpu, wall


def bare_reads(home: Path, after: float, running: list[str], url: str) -> tuple[float, float, float, int]:
    """The reads a pass needs, on a fresh instance: (CPU, wall, CPU with one event read per failed run, runs read)."""
    with dg.DagsterInstance.from_config(str(home)) as instance, measured() as elapsed:
        failed = instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.FAILURE], updated_after=dt.datetime.fromtimestamp(after, dt.UTC)
            ),
            limit=MAX_RUNS_PER_PASS,
            order_by="update_timestamp",
            ascending=True,
        )
        instance.get_run_records(filters=dg.RunsFilter(statuses=GOING), limit=1000)
        states = instance.all_instigator_state()
        instance.get_batch_ticks(running, limit=3)
        requests.post(f"{url}/graphql", json={"query": GRAPHQL}, timeout=10).raise_for_status()
        cpu, wall = elapsed()
        for record in failed:
            instance.get_records_for_run(record.dagster_run.run_id, of_type=FAILURE_TYPES, limit=20)
        with_events = elapsed()[0]
    assert len(states) > 0
    return cpu, wall, with_events, len(failed)


class Row:
    def __init__(self) -> None:
        self.cells: dict[str, list[float]] = {}

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.cells.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.cells[name])


def measure(sensor: Sensor, home: Path, running: list[str], url: str, row: Row) -> None:
    """One baseline, then one pass from the same cursor."""
    cpu, wall, with_events, failed = bare_reads(home, sensor.runs_cursor, running, url)
    tick_cpu, tick_wall = sensor.tick()
    row.add(
        bare_cpu=cpu * 1000,
        bare_wall=wall * 1000,
        events_cpu=with_events * 1000,
        failed=failed,
        cpu=tick_cpu * 1000,
        wall=tick_wall * 1000,
        reading=sensor.reading * 1000,
        observations=sensor.observations,
    )
    if "out of time" in sensor.summary:
        print(f"   (a pass ran out of time: {sensor.summary})")


def print_row(name: str, phase: str, row: Row) -> None:
    bare, cpu = row.median("bare_cpu"), row.median("cpu")
    print(
        f"{name:<8} | {phase:<20} | {len(row.cells['cpu']):>6} | {row.median('failed'):>6.0f} | "
        f"{row.median('observations'):>5.0f} | "
        f"{bare:>8.1f} ms {row.median('bare_wall'):>8.1f} ms | {row.median('events_cpu'):>8.1f} ms | "
        f"{cpu:>8.1f} ms {row.median('wall'):>8.1f} ms | {row.median('reading') / max(cpu, 1e-6):>4.0%} | "
        f"{cpu / max(bare, 1e-6):>6.1f}x | {cpu / max(row.median('events_cpu'), 1e-6):>6.1f}x"
    )


def bench(name: str, home: Path, args: argparse.Namespace, folder: Path, url: str) -> None:
    began = time.perf_counter()
    rules = folder / f"{name}_alerts.yaml"
    rules.write_text(RULES.format(webserver=url))
    start = time.time() - 2 * 86400
    with writer(home) as w, measured() as elapsed:
        last = store_runs(w, args, start)
        store_instigators(w, args.instigators, args.ticks)
        running = [s.selector_id for s in w.instance.all_instigator_state() if s.is_running]
        stored = elapsed()[1]
    sensor = Sensor(home, rules)
    # The first passes (untimed) read the last hour of runs: every job ran in it, so those whose latest run failed fire.
    sensor.cursor = json.dumps({"platform": {"runs": last - 3600}})
    for _ in range(10):
        before = sensor.runs_cursor
        sensor.tick()
        if sensor.runs_cursor == before:
            break
    steady = Row()
    for _ in range(args.passes):
        measure(sensor, home, running, url, steady)
    print_row(name, "steady", steady)
    new = Row()
    for burst in range(args.bursts):
        first = last + 600 * (burst + 1)
        with writer(home) as w:
            for i in range(args.new):
                w.failed_run(i % args.jobs, first + i * 30 / args.new)
        measure(sensor, home, running, url, new)
    print_row(name, f"{args.new} new failed runs", new)
    firing = Row()
    for _ in range(args.passes):
        measure(sensor, home, running, url, firing)
    print_row(name, "steady, all firing", firing)
    whole = time.perf_counter() - began
    print(f"{name:<8} | (storing the instance took {stored:.0f} s, the whole benchmark {whole:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2_000, help="finished runs stored (10%% failed)")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--running", type=int, default=20, help="runs still going (a quarter for 3 h)")
    parser.add_argument("--instigators", type=int, default=100, help="schedules and sensors (half each)")
    parser.add_argument("--ticks", type=int, default=10, help="ticks stored per schedule or sensor")
    parser.add_argument("--new", type=int, default=MAX_RUNS_PER_PASS, help="new failed runs read by one pass")
    parser.add_argument("--bursts", type=int, default=2, help="passes reading --new new failed runs")
    parser.add_argument("--passes", type=int, default=5, help="steady passes timed (each phase)")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(
        f"{'storage':<8} | {'pass':<20} | {'passes':>6} | {'failed':>6} | {'obs':>5} | "
        f"{'bare reads CPU / wall':>23} | {'+ events':>11} | {'pass CPU / wall':>23} | {'read':>4} | "
        f"{'ratio':>7} | {'vs +ev':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp, webserver() as url:
        for storage, home in storage_homes(Path(tmp), args.postgres_url):
            bench(storage, home, args, Path(tmp), url)


if __name__ == "__main__":
    main()
