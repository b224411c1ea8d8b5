"""Benchmark: CPU of one instance alert of 10,000 instances, against a bare read plus one bulk upsert of its rows.

Run:  .venv/bin/python bench/instances.py [--instances 10000] [--repeat 3] [--backends sqlite postgres]
                                          [--postgres-url URL] [--profile]

An alert with ``instances:`` turns every row of its query into an instance with its own state. For each backend
(SQLite files in a temp dir; the local PostgreSQL, SQLSENTINEL_TEST_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/test) it builds a warehouse table of N rows (10% of them over the threshold)
and, per repeat, a fresh state database on the same backend (a new SQLite file / a new Postgres database). The
alert notifies a ``log`` target and a webhook on a loopback server, both ``group: true``. Each repeat measures,
through ``run_cycle`` (what ``sqlsentinel run`` and the Dagster runs call):

  baseline    a bare read of the same rows with SQLAlchemy (the alert's query, fetched fully), then one bulk
              upsert of N rows (INSERT ... ON CONFLICT DO UPDATE, executemany through insertmanyvalues) into a
              table of the state table's shape in the same state database, with JSON texts the size of the
              alert's own state rows; the table already holds the N rows, so every row is updated, as every
              state row is in steady state;
  first       the first evaluation: every instance new, N/10 firing, notified grouped on each target;
  steady      the same data again: nothing to notify;
  changed     --changes instances change status (half resolve, half fire): one grouped message per target.

It prints, per backend, the median of --repeat repeats of: CPU seconds (this process's time.process_time, which
includes the loopback server's thread), wall seconds, the CPU of the server's processes on a local Postgres
(read from /proc), the ratio of the CPU to the baseline's, the statements the databases ran (on Postgres each
is a round trip: a row-by-row executemany counts a statement per row), and the messages each target received
(with the fewest the channel's size limit allows). The aims: steady state within 5x the baseline, and the
change notified as one grouped message per target. --profile adds a cProfile of one steady-state evaluation
per backend (top --profile-lines functions by cumulative, then by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import io
import json
import logging
import math
import os
import pstats
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import ExecuteStyle

from sqlsentinel_dagster.config import LoadedConfig, load_config
from sqlsentinel_dagster.cycle.alert import AlertCycle, run_cycle
from sqlsentinel_dagster.cycle.delivery import CycleSettings
from sqlsentinel_dagster.definitions.resources import AlertStateResource, NotificationsResource, WarehouseResource
from sqlsentinel_dagster.notifiers.log import MAX_RECORD_CHARS
from sqlsentinel_dagster.notifiers.webhook import MAX_BODY_BYTES
from sqlsentinel_dagster.state.schema import alert_state
from sqlsentinel_dagster.state.store import StateStore

POSTGRES = os.environ.get("SQLSENTINEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ALERT = "per_store"
THRESHOLD = 5
QUERY = (
    "SELECT store, CASE WHEN v > {threshold} THEN 'ALERT' ELSE 'OK' END AS status, v AS actual_value, "
    "{threshold} AS threshold FROM {table}"
)
MEASUREMENTS = ("baseline", "first", "steady", "changed")
LABELS = {
    "baseline": "baseline: read + upsert",
    "first": "first evaluation",
    "steady": "steady state",
    "changed": "changed",
}


# -- the receivers: a log handler and a loopback webhook that only count (their CPU is in this process) --------


class CountingHandler(logging.Handler):
    """Keeps the size of each record the ``log`` channel writes; prints nothing."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.sizes: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.sizes.append(len(record.getMessage()))


@dataclass
class Webhook:
    """The bodies posted to the loopback server, raw (parsed after the measurement, not during it)."""

    url: str = ""
    bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def loopback_webhook() -> Iterator[Webhook]:
    """An HTTP server on 127.0.0.1 that answers 200 to every post and keeps its body."""
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with hook.lock:
                hook.bodies.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


# -- backends ---------------------------------------------------------------------------------------------------


