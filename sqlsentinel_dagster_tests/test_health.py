"""``sqlsentinel health`` and the check behind it: each cause judged with a frozen clock, then gathered from a
real instance and state database, and the command's output and exit codes. (The check through the real daemon is
in ``test_heartbeat.py``, with the pings it gates.)"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.config import load_config
from sqlsentinel_dagster.definitions.health import alert_jobs, check_health, expected_instigators
from sqlsentinel_dagster.definitions.health_judging import (
    PICKUP_SECONDS,
    FileVersion,
    HealthReport,
    HealthSettings,
    Instigator,
    RunSeen,
    Seen,
    failing_batches,
    late_ticks,
    queued_too_long,
    stale_config,
)
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.naming import TAG_DECISION, FileNames
from sqlsentinel_dagster.state.configs import remember
from sqlsentinel_dagster.state.store import StateStore

from .processes import BIN, dagster_env, free_port

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
WriteAlerts = Callable[..., Path]

FILE = """
database: {url: "sqlite:///w.db"}
fallback: [{channel: log}]
alerts:
  - {name: hourly, query: "SELECT 'OK' AS status", schedule: "0 * * * *"}
  - {name: paris, query: "SELECT 'OK' AS status", schedule: "0 * * * *", timezone: Europe/Paris}
  - {name: paused, query: "SELECT 'OK' AS status", schedule: "0 * * * *", schedule_status: stopped}
  - {name: disabled, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", enabled: false}
  - {name: after_load, query: "SELECT 'OK' AS status", asset: shop/orders, on_materialization: true}
watch_interval: 45s
watch: [{name: dbt, checks: "*", notify: [{channel: log}]}]
heartbeat: {url: "${HEARTBEAT_URL}", every: 20s}
"""


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


# -- the judges, with a frozen clock ------------------------------------------------------------------------------


class TestLateTicks:
    SENSOR = Instigator("sqlsentinel_config", "sensor", interval=60)
    SCHEDULE = Instigator("sqlsentinel__a__schedule", "schedule", cron="*/5 * * * *")

    def test_a_sensor_is_late_once_its_interval_and_the_grace_have_passed(self) -> None:
        """A 60 s sensor with a 2m grace is on time 3m after its last tick, late just after."""
        on_time = {self.SENSOR.name: Seen("DECLARED_IN_CODE", last_tick=ago(seconds=179))}
        late = {self.SENSOR.name: Seen("DECLARED_IN_CODE", last_tick=ago(seconds=181))}
        assert late_ticks([self.SENSOR], on_time, NOW, 120, None) is None
        cause = late_ticks([self.SENSOR], late, NOW, 120, None)
        assert cause is not None and cause.code == "ticks_late" and cause.subjects == ("sqlsentinel_config",)
        assert "sensor sqlsentinel_config last ticked 3m 1s ago, due every 1m" in cause.message

    def test_a_schedule_is_late_once_its_next_cron_tick_is_past_the_grace(self) -> None:
        """*/5: ticked at 11:50, the 11:55 tick may come until 11:57; at 12:00 (grace 2m) it is late."""
        seen = {self.SCHEDULE.name: Seen("RUNNING", last_tick=ago(minutes=10))}
        assert late_ticks([self.SCHEDULE], seen, ago(minutes=3), 120, None) is None
        cause = late_ticks([self.SCHEDULE], seen, NOW, 120, None)
        assert cause is not None and "due on '*/5 * * * *' (UTC)" in cause.message

    def test_a_schedule_in_its_timezone(self) -> None:
        """An hourly schedule in Asia/Kolkata (UTC+5:30) ticks at :30 UTC: 70 minutes after one is late."""
        kolkata = Instigator("k", "schedule", cron="0 * * * *", timezone="Asia/Kolkata")
        last = dt.datetime(2026, 3, 2, 10, 30, tzinfo=dt.UTC)
        seen = {"k": Seen("RUNNING", last_tick=last)}
        assert late_ticks([kolkata], seen, last + dt.timedelta(minutes=61), 120, None) is None
        assert late_ticks([kolkata], seen, last + dt.timedelta(minutes=63), 120, None) is not None

    def test_stopped_ones_are_not_judged_and_toggled_on_ones_are(self) -> None:
        """STOPPED (toggled off) and DECLARED_IN_CODE with a stopped default are skipped; a stopped default toggled
        RUNNING is judged."""
        stopped_default = Instigator("s", "sensor", running=False, interval=30)
        old = ago(hours=1)
        assert late_ticks([self.SENSOR], {self.SENSOR.name: Seen("STOPPED", old)}, NOW, 60, None) is None
        assert late_ticks([stopped_default], {"s": Seen("DECLARED_IN_CODE", old)}, NOW, 60, None) is None
        assert late_ticks([stopped_default], {}, NOW, 60, None) is None
        assert late_ticks([stopped_default], {"s": Seen("RUNNING", old)}, NOW, 60, None) is not None

    def test_without_a_tick_it_counts_from_when_the_daemon_started_it(self) -> None:
        """No tick yet: a schedule is due at its first cron time after its start, a sensor an interval after."""
        seen = {
            self.SCHEDULE.name: Seen("DECLARED_IN_CODE", since=ago(minutes=4)),
            self.SENSOR.name: Seen("DECLARED_IN_CODE", since=ago(minutes=4)),
        }
        cause = late_ticks([self.SCHEDULE, self.SENSOR], seen, NOW, 60, None)
        assert cause is not None and cause.subjects == (self.SENSOR.name,)  # the schedule's tick is at 12:00

    def test_one_the_daemon_never_recorded_is_late_after_the_version_load_and_the_grace(self) -> None:
        """No record at all: due PICKUP_SECONDS after the file's version was first loaded; at once if unknown."""
        loaded = ago(seconds=PICKUP_SECONDS + 100)
        assert late_ticks([self.SENSOR], {}, NOW, 120, loaded) is None
        assert late_ticks([self.SENSOR], {}, NOW, 90, loaded) is not None
        cause = late_ticks([self.SENSOR], {}, NOW, 120, None)
        assert cause is not None and "sensor sqlsentinel_config has never ticked" in cause.message

    def test_the_message_names_five_and_counts_the_rest_but_subjects_list_all(self) -> None:
        many = [Instigator(f"s{i}", "sensor", interval=30) for i in range(8)]
        cause = late_ticks(many, {}, NOW, 60, None)
        assert cause is not None and cause.message.endswith("and 3 more") and len(cause.subjects) == 8


class TestOtherCauses:
    def test_runs_queued_past_the_limit_are_named_oldest_first(self) -> None:
        queued = [
            RunSeen("b" * 32, "sqlsentinel__b", "QUEUED", ago(minutes=12)),
            RunSeen("a" * 32, "sqlsentinel__a", "QUEUED", ago(minutes=30)),
            RunSeen("c" * 32, "sqlsentinel__c", "QUEUED", ago(minutes=5)),
        ]
        cause = queued_too_long(queued, NOW, 600)
        assert cause is not None and cause.code == "runs_queued" and cause.subjects == ("a" * 32, "b" * 32)
        assert "2 alert run(s) queued longer than 10m" in cause.message
        assert "sqlsentinel__a (run aaaaaaaa, 30m)" in cause.message
        assert queued_too_long(queued, NOW, 3600) is None

    def test_the_file_on_disk_differing_from_the_running_version_past_the_grace(self) -> None:
        """The same digest is current; another one is stale only once the grace has passed since it changed."""
        saved = ("d1", ago(days=1))
        assert stale_config("a.yaml", saved, FileVersion("d1", ago(days=2)), NOW, 300) is None
        assert stale_config("a.yaml", saved, FileVersion("d2", ago(seconds=299)), NOW, 300) is None
        cause = stale_config("a.yaml", saved, FileVersion("d2", ago(minutes=6)), NOW, 300)
        assert cause is not None and cause.code == "config_stale"
        assert cause.message == (
            "the alerts file a.yaml changed 6m ago and the code location was not reloaded: the deployment still "
            "runs the version first loaded 2026-03-01 12:00 UTC"
        )

    def test_an_invalid_or_unreadable_file_says_so(self) -> None:
        problem = "a.yaml:3 alerts[0].schedule: invalid cron"
        cause = stale_config("a.yaml", ("d1", ago(days=1)), FileVersion("d2", ago(hours=1)), NOW, 300, [problem])
        assert cause is not None and f"has 1 problem(s) (first: {problem}; see sqlsentinel validate)" in cause.message
        unreadable = stale_config("a.yaml", ("d1", ago(days=1)), None, NOW, 300)
        assert unreadable is not None and "cannot be used: it cannot be read" in unreadable.message
        never = stale_config("a.yaml", None, FileVersion("d2", ago(hours=1)), NOW, 300)
        assert never is not None and "no valid version of it is recorded as loaded" in never.message

    def test_batches_failing_only_when_the_latest_runs_all_broke(self) -> None:
        """Three failures without a recorded outcome: failing. A run that recorded its alerts (an alert's own
        error failed it), a success, too few runs or a count of 0: not."""

        def run(status: str, handled: bool = False) -> RunSeen:
            return RunSeen("r" * 32, "sqlsentinel_checks", status, ago(minutes=1), handled)

        broken = [run("FAILURE")] * 3
        cause = failing_batches(broken, 3)
        assert (
            cause is not None
            and cause.code == "batches_failing"
            and "last 3 run(s) of sqlsentinel_checks" in (cause.message)
        )
        assert failing_batches([run("FAILURE", handled=True), *broken[:2]], 3) is None
        assert failing_batches([run("SUCCESS"), *broken[:2]], 3) is None
        assert failing_batches(broken[:2], 3) is None
        assert failing_batches(broken, 0) is None

    def test_the_report_is_one_line_when_live_and_a_stable_object(self) -> None:
        live = HealthReport(NOW, (), "3 schedule(s) on time")
        assert live.live and live.summary() == "live: 3 schedule(s) on time"
        queued = queued_too_long([RunSeen("x" * 32, "j", "QUEUED", ago(hours=1))], NOW, 60)
        assert queued is not None
        down = HealthReport(NOW, (queued,))
        data = down.as_json()
        assert list(data) == ["live", "checked_at", "summary", "causes"]
        assert data["live"] is False and data["checked_at"] == "2026-03-02T12:00:00+00:00"
        assert list(data["causes"][0]) == ["code", "message", "subjects"] and data["causes"][0]["code"] == "runs_queued"


# -- what the definitions make ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["jobs", "checks"])
@pytest.mark.parametrize("namespace", [None, "team_a"])
def test_the_expected_schedules_and_sensors_are_those_the_definitions_make(
    write_alerts: WriteAlerts, mode: Any, namespace: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every schedule and sensor build_definitions makes (names, kind, default status, cron and timezone, interval)
    is what the health check expects, in both modes and with a namespace: none is missed, none is invented."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("STATE_DB_URL", raising=False)
    path = write_alerts(FILE)
    defs = build_definitions(path, mode=mode, name=namespace)
    made = {
        (
            s.name,
            "schedule",
            s.default_status == dg.DefaultScheduleStatus.RUNNING,
            s.cron_schedule,
            s.execution_timezone,
        )
        for s in defs.schedules or []
        if "prune" not in s.name
    } | {
        (s.name, "sensor", s.default_status == dg.DefaultSensorStatus.RUNNING, float(s.minimum_interval_seconds or 30))
        for s in defs.sensors or []
    }
    expected = {
        (i.name, i.kind, i.running, i.cron, i.timezone) if i.kind == "schedule" else (i.name, i.kind, True, i.interval)
        for i in expected_instigators(load_config(path), mode, FileNames(namespace))
    }
    assert expected == made
    assert any(name.endswith("__stopped") for name, *_ in made) == (mode == "checks")


# -- gathered from a real instance and state database -------------------------------------------------------------


@pytest.fixture
def alerts(write_alerts: WriteAlerts) -> Path:
    return write_alerts(FILE.replace('heartbeat: {url: "${HEARTBEAT_URL}", every: 20s}\n', ""))


def _store(instance: dg.DagsterInstance) -> Callable[[], StateStore]:
    return lambda: StateStore.from_url(instance_state_url(instance))


def _loaded(path: Path, store: StateStore) -> None:
    """Record the file as a code server's load does."""
    remember(store, str(path.resolve()), path.read_text(), 5)


class TestGathered:
    def test_live_on_a_fresh_deployment_just_loaded(self, alerts: Path, instance: dg.DagsterInstance) -> None:
        """Just loaded, nothing ticked yet: within the pickup and the grace, live; later, every running schedule
        and sensor is named, the stopped and disabled ones not."""
        _loaded(alerts, _store(instance)())
        config = load_config(alerts)
        report = check_health(instance, config, _store(instance))
        assert report.live, report.summary()
        later = check_health(instance, config, _store(instance), now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        [cause] = later.causes
        assert cause.code == "ticks_late" and set(cause.subjects) == {
            "sqlsentinel__hourly__schedule",
            "sqlsentinel__paris__schedule",
            "sqlsentinel_on_materialization",
            "sqlsentinel_run_failure_sensor",
            "sqlsentinel_config",
            "sqlsentinel_watch",
        }

    def test_a_queued_alert_run_past_the_limit_is_named(self, alerts: Path, tmp_path: Path) -> None:
        """A run of an alert job really queued (`dagster job launch` on a queued run coordinator, no daemon to
        dequeue it) is a cause once older than queued_limit; a team's own queued run is not."""
        home = tmp_path / "queued_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(
            "telemetry: {enabled: false}\n"
            "run_coordinator: {module: dagster._core.run_coordinator, class: QueuedRunCoordinator}\n"
        )
        (tmp_path / "defs.py").write_text(
            "import dagster as dg\nfrom sqlsentinel_dagster import build_definitions\n\n"
            "@dg.op\ndef work() -> None: ...\n\n@dg.job\ndef team_job() -> None:\n    work()\n\n"
            "defs = dg.Definitions.merge(build_definitions('alerts.yaml'), dg.Definitions(jobs=[team_job]))\n"
        )
        for job in ("sqlsentinel__hourly", "team_job"):
            launched = subprocess.run(
                [str(BIN / "dagster"), "job", "launch", "-f", "defs.py", "-j", job],
                cwd=tmp_path,
                env=dagster_env(home),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert launched.returncode == 0, launched.stderr[-2000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            [ours] = [r for r in instance.get_runs() if r.job_name == "sqlsentinel__hourly"]
            assert ours.status == dg.DagsterRunStatus.QUEUED
            config, settings = load_config(alerts), HealthSettings(grace=86_400)  # ticks aside
            soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
            assert check_health(instance, config, _store(instance), settings=settings, now=soon).live
            later = soon + dt.timedelta(minutes=10)
            causes = check_health(instance, config, _store(instance), settings=settings, now=later).causes
        assert [(c.code, c.subjects) for c in causes] == [("runs_queued", (ours.run_id,))]

    def test_checks_mode_batches_failing_before_recording(self, alerts: Path, instance: dg.DagsterInstance) -> None:
        """Three failed runs of sqlsentinel_checks without a decision tag: batches_failing; the newest having
        recorded its outcomes (an alert's own error failed it): live."""
        _loaded(alerts, _store(instance)())
        config = load_config(alerts)
        for _ in range(3):
            instance.add_run(dg.DagsterRun(job_name="sqlsentinel_checks", status=dg.DagsterRunStatus.FAILURE))
        [cause] = check_health(instance, config, _store(instance), mode="checks").causes
        assert cause.code == "batches_failing"
        assert check_health(instance, config, _store(instance)).live  # jobs mode: not its job
        failed_alert = dg.DagsterRun(
            job_name="sqlsentinel_checks", status=dg.DagsterRunStatus.FAILURE, tags={TAG_DECISION: "batch"}
        )
        instance.add_run(failed_alert)
        assert check_health(instance, config, _store(instance), mode="checks").live
        assert alert_jobs(config, "checks", FileNames()) == {"sqlsentinel_checks"}

    def test_a_changed_file_not_reloaded_is_stale_after_the_grace(
        self, alerts: Path, instance: dg.DagsterInstance
    ) -> None:
        """The file edited after the code server recorded it: live within config_grace, stale after."""
        _loaded(alerts, _store(instance)())
        alerts.write_text(alerts.read_text() + "\n# edited\n")
        config = load_config(alerts)
        assert check_health(instance, config, _store(instance)).live
        old = time.time() - 600
        os.utime(alerts, (old, old))
        [cause] = check_health(instance, config, _store(instance)).causes
        assert (
            cause.code == "config_stale" and "changed 10m ago and the code location was not reloaded" in cause.message
        )

    def test_a_refused_state_database_is_a_cause(self, alerts: Path, instance: dg.DagsterInstance) -> None:
        """Nothing listening: the driver's own words, without the password."""
        url = f"postgresql://postgres:hunter22@127.0.0.1:{free_port()}/test"
        report = check_health(instance, load_config(alerts), lambda: StateStore.from_url(url, create_tables=False))
        [cause] = [c for c in report.causes if c.code == "state_unreachable"]
        assert "the state database is not usable: OperationalError: connection to server" in cause.message
        assert "Connection refused" in cause.message and "hunter22" not in cause.message

    def test_a_state_database_that_never_answers_is_a_cause_within_the_deadline(
        self, alerts: Path, instance: dg.DagsterInstance, silent_server: int
    ) -> None:
        """A server that accepts the connection and never speaks: the check gives up at its timeout."""
        url = f"postgresql://postgres:hunter22@127.0.0.1:{silent_server}/test"
        started = time.monotonic()
        report = check_health(
            instance,
            load_config(alerts),
            lambda: StateStore.from_url(url, create_tables=False),
            settings=HealthSettings(timeout=1.5),
        )
        assert time.monotonic() - started < 6
        [cause] = [c for c in report.causes if c.code == "state_unreachable"]
        assert cause.message == "the state database is not usable: TimeoutError: no answer within 1.5s"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port on loopback that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


# -- the command --------------------------------------------------------------------------------------------------


@pytest.fixture
def home(dagster_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.delenv("STATE_DB_URL", raising=False)
    monkeypatch.delenv("SQLSENTINEL_STATE_URL", raising=False)
    return dagster_home


def _state_of(home: Path) -> StateStore:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return StateStore.from_url(instance_state_url(instance))


def health(*args: str) -> Any:
    return CliRunner().invoke(main, ["health", *args])


class TestCommand:
    def test_live_is_one_line_and_exit_0(self, alerts: Path, home: Path) -> None:
        _loaded(alerts, _state_of(home))
        result = health(str(alerts))
        assert result.exit_code == 0, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("live: 6 schedule(s) and sensor(s)")

    def test_not_live_exits_1_with_a_line_per_cause(self, alerts: Path, home: Path) -> None:
        """Never loaded by a code server and older than the grace: the file's version and the ticks are named."""
        old = time.time() - 3600
        os.utime(alerts, (old, old))
        result = health(str(alerts), "--grace", "1s")
        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert lines[0] == "not live: 2 cause(s)"
        assert lines[1].startswith(f"- config_stale: the alerts file {alerts.resolve()} changed 1h")
        assert lines[2].startswith("- ticks_late: 6 schedule(s)/sensor(s) not ticking (is dagster-daemon running?)")

    def test_json_is_one_object_with_the_exit_code_of_the_verdict(self, alerts: Path, home: Path) -> None:
        old = time.time() - 3600
        os.utime(alerts, (old, old))
        result = health(str(alerts), "--json", "--grace", "1s")
        data = json.loads(result.output)
        assert result.exit_code == 1 and data["live"] is False
        assert [c["code"] for c in data["causes"]] == ["config_stale", "ticks_late"]
        _loaded(alerts, _state_of(home))
        live = health(str(alerts), "--json")
        assert live.exit_code == 0 and json.loads(live.output)["causes"] == []

    def test_ignored_causes_do_not_count_and_the_line_says_so(self, alerts: Path, home: Path) -> None:
        """--ignore (a liveness probe that restarts the daemon has no use for config_stale) leaves a cause out."""
        old = time.time() - 3600
        os.utime(alerts, (old, old))
        partly = health(str(alerts), "--ignore", "config_stale")
        assert partly.exit_code == 1 and "config_stale" not in partly.output and "- ticks_late: " in partly.output
        result = health(str(alerts), "--ignore", "config_stale", "--ignore", "ticks_late")
        assert result.exit_code == 0 and result.output.rstrip().endswith("(ignored: config_stale, ticks_late)")

    def test_mode_and_name_choose_the_names_checked(self, alerts: Path, home: Path) -> None:
        """--mode checks --name team_a: the batch schedules and sensors of that namespace are the ones named."""
        result = health(str(alerts), "--mode", "checks", "--name", "team_a", "--json", "--grace", "1s")
        [ticks] = [c for c in json.loads(result.output)["causes"] if c["code"] == "ticks_late"]
        assert "sqlsentinel_config__team_a" in ticks["subjects"]
        assert "sqlsentinel_checks__team_a__0_x_x_x_x__UTC" in ticks["subjects"]

    def test_an_invalid_file_is_a_cause_not_a_crash(self, write_alerts: WriteAlerts, home: Path) -> None:
        path = write_alerts(
            'database: {url: "sqlite:///w.db"}\nalerts:\n  - {name: a, query: "SELECT 1", schedule: "nope"}\n'
        )
        old = time.time() - 3600
        os.utime(path, (old, old))
        result = health(str(path))
        assert result.exit_code == 1
        assert "- config_stale: the alerts file" in result.output and "has 1 problem(s)" in result.output

    def test_without_an_instance_it_says_where_to_point_it(self, alerts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        result = health(str(alerts))
        assert result.exit_code == 1
        assert "- instance_unreachable: cannot open the Dagster instance (set DAGSTER_HOME)" in result.output

    def test_a_bad_duration_is_a_usage_error(self, alerts: Path, home: Path) -> None:
        result = health(str(alerts), "--grace", "soon")
        assert result.exit_code == 2 and "Invalid value for '--grace'" in result.output
