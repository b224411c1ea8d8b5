"""``watch:`` on the platform, in process: failed and slow runs, failing ticks, code locations that do not load
and failed materializations become alerts with the state machine, silences and exactly-once delivery of alerts.

Real runs on a real instance (``execute_in_process``, ``materialize``), the real sensor ticked by hand with the
state store's clock moved by hand, a real webhook receiver on loopback and, for code locations, the real
webserver. The same through the daemon is in ``test_platform_watch_daemon.py``.
"""

from __future__ import annotations

import datetime as dt
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.storage.runs.schema import RunsTable
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.error import SerializableErrorInfo

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.config import load_config
from sqlsentinel_dagster.definitions import platform_assets, platform_runs
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.definitions.resources import AlertStateResource, NotificationsResource
from sqlsentinel_dagster.errors import ConfigError
from sqlsentinel_dagster.naming import TAG_DECISION

from .loopback import Receiver, loopback_receiver
from .processes import free_port

WriteAlerts = Callable[..., Path]
BASE_URL = "http://dagster.example:3000"
RESOURCES = {
    "sqlsentinel_state": AlertStateResource(),
    "sqlsentinel_notifications": NotificationsResource(webserver_base_url=BASE_URL, retry_base_delay_seconds=0.01),
}


# -- a team's jobs and assets ------------------------------------------------------------------------------------

OUTCOME = {"fail": True}
RELEASE = threading.Event()


@dg.op
def nightly_step() -> None:
    if OUTCOME["fail"]:
        raise RuntimeError("orders table is locked")


@dg.job
def nightly_orders() -> None:
    nightly_step()


@dg.op
def waits() -> None:
    assert RELEASE.wait(60), "never released"


@dg.job
def slow_job() -> None:
    waits()


@dg.asset(key=["shop", "orders"])
def orders() -> None:
    if OUTCOME["fail"]:
        raise RuntimeError("upstream file missing")