@dataclass
class Backend:
    """A warehouse table of the alert's rows, and fresh state databases on demand, on one database system."""

    name: str
    warehouse_url: str
    table: str
    fresh_state: Callable[[], str]
    """A new, empty state database's URL."""
    drop_state: Callable[[str], None]
    server_pids: Callable[[], dict[int, float]] | None = None
    """CPU seconds so far of each of the database server's processes (a local Postgres), or None."""


def sqlite_backend(folder: Path, count: int) -> tuple[Backend, Callable[[], None]]:
    path = folder / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE m (store TEXT PRIMARY KEY, v REAL NOT NULL)")
        db.executemany("INSERT INTO m VALUES (?, ?)", warehouse_rows(count))
    numbers = iter(range(1_000_000))

    def fresh_state() -> str:
        return f"sqlite:///{folder / f'state_{next(numbers)}.db'}"

    def drop_state(url: str) -> None:
        Path(sa.make_url(url).database or "").unlink(missing_ok=True)

    return Backend("sqlite", f"sqlite:///{path}", "m", fresh_state, drop_state), lambda: None


def postgres_backend(url: str, count: int) -> tuple[Backend, Callable[[], None]]:
    """The warehouse table in ``url``'s database, each state database a new database on the same server."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    table = f"sx_bench_m_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (store TEXT PRIMARY KEY, v DOUBLE PRECISION NOT NULL)")
        rows = [{"store": store, "v": v} for store, v in warehouse_rows(count)]
        conn.execute(sa.insert(sa.table(table, sa.column("store"), sa.column("v"))), rows)
    created: list[str] = []

    def fresh_state() -> str:
        name = f"sx_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        created.append(name)
        return sa.make_url(url).set(database=name).render_as_string(hide_password=False)

    def drop_state(state_url: str) -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {sa.make_url(state_url).database} WITH (FORCE)")

    def cleanup() -> None:
        with admin.connect() as conn:
            for name in created:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        admin.dispose()

    local = sa.make_url(url).host in ("127.0.0.1", "localhost", "::1", None) and Path("/proc/self/stat").exists()
    backend = Backend("postgres", url, table, fresh_state, drop_state, postgres_cpu if local else None)
    return backend, cleanup


def warehouse_rows(count: int) -> list[tuple[str, float]]:
    """One row per store; every tenth over the threshold."""
    return [(f"s{i:06d}", 10.0 if i % 10 == 0 else 1.0) for i in range(count)]


def postgres_cpu() -> dict[int, float]:
    """User + system CPU seconds of every process named ``postgres`` on this machine (server, backends, WAL)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if name == "postgres":
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


# -- what is measured -------------------------------------------------------------------------------------------


class Statements:
    """Statements the databases ran, counted on every engine: an executemany that the driver runs row by row
    (psycopg2 does, for UPDATE and for an INSERT that SQLAlchemy does not batch) counts one per row; on Postgres
    each is a round trip, on SQLite a call into the library."""

    count = 0

    @classmethod
    def listen(cls) -> None:
        sa.event.listen(sa.Engine, "before_cursor_execute", cls._seen)

    @classmethod
    def _seen(cls, _conn: Any, _cursor: Any, _statement: str, parameters: Any, context: Any, many: bool) -> None:
        row_by_row = many and context is not None and context.execute_style is ExecuteStyle.EXECUTEMANY
        cls.count += len(parameters) if row_by_row else 1


@dataclass
class Sample:
    cpu: float
    wall: float
    server: float | None
    statements: int
    log_sizes: list[int]
    bodies: list[bytes]
    cycle: AlertCycle | None = None


