"""``watch:``: a team's own asset checks, in real runs, notified through the same decision, silences, ledger and
delivery as alerts, by the ``sqlsentinel_watch`` sensor (in process and under the real daemon)."""

from __future__ import annotations

import datetime as dt
import subprocess
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

from sqlsentinel_dagster import build_definitions
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.config import load_config
from sqlsentinel_dagster.config.watch import WatchRule, parse_pattern
from sqlsentinel_dagster.cycle.check_evaluations import (
    MAX_NAME,
    CheckEvaluation,
    check_url,
    labels_of,
    outcome_of,
    payload_of,
    rule_of,
    watched_name,
)
from sqlsentinel_dagster.definitions import watch_sensor as watch_sensor_module
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.definitions.resources import AlertStateResource, NotificationsResource
from sqlsentinel_dagster.errors import ConfigError
from sqlsentinel_dagster.state.model import Outcome, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore

from .loopback import Receiver, loopback_receiver
from .processes import BIN, dagster_daemon, dagster_env, sensor_ticks, wait_for

WriteAlerts = Callable[..., Path]
NAME = "dbt_tests:shop/orders:not_null_id"
BASE_URL = "https://dagster.example.com"
RESOURCES = {
    "sqlsentinel_state": AlertStateResource(),
    "sqlsentinel_notifications": NotificationsResource(webserver_base_url=BASE_URL, retry_base_delay_seconds=0.01),
}

# -- a team's own assets and checks: results set by each test ----------------------------------------------------

RESULTS: dict[str, tuple[bool, str]] = {}
"""check name -> (passed, severity) for the next run."""


def _result(name: str) -> dg.AssetCheckResult:
    passed, severity = RESULTS.get(name, (True, "ERROR"))
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity(severity),
        metadata={"failed_rows": 0 if passed else 3, "query": "select * from orders where id is null"},
        description=None if passed else "3 orders have no id",
    )


@dg.asset(key=["shop", "orders"])
def orders() -> None:
    return None


@dg.asset(key=["finance", "ledger"])
def ledger() -> None:
    return None


@dg.asset_check(asset=orders, description="Every order has an id")
def not_null_id() -> dg.AssetCheckResult:
    return _result("not_null_id")


@dg.asset_check(asset=orders)
def positive_total() -> dg.AssetCheckResult:
    return _result("positive_total")


@dg.asset_check(asset=ledger)
def balanced() -> dg.AssetCheckResult:
    return _result("balanced")


def run_checks(instance: dg.DagsterInstance, **results: tuple[bool, str]) -> str:
    """Materialize the team's assets with their checks, each check ending as ``results`` says; the run id."""
    RESULTS.clear()
    RESULTS.update(results)
    result = dg.materialize([orders, ledger, not_null_id, positive_total, balanced], instance=instance)
    assert result.success
    return result.run_id


FAIL = (False, "ERROR")
WARN = (False, "WARN")
PASS = (True, "ERROR")


# -- fixtures and helpers ---------------------------------------------------------------------------------------


class FakeClock:
    """The state store's clock, moved by hand (it starts at the real time: the CLI's silences use that)."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as rec:
        yield rec


@pytest.fixture
def clock(instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock of the instance's state store (the one the sensor uses)."""
    fake = FakeClock()
    monkeypatch.setattr(AlertStateResource().get_store(instance), "clock", fake)
    return fake


def watch_file(write_alerts: WriteAlerts, receiver: Receiver, rule: str = "", top: str = "") -> Path:
    """An alerts file with one watch rule, ``dbt_tests`` on ``shop/*``, notifying the receiver."""
    extra = textwrap.indent(textwrap.dedent(rule).strip(), "    ") if rule else ""
    return write_alerts(
        f"""
        {textwrap.dedent(top).strip()}
        watch:
          - name: dbt_tests
            checks: "shop/*"
            notify: [{{channel: webhook, url: "{receiver.url}"}}]
        {extra}
        """.replace("\n        ", "\n")
    )