class FakeClock:
    """The state store's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as rec:
        yield rec


@pytest.fixture
def clock(instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(AlertStateResource().get_store(instance), "clock", fake)
    return fake


@pytest.fixture(autouse=True)
def _team_state() -> Iterator[None]:
    OUTCOME["fail"] = True
    RELEASE.clear()
    yield
    RELEASE.set()


class Sensor:
    """``sqlsentinel_watch`` of a file, ticked by hand as the daemon ticks it (each tick gets the last cursor)."""

    def __init__(self, write_alerts: WriteAlerts, receiver: Receiver, rules: str, instance: dg.DagsterInstance):
        hook = f'[{{channel: webhook, url: "{receiver.url}"}}]'
        text = "defaults: {notify: " + hook + "}\nwatch:\n" + textwrap.indent(textwrap.dedent(rules).strip(), "  ")
        self.path = write_alerts(text)
        self.definition = build_definitions(self.path).resolve_sensor_def("sqlsentinel_watch")
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> str:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=RESOURCES)
        result = self.definition(context)
        self.cursor = context.cursor
        assert isinstance(result, dg.SkipReason) and result.skip_message is not None
        return result.skip_message


def events(receiver: Receiver) -> list[tuple[str, str]]:
    return [(r.body["alert_name"], r.body["event"]) for r in receiver.delivered()]


def run(instance: dg.DagsterInstance, job: dg.JobDefinition, fail: bool, **tags: str) -> str:
    OUTCOME["fail"] = fail
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    assert result.success is not fail
    return result.run_id


# -- the format --------------------------------------------------------------------------------------------------


class TestConfig:
    def test_each_kind_loads_with_its_defaults(self, write_alerts: WriteAlerts) -> None:
        """runs without status watches failures; code_locations as a pattern reads dagster dev's webserver."""
        config = load_config(
            write_alerts(
                """
                watch:
                  - {name: failed_runs, runs: {jobs: "nightly_*"}, notify: [{channel: log}]}
                  - {name: slow_runs, runs: {longer_than: 2h}, notify: [{channel: log}]}
                  - {name: automation, ticks: {sensors: "*"}, notify: [{channel: log}]}
                  - {name: locations, code_locations: ["team_*", analytics], notify: [{channel: log}]}
                  - {name: materializations, assets: "shop/*", notify: [{channel: log}]}
                """
            )
        )
        failed, slow, ticks, locations, assets = config.watch_rules
        assert failed.runs is not None and failed.runs.jobs == ("nightly_*",) and not failed.runs.slow
        assert slow.runs is not None and slow.runs.longer_than == 7200 and slow.runs.jobs == ("*",)
        assert (
            ticks.ticks is not None and ticks.ticks.selects("sensor", "x") and not ticks.ticks.selects("schedule", "x")
        )
        assert locations.code_locations is not None
        assert locations.code_locations.names == ("team_*", "analytics")
        assert locations.code_locations.webserver == "http://localhost:3000"
        assert assets.watches_asset(("shop", "orders")) and not assets.watches_asset(("billing", "orders"))
        assert [r.route_severity for r in config.watch_rules] == ["error"] * 5

    def test_mistakes_are_located_and_say_what_is_allowed(self, write_alerts: WriteAlerts) -> None:
        """Every mistake at once, each with its line, the rule and what is allowed."""
        path = write_alerts(
            """
            watch:
              - name: two_kinds
                runs: {jobs: "*"}
                ticks: {sensors: "*"}
              - name: nothing
                notify: [{channel: log}]
              - name: both_conditions
                runs: {status: failure, longer_than: 1h}
              - name: no_instigators
                ticks: {}
              - name: bad_job
                runs: {jobs: "nightly orders!"}
              - name: severity_elsewhere
                assets: "shop/*"
                severity: [ERROR]
              - name: check_in_assets
                assets: "shop/orders:not_null"
              - name: bad_webserver
                code_locations: {names: "*", webserver: "localhost:3000"}
            """
        )
        with pytest.raises(ConfigError) as raised:
            load_config(path)
        problems = [str(p) for p in raised.value.problems]
        expected = [
            ("watch[0]", ":2:", "exactly one of checks, runs, ticks, code_locations, assets (found runs and ticks)"),
            ("watch[1]", ":5:", "exactly one of checks, runs, ticks, code_locations, assets (found none)"),
            ("watch[2].runs", ":8:", "set status: failure or longer_than, not both"),
            ("watch[3].ticks", ":10:", "name the schedules, the sensors or both"),
            ("watch[4].runs.jobs", ":12:", "invalid name pattern 'nightly orders!'"),
            ("watch[5]", ":13:", "severity applies to checks rules only"),
            ("watch[6].assets", ":17:", "an assets pattern names assets, not checks"),
            ("watch[7].code_locations.webserver", ":19:", "should match pattern"),
        ]
        assert len(problems) == len(expected), problems
        for problem, (where, line, what) in zip(problems, expected, strict=True):
            assert f"alerts.yaml{line[:-1]} {where}: " in problem and what in problem, (problem, where, line, what)


# -- runs --------------------------------------------------------------------------------------------------------


