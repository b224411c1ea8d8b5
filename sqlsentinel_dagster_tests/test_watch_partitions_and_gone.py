"""``watch:`` on partitioned checks (one state per partition) and on checks that vanish (a wiped asset: resolved
as ``gone``, then quiet), on real Dagster runs, the sensor ticked by hand as the daemon does."""

# No `from __future__ import annotations` here: Dagster inspects the check's `context` annotation at runtime.

import datetime as dt
import logging
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sqlsentinel_dagster.config import load_config
from sqlsentinel_dagster.cycle.check_evaluations import MAX_NAME, CheckKey, labels_of, payload_of, rule_of, watched_name
from sqlsentinel_dagster.cycle.delivery import CycleSettings
from sqlsentinel_dagster.cycle.watch import _still_watches, watch_tick
from sqlsentinel_dagster.definitions import watch_sensor as watch_sensor_module
from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.definitions.resources import AlertStateResource, NotificationsResource
from sqlsentinel_dagster.state.decision import decide, decide_gone
from sqlsentinel_dagster.state.model import AlertState, Outcome, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels, Silence, parse_matcher
from sqlsentinel_dagster.state.store import StateStore
from sqlsentinel_dagster.state.watched import WatchedCheck, WatchedLabels

from .loopback import Receiver, loopback_receiver
from .test_watch import (
    FAIL,
    NAME,
    PASS,
    FakeClock,
    Sensor,
    WriteAlerts,
    cli,
    evaluation,
    events,
    rule,
    run_checks,
)
from .test_watch import watch_file as _watch_file

CHECK = "dbt_tests:shop/events:complete"
"""The watched name of the partitioned check, without a partition."""
T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def part(day: int) -> str:
    """The watched name of one partition of the daily check: ``dbt_tests:shop/events:complete[2024-01-0<day>]``."""
    return f"{CHECK}[2024-01-{day:02d}]"


# -- a team's daily-partitioned asset and check, and a second unpartitioned asset ---------------------------------

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
FAILING: set[str] = set()
"""Partition keys whose check fails at the next run."""


@dg.asset(key=["shop", "events"], partitions_def=DAILY)
def shop_events() -> None:
    return None


@dg.asset_check(asset=shop_events, partitions_def=DAILY, description="Every event has a user")
def complete(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    failing = context.partition_key in FAILING
    return dg.AssetCheckResult(passed=not failing, metadata={"events_without_user": 4 if failing else 0})


@dg.asset(key=["shop", "customers"])
def customers() -> None:
    return None


@dg.asset_check(asset=customers)
def has_email() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="2 customers have no email")


def run_partition(instance: dg.DagsterInstance, day: int, *, passed: bool) -> None:
    """Materialize the partition 2024-01-0<day> of shop/events with its check, passing or failing."""
    key = f"2024-01-{day:02d}"
    (FAILING.discard if passed else FAILING.add)(key)
    assert dg.materialize([shop_events, complete], instance=instance, partition_key=key).success


def fail_customers(instance: dg.DagsterInstance) -> None:
    """Materialize shop/customers; its check fails."""
    assert dg.materialize([customers, has_email], instance=instance).success


def wipe(instance: dg.DagsterInstance, *path: str) -> None:
    """What ``dagster asset wipe`` does to the asset."""
    instance.wipe_assets([dg.AssetKey(list(path))])


# -- fixtures ----------------------------------------------------------------------------------------------------


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


def watch_file(write_alerts: WriteAlerts, receiver: Receiver, rule_text: str = "") -> Path:
    """The alerts file of test_watch: rule ``dbt_tests`` on ``shop/*``, notifying the receiver."""
    return _watch_file(write_alerts, receiver, rule_text)


def reasons(instance: dg.DagsterInstance, name: str) -> str:
    """``sqlsentinel history NAME``: one line per decision, with its reason."""
    output: str = cli("history", name, "--database-url", instance_state_url(instance)).output
    return output


# -- names, labels and the decision, without Dagster ------------------------------------------------------------