class Sensor:
    """``sqlsentinel_watch`` of a file, ticked by hand like the daemon does: each tick gets the last cursor."""

    def __init__(self, path: Path, instance: dg.DagsterInstance) -> None:
        self.definition = build_definitions(path).resolve_sensor_def("sqlsentinel_watch")
        self.instance = instance
        self.cursor: str | None = None

    def tick(self, cursor: Any = ..., instance: dg.DagsterInstance | None = None) -> str:
        """One evaluation (from ``cursor``, default the last one's); its summary."""
        context = dg.build_sensor_context(
            instance=instance or self.instance,
            cursor=self.cursor if cursor is ... else cursor,
            resources=RESOURCES,
        )
        result = self.definition(context)
        self.cursor = context.cursor
        assert isinstance(result, dg.SkipReason) and result.skip_message is not None
        return result.skip_message


def events(receiver: Receiver) -> list[tuple[str, str]]:
    """(alert name, event) of every delivered notification, in order."""
    return [(r.body["alert_name"], r.body["event"]) for r in receiver.delivered()]


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    return result


def evaluation(passed: bool = False, severity: str = "ERROR", **changes: Any) -> CheckEvaluation:
    values: dict[str, Any] = {
        "storage_id": 7,
        "asset": ("shop", "orders"),
        "check": "not_null_id",
        "passed": passed,
        "severity": severity,
        "description": "3 orders have no id",
        "metadata": {"failed_rows": 3},
        "run_id": "run-1",
        "timestamp": 1_790_000_000.0,
        **changes,
    }
    return CheckEvaluation(**values)


def rule(**values: Any) -> WatchRule:
    return WatchRule.model_validate({"name": "dbt_tests", "checks": "shop/*", **values})


# -- the format --------------------------------------------------------------------------------------------------


class TestPatterns:
    @pytest.mark.parametrize(
        ("pattern", "selected", "not_selected"),
        [
            ("*", [("a",), ("shop", "orders")], []),
            ("shop/*", [("shop", "orders"), ("shop", "eu", "orders")], [("shop",), ("shopping", "x"), ("finance",)]),
            ("shop/orders", [("shop", "orders")], [("shop", "orders", "x"), ("shop",)]),
        ],
        ids=["everything", "prefix", "one_asset"],
    )
    def test_each_form_selects_its_checks(
        self, pattern: str, selected: list[tuple[str, ...]], not_selected: list[tuple[str, ...]]
    ) -> None:
        """'*' every check, 'shop/*' assets under shop/ (not shop itself), 'shop/orders' every check of it."""
        parsed = parse_pattern(pattern)
        assert all(parsed.matches(asset, "any_check") for asset in selected)
        assert not any(parsed.matches(asset, "any_check") for asset in not_selected)
        assert str(parsed) == pattern

    def test_one_check(self) -> None:
        """'shop/orders:not_null_id' selects that check only."""
        parsed = parse_pattern("shop/orders:not_null_id")
        assert parsed.matches(("shop", "orders"), "not_null_id")
        assert not parsed.matches(("shop", "orders"), "positive_total")

    def test_mistakes_are_located_and_say_what_is_allowed(self, write_alerts: WriteAlerts) -> None:
        """Bad patterns, severities and names are file:line problems; an unknown key names the allowed ones."""
        path = write_alerts(
            """
            watch:
              - name: dbt-tests
                checks: ["shop/*:x", "shop//orders"]
                severity: [FATAL]
                notify: [{channel: log}]
                repeat_intervall: 4h
            """
        )
        with pytest.raises(ConfigError) as raised:
            load_config(path)
        lines = [str(p).split(" ", 1)[1] for p in raised.value.problems]
        assert lines[0].startswith("watch[0].name: invalid watch rule name 'dbt-tests'")
        assert "watch[0].checks: invalid check pattern 'shop/*:x': a prefix ('shop/*') selects every check" in lines[1]
        assert lines[2].startswith("watch[0].severity: invalid severity 'FATAL'; Dagster's asset check severities")
        assert lines[3] == (
            "watch[0].repeat_intervall: unknown key 'repeat_intervall'; allowed: assets, checks, code_locations, for, "
            "name, notify, recover_after, repeat_interval, runs, send_resolved, severity, ticks; did you mean "
            "'repeat_interval'?"
        )
        assert [str(p).split(":")[1].split(" ")[0] for p in raised.value.problems] == ["2", "3", "4", "6"]