class TestFailedRuns:
    def test_a_failed_run_notifies_once_and_the_next_success_resolves(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts, receiver: Receiver, clock: FakeClock
    ) -> None:
        """A failure fires (with the failed step's error and a link to the run), a second failure is no second
        notification, a success resolves; another job's runs are not watched."""
        sensor = Sensor(write_alerts, receiver, '- {name: failed_runs, runs: {jobs: "nightly_*"}}', instance)
        sensor.tick()  # the first tick starts from now
        first = run(instance, nightly_orders, fail=True)
        sensor.tick()
        run(instance, nightly_orders, fail=True)
        summary = sensor.tick()
        assert events(receiver) == [("failed_runs:job:nightly_orders", "firing")]
        body = receiver.delivered()[0].body
        assert f"run {first[:8]} of job nightly_orders failed" in body["description"]
        assert "orders table is locked" in body["description"]
        assert body["run_url"] == f"{BASE_URL}/runs/{first}"
        assert "1 recorded" in summary
        clock.advance(minutes=1)
        run(instance, nightly_orders, fail=False)
        sensor.tick()
        assert events(receiver)[-1] == ("failed_runs:job:nightly_orders", "resolved")
        sensor.tick()
        assert len(receiver.delivered()) == 2

    def test_for_two_is_two_failed_runs_in_a_row(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts, receiver: Receiver, clock: FakeClock
    ) -> None:
        """With for: 2, a failure then a success then a failure is never firing; two failures in a row are,
        even when both finish between two ticks."""
        sensor = Sensor(write_alerts, receiver, "- {name: failed_runs, runs: {jobs: '*'}, for: 2}", instance)
        sensor.tick()
        run(instance, nightly_orders, fail=True)
        sensor.tick()
        run(instance, nightly_orders, fail=False)
        sensor.tick()
        run(instance, nightly_orders, fail=True)
        sensor.tick()
        assert events(receiver) == []
        run(instance, nightly_orders, fail=True)
        sensor.tick()
        assert events(receiver) == [("failed_runs:job:nightly_orders", "firing")]

    def test_a_retry_that_succeeds_resolves_and_alert_runs_that_notified_are_left_out(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts, receiver: Receiver, clock: FakeClock
    ) -> None:
        """The failed attempt notifies (saying it will retry); the retry's success resolves. A run carrying an
        alert's decision tag (the alert notified about it already) is not a failure of the job here."""
        sensor = Sensor(write_alerts, receiver, "- {name: failed_runs, runs: {jobs: '*'}}", instance)
        sensor.tick()
        run(instance, nightly_orders, fail=True, **{TAG_DECISION: "error"})
        sensor.tick()
        assert events(receiver) == []
        parent = run(instance, nightly_orders, fail=True, **{"dagster/will_retry": "true"})
        sensor.tick()
        assert "will retry" in receiver.delivered()[0].body["description"]
        run(instance, nightly_orders, fail=False, **{"dagster/retry_number": "1", "dagster/parent_run_id": parent})
        sensor.tick()
        assert events(receiver) == [
            ("failed_runs:job:nightly_orders", "firing"),
            ("failed_runs:job:nightly_orders", "resolved"),
        ]


class TestCommandLine:
    def test_silence_takes_a_job_the_rule_watches_and_status_lists_it(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts, receiver: Receiver, clock: FakeClock
    ) -> None:
        """`silence FILE --alert failed_runs:job:nightly_orders` before it ever failed: its failure is recorded,
        not sent; a job the rule does not select is refused; `status FILE` shows the job firing."""
        sensor = Sensor(write_alerts, receiver, '- {name: failed_runs, runs: {jobs: "nightly_*"}}', instance)
        sensor.tick()  # the first tick: runs from now on
        path, state = sensor.path, instance_state_url(instance)
        args = ("--duration", "1h", "--reason", "vendor outage", "--database-url", state)
        done = CliRunner().invoke(main, ["silence", str(path), "--alert", "failed_runs:job:nightly_orders", *args])
        assert done.exit_code == 0, done.output
        refused = CliRunner().invoke(main, ["silence", str(path), "--alert", "failed_runs:job:hourly_sync", *args])
        assert refused.exit_code == 1 and "no alert named 'failed_runs:job:hourly_sync'" in refused.output
        clock.advance(seconds=5)  # the silence started at the real time, after the fake clock's start
        run(instance, nightly_orders, fail=True)
        assert "1 observation(s), 1 recorded: 1 suppressed" in sensor.tick()
        assert events(receiver) == []
        status = CliRunner().invoke(main, ["status", str(path), "--database-url", state])
        assert "failed_runs:job:nightly_orders: firing" in status.output, status.output


