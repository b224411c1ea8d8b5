"""A run killed while sending: the notification it held is shown as in flight, and taken over as soon as Dagster
says that run has ended (not only when its lease lapses), so it is delivered, never lost and never silent."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
from click.testing import CliRunner

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.notifiers.deliver import deliver_pending
from sqlsentinel_dagster.state.model import Outcome, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore

DAGSTER = str(Path(sys.executable).parent / "dagster")
LEASE = dt.timedelta(minutes=5)


class Recorder:
    """A channel that records what it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: Mapping[str, Any]) -> None:
        self.sent.append(str(message["idempotency_key"]))


def _store_with_a_send_in_flight(tmp_path: Path) -> StateStore:
    """A firing notification claimed by run 'killed', which never finished it."""
    store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
    channels = {"0:webhook": {"firing"}}
    store.record(AlertLabels("a"), Outcome("ALERT"), StateSettings(None, 1, 1, 1), channels, {}, run_id="killed")
    (intent,) = store.pending("a")
    assert store.claim(intent.id, "killed", LEASE)
    return store


class TestTakeOver:
    def test_a_send_held_by_a_run_that_ended_is_taken_over_at_once(self, tmp_path: Path) -> None:
        """The lease has minutes left, but the holder has ended: deliver now, and say from which run."""
        store, channel = _store_with_a_send_in_flight(tmp_path), Recorder()
        (report,) = deliver_pending(
            store, "a", {"0:webhook": channel}, run_id="next", run_ended={"killed"}.__contains__
        )
        assert (report.outcome, report.interrupted_run) == ("delivered", "killed")
        assert channel.sent == ["a/1/firing/0:webhook"] and store.pending("a") == []
        assert "taken over from run killed" in report.describe()

    def test_a_send_held_by_a_live_run_is_shown_in_flight_and_left_alone(self, tmp_path: Path) -> None:
        """While the holder may still be sending, this run reports it and sends nothing (no duplicate)."""
        store, channel = _store_with_a_send_in_flight(tmp_path), Recorder()
        (report,) = deliver_pending(store, "a", {"0:webhook": channel}, run_id="next", run_ended=lambda _run: False)
        assert (report.outcome, report.error) == ("in_flight", "being sent by run killed")
        assert channel.sent == [] and [i.status for i in store.pending("a")] == ["sending"]

    def test_without_a_way_to_ask_the_lease_decides(self, tmp_path: Path) -> None:
        """The CLI has no Dagster instance: the notification waits for its lease, then any run sends it."""
        store, channel = _store_with_a_send_in_flight(tmp_path), Recorder()
        assert deliver_pending(store, "a", {"0:webhook": channel}, run_id="cli")[0].outcome == "in_flight"
        store.clock = lambda: dt.datetime.now(dt.UTC) + LEASE + dt.timedelta(seconds=1)
        assert deliver_pending(store, "a", {"0:webhook": channel}, run_id="cli")[0].outcome == "delivered"
        assert channel.sent == ["a/1/firing/0:webhook"]


@contextmanager
def stuck_then_fine_receiver() -> Iterator[tuple[str, list[str], threading.Event]]:
    """A webhook receiver whose first request never gets an answer; later ones get 200. Yields its URL, the
    idempotency keys received, and an event set when the first request has arrived."""
    keys: list[str] = []
    first_arrived, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            keys.append(self.headers.get("Idempotency-Key", ""))
            if len(keys) == 1:
                first_arrived.set()
                release.wait(60)
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", keys, first_arrived
    finally:
        release.set()
        server.shutdown()


def test_a_run_interrupted_mid_send_is_taken_over_by_the_next_run(tmp_path: Path, sqlite_warehouse: Path) -> None:
    """`dagster job execute` interrupted while the webhook holds its request: the run ends failed, the next
    run (minutes inside the lease) takes the notification over and delivers it with the same key."""
    home = tmp_path / "home"
    home.mkdir()
    with stuck_then_fine_receiver() as (url, keys, first_arrived):
        (tmp_path / "alerts.yaml").write_text(
            textwrap.dedent(
                f"""
                databases: {{main: {{url: "sqlite:///{sqlite_warehouse}"}}}}
                alerts:
                  - name: firing
                    query: "SELECT 'ALERT' AS status"
                    schedule: "@hourly"
                    notify: [{{channel: webhook, url: "{url}", timeout: 120}}]
                """
            )
        )
        defs = tmp_path / "defs.py"
        alerts = str(tmp_path / "alerts.yaml")
        defs.write_text(f"from sqlsentinel_dagster import build_definitions\ndefs = build_definitions({alerts!r})\n")
        env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
        process = subprocess.Popen(
            [DAGSTER, "job", "execute", "-f", str(defs), "-j", "sqlsentinel__firing"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert first_arrived.wait(120), "the first run never sent"
        process.send_signal(signal.SIGINT)  # as Ctrl-C or a cancel does: the run ends while sending
        process.wait(120)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            (killed,) = instance.get_runs()
            assert killed.is_finished and killed.status != dg.DagsterRunStatus.SUCCESS
            state = StateStore.from_url(instance_state_url(instance))
            assert [(i.status, i.run_id) for i in state.pending("firing")] == [("sending", killed.run_id)]
            url = ["--database-url", instance_state_url(instance)]
            history = CliRunner().invoke(main, ["history", "firing", *url]).output
            status = CliRunner().invoke(main, ["status", *url]).output
            assert "0 sent" in history and "1 being sent" in history  # not silently green
            assert "1 notification(s) not delivered yet" in status
            started = time.monotonic()
            job = build_definitions(tmp_path / "alerts.yaml").resolve_job_def("sqlsentinel__firing")
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            assert time.monotonic() - started < LEASE.total_seconds()  # it did not wait for the lease
            assert state.pending("firing") == []
            logs = [record.user_message for record in instance.all_logs(result.run_id)]
        assert any(f"taken over from run {killed.run_id}" in m for m in logs)
    assert len(keys) == 2 and keys[0] == keys[1] == "firing/1/firing/0:webhook"