class TestConfig:
    def test_a_file_of_watch_rules_needs_no_alerts_or_warehouse(self, write_alerts: WriteAlerts) -> None:
        """Only `watch:`: valid; defaults: both severities, no reminders, for/recover_after 1, resolved on."""
        config = load_config(write_alerts('watch:\n  - {name: all_checks, checks: "*", notify: [{channel: log}]}\n'))
        [watched] = config.watch_rules
        assert config.alerts == [] and watched.severity == ("ERROR", "WARN")
        assert (watched.repeat_interval, watched.for_, watched.recover_after, watched.send_resolved) == (
            None,
            1,
            1,
            True,
        )

    def test_notify_from_routes_by_watched_severity_then_defaults(self, write_alerts: WriteAlerts) -> None:
        """Without notify: routes[error] when ERROR failures count, routes[warning] for WARN only, then
        defaults.notify; receiver names expand."""
        path = write_alerts(
            """
            receivers:
              oncall: {channel: pagerduty, routing_key: k}
              chat: {channel: slack, webhook_url: "https://hooks.example.com/x"}
            routes: {error: [oncall], warning: [chat]}
            defaults: {notify: [{channel: log}]}
            watch:
              - {name: errors, checks: "*"}
              - {name: warnings, checks: "*", severity: [WARN]}
              - {name: own, checks: "*", notify: [chat, {channel: log}]}
            """
        )
        config = load_config(path)
        channels = {r.name: [t.channel for t in config.watch_targets(r)] for r in config.watch_rules}
        assert channels == {"errors": ["pagerduty"], "warnings": ["slack"], "own": ["slack", "log"]}
        no_routes = load_config(
            write_alerts('defaults: {notify: [{channel: log}]}\nwatch: [{name: w, checks: "*"}]\n', "b.yaml")
        )
        assert [t.channel for t in no_routes.watch_targets(no_routes.watch_rules[0])] == ["log"]

    def test_names_are_unique_among_rules_and_alerts(self, write_alerts: WriteAlerts) -> None:
        """A rule named like an alert or another rule, or an alert named like a watched check, is a problem."""
        path = write_alerts(
            """
            database: {url: "sqlite:///w.db"}
            alerts:
              - {name: orders, query: "SELECT 'OK' AS status", schedule: "@daily"}
              - {name: "dbt:shop/x:y", query: "SELECT 'OK' AS status", schedule: "@daily"}
            watch:
              - {name: orders, checks: "*", notify: [{channel: log}]}
              - {name: dbt, checks: "*", notify: [{channel: log}]}
              - {name: dbt, checks: "*", notify: [{channel: log}]}
            """
        )
        with pytest.raises(ConfigError) as raised:
            load_config(path)
        messages = [str(p).split(" ", 2)[2] for p in raised.value.problems]
        assert messages == [
            "'orders' is also the name of an alert (line 3); rename the rule or the alert",
            "alert 'dbt:shop/x:y' (line 4) is named like a check this rule watches ('dbt:<asset>:<check>'); "
            "rename the rule or the alert",
            "duplicate watch rule name 'dbt' (first used on line 7); names must be unique",
        ]

    def test_a_broken_rule_or_receiver_leaves_out_only_what_uses_it(self, write_alerts: WriteAlerts) -> None:
        """In a deployment (strict=False) a rule with a problem, or whose receiver is broken, is left out; the
        alerts and the other rules load."""
        path = write_alerts(
            """
            database: {url: "sqlite:///w.db"}
            receivers:
              broken: {channel: slak}
              ok: {channel: log}
            alerts:
              - {name: orders, query: "SELECT 'OK' AS status", schedule: "@daily", notify: [ok]}
            watch:
              - {name: good, checks: "*", notify: [ok]}
              - {name: bad_pattern, checks: "a//b", notify: [ok]}
              - {name: bad_receiver, checks: "*", notify: [broken]}
              - {name: unknown_receiver, checks: "*", notify: [nobody]}
            """
        )
        config = load_config(path, strict=False)
        assert config.alert_names == ["orders"]
        assert [r.name for r in config.watch_rules] == ["good"]
        assert len(config.problems) == 3
        not_a_list = write_alerts(path.read_text().split("watch:")[0] + "watch: 5\n", "not_a_list.yaml")
        config = load_config(not_a_list, strict=False)
        assert (config.alert_names, config.watch_rules, len(config.problems)) == (["orders"], [], 2)  # and slak