class Bench:
    """One backend's alerts file, warehouse, receivers and cycle settings."""

    def __init__(self, backend: Backend, folder: Path, hook: Webhook, changes: int) -> None:
        self.backend, self.hook, self.changes = backend, hook, changes
        self.query = QUERY.format(threshold=THRESHOLD, table=backend.table)
        path = folder / f"alerts_{backend.name}.yaml"
        path.write_text(
            f"database:\n  url: {json.dumps(backend.warehouse_url)}\n"
            "alerts:\n"
            f"  - name: {ALERT}\n"
            f"    query: {json.dumps(self.query)}\n"
            '    schedule: "*/5 * * * *"\n'
            "    instances: {by: [store], max: 100000}\n"
            "    notify:\n"
            "      - {channel: log, group: true}\n"
            f"      - {{channel: webhook, url: {json.dumps(hook.url)}, group: true}}\n"
        )
        self.config: LoadedConfig = load_config(path)
        self.alert = self.config.alert(ALERT)
        database = self.config.database_name(self.alert)
        self.warehouse = WarehouseResource(config_path=str(self.config.path), database=database)
        defaults = AlertStateResource()
        self.settings = CycleSettings(
            channels=NotificationsResource().channel_settings(),
            lease=dt.timedelta(seconds=defaults.delivery_lease_seconds),
            expire_after=dt.timedelta(hours=defaults.notification_expiry_hours),
            run_id=None,
        )
        self.logger = logging.getLogger(f"bench.instances.{backend.name}")
        self.logger.setLevel(logging.WARNING)
        self.logger.propagate = False
        self.records = CountingHandler()
        self.logger.addHandler(self.records)
        self.reader = sa.create_engine(backend.warehouse_url)
        self.state_sizes = (500, 150)  # data and labels characters; measured by warm_up()

    def cycle(self, store: StateStore) -> AlertCycle:
        cycle = run_cycle(self.alert, self.config, self.warehouse.evaluate, lambda: store, self.settings, self.logger)
        if cycle.failure:
            raise RuntimeError(f"{self.backend.name}: the cycle failed: {cycle.failure}")
        return cycle

    def measured(self, work: Callable[[], AlertCycle | None]) -> Sample:
        """Run ``work`` once, timed; what the receivers got meanwhile."""
        self.records.sizes.clear()
        with self.hook.lock:
            self.hook.bodies.clear()
        gc.collect()
        server_before = self.backend.server_pids() if self.backend.server_pids else None
        statements = Statements.count
        cpu, wall = time.process_time(), time.perf_counter()
        cycle = work()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        statements = Statements.count - statements
        server = None
        if server_before is not None and self.backend.server_pids is not None:
            after = self.backend.server_pids()
            server = sum(seconds - server_before.get(pid, 0.0) for pid, seconds in after.items())
        with self.hook.lock:
            bodies = list(self.hook.bodies)
        return Sample(cpu, wall, server, statements, list(self.records.sizes), bodies, cycle)

    def set_values(self, values: list[tuple[str, float]]) -> None:
        with self.reader.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE {self.backend.table} SET v = :v WHERE store = :store"),
                [{"store": s, "v": v} for s, v in values],
            )

    def changed_stores(self, count: int) -> list[tuple[str, float, float]]:
        """``self.changes`` stores to change (store, value before, value after): half resolve, half fire."""
        firing = [i for i in range(count) if i % 10 == 0]
        quiet = [i for i in range(count) if i % 10 != 0]
        half = self.changes // 2
        picked = [(i, 10.0, 1.0) for i in firing[:half]] + [(i, 1.0, 10.0) for i in quiet[: self.changes - half]]
        return [(f"s{i:06d}", before, after) for i, before, after in picked]

    # -- the baseline: a bare read, then one bulk upsert -----------------------------------------------------

    def baseline_table(self, state_url: str) -> tuple[sa.Engine, sa.Table]:
        """A table of the state table's shape in the state database, holding a row per store already."""
        engine = sa.create_engine(state_url)
        table = alert_state.to_metadata(sa.MetaData(), name="bench_baseline_state")
        table.create(engine)
        with self.reader.connect() as conn:
            rows = conn.execute(sa.text(self.query)).fetchall()
        with engine.begin() as conn:
            conn.execute(upsert(engine, table), self.state_rows(rows)).all()
        return engine, table

    def state_rows(self, rows: list[Any]) -> list[dict[str, Any]]:
        """A state row per warehouse row: its JSON texts padded to the sizes of the alert's own state rows."""
        data_size, labels_size = self.state_sizes
        now = dt.datetime.now(dt.UTC)
        out = []
        for store, status, value, threshold in rows:
            data = json.dumps({"status": status, "value": value, "threshold": threshold, "at": now.isoformat()})
            labels = json.dumps({"alert_name": ALERT, "labels": {"store": store}})
            out.append(
                {
                    "alert": f'{ALERT}{{store="{store}"}}',
                    "condition": "firing" if status == "ALERT" else "inactive",
                    "last_status": status,
                    "data": data[:-1] + ', "pad": "' + "x" * max(0, data_size - len(data) - 11) + '"}',
                    "labels": labels[:-1] + ', "pad": "' + "x" * max(0, labels_size - len(labels) - 11) + '"}',
                    "updated_at": now,
                }
            )
        return out

    def baseline(self, engine: sa.Engine, table: sa.Table) -> None:
        with self.reader.connect() as conn:
            rows = conn.execute(sa.text(self.query)).fetchall()
        with engine.begin() as conn:
            conn.execute(upsert(engine, table), self.state_rows(rows)).all()

    # -- one repeat ------------------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """One first and one steady evaluation, not recorded: imports, caches and pools warm; the sizes of the
        state rows the baseline's rows copy."""
        url = self.backend.fresh_state()
        store = StateStore.from_url(url)
        try:
            self.cycle(store)
            self.cycle(store)
            with store.engine.connect() as conn:
                sizes = conn.execute(
                    sa.select(
                        sa.func.avg(sa.func.length(alert_state.c.data)),
                        sa.func.avg(sa.func.length(alert_state.c.labels)),
                    ).where(alert_state.c.alert != ALERT)
                ).one()
            self.state_sizes = (round(float(sizes[0])), round(float(sizes[1])))
        finally:
            store.engine.dispose()
            self.backend.drop_state(url)

    def repeat(self, count: int) -> dict[str, Sample]:
        url = self.backend.fresh_state()
        store = StateStore.from_url(url)
        engine, table = self.baseline_table(url)
        changed = self.changed_stores(count)
        try:
            samples = {"baseline": self.measured(lambda: self.baseline(engine, table))}
            samples["first"] = self.measured(lambda: self.cycle(store))
            samples["steady"] = self.measured(lambda: self.cycle(store))
            self.set_values([(store_, after) for store_, _, after in changed])
            try:
                samples["changed"] = self.measured(lambda: self.cycle(store))
            finally:
                self.set_values([(store_, before) for store_, before, _ in changed])
            return samples
        finally:
            engine.dispose()
            store.engine.dispose()
            self.backend.drop_state(url)

    def profile(self, lines: int) -> str:
        """cProfile of one steady-state evaluation (after a first one, on a fresh state database)."""
        url = self.backend.fresh_state()
        store = StateStore.from_url(url)
        try:
            self.cycle(store)
            gc.collect()
            profiler = cProfile.Profile()
            profiler.enable()
            self.cycle(store)
            profiler.disable()
        finally:
            store.engine.dispose()
            self.backend.drop_state(url)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(lines)
        stats.sort_stats("tottime").print_stats(lines)
        return out.getvalue()