class TestPartitionNames:
    def test_a_partition_is_named_after_its_check_and_key_and_found_back(self) -> None:
        """`<rule>:<asset>:<check>[<partition>]`, whatever the key holds (':' of an hourly key, brackets of a
        dynamic one); the rule is found back from it; unpartitioned names are as before."""
        assert watched_name("dbt_tests", ("shop", "events"), "complete", "2024-01-01") == part(1)
        assert watched_name("dbt_tests", ("shop", "orders"), "not_null_id", None) == NAME
        one_check = rule(checks="shop/events:complete")
        for key in ("2024-01-01", "2024-01-01-13:00", "a]b[c:d", "eu|2024-01-01"):
            name = watched_name("dbt_tests", ("shop", "events"), "complete", key)
            assert rule_of([one_check], name) is one_check, name
        assert rule_of([one_check], "dbt_tests:shop/events:other[2024-01-01]") is None
        assert rule_of([one_check], "dbt_tests:shop/events:complete") is one_check

    def test_long_partition_names_are_cut_with_a_hash_and_stay_distinct(self) -> None:
        """Names of partitions go through the same 200-character limit as check names."""
        asset = ("shop", "e" * 170)
        first = watched_name("dbt_tests", asset, "complete", "2024-01-01")
        second = watched_name("dbt_tests", asset, "complete", "2024-01-02")
        assert len(first) == len(second) == MAX_NAME and first != second and first[-13] == "~"
        assert rule_of([rule()], first) is not None

    def test_silencing_the_check_silences_every_partition(self) -> None:
        """A partition's labels: its own name, the tag `partition`; an `alert=<check>` matcher (what `silence
        <check>` makes) matches every partition, `partition=` one, another check's name none."""
        labels = labels_of(rule(), evaluation(asset=("shop", "events"), check="complete", partition="2024-01-01"))
        assert isinstance(labels, WatchedLabels) and labels.name == part(1)
        assert labels.tags == {
            "watch": "dbt_tests",
            "asset": "shop/events",
            "check": "complete",
            "partition": "2024-01-01",
        }

        def silenced(*matchers: str) -> bool:
            return Silence("s", tuple(parse_matcher(m) for m in matchers), T0, T0, "ana", "why", T0).matches(labels)

        assert silenced(f"alert={CHECK}") and silenced(f"alert={part(1)}") and silenced("partition=2024-01-01")
        assert not silenced(f"alert={part(2)}") and not silenced(f"alert={NAME}") and not silenced("partition=x")
        plain = labels_of(rule(), evaluation())
        assert type(plain) is AlertLabels and plain.name == NAME and "partition" not in (plain.tags or {})

    def test_the_message_names_the_partition(self) -> None:
        """The description says which partition failed; the context and tags carry it."""
        message = payload_of(rule(), evaluation(partition="2024-01-03"), None)
        assert message["alert_name"] == f"{NAME}[2024-01-03]"
        assert message["description"] == (
            "asset check not_null_id on shop/orders (partition 2024-01-03) failed (ERROR): 3 orders have no id"
        )
        assert message["context"]["partition"] == message["tags"]["partition"] == "2024-01-03"


class TestDecideGone:
    LABELS = AlertLabels("w", "error")

    def firing(self, **changes: Any) -> AlertState:
        values: dict[str, Any] = {"condition": "firing", "episode_notified": True, "firing_since": T0}
        return AlertState("w", consecutive_alerts=3, evaluation_count=3, **{**values, **changes})

    def test_a_notified_episode_resolves_as_gone_and_a_new_one_starts_afresh(self) -> None:
        """Firing and notified: `gone` with a resolved event; inactive, no streak left, so with `for: 2` the
        check failing again is pending before it fires again."""
        decision = decide_gone(self.firing(), labels=self.LABELS, silences=[], now=T0, why="its asset was wiped")
        assert (decision.code, decision.event, decision.notify) == ("gone", "resolved", True)
        assert decision.reason == "resolved: gone (its asset was wiped)"
        state = decision.state
        assert (state.condition, state.firing_since, state.consecutive_alerts, state.evaluation_count) == (
            "inactive",
            None,
            0,
            4,
        )
        again = decide(
            state, Outcome("ALERT"), labels=self.LABELS, silences=[], settings=StateSettings(for_count=2), now=T0
        )
        assert again.code == "pending"

    def test_an_episode_never_notified_ends_quietly_and_a_silence_suppresses_the_notice(self) -> None:
        """Never notified (silenced all along): `gone_unnotified`, no event; notified but silenced now: the
        resolved notice is suppressed as any is."""
        quiet = decide_gone(
            self.firing(episode_notified=False, episode_suppressed=True),
            labels=self.LABELS,
            silences=[],
            now=T0,
            why="x",
        )
        assert (quiet.code, quiet.event, quiet.state.condition, quiet.state.episode_suppressed) == (
            "gone_unnotified",
            None,
            "inactive",
            False,
        )
        silence = Silence("s", (parse_matcher("alert=w"),), T0, T0 + dt.timedelta(hours=1), "ana", "why", T0)
        silenced = decide_gone(self.firing(), labels=self.LABELS, silences=[silence], now=T0, why="x")
        assert (silenced.code, silenced.event, silenced.notify) == ("suppressed", "resolved", False)


