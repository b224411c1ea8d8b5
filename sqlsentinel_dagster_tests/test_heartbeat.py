"""``heartbeat:``, the dead man's switch: the block in alerts.yaml, the ``sqlsentinel_heartbeat`` sensor ticked in
process against a real instance and a real HTTP server on loopback, its secrets, and, through the real
``dagster-daemon`` on Postgres, pings that stop when the daemon does while ``sqlsentinel health`` names why."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sqlsentinel_dagster import AlertStateResource, build_definitions
from sqlsentinel_dagster.config import load_config
from sqlsentinel_dagster.errors import ConfigError

from .processes import BIN, dagster_daemon, dagster_env, free_port, wait_for

WriteAlerts = Callable[..., Path]
TOKEN = "0f4c1e5a-secret-ping-token"
"""The secret part of the heartbeat URL (as a healthchecks.io UUID is)."""
KEY = "genie-key-never-shown"
ALERT = '  - {name: yearly, query: "SELECT \'OK\' AS status", schedule: "0 0 1 1 *"}\n'


# -- a heartbeat receiver on loopback: every method, and an answer that echoes what it got ------------------------


@dataclass
class Ping:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class PingServer:
    """Records each request; answers ``status``, echoing the path and headers when it refuses (as some do)."""

    url: str = ""
    status: int = 200
    pings: list[Ping] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, path: str | None = None) -> list[Ping]:
        with self.lock:
            return [p for p in self.pings if path is None or p.path == path]


@contextmanager
def ping_server() -> Iterator[PingServer]:
    server = PingServer()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            with server.lock:
                server.pings.append(Ping(self.command, self.path, dict(self.headers), body))
            self.send_response(server.status)
            self.end_headers()
            if self.command != "HEAD":
                answer = "OK" if server.status < 300 else f"no such check {self.path}; you sent {dict(self.headers)}"
                self.wfile.write(answer.encode())

        do_GET = do_HEAD = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.url = f"http://127.0.0.1:{http.server_address[1]}"
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        http.shutdown()
        http.server_close()


@pytest.fixture
def pings() -> Iterator[PingServer]:
    with ping_server() as server:
        yield server


@pytest.fixture
def home(dagster_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DAGSTER_HOME set, as in a code server: loading the file records its version in the state database."""
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.delenv("STATE_DB_URL", raising=False)
    return dagster_home


def heartbeat_file(write_alerts: WriteAlerts, block: str) -> Path:
    return write_alerts(f'database: {{url: "sqlite:///w.db"}}\nalerts:\n{ALERT}heartbeat: {block}\n')


class Sensor:
    """``sqlsentinel_heartbeat`` of a file, built once (as a code server does) and ticked by hand."""

    def __init__(self, path: Path, home: Path, **build: Any) -> None:
        defs = build_definitions(path, **build)
        self.definition = defs.resolve_sensor_def(
            f"sqlsentinel_heartbeat{'__' + build['name'] if 'name' in build else ''}"
        )
        self.home = home

    def tick(self) -> str:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            context = dg.build_sensor_context(instance=instance, resources={"sqlsentinel_state": AlertStateResource()})
            result = self.definition(context)
        assert isinstance(result, dg.SkipReason) and result.skip_message is not None
        return result.skip_message