class TestNaming:
    def test_name_is_rule_asset_path_and_check(self) -> None:
        """`<rule>:<asset key path>:<check>`, and the rule it belongs to is found back from it."""
        name = watched_name("dbt_tests", ("shop", "orders"), "not_null_id")
        assert name == NAME
        assert rule_of([rule()], name) is not None
        assert rule_of([rule()], "dbt_tests:finance/ledger:balanced") is None  # not a check the rule watches
        assert rule_of([rule()], "other:shop/orders:not_null_id") is None

    def test_long_names_are_cut_with_a_hash_to_fit_the_state(self) -> None:
        """Names over 200 characters keep their start and end in `~` + 12 hex digits of their sha256, so two
        long names stay distinct."""
        asset = ("shop", "a" * 120, "b" * 60)
        first, second = watched_name("dbt_tests", asset, "check_one"), watched_name("dbt_tests", asset, "check_two")
        assert len(first) == len(second) == MAX_NAME and first != second
        assert first.startswith("dbt_tests:shop/aaa") and first[-13] == "~"
        assert rule_of([rule()], first) is not None


class TestOutcome:
    def test_a_failure_of_a_watched_severity_is_an_alert(self) -> None:
        """Failed with ERROR under [ERROR, WARN]: ALERT; the context names asset, check, severity, metadata."""
        outcome = outcome_of(rule(), evaluation())
        assert outcome.status == "ALERT"
        assert outcome.context == {
            "asset": "shop/orders",
            "check": "not_null_id",
            "check_severity": "ERROR",
            "failed_rows": 3,
        }

    def test_a_failure_of_another_severity_counts_as_passing(self) -> None:
        """Failed with WARN under [ERROR]: OK for this rule (it resolves an ERROR firing); passed: OK."""
        assert outcome_of(rule(severity=["ERROR"]), evaluation(severity="WARN")).status == "OK"
        assert outcome_of(rule(), evaluation(passed=True)).status == "OK"

    def test_metadata_is_made_safe_and_bounded(self) -> None:
        """Long text is cut, NaN becomes text, a label clashing with ours is renamed, 50 entries at most."""
        metadata = {"asset": "theirs", "sample": "x" * 5000, "ratio": float("nan")}
        metadata.update({f"m{i}": i for i in range(60)})
        context = outcome_of(rule(), evaluation(metadata=metadata)).context
        assert len(context) == 51 and context["..."] == "16 more metadata entries not shown"
        assert context["metadata: asset"] == "theirs" and context["ratio"] == "NaN"
        assert context["sample"].endswith("(5,000 characters, cut)")

    def test_the_message_names_the_check_its_severity_description_run_and_link(self) -> None:
        """Message keys as for alerts: the description says how the check ended, the severity is mapped
        (ERROR -> error) and named as Dagster gives it, run_url links to the check's page."""
        message = payload_of(rule(), evaluation(), BASE_URL)
        assert message["alert_name"] == NAME and message["status"] == "ALERT"
        assert message["description"] == "asset check not_null_id on shop/orders failed (ERROR): 3 orders have no id"
        assert message["severity"] == "error" and message["context"]["check_severity"] == "ERROR"
        assert message["run_id"] == "run-1"
        assert message["run_url"] == f"{BASE_URL}/assets/shop/orders?view=checks&checkDetail=not_null_id"
        assert labels_of(rule(), evaluation(severity="WARN")).severity == "warning"
        assert check_url(None, ("a",), "c") is None
        assert check_url(BASE_URL + "/", ("a b", "c"), "x") == f"{BASE_URL}/assets/a%20b/c?view=checks&checkDetail=x"