def upsert(engine: sa.Engine, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT (alert) DO UPDATE of every other column, RETURNING alert: with RETURNING, an
    executemany goes through insertmanyvalues (1,000 rows a statement); without it SQLAlchemy 2.0.58 sends an
    upsert row by row (its issue #13130), 10,000 round trips on Postgres."""
    insert = postgresql.insert(table) if engine.dialect.name == "postgresql" else sqlite.insert(table)
    updated = {c.name: insert.excluded[c.name] for c in table.columns if c.name != "alert"}
    return insert.on_conflict_do_update(index_elements=[table.c.alert], set_=updated).returning(table.c.alert)


# -- report -----------------------------------------------------------------------------------------------------


def messages(samples: list[Sample]) -> str:
    """Messages per target in the last repeat, each with the fewest its size limit allows, and the
    notifications the webhook's posts listed."""
    last = samples[-1]
    if not last.log_sizes and not last.bodies:
        return "none"
    log_least = math.ceil(sum(last.log_sizes) / MAX_RECORD_CHARS)
    hook_least = math.ceil(sum(len(b) for b in last.bodies) / MAX_BODY_BYTES)
    listed = sum(len(json.loads(b)) for b in last.bodies)
    return f"log {len(last.log_sizes)} (>= {log_least}), webhook {len(last.bodies)} (>= {hook_least}) listing {listed}"


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=10_000, help="rows of the warehouse table (instances)")
    parser.add_argument("--changes", type=int, default=100, help="instances that change status in 'changed'")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--postgres-url", default=POSTGRES)
    parser.add_argument("--profile", action="store_true", help="cProfile one steady-state evaluation per backend")
    parser.add_argument("--profile-lines", type=int, default=15)
    args = parser.parse_args()
    args.changes = min(args.changes, args.instances // 10 * 2)
    Statements.listen()

    results: dict[str, dict[str, list[Sample]]] = {}
    profiles: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp, loopback_webhook() as hook:
        folder = Path(tmp)
        for name in args.backends:
            try:
                if name == "sqlite":
                    backend, cleanup = sqlite_backend(folder, args.instances)
                else:
                    backend, cleanup = postgres_backend(args.postgres_url, args.instances)
            except sa.exc.OperationalError as exc:
                print(f"{name} skipped: {str(exc.orig).strip().splitlines()[0]}", file=sys.stderr)
                continue
            try:
                bench = Bench(backend, folder, hook, args.changes)
                bench.warm_up()
                samples: dict[str, list[Sample]] = {m: [] for m in MEASUREMENTS}
                for _ in range(args.repeat):
                    for measurement, sample in bench.repeat(args.instances).items():
                        samples[measurement].append(sample)
                results[name] = samples
                sizes[name] = bench.state_sizes
                if args.profile:
                    profiles[name] = bench.profile(args.profile_lines)
                bench.reader.dispose()
            finally:
                cleanup()

    if not results:
        raise SystemExit("no backend could be measured")
    print(
        f"{args.instances:,} instances, {args.instances // 10:,} firing at first, {args.changes} changed; "
        f"median of {args.repeat} repeats; the baseline's state rows copy the alert's: "
        + ", ".join(f"{name} {data} + {labels} characters (data + labels)" for name, (data, labels) in sizes.items())
    )
    print(
        f"{'backend':<8} | {'measurement':<24} | {'CPU s':>7} | {'wall s':>7} | {'server CPU s':>12} | "
        f"{'CPU vs baseline':>15} | {'statements':>10} | messages per target (fewest the limits allow)"
    )
    verdicts = []
    for name, samples in results.items():
        base = statistics.median(s.cpu for s in samples["baseline"])
        for measurement in MEASUREMENTS:
            cpu = statistics.median(s.cpu for s in samples[measurement])
            wall = statistics.median(s.wall for s in samples[measurement])
            server = median([s.server for s in samples[measurement]])
            statements = round(statistics.median(s.statements for s in samples[measurement]))
            shown_server = f"{server:>12.2f}" if server is not None else f"{'-':>12}"
            label = LABELS[measurement] if measurement != "changed" else f"{args.changes} changed"
            print(
                f"{name:<8} | {label:<24} | {cpu:>7.3f} | {wall:>7.3f} | {shown_server} | {cpu / base:>14.1f}x | "
                f"{statements:>10,} | "
                f"{'-' if measurement == 'baseline' else messages(samples[measurement])}",
                flush=True,
            )
        steady = statistics.median(s.cpu for s in samples["steady"]) / base
        first = statistics.median(s.cpu for s in samples["first"]) / base
        changed = samples["changed"]
        grouped = all(len(s.bodies) == 1 and len(s.log_sizes) == 1 for s in changed)
        verdicts.append(
            f"{name}: steady state {steady:.1f}x the baseline (aim <= 5x: {'met' if steady <= 5 else 'NOT met'}), "
            f"first evaluation {first:.1f}x; {args.changes} changed: "
            f"{'one message per target (met)' if grouped else 'NOT one message per target (see the table)'}"
        )
    for line in verdicts:
        print(line)
    for name, text in profiles.items():
        print(f"\n== cProfile, steady-state evaluation, {name} ==\n{text.strip()}")


if __name__ == "__main__":
    main()