class TestGoneOnlyOnceKnown:
    def test_a_check_recorded_in_this_tick_is_not_judged_gone_and_not_knowing_is_not_gone(
        self, write_alerts: WriteAlerts, tmp_path: Path
    ) -> None:
        """The tick that records a failed evaluation does not ask whether the check is gone (Dagster may still
        be writing its records); the next tick does, once; a tick that cannot tell resolves nothing."""
        config = load_config(
            write_alerts('watch:\n  - {name: dbt_tests, checks: "shop/*", notify: [{channel: log}]}\n')
        )
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}", lambda: T0)
        settings = CycleSettings(
            channels=NotificationsResource().channel_settings(),
            lease=dt.timedelta(minutes=5),
            expire_after=dt.timedelta(hours=1),
            run_id="tick",
        )
        asked: list[set[CheckKey]] = []

        def everything_gone(checks: Collection[CheckKey]) -> dict[CheckKey, str]:
            asked.append(set(checks))
            return dict.fromkeys(checks, "wiped")

        def cannot_tell(checks: Collection[CheckKey]) -> dict[CheckKey, str]:
            return {}

        log = logging.getLogger("test")
        first = watch_tick([evaluation()], config, store, settings, log, gone=everything_gone)
        assert dict(first.decisions) == {"first_notification": 1} and asked == []
        unknown = watch_tick([], config, store, settings, log, gone=cannot_tell)
        assert dict(unknown.decisions) == {}
        second = watch_tick([], config, store, settings, log, gone=everything_gone)
        assert dict(second.decisions) == {"gone": 1} and asked == [{(("shop", "orders"), "not_null_id")}]
        assert dict(watch_tick([], config, store, settings, log, gone=everything_gone).decisions) == {}

    def test_a_newer_evaluation_recorded_meanwhile_means_not_gone(self, tmp_path: Path) -> None:
        """resolve_gone_watched on a state that recorded a newer evaluation since it was read writes nothing."""
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}", lambda: T0)
        labels, channels = AlertLabels(NAME, "error"), {"0:log": {"firing", "reminder", "resolved"}}

        def record(storage_id: int) -> Any:
            return store.record_watched(
                labels, Outcome("ALERT"), StateSettings(), channels, {}, None, rule="dbt_tests", storage_id=storage_id
            )

        record(10)
        [seen] = store.watched_needing_work(["dbt_tests"])
        record(11)
        assert store.resolve_gone_watched(seen, channels, {}, None, why="wiped") is None
        [now] = store.watched_needing_work(["dbt_tests"])
        assert (now.state.condition, now.storage_id) == ("firing", 11)


# -- partitioned checks on real Dagster runs ---------------------------------------------------------------------