class TestRecordWatched:
    def test_each_evaluation_is_recorded_once_and_older_ones_never(self, state_url: str) -> None:
        """The same storage id again changes nothing unless it notifies a reminder; an older one is ignored."""
        now = [dt.datetime(2026, 3, 1, tzinfo=dt.UTC)]
        store = StateStore.from_url(state_url, lambda: now[0])
        labels = AlertLabels(NAME, "error", (), {})
        settings = StateSettings(repeat_interval=dt.timedelta(hours=1))

        def record(status: str, storage_id: int) -> Any:
            channels = {"0:log": {"firing", "reminder", "resolved"}}
            return store.record_watched(
                labels,
                Outcome(status),
                settings,
                channels,
                {},
                None,
                rule="dbt_tests",
                storage_id=storage_id,  # type: ignore[arg-type]
            )

        assert record("ALERT", 10).code == "first_notification"
        assert record("ALERT", 10) is None  # read again: nothing
        assert record("OK", 9) is None  # older: nothing
        now[0] += dt.timedelta(hours=1)
        assert record("ALERT", 10).code == "repeat_interval_elapsed"  # the same evaluation reminds
        assert record("ALERT", 10) is None
        assert record("OK", 11).code == "resolved"
        [watched] = store.watched_needing_work(["dbt_tests"])  # its resolved notice is still pending
        assert (watched.name, watched.storage_id, watched.undelivered) == (NAME, 11, True)


# -- the sensor over a real instance -----------------------------------------------------------------------------