class TestSlowRuns:
    def test_a_run_going_too_long_fires_once_and_resolves_when_it_ends(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts, receiver: Receiver, clock: FakeClock
    ) -> None:
        """A real run blocked in its op: not yet too long, then (the clock moved 3 h) firing once over several
        ticks, naming the run; when it finishes, resolved."""
        sensor = Sensor(
            write_alerts, receiver, "- {name: slow_runs, runs: {jobs: slow_job, longer_than: 2h}}", instance
        )
        thread = threading.Thread(target=lambda: slow_job.execute_in_process(instance=instance))
        thread.start()
        try:
            wait = dg.DagsterRunStatus.STARTED
            for _ in range(300):
                if instance.get_runs(dg.RunsFilter(job_name="slow_job", statuses=[wait])):
                    break
                threading.Event().wait(0.1)
            sensor.tick()
            assert events(receiver) == []
            clock.advance(hours=3)
            sensor.tick()
            clock.advance(minutes=1)
            sensor.tick()
            assert events(receiver) == [("slow_runs:job:slow_job", "firing")]
            [slow] = instance.get_runs(dg.RunsFilter(job_name="slow_job"))
            assert (
                f"run {slow.run_id[:8]} of job slow_job has been running for 3h"
                in receiver.delivered()[0].body["description"]
            )
        finally:
            RELEASE.set()
            thread.join(60)
        sensor.tick()
        assert events(receiver)[-1] == ("slow_runs:job:slow_job", "resolved")


# -- failed materializations -------------------------------------------------------------------------------------


class TestFailedMaterializations:
    def test_a_failed_materialization_fires_and_the_next_one_resolves(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts, receiver: Receiver, clock: FakeClock
    ) -> None:
        sensor = Sensor(write_alerts, receiver, '- {name: failed_materializations, assets: "shop/*"}', instance)
        sensor.tick()
        OUTCOME["fail"] = True
        failed = dg.materialize([orders], instance=instance, raise_on_error=False)
        assert not failed.success
        sensor.tick()
        assert events(receiver) == [("failed_materializations:asset:shop/orders", "firing")]
        assert "upstream file missing" in receiver.delivered()[0].body["description"]
        OUTCOME["fail"] = False
        assert dg.materialize([orders], instance=instance).success
        sensor.tick()
        assert events(receiver)[-1] == ("failed_materializations:asset:shop/orders", "resolved")


# -- ticks -------------------------------------------------------------------------------------------------------


def _sensor_state(instance: dg.DagsterInstance, name: str) -> InstigatorState:
    """A running sensor of the code location ``team``, as the daemon stores it."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__), location_name="team")
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)
    state = InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING, SensorInstigatorData())
    return instance.add_instigator_state(state)


def _tick(instance: dg.DagsterInstance, state: InstigatorState, failed: bool) -> None:
    """A finished tick of ``state``'s sensor, as the daemon records it (failed: with the error raised)."""
    tick = instance.create_tick(
        TickData(
            instigator_origin_id=state.instigator_origin_id,
            instigator_name=state.name,
            instigator_type=InstigatorType.SENSOR,
            status=TickStatus.STARTED,
            timestamp=dt.datetime.now(dt.UTC).timestamp(),
            selector_id=state.selector_id,
        )
    )
    error = SerializableErrorInfo("KeyError: 'orders' (raised by the sensor)", [], "KeyError")
    instance.update_tick(
        tick.with_status(TickStatus.FAILURE, error=error) if failed else tick.with_status(TickStatus.SKIPPED)
    )


class TestTicks:
    def test_a_sensor_fires_while_its_ticks_fail_and_resolves_when_one_succeeds(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts, receiver: Receiver, clock: FakeClock
    ) -> None:
        """Firing once while the latest tick failed (with the error and a link to the sensor); a sensor the rule
        does not select is left alone; a tick that succeeds resolves."""
        sensor = Sensor(write_alerts, receiver, "- {name: automation, ticks: {sensors: 'orders_*'}}", instance)
        watched, other = _sensor_state(instance, "orders_sensor"), _sensor_state(instance, "billing_sensor")
        _tick(instance, watched, failed=True)
        _tick(instance, other, failed=True)
        sensor.tick()
        clock.advance(seconds=30)
        _tick(instance, watched, failed=True)
        sensor.tick()
        assert events(receiver) == [("automation:sensor:orders_sensor", "firing")]
        body = receiver.delivered()[0].body
        assert "sensor orders_sensor failed at" in body["description"] and "raised by the sensor" in body["description"]
        assert body["run_url"] == f"{BASE_URL}/locations/__repository__@team/sensors/orders_sensor"
        assert body["tags"]["location"] == "team"
        clock.advance(seconds=30)
        _tick(instance, watched, failed=False)
        sensor.tick()
        assert events(receiver)[-1] == ("automation:sensor:orders_sensor", "resolved")