class TestPartitionedChecks:
    def test_each_partition_fires_and_resolves_on_its_own(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """Partitions 01 fail, 02 pass, 03 fail, 04 pass: firing for 01 and for 03, nothing resolved (a passing
        partition does not resolve another); 01 passing later resolves 01 only. status lists the partitions,
        history takes a partition's name."""
        path = watch_file(write_alerts, receiver)
        sensor = Sensor(path, instance)
        sensor.tick()
        for day, passed in ((1, False), (2, True), (3, False), (4, True)):
            run_partition(instance, day, passed=passed)
            sensor.tick()
        assert events(receiver) == [(part(1), "firing"), (part(3), "firing")]
        run_partition(instance, 1, passed=True)
        assert "1 resolved" in sensor.tick()
        assert events(receiver) == [(part(1), "firing"), (part(3), "firing"), (part(1), "resolved")]
        state = instance_state_url(instance)
        status = cli("status", str(path), "--database-url", state).output
        assert [line.split(": ")[1].split(" ")[0] for line in status.splitlines() if line.startswith(CHECK)] == [
            "inactive",
            "inactive",
            "firing",
            "inactive",
        ]
        assert f"{part(3)}: 1 runs (1 ALERT" in reasons(instance, part(3))
        [message] = [r.body for r in receiver.delivered() if r.body["alert_name"] == part(3)]
        assert message["tags"]["partition"] == message["context"]["partition"] == "2024-01-03"

    def test_silencing_the_check_by_name_silences_its_partitions(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """`sqlsentinel silence FILE --alert <rule>:<asset>:<check>` (no partition): a partition failing then is
        suppressed; `silence FILE --alert` also accepts a partition's name of a watched check."""
        path, state = watch_file(write_alerts, receiver), instance_state_url(instance)
        args = ("--duration", "1h", "--reason", "backfill", "--database-url", state)
        sensor = Sensor(path, instance)
        sensor.tick()
        run_partition(instance, 4, passed=True)
        sensor.tick()
        silenced = cli("silence", str(path), "--alert", CHECK, *args)
        assert silenced.exit_code == 0, silenced.output
        run_partition(instance, 5, passed=False)
        assert "1 suppressed" in sensor.tick()
        assert events(receiver) == []
        accepted = cli("silence", str(path), "--alert", part(6), *args)
        assert accepted.exit_code == 0, accepted.output

    def test_status_shows_a_partition_silenced_by_its_check_and_the_check_is_known_without_the_file(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance
    ) -> None:
        """A partition silenced through its check's name reads "silenced" in `status`; with only partitions
        recorded, `silence <check>` (no file) knows the check and needs no --force."""
        path, state = watch_file(write_alerts, receiver), instance_state_url(instance)
        sensor = Sensor(path, instance)
        sensor.tick()
        run_partition(instance, 5, passed=False)
        sensor.tick()
        silenced = cli("silence", CHECK, "--duration", "1h", "--reason", "backfill", "--database-url", state)
        assert silenced.exit_code == 0, silenced.output
        typo = cli("silence", CHECK + "x", "--duration", "1h", "--database-url", state)
        assert typo.exit_code != 0 and "--force" in typo.output
        [line] = [x for x in cli("status", "--database-url", state).output.splitlines() if x.startswith(part(5))]
        assert "silenced by" in line and "backfill" in line

    def test_first_tick_takes_the_latest_evaluation_of_every_partition_within_the_tick_bound(
        self, write_alerts: WriteAlerts, receiver: Receiver, any_home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Before the first tick: 01 fails then passes, 02 fails, 03 passes. The first tick takes the latest of
        each partition (02 fires; 01 and 03 are recorded quietly), at most MAX_EVALUATIONS_PER_TICK a tick."""
        monkeypatch.setattr(watch_sensor_module, "MAX_EVALUATIONS_PER_TICK", 2)
        with dg.DagsterInstance.from_config(str(any_home)) as instance:
            for day, passed in ((1, False), (2, False), (1, True), (3, True)):
                run_partition(instance, day, passed=passed)
            sensor = Sensor(watch_file(write_alerts, receiver), instance)
            reads = [sensor.tick().split(" evaluation(s) read")[0] for _ in range(3)]
        assert reads == ["2", "1", "0"]
        assert events(receiver) == [(part(2), "firing")]


# -- checks that vanish ------------------------------------------------------------------------------------------


class TestGoneChecks:
    def test_a_firing_check_whose_asset_is_wiped_resolves_once_and_never_reminds(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance, clock: FakeClock
    ) -> None:
        """Two checks firing with repeat_interval 4h, in no code location the sensor loads. shop/orders is wiped:
        its check resolves once (reason gone) and is never reminded; shop/customers' check, not wiped, is."""
        sensor = Sensor(watch_file(write_alerts, receiver, "repeat_interval: 4h"), instance)
        sensor.tick()
        run_checks(instance, not_null_id=FAIL)
        fail_customers(instance)
        sensor.tick()
        wipe(instance, "shop", "orders")
        assert "1 gone" in sensor.tick()
        for _ in range(2):
            clock.advance(hours=4, seconds=1)
            sensor.tick()
            sensor.tick()
        customers_check = "dbt_tests:shop/customers:has_email"
        sent = events(receiver)
        assert sorted(sent[:2]) == [(customers_check, "firing"), (NAME, "firing")]  # one tick, in name order
        assert sent[2:] == [(NAME, "resolved"), (customers_check, "reminder"), (customers_check, "reminder")]
        [resolved] = [r.body for r in receiver.delivered() if r.body["event"] == "resolved"]
        assert resolved["description"] == (
            "asset check not_null_id on shop/orders is gone: its asset was wiped: Dagster keeps no evaluation of the "
            "check"
        )
        assert "resolved: gone (its asset was wiped" in reasons(instance, NAME)
        status = cli("status", "--database-url", instance_state_url(instance)).output
        assert f"{NAME}: inactive" in status and f"{customers_check}: firing" in status

    def test_a_gone_check_that_comes_back_starts_a_new_episode(
        self, write_alerts: WriteAlerts, receiver: Receiver, any_home: Path
    ) -> None:
        """After its asset was wiped and it resolved, the check failing again fires again (a new episode); on
        SQLite and on Postgres."""
        with dg.DagsterInstance.from_config(str(any_home)) as instance:
            sensor = Sensor(watch_file(write_alerts, receiver), instance)
            sensor.tick()
            run_checks(instance, not_null_id=FAIL, positive_total=PASS)
            sensor.tick()
            wipe(instance, "shop", "orders")
            assert "1 gone" in sensor.tick()
            run_checks(instance, not_null_id=FAIL, positive_total=PASS)
            assert "1 first_notification" in sensor.tick()
            sensor.tick()
        assert events(receiver) == [(NAME, "firing"), (NAME, "resolved"), (NAME, "firing")]

    def test_every_firing_partition_of_a_wiped_asset_resolves_and_send_resolved_false_stays_quiet(
        self, write_alerts: WriteAlerts, receiver: Receiver, instance: dg.DagsterInstance, clock: FakeClock
    ) -> None:
        """A wiped partitioned asset: each firing partition resolves once, a passing one is left alone; with
        send_resolved: false no notice goes out, and no reminder either."""
        loud = Sensor(watch_file(write_alerts, receiver, "repeat_interval: 1h"), instance)
        loud.tick()
        for day, passed in ((1, False), (2, True), (3, False)):
            run_partition(instance, day, passed=passed)
        loud.tick()
        wipe(instance, "shop", "events")
        assert "2 gone" in loud.tick()
        clock.advance(hours=2)
        loud.tick()
        assert sorted(events(receiver)) == [
            (part(1), "firing"),
            (part(1), "resolved"),
            (part(3), "firing"),
            (part(3), "resolved"),
        ]

        quiet_file = write_alerts(
            f'watch:\n  - {{name: quiet, checks: "shop/*", repeat_interval: 1h, send_resolved: false, '
            f'notify: [{{channel: webhook, url: "{receiver.url}"}}]}}\n',
            "quiet.yaml",
        )
        quiet = Sensor(quiet_file, instance)
        quiet.tick()
        run_partition(instance, 4, passed=False)
        quiet.tick()
        wipe(instance, "shop", "events")
        assert "1 gone" in quiet.tick()
        clock.advance(hours=2)
        quiet.tick()
        assert [e for n, e in events(receiver) if n.startswith("quiet:")] == ["firing"]


class TestStillWatched:
    @pytest.mark.parametrize(
        ("asset", "check", "watched"),
        [
            (("shop", "a/b"), "complete", True),  # a key part holding '/': its name cannot be read back
            (("finance", "x"), "complete", False),  # the rule no longer watches it
            (("shop", "orders"), "c" * 250, True),  # a name past the limit, cut with a hash
            (("finance", "x"), "c" * 250, False),  # cut, and no longer watched: a cut name no longer passes for any
        ],
        ids=["slash_in_a_key_part", "no_longer_watched", "cut_name", "cut_name_no_longer_watched"],
    )
    def test_whether_a_rule_still_watches_a_state_is_read_from_its_recorded_asset_and_check(
        self, asset: tuple[str, ...], check: str, watched: bool
    ) -> None:
        """A recorded state's asset and check decide if its rule still watches it, not its (maybe cut) name."""
        name = watched_name("dbt_tests", asset, check)
        state = WatchedCheck(
            name, "dbt_tests", 1, AlertState(name), Outcome("OK"), AlertLabels(name), {}, False, asset, check
        )
        assert _still_watches(rule(), state) is watched