def age(path: Path, seconds: float) -> None:
    """Make ``path`` look last changed ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


# -- the block ----------------------------------------------------------------------------------------------------


class TestConfig:
    def test_secrets_stay_as_written_and_the_rest_has_defaults(self, write_alerts: WriteAlerts) -> None:
        """url, fail.url and headers keep their ${VAR} text even when the variables are set (resolved only when
        pinging); every: 1m, GET, 10s, grace 2m, queued_limit 10m, failed_runs 3 by default."""
        path = heartbeat_file(
            write_alerts,
            '{url: "${HEARTBEAT_URL}", headers: {Authorization: "GenieKey ${KEY}"}, '
            'fail: {url: "${HEARTBEAT_URL}/fail"}}',
        )
        config = load_config(path, environ={"HEARTBEAT_URL": f"https://hc-ping.com/{TOKEN}", "KEY": KEY})
        heartbeat = config.file.heartbeat
        assert heartbeat is not None and heartbeat.url == "${HEARTBEAT_URL}"
        assert heartbeat.fail is not None and heartbeat.fail.url == "${HEARTBEAT_URL}/fail"
        assert heartbeat.headers == {"Authorization": "GenieKey ${KEY}"}
        assert (heartbeat.every, heartbeat.method, heartbeat.timeout) == (60.0, "GET", 10.0)
        assert (heartbeat.grace, heartbeat.queued_limit, heartbeat.failed_runs) == (120.0, 600.0, 3)
        assert TOKEN not in repr(config) and KEY not in repr(config)

    def test_mistakes_are_located_and_say_what_is_allowed(self, write_alerts: WriteAlerts) -> None:
        """Every mistake at once, each with its line and field; a URL written out is not quoted back."""
        path = write_alerts(
            'database: {url: "sqlite:///w.db"}\n'
            "alerts: []\n"
            "heartbeat:\n"
            f'  url: "ftp://example.com/{TOKEN}"\n'
            "  every: 5s\n"
            "  method: DELETE\n"
            "  timeout: 2m\n"
            '  fail: {url: "${HB}/fail", extra: 1}\n'
            "  grace: soon\n"
            "  failed_runs: -1\n"
            "  headerz: {}\n"
        )
        with pytest.raises(ConfigError) as caught:
            load_config(path, environ={})
        assert [f"{p.line} {p.location}: {p.message}" for p in caught.value.problems] == [
            "4 heartbeat.url: expected an http:// or https:// URL (or ${VAR}); the value is not shown: it may be a "
            "secret",
            "5 heartbeat.every: must be between 10s and 1h, got 5s",
            "6 heartbeat.method: invalid value 'DELETE'; allowed: 'GET', 'HEAD' or 'POST'",
            "7 heartbeat.timeout: must be between 1s and 30s, got 2m",
            "8 heartbeat.fail.extra: unknown key 'extra'; allowed: url",
            "9 heartbeat.grace: invalid duration 'soon'; use seconds (30) or a string such as '30s', '5m', '1h'",
            "10 heartbeat.failed_runs: must be at least 0, got -1",
            "11 heartbeat.headerz: unknown key 'headerz'; allowed: every, fail, failed_runs, grace, headers, method, "
            "queued_limit, timeout, url; did you mean 'headers'?",
        ]
        assert TOKEN not in str(caught.value)


class TestDefinition:
    def test_one_sensor_running_by_default_every_every_named_after_the_file(self, write_alerts: WriteAlerts) -> None:
        """RUNNING by default at `every`; a namespaced file's is `sqlsentinel_heartbeat__<name>`; none without the
        block; the description never holds the URL, even one written out."""
        path = heartbeat_file(write_alerts, f'{{url: "https://hc-ping.com/{TOKEN}", every: 10s}}')
        sensor = build_definitions(path).resolve_sensor_def("sqlsentinel_heartbeat")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 10
        assert TOKEN not in (sensor.description or "") and "hc-ping" not in (sensor.description or "")
        named = build_definitions(path, name="team_a").resolve_sensor_def("sqlsentinel_heartbeat__team_a")
        assert named.minimum_interval_seconds == 10
        plain = write_alerts(f'database: {{url: "sqlite:///w.db"}}\nalerts:\n{ALERT}', "plain.yaml")
        assert not [s for s in build_definitions(plain).sensors or [] if "heartbeat" in s.name]


# -- ticks, in process --------------------------------------------------------------------------------------------


class TestTicks:
    def test_while_live_each_tick_pings_the_url(
        self, write_alerts: WriteAlerts, home: Path, pings: PingServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Just loaded, nothing late: a GET to the resolved URL, and the tick says it pinged and why it was live."""
        monkeypatch.setenv("HEARTBEAT_URL", f"{pings.url}/{TOKEN}")
        sensor = Sensor(heartbeat_file(write_alerts, '{url: "${HEARTBEAT_URL}", every: 10s}'), home)
        said = sensor.tick()
        assert said.startswith("pinged (") and "live: 3 schedule(s) and sensor(s) of alerts.yaml on time" in said
        sensor.tick()
        assert [(p.method, p.path, p.body) for p in pings.received()] == [("GET", f"/{TOKEN}", "")] * 2

    def test_post_sends_the_summary_as_text_with_the_headers_resolved(
        self, write_alerts: WriteAlerts, home: Path, pings: PingServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HEARTBEAT_URL", f"{pings.url}/v2/heartbeats/sqlsentinel/ping")
        monkeypatch.setenv("OPSGENIE_KEY", KEY)
        block = '{url: "${HEARTBEAT_URL}", method: post, headers: {Authorization: "GenieKey ${OPSGENIE_KEY}"}}'
        Sensor(heartbeat_file(write_alerts, block), home).tick()
        [ping] = pings.received()
        assert (ping.method, ping.path) == ("POST", "/v2/heartbeats/sqlsentinel/ping")
        assert ping.headers["Authorization"] == f"GenieKey {KEY}"
        assert ping.headers["Content-Type"] == "text/plain; charset=utf-8" and ping.body.startswith("live: ")

    def test_while_not_live_nothing_is_pinged_and_the_tick_says_why(
        self, write_alerts: WriteAlerts, home: Path, pings: PingServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The file changed 10 minutes ago and the code location still runs the version before: no ping."""
        monkeypatch.setenv("HEARTBEAT_URL", f"{pings.url}/{TOKEN}")
        path = heartbeat_file(write_alerts, '{url: "${HEARTBEAT_URL}"}')
        sensor = Sensor(path, home)
        path.write_text(path.read_text() + "# edited, not reloaded\n")
        age(path, 600)
        said = sensor.tick()
        assert said.startswith("not pinged; not live: the alerts file ")
        assert "changed 10m ago and the code location was not reloaded" in said
        assert pings.received() == []

    def test_while_not_live_the_fail_url_is_pinged_instead(
        self, write_alerts: WriteAlerts, home: Path, pings: PingServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With fail.url (healthchecks.io's /fail), a not-live tick pings it, with the causes as the POST body."""
        monkeypatch.setenv("HEARTBEAT_URL", f"{pings.url}/{TOKEN}")
        path = heartbeat_file(
            write_alerts, '{url: "${HEARTBEAT_URL}", method: POST, fail: {url: "${HEARTBEAT_URL}/fail"}}'
        )
        sensor = Sensor(path, home)
        assert sensor.tick().startswith("pinged (")
        path.write_text(path.read_text() + "# edited\n")
        age(path, 600)
        assert sensor.tick().startswith("fail URL pinged (")
        assert [p.path for p in pings.received()] == [f"/{TOKEN}", f"/{TOKEN}/fail"]
        assert pings.received(f"/{TOKEN}/fail")[0].body.startswith("not live: the alerts file ")


# -- secrets ------------------------------------------------------------------------------------------------------


class TestSecrets:
    @pytest.mark.parametrize("failure", ["refused with an echo", "nothing listening"])
    def test_a_failed_ping_fails_the_tick_without_the_url_or_the_headers(
        self,
        failure: str,
        write_alerts: WriteAlerts,
        home: Path,
        pings: PingServer,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A 404 whose body echoes the path and headers, or no server at all: the tick fails saying what
        happened, and neither the token, nor the URL, nor the header's value is in the error or any log line
        (urllib3's debug log included)."""
        pings.status = 404
        base = pings.url if failure == "refused with an echo" else f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv("HEARTBEAT_URL", f"{base}/ping/{TOKEN}?key={TOKEN}")
        monkeypatch.setenv("OPSGENIE_KEY", KEY)
        block = '{url: "${HEARTBEAT_URL}", timeout: 2s, headers: {Authorization: "GenieKey ${OPSGENIE_KEY}"}}'
        sensor = Sensor(heartbeat_file(write_alerts, block), home)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(dg.Failure) as caught:
            sensor.tick()
        text = f"{caught.value} {caught.value.description} {caplog.text}"
        expected = (
            "heartbeat: HTTP 404 Not Found" if failure == "refused with an echo" else "heartbeat: ConnectionError"
        )
        assert str(caught.value.description).startswith(expected)
        for secret in (TOKEN, KEY, f"{base}/ping"):
            assert secret not in text

    def test_an_unset_variable_is_named_and_a_non_http_value_is_not_shown(
        self, write_alerts: WriteAlerts, home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("HEARTBEAT_URL", raising=False)
        sensor = Sensor(heartbeat_file(write_alerts, '{url: "${HEARTBEAT_URL}"}'), home)
        with pytest.raises(dg.Failure, match=r"heartbeat\.url: environment variable 'HEARTBEAT_URL' is not set"):
            sensor.tick()
        monkeypatch.setenv("HEARTBEAT_URL", f"file:///{TOKEN}")
        with pytest.raises(dg.Failure) as caught:
            sensor.tick()
        assert "heartbeat.url is not an http(s) URL once resolved" in str(caught.value.description)
        assert TOKEN not in str(caught.value.description)


# -- through the real daemon --------------------------------------------------------------------------------------


def test_through_the_daemon_pings_stop_with_it_and_health_names_the_late_ticks(
    tmp_path: Path, postgres_home: Path, pings: PingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the real dagster-daemon on Postgres storage: the heartbeat URL is pinged every 10 s and `sqlsentinel
    health` says live; once the daemon is stopped no ping arrives, and health exits 1 naming the heartbeat
    sensor's ticks as late."""
    monkeypatch.setenv("HEARTBEAT_URL", f"{pings.url}/{TOKEN}")
    (tmp_path / "alerts.yaml").write_text(
        f'database: {{url: "sqlite:///w.db"}}\nalerts:\n{ALERT}heartbeat: {{url: "${{HEARTBEAT_URL}}", every: 10s}}\n'
    )
    (tmp_path / "alerts_defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml')\n"
    )
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file: {relative_path: alerts_defs.py, location_name: alerts, working_directory: .}\n"
    )

    def health(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "sqlsentinel"), "health", "alerts.yaml", "--json", *options],
            cwd=tmp_path,
            env=dagster_env(postgres_home),
            capture_output=True,
            text=True,
            timeout=60,
        )

    with dagster_daemon(tmp_path, postgres_home):
        wait_for(lambda: len(pings.received()) >= 2, 90, "two heartbeat pings")
        live = health()
        assert live.returncode == 0, live.stdout + live.stderr
        assert json.loads(live.stdout)["live"] is True
    time.sleep(2)  # a tick the code server was evaluating when the daemon stopped may still ping
    stopped = len(pings.received())
    verdicts: list[subprocess.CompletedProcess[str]] = []
    wait_for(lambda: verdicts.append(health("--grace", "5s")) or verdicts[-1].returncode == 1, 60, "not live")
    [late] = [c for c in json.loads(verdicts[-1].stdout)["causes"] if c["code"] == "ticks_late"]
    assert "sqlsentinel_heartbeat" in late["subjects"] and "is dagster-daemon running?" in late["message"]
    assert len(pings.received()) == stopped  # ~15 s and more without the daemon: no ping
    assert {p.path for p in pings.received()} == {f"/{TOKEN}"}