# -- code locations ----------------------------------------------------------------------------------------------


class TestCodeLocations:
    def test_a_webserver_that_does_not_answer_fires_without_showing_its_credentials(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts, receiver: Receiver, clock: FakeClock
    ) -> None:
        """Nothing listens at the URL: the webserver itself fires (a wrong URL cannot go unnoticed), named by
        host and port; the URL's password is in no message, tag or tick summary. (Locations that fail to load
        are read from a real webserver in test_platform_watch_daemon.py.)"""
        port = free_port()
        rule = f'- {{name: locations, code_locations: {{webserver: "http://ops:s3cret@127.0.0.1:{port}"}}}}'
        sensor = Sensor(write_alerts, receiver, rule, instance)
        summary = sensor.tick()
        assert events(receiver) == [(f"locations:webserver:127.0.0.1:{port}", "firing")]
        body = receiver.delivered()[0].body
        assert body["description"].startswith(f"the Dagster webserver at 127.0.0.1:{port} did not answer: ")
        assert "s3cret" not in str(body) and "s3cret" not in summary
        clock.advance(minutes=1)
        sensor.tick()
        assert len(receiver.delivered()) == 1  # still down: not sent again


class TestFailedRunsCursor:
    def test_a_burst_of_failures_in_one_second_is_read_page_after_page(
        self, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """12 failed runs updated in the same instant, read 5 a pass: three passes read each run once, in order,
        and a fourth reads nothing (the cursor does not get stuck on the first page, nor re-read it)."""
        monkeypatch.setattr(platform_runs, "MAX_RUNS_PER_PASS", 5)
        ids = [
            instance.add_run(dg.DagsterRun(job_name="burst", status=dg.DagsterRunStatus.FAILURE)).run_id
            for _ in range(12)
        ]
        instant = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with instance.run_storage.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(RunsTable.update().values(update_timestamp=instant))
        after, seen = instant.replace(tzinfo=dt.UTC).timestamp() - 10, []
        pages = []
        for _ in range(4):
            read, after, seen = platform_runs.failed_runs_since(instance, after, seen)
            pages.append([record.dagster_run.run_id for record in read])
        assert [len(page) for page in pages] == [5, 5, 2, 0]
        assert sorted(run_id for page in pages for run_id in page) == sorted(ids)

    def test_a_pass_reads_the_events_of_failed_runs_only_of_the_jobs_a_rule_selects(
        self, instance: dg.DagsterInstance, write_alerts: WriteAlerts
    ) -> None:
        """With `runs:` rules and no `assets:` rule, a failed run of a job no rule selects costs no event read; one
        of a selected job is read once, for its failure reason."""
        path = write_alerts('watch: [{name: failed_runs, runs: {jobs: "nightly_*"}, notify: [{channel: log}]}]\n')
        rules = load_config(path).watch_rules
        picked = run(instance, nightly_orders, fail=True)
        for _ in range(3):
            instance.add_run(dg.DagsterRun(job_name="adhoc_backfill", status=dg.DagsterRunStatus.FAILURE))
        reader, read = platform_runs.run_events(instance), []

        def counted(run_id: str) -> Sequence[dg.EventLogRecord]:
            read.append(run_id)
            return reader(run_id)

        failed, _, _ = platform_runs.failed_runs_since(instance, 0.0)
        assert len(failed) == 4
        found = platform_runs.failed_run_observations(instance, rules, failed, {}, None, counted)
        found += platform_assets.failed_asset_observations(instance, [], failed, {}, None, counted)
        assert read == [picked]
        assert [(o.subject, o.failed) for o in found] == [("nightly_orders", True)]