class TestSensor:
    def test_definition(self, write_alerts: WriteAlerts, receiver: Receiver) -> None:
        """One sensor, RUNNING by default, every 30 s unless watch_interval says otherwise; none without watch
        rules."""
        path = watch_file(write_alerts, receiver)
        sensor = build_definitions(path).resolve_sensor_def("sqlsentinel_watch")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 30
        path.write_text("watch_interval: 2m\n" + path.read_text())
        assert build_definitions(path).resolve_sensor_def("sqlsentinel_watch").minimum_interval_seconds == 120
        no_watch = write_alerts('database: {url: "sqlite:///w.db"}\nalerts: []\n', "plain.yaml")
        assert "sqlsentinel_watch" not in [s.name for s in build_definitions(no_watch).sensors]

    def test_a_failed_check_fires_once_reminds_is_silenced_and_resolves(
        self,
        write_alerts: WriteAlerts,
        receiver: Receiver,
        instance: dg.DagsterInstance,
        clock: FakeClock,
    ) -> None:
        """A team's check failing in a real run fires once; with no new evaluation it is reminded after
        repeat_interval; silenced with the CLI nothing is sent, and the owed reminder goes out when the silence
        ends; passing again resolves. status and history show it by name."""
        path = watch_file(write_alerts, receiver, "repeat_interval: 4h")
        state = instance_state_url(instance)
        sensor = Sensor(path, instance)
        assert sensor.tick().startswith("0 evaluation(s) read")
        run_checks(instance, not_null_id=FAIL)
        assert "1 first_notification" in sensor.tick()
        sensor.tick()
        assert events(receiver) == [(NAME, "firing")]

        clock.advance(hours=4, seconds=1)
        assert "1 repeat_interval_elapsed" in sensor.tick()
        assert events(receiver) == [(NAME, "firing"), (NAME, "reminder")]

        silenced = cli(
            "silence", str(path), "--alert", NAME, "--duration", "1d", "--reason", "fix", "--database-url", state
        )
        assert silenced.exit_code == 0, silenced.output
        clock.advance(hours=4, seconds=1)
        run_checks(instance, not_null_id=FAIL)
        assert "suppressed" in sensor.tick()
        sensor.tick()
        assert len(events(receiver)) == 2  # nothing while silenced

        assert cli("unsilence", NAME, "--database-url", state).exit_code == 0
        assert "1 silence_ended" in sensor.tick()
        run_checks(instance, not_null_id=PASS)
        assert "1 resolved" in sensor.tick()
        assert [e for _, e in events(receiver)] == ["firing", "reminder", "reminder", "resolved"]

        status = cli("status", str(path), "--database-url", state)
        assert f"{NAME}: inactive (OK since" in status.output
        history = cli("history", NAME, "--database-url", state)
        assert f"{NAME}: 5 runs (4 ALERT, 1 OK, 0 ERROR)" in history.output  # a reminder re-decides the last result
        assert "4 sent, 1 suppressed" in history.output

    def test_the_message_carries_the_check_the_run_and_a_link(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """The webhook gets the asset, the check, Dagster's severity, the check's description and metadata, the
        run that evaluated it, and a link to the check's page."""
        sensor = Sensor(watch_file(write_alerts, receiver), instance)
        sensor.tick()
        run_id = run_checks(instance, not_null_id=FAIL)
        sensor.tick()
        [message] = [r.body for r in receiver.delivered()]
        assert message["description"] == "asset check not_null_id on shop/orders failed (ERROR): 3 orders have no id"
        assert message["context"] == {
            "asset": "shop/orders",
            "check": "not_null_id",
            "check_severity": "ERROR",
            "failed_rows": 3,
            "query": "select * from orders where id is null",
        }
        assert message["run_id"] == run_id and message["tags"] == {
            "watch": "dbt_tests",
            "asset": "shop/orders",
            "check": "not_null_id",
        }
        assert message["run_url"] == f"{BASE_URL}/assets/shop/orders?view=checks&checkDetail=not_null_id"

    def test_first_tick_takes_the_latest_evaluation_of_every_watched_check(
        self, write_alerts: WriteAlerts, receiver: Receiver, any_home: Path
    ) -> None:
        """Evaluations made before the sensor ever ticked: the latest of each watched check is its state, so a
        check already failing fires (once); passing ones are recorded quietly, unwatched ones not at all."""
        with dg.DagsterInstance.from_config(str(any_home)) as instance:
            run_checks(instance, not_null_id=PASS, balanced=FAIL)
            run_checks(instance, not_null_id=FAIL, positive_total=PASS, balanced=FAIL)
            sensor = Sensor(watch_file(write_alerts, receiver), instance)
            summary = sensor.tick()
            assert summary.startswith("2 evaluation(s) read, 2 recorded: 1 first_evaluation, 1 first_notification")
            assert "0 evaluation(s) read" in sensor.tick()
            state = instance_state_url(instance)
            history = cli("history", NAME, "--database-url", state)
            assert f"{NAME}: 1 runs (1 ALERT" in history.output
            assert "no history" in cli("history", "dbt_tests:finance/ledger:balanced", "--database-url", state).output
        assert events(receiver) == [(NAME, "firing")]

    def test_the_alerts_own_checks_are_not_watched_again(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """In checks mode an alert is itself a check on its asset: a rule on `shop/*` does not notify it a second
        time (the alert's own channels did), while the team's own checks on that asset are still watched."""
        path = watch_file(
            write_alerts,
            receiver,
            top="""
            database: {url: "sqlite:///w.db"}
            alerts:
              - {name: orders_late, query: "SELECT 'ALERT' AS status", schedule: "@hourly", asset: shop/orders,
                 notify: [{channel: log}]}
            """,
        )
        sensor = Sensor(path, instance)
        sensor.tick()  # the first tick: nothing evaluated yet
        checks = build_definitions(path, mode="checks").resolve_job_def("sqlsentinel_checks")
        assert (
            not checks.execute_in_process(instance=instance, raise_on_error=False)
            .get_asset_check_evaluations()[0]
            .passed
        )
        run_checks(instance, not_null_id=FAIL)
        sensor.tick()
        assert events(receiver) == [(NAME, "firing")]

    def test_overlapping_ticks_notify_once(self, write_alerts: WriteAlerts, receiver: Receiver, any_home: Path) -> None:
        """Two evaluations of the sensor from the same cursor at once, each with its own instance (as two
        daemons would): the failed check is recorded once and notified once."""
        path = watch_file(write_alerts, receiver)
        with dg.DagsterInstance.from_config(str(any_home)) as instance:
            sensor = Sensor(path, instance)
            sensor.tick()
            run_checks(instance, not_null_id=FAIL, positive_total=FAIL)
        cursor, start = sensor.cursor, threading.Barrier(2)
        summaries: list[str] = []

        def tick() -> None:
            with dg.DagsterInstance.from_config(str(any_home)) as own:
                start.wait()
                summaries.append(sensor.tick(cursor, own))

        threads = [threading.Thread(target=tick) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(summaries) == 2
        recorded = sum(int(s.split(", ")[1].split(" ")[0]) for s in summaries)
        assert recorded == 2, summaries  # each of the two checks once, by one tick or the other
        assert sorted(events(receiver)) == [
            ("dbt_tests:shop/orders:not_null_id", "firing"),
            ("dbt_tests:shop/orders:positive_total", "firing"),
        ]

    def test_a_restart_from_an_older_cursor_records_nothing_twice(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """A tick whose cursor was never saved (the daemon restarted) is redone: what it recorded is known."""
        sensor = Sensor(watch_file(write_alerts, receiver), instance)
        sensor.tick()
        before = sensor.cursor
        run_checks(instance, not_null_id=FAIL)
        sensor.tick()
        assert sensor.tick(before) == (  # not_null_id and positive_total; finance/ledger is not watched
            "3 evaluation(s) read, 0 recorded (2 already recorded): nothing decided; notifications: none"
        )
        assert events(receiver) == [(NAME, "firing")]

    def test_warn_failures_outside_the_rule_count_as_passing(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """severity: [ERROR]: a WARN failure notifies nothing, and resolves a check that failed with ERROR."""
        sensor = Sensor(watch_file(write_alerts, receiver, "severity: [ERROR]"), instance)
        sensor.tick()
        run_checks(instance, not_null_id=FAIL, positive_total=WARN)
        sensor.tick()
        run_checks(instance, not_null_id=WARN, positive_total=WARN)
        sensor.tick()
        assert events(receiver) == [(NAME, "firing"), (NAME, "resolved")]

    def test_for_and_send_resolved_apply_as_on_alerts(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """for: 2 fires at the second failed evaluation in a row; send_resolved: false sends no resolved notice."""
        sensor = Sensor(watch_file(write_alerts, receiver, "for: 2\nsend_resolved: false"), instance)
        sensor.tick()
        sent = []
        for result in (FAIL, FAIL, PASS):
            run_checks(instance, not_null_id=result)
            sensor.tick()
            sent.append(len(events(receiver)))
        assert sent == [0, 1, 1] and events(receiver) == [(NAME, "firing")]

    def test_work_per_tick_is_bounded_and_the_cursor_keeps_the_rest(
        self,
        write_alerts: WriteAlerts,
        receiver: Receiver,
        instance: dg.DagsterInstance,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """At most MAX_EVALUATIONS_PER_TICK evaluations a tick; out of time, none, and the cursor stays."""
        sensor = Sensor(watch_file(write_alerts, receiver), instance)
        sensor.tick()
        run_checks(instance, not_null_id=FAIL, positive_total=FAIL, balanced=FAIL)
        monkeypatch.setattr(watch_sensor_module, "TICK_BUDGET_SECONDS", -1.0)
        cursor = sensor.cursor
        assert sensor.tick().endswith("out of time, the rest at the next tick") and sensor.cursor == cursor
        monkeypatch.setattr(watch_sensor_module, "TICK_BUDGET_SECONDS", 40.0)
        monkeypatch.setattr(watch_sensor_module, "MAX_EVALUATIONS_PER_TICK", 2)
        reads = [sensor.tick().split(" ")[0] for _ in range(3)]
        assert reads == ["2", "1", "0"]  # three evaluations, two a tick
        assert sorted(events(receiver)) == [
            ("dbt_tests:shop/orders:not_null_id", "firing"),
            ("dbt_tests:shop/orders:positive_total", "firing"),
        ]

    def test_a_grouped_receiver_gets_one_message_per_tick(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """`group: true`: the checks that fired in one tick arrive as one webhook request (a JSON array)."""
        path = write_alerts(
            f"""
            receivers:
              team: {{channel: webhook, url: "{receiver.url}", group: true}}
            watch:
              - {{name: dbt_tests, checks: "shop/*", notify: [team]}}
            """
        )
        sensor = Sensor(path, instance)
        sensor.tick()
        run_checks(instance, not_null_id=FAIL, positive_total=FAIL)
        sensor.tick()
        [request] = receiver.delivered()
        assert sorted(m["alert_name"] for m in request.body) == [NAME, "dbt_tests:shop/orders:positive_total"]

    def test_silence_accepts_checks_the_file_watches_and_refuses_others(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """`silence FILE --alert <rule>:<asset>:<check>`: a check the rule watches is accepted before it ever
        failed; a check it does not watch is a typo (refused with --force as the way out)."""
        path, state = watch_file(write_alerts, receiver), instance_state_url(instance)
        args = ("--duration", "1h", "--reason", "planned", "--database-url", state)
        assert cli("silence", str(path), "--alert", "dbt_tests:shop/orders:never_run", *args).exit_code == 0
        refused = cli("silence", str(path), "--alert", "dbt_tests:finance/ledger:balanced", *args)
        assert refused.exit_code == 1 and "no alert named 'dbt_tests:finance/ledger:balanced'" in refused.output


# -- the real daemon ---------------------------------------------------------------------------------------------

TEAM = """
import pathlib
import dagster as dg

@dg.asset(key=["shop", "orders"])
def orders() -> None:
    return None

@dg.asset_check(asset=orders, description="Every order has an id")
def not_null_id() -> dg.AssetCheckResult:
    failing = pathlib.Path("failing").exists()
    return dg.AssetCheckResult(passed=not failing, metadata={"failed_rows": 3 if failing else 0})

defs = dg.Definitions(assets=[orders], asset_checks=[not_null_id])
"""


def test_a_team_check_in_another_code_location_is_notified_through_the_daemon(
    tmp_path: Path, dagster_home: Path, receiver: Receiver
) -> None:
    """Under the real dagster-daemon, with the team's asset and check in their own code location: the check
    failing in a real run reaches the webhook once; silenced, a reminder is not sent; when the silence ends the
    reminder is; passing again resolves."""
    (tmp_path / "alerts.yaml").write_text(
        f'watch_interval: 5s\nwatch:\n  - {{name: dbt_tests, checks: "shop/*", repeat_interval: 20s, '
        f'notify: [{{channel: webhook, url: "{receiver.url}"}}]}}\n'
    )
    (tmp_path / "alerts_defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml')\n"
    )
    (tmp_path / "team.py").write_text(TEAM)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n"
        "  - python_file: {relative_path: alerts_defs.py, location_name: alerts, working_directory: .}\n"
        "  - python_file: {relative_path: team.py, location_name: team, working_directory: .}\n"
    )

    def materialize() -> None:
        done = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-f", "team.py", "--select", "shop/orders"],
            cwd=tmp_path,
            env=dagster_env(dagster_home),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        url = instance_state_url(instance)

    def state(*args: str) -> Any:
        return cli(*args, "--database-url", url)

    with dagster_daemon(tmp_path, dagster_home), dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        wait_for(lambda: sensor_ticks(instance, "sqlsentinel_watch") >= 1, 120, "the sensor's first tick")
        (tmp_path / "failing").touch()
        materialize()
        wait_for(lambda: len(receiver.delivered()) >= 1, 120, "the firing notification")
        assert state("silence", NAME, "--duration", "1h", "--reason", "on it").exit_code == 0
        materialize()  # still failing, while silenced
        wait_for(lambda: "suppressed reminder" in state("history", NAME).output, 120, "a reminder, suppressed")
        assert [e for _, e in events(receiver)] == ["firing"]
        assert state("unsilence", NAME).exit_code == 0
        wait_for(lambda: len(receiver.delivered()) >= 2, 120, "the reminder owed since the silence")
        (tmp_path / "failing").unlink()
        materialize()
        wait_for(lambda: len(receiver.delivered()) >= 3, 120, "the resolved notification")
        ticks = sensor_ticks(instance, "sqlsentinel_watch")
        wait_for(lambda: sensor_ticks(instance, "sqlsentinel_watch") >= ticks + 1, 120, "one more tick")
    assert events(receiver) == [(NAME, "firing"), (NAME, "reminder"), (NAME, "resolved")]
