"""Instance alerts (``instances:``): each row of the query is one instance of the alert, with its own state, silences
and notifications. Real SQLite files and the local Postgres (warehouse and state), loopback webhook, Slack and
PagerDuty servers, a loopback SMTP server, and an injected clock where time matters."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import logging
import re
import subprocess
import sys
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sqlsentinel_dagster import load_config
from sqlsentinel_dagster.cli.main import main as cli
from sqlsentinel_dagster.config import AlertConfig, LoadedConfig
from sqlsentinel_dagster.config.instances import InstancesSpec
from sqlsentinel_dagster.cycle.alert import AlertCycle, run_cycle
from sqlsentinel_dagster.cycle.delivery import CycleSettings
from sqlsentinel_dagster.cycle.instances import instance_name, label_text, parse_instances
from sqlsentinel_dagster.definitions.resources import NotificationsResource, WarehouseResource
from sqlsentinel_dagster.naming import MAX_STATE_NAME
from sqlsentinel_dagster.state.admin import add_silence
from sqlsentinel_dagster.state.schema import alert_state, history, instances, notifications
from sqlsentinel_dagster.state.silences import parse_matcher
from sqlsentinel_dagster.state.store import StateStore

from .loopback import Receiver, loopback_receiver, slack_limits
from .smtp_server import smtp_server
from .test_watch import FakeClock as Clock

ALERT = "error_rate_by_region"
QUERY = (
    "SELECT region, CASE WHEN err > 5 THEN 'ALERT' ELSE 'OK' END AS status, err AS actual_value, 5 AS threshold "
    "FROM {table} ORDER BY pos"
)
INSTANCES = "{by: [region], missing_after: 2, max: 1000}"
LOGGER = logging.getLogger("sqlsentinel.test_instances")


def named(region: str) -> str:
    """The instance name of ``region`` (a plain value: nothing to escape)."""
    return f'{ALERT}{{region="{region}"}}'


@dataclass
class Setup:
    """One instance alert ``error_rate_by_region`` on a warehouse table ``(region, err, pos)``, its state store and
    the settings of a run; ``run`` evaluates it once through the same cycle Dagster runs."""

    path: Path
    warehouse_url: str
    table: str
    state_url: str
    clock: Clock
    settings: CycleSettings
    config: LoadedConfig
    alert: AlertConfig
    store: StateStore
    engines: list[sa.Engine] = field(default_factory=list)

    def set_rows(self, rows: list[tuple[str | None, float]]) -> None:
        """Replace the table's rows (in this order)."""
        engine = sa.create_engine(self.warehouse_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DELETE FROM {self.table}")
            if rows:
                conn.execute(
                    sa.text(f"INSERT INTO {self.table} (region, err, pos) VALUES (:r, :e, :p)"),
                    [{"r": r, "e": e, "p": p} for p, (r, e) in enumerate(rows)],
                )
        engine.dispose()

    def drop_table(self) -> None:
        engine = sa.create_engine(self.warehouse_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self.table}")
        engine.dispose()

    def create_table(self) -> None:
        engine = sa.create_engine(self.warehouse_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {self.table} (region TEXT, err FLOAT, pos INTEGER)")
        engine.dispose()

    def evaluate(self, alert: AlertConfig) -> Any:
        return WarehouseResource(config_path=str(self.path), database="default").evaluate(alert)

    def run(self, store: StateStore | None = None) -> AlertCycle:
        """Evaluate the alert once: record, then deliver."""
        used = store or self.store
        return run_cycle(self.alert, self.config, self.evaluate, lambda: used, self.settings, LOGGER)

    def new_store(self) -> StateStore:
        """Another store on the same state database (as another run process would open)."""
        store = StateStore.from_url(self.state_url, self.clock)
        self.engines.append(store.engine)
        return store

    def ledger(self) -> list[dict[str, Any]]:
        """Every notification recorded, oldest first."""
        query = sa.select(notifications).order_by(notifications.c.id)
        with self.store.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def listed(self) -> dict[str, dict[str, Any]]:
        """The rows of ``sqlsentinel_instances``, by instance."""
        with self.store.engine.connect() as conn:
            return {row["instance"]: dict(row) for row in conn.execute(sa.select(instances)).mappings()}

    def current(self) -> set[str]:
        return {name for name, row in self.listed().items() if row["current"]}

    def decisions(self, name: str) -> list[str]:
        """The history of ``name``: its decision codes, oldest first."""
        query = sa.select(history.c.decision).where(history.c.alert == name).order_by(history.c.id)
        with self.store.engine.connect() as conn:
            return list(conn.execute(query).scalars())


def alerts_text(warehouse_url: str, table: str, notify: str, instances_yaml: str = INSTANCES, extra: str = "") -> str:
    return f"""
database:
  url: "{warehouse_url}"
alerts:
  - name: {ALERT}
    query: "{QUERY.format(table=table)}"
    schedule: "*/5 * * * *"
    instances: {instances_yaml}
    notify: {notify}
{extra}"""


SetupFactory = Callable[..., Setup]


@pytest.fixture
def make_setup(tmp_path: Path) -> Iterator[SetupFactory]:
    """Build a :class:`Setup`: warehouse on a SQLite file (or ``warehouse_url``), state on a SQLite file (or
    ``state_url``); every table, engine and store made is cleaned up afterwards."""
    made: list[Setup] = []

    def make(
        notify: str,
        *,
        instances_yaml: str = INSTANCES,
        extra: str = "",
        warehouse_url: str | None = None,
        table: str = "metrics",
        state_url: str | None = None,
        notifications_resource: NotificationsResource | None = None,
        rows: list[tuple[str | None, float]] | None = None,
    ) -> Setup:
        warehouse = warehouse_url or f"sqlite:///{tmp_path / 'warehouse.db'}"
        state = state_url or f"sqlite:///{tmp_path / 'state.db'}"
        path = tmp_path / "alerts.yaml"
        path.write_text(alerts_text(warehouse, table, notify, instances_yaml, extra), encoding="utf-8")
        config = load_config(path)
        resource = notifications_resource or NotificationsResource(retry_base_delay_seconds=0.01)
        settings = CycleSettings(
            channels=resource.channel_settings(),
            lease=dt.timedelta(minutes=5),
            expire_after=dt.timedelta(hours=24),
            run_id=None,
        )
        clock = Clock()
        store = StateStore.from_url(state, clock)
        setup = Setup(path, warehouse, table, state, clock, settings, config, config.alert(ALERT), store)
        setup.engines.append(store.engine)
        made.append(setup)
        setup.drop_table()
        setup.create_table()
        if rows is not None:
            setup.set_rows(rows)
        return setup

    yield make
    for setup in made:
        if setup.warehouse_url.startswith("postgresql"):
            setup.drop_table()
        for engine in setup.engines:
            engine.dispose()


@pytest.fixture(scope="module")
def _server() -> Iterator[Receiver]:
    """One loopback server for the module (stopping one takes half a second)."""
    with loopback_receiver() as server:
        yield server


@pytest.fixture
def receiver(_server: Receiver) -> Receiver:
    """The module's webhook (and Slack, PagerDuty) receiver on loopback, as new: nothing received, nothing refused."""
    with _server.lock:
        _server.requests.clear()
        _server.fail_with, _server.fail_times, _server.fail_when, _server.limits = None, 0, None, None
    return _server


def hook(receiver: Receiver, path: str = "/hook") -> str:
    return f'[{{channel: webhook, url: "{receiver.url}{path}", group: false}}]'


def bodies(receiver: Receiver, path: str = "/hook") -> list[Any]:
    """What was delivered to ``path``, in order: a list per grouped instance message, a dict per single message."""
    return [r.body for r in receiver.delivered() if r.path == path]


def listed_messages(receiver: Receiver, path: str = "/hook") -> list[list[dict[str, Any]]]:
    """The grouped instance messages delivered to ``path`` (JSON arrays)."""
    return [b for b in bodies(receiver, path) if isinstance(b, list)]


def single_messages(receiver: Receiver, path: str = "/hook") -> list[dict[str, Any]]:
    """The messages delivered alone to ``path`` (the alert's own: errors)."""
    return [b for b in bodies(receiver, path) if isinstance(b, dict)]


THREE_REGIONS: list[tuple[str | None, float]] = [("us", 9.0), ("eu", 7.0), ("ap", 1.0)]


class TestInstanceNames:
    def test_labels_are_sorted_and_values_quoted_like_prometheus(self) -> None:
        """Label columns are sorted by name and each value is quoted."""
        assert instance_name("a", {"zone": "1", "region": "eu"}) == 'a{region="eu",zone="1"}'

    def test_quote_backslash_and_newline_are_escaped(self) -> None:
        """A quote, a backslash and a newline in a value are escaped as Prometheus escapes them."""
        assert instance_name("a", {"r": 'x"y\\z\nw'}) == 'a{r="x\\"y\\\\z\\nw"}'

    def test_control_characters_never_reach_the_name_raw(self) -> None:
        """Every C0 and C1 control character in a label value is written escaped (a tab as ``\\x09``, ESC as
        ``\\x1b``), never as itself."""
        codes = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
        names = {code: instance_name("a", {"r": f"x{chr(code)}y"}) for code in codes}
        raw = [hex(code) for code, name in names.items() if any(unicodedata.category(c) == "Cc" for c in name)]
        assert raw == []
        assert names[0x09] == 'a{r="x\\x09y"}' and names[0x1B] == 'a{r="x\\x1by"}' and names[0x0A] == 'a{r="x\\ny"}'
        assert len(set(names.values())) == len(codes)

    def test_a_500_character_value_gives_a_name_cut_to_the_state_limit_ending_in_a_hash(self) -> None:
        """A 500-character label value makes a name of at most 200 characters ending in ``~`` and 12 hex digits."""
        name = instance_name("a", {"r": label_text("v" * 500)})
        assert len(name) <= MAX_STATE_NAME and re.fullmatch(r'a\{r="v+~[0-9a-f]{12}', name), name

    def test_two_long_values_differing_only_at_their_end_are_two_instances(self) -> None:
        """Two rows whose 500-character label values differ only in their last character are two instances
        with two names, not duplicates (the name's hash is there to keep long names apart)."""
        spec = InstancesSpec(by=["region"])
        found = parse_instances(ALERT, ["region", "status"], [("v" * 499 + "1", "OK"), ("v" * 499 + "2", "OK")], spec)
        assert len({row.name for row in found.rows}) == 2

    @pytest.mark.parametrize(
        ("value", "text"),
        [(None, ""), (3.0, "3"), (2.5, "2.5"), (dt.date(2026, 1, 2), "2026-01-02"), (b"\x01\xff", "01ff")],
        ids=["null", "whole-float", "float", "date", "bytes"],
    )
    def test_label_values_are_text_as_written(self, value: Any, text: str) -> None:
        """NULL is the empty string, whole numbers lose their ``.0``, dates are ISO and bytes hex."""
        assert label_text(value) == text


class TestNamesThroughTheQuery:
    def test_null_and_hostile_labels_give_safe_names_in_the_state_and_the_message(
        self, make_setup: SetupFactory, receiver: Receiver, state_url: str
    ) -> None:
        """A NULL label, one with a quote, backslash, newline, NUL and escape code, and a 500-character one are
        recorded (SQLite and Postgres state) and notified under escaped, cut names with no raw control character;
        labels keep the values."""
        hostile = 'a"b\\c\nd\x1b[31m\x00'
        setup = make_setup(hook(receiver), rows=[(None, 9.0), (hostile, 9.0), ("L" * 500, 9.0)], state_url=state_url)
        cycle = setup.run()
        assert cycle.failure is None, cycle.failure
        names = setup.current()
        assert named("") in names
        assert f'{ALERT}{{region="a\\"b\\\\c\\nd\\x1b[31m\\x00"}}' in names
        (long,) = [n for n in names if "LLL" in n]
        assert len(long) <= MAX_STATE_NAME and re.search(r"~[0-9a-f]{12}$", long)
        assert not any(unicodedata.category(c) == "Cc" for n in names for c in n)
        (message,) = listed_messages(receiver)
        assert {m["instance"] for m in message} == names
        by_name = {m["instance"]: m["labels"] for m in message}
        assert by_name[named("")] == {"region": ""}
        assert by_name[f'{ALERT}{{region="a\\"b\\\\c\\nd\\x1b[31m\\x00"}}'] == {"region": hostile}


class TestResultErrors:
    def test_two_rows_with_the_same_labels_are_an_error_naming_them_and_resolve_nothing(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """Two ``us`` rows make the evaluation an error naming ``{region="us"}``; the instances firing before stay
        current and firing, nothing is resolved and two such evaluations send one error notification."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        setup.run()
        setup.set_rows([("us", 9.0), ("us", 1.0), ("eu", 7.0)])
        cycle = setup.run()
        assert cycle.query_error is not None and cycle.outcome.status == "ERROR"
        assert 'same labels {region="us"}' in cycle.query_error
        assert setup.current() == {named("us"), named("eu"), named("ap")}
        assert all(row["missing"] == 0 for row in setup.listed().values())
        setup.run()
        assert [(n["alert"], n["event"]) for n in setup.ledger() if n["event"] != "firing"] == [(ALERT, "error")]
        (error,) = single_messages(receiver)
        assert error["event"] == "error" and error["instance"] is None and error["labels"] == {}

    def test_a_by_column_the_query_does_not_return_is_an_error_listing_the_columns(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """``by: [zone]`` on a query without ``zone``: the evaluation is an error naming ``zone`` and listing the
        columns the query returned; no instance is recorded."""
        setup = make_setup(hook(receiver), instances_yaml="{by: [zone]}", rows=THREE_REGIONS)
        cycle = setup.run()
        assert cycle.outcome.status == "ERROR" and cycle.query_error is not None
        assert "'zone'" in cycle.query_error
        assert "the query returned columns: region, status, actual_value, threshold" in cycle.query_error
        assert setup.listed() == {}
        assert [m["event"] for m in single_messages(receiver)] == ["error"]


class TestFiringAndRecovering:
    def test_two_of_three_firing_is_one_message_listing_both_then_nothing(
        self, make_setup: SetupFactory, receiver: Receiver, state_url: str
    ) -> None:
        """Two of three regions firing: one webhook message listing the two instances with their instance and
        labels, one ledger row each; the same data again notifies nothing."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS, state_url=state_url)
        cycle = setup.run()
        assert cycle.failure is None, cycle.failure
        assert cycle.decision is not None and cycle.decision.code == "instances"
        assert cycle.decision.reason == "2 of 3 instances firing; notifying 2 firing"
        (message,) = bodies(receiver)
        assert isinstance(message, list)
        assert [(m["instance"], m["labels"], m["event"]) for m in message] == [
            (named("us"), {"region": "us"}, "firing"),
            (named("eu"), {"region": "eu"}, "firing"),
        ]
        assert [m["actual_value"] for m in message] == [9.0, 7.0] and {m["alert_name"] for m in message} == {ALERT}
        assert sorted((n["alert"], n["event"], n["status"]) for n in setup.ledger()) == [
            (named("eu"), "firing", "delivered"),
            (named("us"), "firing", "delivered"),
        ]
        assert setup.current() == {named("us"), named("eu"), named("ap")}
        with setup.store.engine.connect() as conn:
            states = dict(conn.execute(sa.select(alert_state.c.alert, alert_state.c.condition)).all())
        assert states == {ALERT: states[ALERT], named("us"): "firing", named("eu"): "firing", named("ap"): "inactive"}

        again = setup.run()
        assert again.decision is not None and again.decision.reason == "2 of 3 instances firing"
        assert len(receiver.requests) == 1 and len(setup.ledger()) == 2

    def test_one_recovering_resolves_only_itself(
        self, make_setup: SetupFactory, receiver: Receiver, state_url: str
    ) -> None:
        """``us`` recovers while ``eu`` still fires: one resolved notice, for ``us`` only; eu's comes when it
        recovers; the alert itself notifies nothing of either."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS, state_url=state_url)
        setup.run()
        setup.set_rows([("us", 1.0), ("eu", 7.0), ("ap", 1.0)])
        cycle = setup.run()
        assert cycle.decision is not None
        assert cycle.decision.reason == "1 of 3 instances firing; notifying 1 resolved"
        _, second = bodies(receiver)
        assert [(m["instance"], m["event"], m["labels"]) for m in second] == [
            (named("us"), "resolved", {"region": "us"})
        ]
        assert [n["alert"] for n in setup.ledger() if n["event"] == "resolved"] == [named("us")]
        assert setup.decisions(named("eu"))[-1] == "already_firing"
        setup.set_rows([("us", 1.0), ("eu", 1.0), ("ap", 1.0)])
        setup.run()
        setup.run()
        assert [[m["instance"] for m in message] for message in listed_messages(receiver)][2:] == [[named("eu")]]
        assert [n for n in setup.ledger() if n["alert"] == ALERT] == []


class TestEachInstanceOnItsOwn:
    def test_for_and_recover_after_count_for_each_instance(self, make_setup: SetupFactory, receiver: Receiver) -> None:
        """``for: 2`` and ``recover_after: 2``: us fires at its second ALERT result and resolves at its second OK; eu,
        ALERT once then OK, never fires."""
        setup = make_setup(hook(receiver), extra="    for: 2\n    recover_after: 2", rows=[("us", 9.0), ("eu", 7.0)])
        setup.run()
        assert receiver.requests == []
        setup.set_rows([("us", 9.0), ("eu", 1.0)])
        setup.run()
        setup.set_rows([("us", 1.0), ("eu", 1.0)])
        setup.run()
        setup.run()
        shown = [[(m["instance"], m["event"]) for m in message] for message in listed_messages(receiver)]
        assert shown == [[(named("us"), "firing")], [(named("us"), "resolved")]]
        assert setup.decisions(named("us")) == ["pending", "first_notification", "recovering", "resolved"]
        assert setup.decisions(named("eu")) == ["pending", "pending_cleared", "ok", "ok"]

    def test_an_undelivered_message_is_retried_at_the_next_evaluation_and_sent_once(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """The webhook answers 503 at the first evaluation: both firings stay pending and the cycle says so; the
        next evaluation sends them in one message with the same Idempotency-Key, the one after sends nothing."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        receiver.fail_with = 503
        failed = setup.run()
        assert sorted((r.event, r.outcome) for r in failed.undelivered) == [("firing", "retry")] * 2
        assert failed.failure is not None and "2 notification(s) not delivered" in failed.failure
        assert sorted(n["status"] for n in setup.ledger()) == ["pending", "pending"]
        receiver.fail_with = None
        assert setup.run().failure is None
        setup.run()
        assert [sorted(m["instance"] for m in message) for message in listed_messages(receiver)] == [
            [named("eu"), named("us")]
        ]
        refused = [r for r in receiver.requests if r.answered >= 500]
        assert len(refused) == 3 and all(len(r.body) == 2 for r in refused)
        keys = {r.headers["Idempotency-Key"] for r in receiver.requests}
        assert len(keys) == 1 and len(receiver.requests) == 4
        assert sorted(n["status"] for n in setup.ledger()) == ["delivered", "delivered"]

    def test_a_dry_run_decides_every_instance_and_records_and_sends_nothing(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """A dry run returns what each instance would do, and leaves the state and the receiver untouched."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        setup.settings = dataclasses.replace(setup.settings, dry_run=True)
        cycle = setup.run()
        assert cycle.decision is not None and cycle.decision.reason == "2 of 3 instances firing; notifying 2 firing"
        assert cycle.instances is not None
        codes = sorted(d.decision.code for d in cycle.instances.instances)
        assert codes == ["first_evaluation", "first_notification", "first_notification"]
        assert receiver.requests == [] and setup.listed() == {} and setup.ledger() == []
        assert setup.decisions(ALERT) == []


class TestMissingRows:
    def test_a_vanished_row_resolves_after_missing_after_evaluations_and_not_before(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """``us`` disappears (missing_after: 2): after one result without it, it is still current and firing and
        nothing is sent; after the second it resolves, notified once, is no longer current, and its history
        stays."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        setup.run()
        setup.set_rows([("eu", 7.0), ("ap", 1.0)])

        first = setup.run()
        assert (
            first.decision is not None and first.decision.reason == "2 of 3 instances firing; 1 missing from the result"
        )
        assert first.instances is not None
        (missing,) = [d for d in first.instances.instances if d.name == named("us")]
        assert missing.decision.code == "missing" and missing.decision.state.condition == "firing"
        assert named("us") in setup.current() and setup.listed()[named("us")]["missing"] == 1
        assert len(receiver.requests) == 1

        second = setup.run()
        assert second.instances is not None
        (gone,) = [d for d in second.instances.instances if d.name == named("us")]
        assert gone.decision.code == "gone" and gone.decision.event == "resolved"
        assert setup.current() == {named("eu"), named("ap")}
        (resolved,) = listed_messages(receiver)[1:]
        assert [(m["instance"], m["event"], m["labels"]) for m in resolved] == [
            (named("us"), "resolved", {"region": "us"})
        ]
        assert setup.decisions(named("us")) == ["first_notification", "gone"]

        setup.run()
        assert len(receiver.requests) == 2 and setup.current() == {named("eu"), named("ap")}

    def test_an_undelivered_resolved_notice_of_a_gone_instance_is_retried(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """The receiver refuses the resolved notice of the vanished ``us``: it stays pending, and the next
        evaluation delivers it once although ``us`` is no longer current (and still listed, with its history)."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        setup.run()
        setup.set_rows([("eu", 7.0), ("ap", 1.0)])
        setup.clock.advance(minutes=5)
        setup.run()
        receiver.fail_with = 503
        setup.clock.advance(minutes=5)
        failed = setup.run()
        assert [(r.event, r.outcome) for r in failed.undelivered] == [("resolved", "retry")]
        receiver.fail_with = None
        setup.clock.advance(minutes=5)
        assert setup.run().failure is None
        setup.run()
        resolved = [m for message in listed_messages(receiver) for m in message if m["event"] == "resolved"]
        assert [m["instance"] for m in resolved] == [named("us")]
        listed = setup.listed()
        assert not listed[named("us")]["current"] and listed[named("eu")]["current"]
        assert setup.decisions(named("us"))[-1] == "gone"

    def test_a_row_back_before_missing_after_restarts_the_count(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """Missing once, back, missing once again: never two results in a row, so ``us`` never resolves."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        setup.run()
        for rows in ([("eu", 7.0)], THREE_REGIONS, [("eu", 7.0)]):
            setup.set_rows(rows)
            setup.run()
        assert named("us") in setup.current() and setup.listed()[named("us")]["missing"] == 1
        assert [n["event"] for n in setup.ledger()] == ["firing", "firing"]

    def test_an_empty_result_counts_every_instance_missing(self, make_setup: SetupFactory, receiver: Receiver) -> None:
        """The query returns no row twice: both firing instances resolve, the OK one ends quietly, none is current."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        setup.run()
        setup.set_rows([])
        setup.run()
        assert setup.current() == {named("us"), named("eu"), named("ap")}
        cycle = setup.run()
        assert setup.current() == set()
        assert cycle.instances is not None
        codes = {d.name: d.decision.code for d in cycle.instances.instances}
        assert codes == {named("us"): "gone", named("eu"): "gone", named("ap"): "gone_unnotified"}
        (_, resolved) = listed_messages(receiver)
        assert sorted(m["instance"] for m in resolved) == [named("eu"), named("us")]
        assert {m["event"] for m in resolved} == {"resolved"}

    def test_a_row_back_after_it_resolved_starts_a_new_episode(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """``us`` resolves as gone, then comes back firing: it is current again and fires again, once."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        setup.run()
        setup.set_rows([("eu", 7.0), ("ap", 1.0)])
        setup.run()
        setup.run()
        setup.set_rows(THREE_REGIONS)
        setup.run()
        setup.run()
        assert named("us") in setup.current() and setup.listed()[named("us")]["missing"] == 0
        events = [(m["instance"], m["event"]) for message in listed_messages(receiver) for m in message]
        assert events.count((named("us"), "firing")) == 2 and events.count((named("us"), "resolved")) == 1


class TestQueryErrors:
    def test_a_failed_query_resolves_nothing_counts_nothing_missing_and_notifies_one_error(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """The table is dropped for three evaluations: no instance is resolved or counted missing, the alert sends
        one error notification in all; once back with ``us`` absent, ``us`` is missing 1 of 2, not resolved."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        setup.run()
        setup.drop_table()
        for _ in range(3):
            cycle = setup.run()
            assert cycle.outcome.status == "ERROR" and cycle.query_error is not None
            assert "no such table" in cycle.query_error
        assert setup.current() == {named("us"), named("eu"), named("ap")}
        assert all(row["missing"] == 0 for row in setup.listed().values())
        errors = single_messages(receiver)
        assert [(e["alert_name"], e["event"], e["instance"]) for e in errors] == [(ALERT, "error", None)]
        assert [n["event"] for n in setup.ledger() if n["event"] != "firing"] == ["error"]
        assert setup.decisions(ALERT) == ["instances", "error", "error_already_notified", "error_already_notified"]

        setup.create_table()
        setup.set_rows([("eu", 7.0), ("ap", 1.0)])
        back = setup.run()
        assert back.failure is None and named("us") in setup.current()
        assert setup.listed()[named("us")]["missing"] == 1
        assert not [n for n in setup.ledger() if n["event"] == "resolved"]


class TestSilences:
    def test_a_silence_on_one_label_holds_only_that_instance(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """A silence on ``region=us``: the us firing is recorded suppressed, eu's is delivered alone."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        add_silence(
            setup.store,
            [parse_matcher("region=us")],
            ends_at=setup.clock() + dt.timedelta(hours=1),
            author="ana",
            reason="deploying",
        )
        cycle = setup.run()
        assert cycle.failure is None
        assert cycle.decision is not None
        assert cycle.decision.reason == "2 of 3 instances firing; notifying 1 firing (silenced), 1 firing"
        (message,) = bodies(receiver)
        assert [m["instance"] for m in message] == [named("eu")]
        statuses = {n["alert"]: n["status"] for n in setup.ledger()}
        assert statuses == {named("us"): "suppressed", named("eu"): "delivered"}

    def test_the_cli_silence_with_a_label_matcher_holds_only_that_instance(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """``sqlsentinel silence error_rate_by_region --match region=us``: us is held, eu notifies, and once the
        silence is lifted us fires."""
        setup = make_setup(hook(receiver), rows=[("eu", 7.0)])
        setup.run()
        args = ["--match", "region=us", "--duration", "1h", "--database-url", setup.state_url, "--author", "ana"]
        made = CliRunner().invoke(cli, ["silence", ALERT, *args])
        assert made.exit_code == 0, made.output
        setup.clock.advance(seconds=1)
        setup.set_rows([("us", 9.0), ("eu", 7.0), ("ap", 8.0)])
        setup.run()
        statuses = {(n["alert"], n["status"]) for n in setup.ledger()}
        assert statuses == {(named("eu"), "delivered"), (named("us"), "suppressed"), (named("ap"), "delivered")}
        assert [[m["instance"] for m in message] for message in listed_messages(receiver)] == [
            [named("eu")],
            [named("ap")],
        ]
        silence_id = re.match(r"silence (\w+): ", made.output)
        assert silence_id is not None, made.output
        ended = CliRunner().invoke(cli, ["unsilence", silence_id.group(1), "--database-url", setup.state_url])
        assert ended.exit_code == 0, ended.output
        setup.clock.advance(seconds=1)
        setup.run()
        assert [[m["instance"] for m in message] for message in listed_messages(receiver)][2:] == [[named("us")]]

    @pytest.mark.parametrize(
        "matcher",
        [f'instance={ALERT}{{region="us"}}', "region~u*", "region=~u."],
        ids=["instance", "glob", "regex"],
    )
    def test_instance_and_label_matchers_hold_only_the_instance_they_match(
        self, make_setup: SetupFactory, receiver: Receiver, matcher: str
    ) -> None:
        """An ``instance=`` matcher or a glob or regex on the label holds us, not eu."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        add_silence(
            setup.store, [parse_matcher(matcher)], ends_at=setup.clock() + dt.timedelta(hours=1), author="a", reason="r"
        )
        setup.run()
        assert {n["alert"]: n["status"] for n in setup.ledger()} == {
            named("us"): "suppressed",
            named("eu"): "delivered",
        }

    def test_a_silence_on_the_alert_name_holds_every_instance(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """``alert=error_rate_by_region`` matches every instance of the alert: nothing is sent."""
        setup = make_setup(hook(receiver), rows=THREE_REGIONS)
        add_silence(
            setup.store,
            [parse_matcher(f"alert={ALERT}")],
            ends_at=setup.clock() + dt.timedelta(hours=1),
            author="a",
            reason="r",
        )
        setup.run()
        assert receiver.requests == []
        assert sorted(n["status"] for n in setup.ledger()) == ["suppressed", "suppressed"]


def cut_rows(count: int) -> list[tuple[str | None, float]]:
    return [(f"r{i:04d}", 1.0) for i in range(count)]


class TestCap:
    @pytest.mark.parametrize("warehouse", ["sqlite", "postgresql"])
    def test_2000_rows_with_max_1000_keep_1000_instances_and_say_the_result_was_cut(
        self,
        make_setup: SetupFactory,
        receiver: Receiver,
        warehouse: str,
        request: pytest.FixtureRequest,
    ) -> None:
        """2,000 rows, ``max: 1000``: 1,000 instances are current, the cycle says the result was cut (naming
        instances.max), and two cut evaluations send one error notification."""
        kwargs: dict[str, Any] = {}
        if warehouse == "postgresql":
            kwargs = {"warehouse_url": request.getfixturevalue("postgres_url")}
            kwargs["table"] = request.getfixturevalue("metrics_table")
        setup = make_setup(hook(receiver), rows=cut_rows(2000), **kwargs)
        first = setup.run()
        assert first.several_rows is not None and "instances.max" in first.several_rows
        assert "1,000" in first.several_rows
        assert setup.current() == {named(f"r{i:04d}") for i in range(1000)}
        assert first.decision is not None and first.decision.code == "error"
        second = setup.run()
        assert second.several_rows is not None and "instances.max" in second.several_rows
        assert len(setup.current()) == 1000
        assert all(row["missing"] == 0 for row in setup.listed().values())
        errors = single_messages(receiver)
        assert len(errors) == 1 and errors[0]["event"] == "error" and "instances.max" in errors[0]["error"]
        assert [n["event"] for n in setup.ledger()] == ["error"]

    def test_a_second_cut_result_is_recorded_as_an_error_already_notified(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """Two cut results in a row are recorded for the alert as any two errors in a row are (``error``, then
        ``error_already_notified``, its reason saying so), as two failed queries are."""
        setup = make_setup(hook(receiver), instances_yaml="{by: [region], max: 3}", rows=cut_rows(4))
        setup.run()
        second = setup.run()
        assert second.several_rows is not None
        assert setup.decisions(ALERT) == ["error", "error_already_notified"]
        assert second.decision is not None and "already notified" in second.decision.reason

    def test_a_cut_result_of_other_rows_keeps_the_instances_and_adds_none(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """The second cut result reads the other 1,000 rows: the first 1,000 instances stay current (none counted
        missing) and no new one is added."""
        setup = make_setup(hook(receiver), rows=cut_rows(2000))
        setup.run()
        kept = setup.current()
        setup.set_rows(cut_rows(2000)[1000:] + cut_rows(2000)[:1000])
        cycle = setup.run()
        assert setup.current() == kept and len(kept) == 1000
        assert all(row["missing"] == 0 for row in setup.listed().values()) and len(setup.listed()) == 1000
        assert cycle.instances is not None and cycle.instances.not_added == 1000
        assert cycle.instances.current == 1000  # the kept ones count, though this cut result does not list them
        assert cycle.decision is not None and "1000 new not added" in cycle.decision.reason

    def test_a_result_back_under_max_is_not_cut_and_ends_the_error(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """After a cut result, 900 rows: the result is whole again (no several_rows note) and the alert's
        decision is its instances' again."""
        setup = make_setup(hook(receiver), rows=cut_rows(2000))
        setup.run()
        setup.set_rows(cut_rows(900))
        cycle = setup.run()
        assert cycle.several_rows is None
        assert cycle.decision is not None and cycle.decision.code == "instances"
        assert cycle.decision.reason == "0 of 1000 instances firing; 100 missing from the result"


class TestConcurrentRuns:
    def test_concurrent_runs_notify_each_instance_once(
        self, make_setup: SetupFactory, receiver: Receiver, state_url: str
    ) -> None:
        """Four runs evaluate the same alert at once on one state database, twice (30 regions firing, then 10 of
        them recovering): each instance's firing and resolved reach the receiver exactly once."""
        regions = [f"r{i:02d}" for i in range(30)]
        setup = make_setup(hook(receiver), rows=[(r, 9.0) for r in regions], state_url=state_url)
        stores = [setup.new_store() for _ in range(4)]

        def together() -> list[AlertCycle]:
            start = threading.Barrier(len(stores))
            done: list[AlertCycle] = []
            failures: list[BaseException] = []

            def one(store: StateStore) -> None:
                try:
                    start.wait()
                    done.append(setup.run(store))
                except BaseException as exc:  # reported below, on the test's thread
                    failures.append(exc)

            threads = [threading.Thread(target=one, args=(s,)) for s in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not failures, failures
            return done

        first = together()
        assert [c.failure for c in first] == [None] * 4
        assert sorted(c.decision.reason for c in first if c.decision) == ["30 of 30 instances firing"] * 3 + [
            "30 of 30 instances firing; notifying 30 firing"
        ]
        setup.set_rows([(r, 1.0 if i < 10 else 9.0) for i, r in enumerate(regions)])
        setup.clock.advance(minutes=5)
        second = together()
        assert [c.failure for c in second] == [None] * 4
        assert sorted(c.decision.reason for c in second if c.decision) == ["20 of 30 instances firing"] * 3 + [
            "20 of 30 instances firing; notifying 10 resolved"
        ]

        sent = Counter((m["instance"], m["event"]) for message in listed_messages(receiver) for m in message)
        expected = Counter({(named(r), "firing"): 1 for r in regions})
        expected.update({(named(r), "resolved"): 1 for r in regions[:10]})
        assert sent == expected
        recorded = Counter((n["alert"], n["event"], n["status"]) for n in setup.ledger())
        assert recorded == Counter({(a, e, "delivered"): n for (a, e), n in expected.items()})
        assert (
            sorted(d for r in regions[:10] for d in setup.decisions(named(r)) if d == "resolved") == ["resolved"] * 10
        )


class TestConcurrentProcesses:
    def test_concurrent_cli_runs_notify_each_instance_once(
        self, make_setup: SetupFactory, receiver: Receiver, state_url: str
    ) -> None:
        """Four ``sqlsentinel run`` processes started at once on one state database: exactly one of them decides
        the firings, and each firing instance reaches the receiver exactly once."""
        regions = [f"r{i:02d}" for i in range(20)]
        setup = make_setup(hook(receiver), rows=[(r, 9.0) for r in regions], state_url=state_url)
        command = [str(Path(sys.executable).parent / "sqlsentinel"), "run", str(setup.path), "--json"]
        command += ["--database-url", state_url]
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)
        ]
        outputs = [process.communicate() for process in processes]
        assert [process.returncode for process in processes] == [0] * 4, outputs
        reasons = sorted(json.loads(out)[0]["reason"] for out, _ in outputs)
        assert reasons == ["20 of 20 instances firing"] * 3 + ["20 of 20 instances firing; notifying 20 firing"]
        sent = Counter((m["instance"], m["event"]) for message in listed_messages(receiver) for m in message)
        assert sent == Counter({(named(r), "firing"): 1 for r in regions})


class TestReminders:
    def test_a_still_firing_instance_reminds_after_the_interval_grouped_with_others_due(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """repeat_interval 1h: us and eu fire at 0; ap at 0:30; at 1:01 us and eu remind in one message with sa's
        new firing (ap not due); at 1:31 ap reminds alone."""
        setup = make_setup(
            f'[{{channel: webhook, url: "{receiver.url}/hook"}}, '
            f'{{channel: slack, webhook_url: "{receiver.url}/slack"}}]',
            extra="    repeat_interval: 1h",
            rows=THREE_REGIONS,
        )
        setup.run()
        setup.clock.advance(minutes=30)
        setup.set_rows([("us", 9.0), ("eu", 7.0), ("ap", 8.0)])
        setup.run()
        setup.clock.advance(minutes=31)
        setup.set_rows([("us", 9.0), ("eu", 7.0), ("ap", 8.0), ("sa", 6.0)])
        setup.run()
        setup.clock.advance(minutes=30)
        setup.run()
        setup.clock.advance(minutes=1)
        setup.run()

        shown = [sorted((m["instance"], m["event"]) for m in message) for message in listed_messages(receiver)]
        assert shown == [
            [(named("eu"), "firing"), (named("us"), "firing")],
            [(named("ap"), "firing")],
            [(named("eu"), "reminder"), (named("sa"), "firing"), (named("us"), "reminder")],
            [(named("ap"), "reminder")],
        ]
        headlines = [body["text"] for body in bodies(receiver, "/slack")]
        assert headlines[0] == f"{ALERT}: 2 firing" and headlines[1] == f"{ALERT}: 1 firing"
        head, _, counts = headlines[2].partition(": ")
        assert head == ALERT and sorted(counts.split(", ")) == ["1 firing", "2 reminder"]
        assert headlines[3] == f"{ALERT}: 1 reminder" and len(headlines) == 4


def instances_in(text: str) -> list[str]:
    """The region of every instance named in ``text``."""
    return re.findall(r'error_rate_by_region\{region="(r\d{4})"\}', text)


class TestGroupedMessages:
    def test_2000_firing_instances_reach_slack_and_email_in_parts_within_their_limits(
        self, make_setup: SetupFactory, receiver: Receiver, tmp_path: Path
    ) -> None:
        """2,000 instances fire at once: a Slack webhook enforcing Slack's limits and an SMTP server each get
        several numbered parts, none refused, every instance named exactly once across them."""
        receiver.limits = slack_limits
        regions = [f"r{i:04d}" for i in range(2000)]
        with smtp_server(tmp_path) as box:
            resource = NotificationsResource(
                smtp_host=box.host, smtp_port=box.port, smtp_security="none", retry_base_delay_seconds=0.01
            )
            setup = make_setup(
                f'[{{channel: slack, webhook_url: "{receiver.url}/slack"}}, '
                "{channel: email, recipients: [oncall@example.com]}]",
                instances_yaml="{by: [region], max: 5000}",
                notifications_resource=resource,
                rows=[(r, 9.0) for r in regions],
            )
            cycle = setup.run()
            mails = list(box.messages)
        assert cycle.failure is None, cycle.failure
        assert [r for r in receiver.requests if r.answered >= 300] == []
        posts = [r.body for r in receiver.delivered() if r.path == "/slack"]
        assert len(posts) > 1
        assert all(slack_limits(json.dumps(p).encode(), p) is None for p in posts)
        assert [p["text"].rpartition("(")[2] for p in posts] == [
            f"part {i} of {len(posts)})" for i in range(1, len(posts) + 1)
        ]
        assert all(p["text"].startswith(f"{ALERT}: ") for p in posts)
        named_on_slack = [r for p in posts for b in p["blocks"][1:] for r in instances_in(b["text"]["text"])]
        assert sorted(named_on_slack) == regions

        assert len(mails) > 1
        subjects = [str(m["Subject"]) for m in mails]
        assert all(s.startswith(f"[sqlsentinel] {ALERT}: ") for s in subjects)
        assert sorted(s.rpartition("(")[2] for s in subjects) == sorted(
            f"part {i} of {len(mails)})" for i in range(1, len(mails) + 1)
        )
        bodies_html = [html.unescape(m.get_body(("html",)).get_content()) for m in mails]  # type: ignore[union-attr]
        assert sorted(r for b in bodies_html for r in instances_in(b)) == regions
        assert Counter(n["status"] for n in setup.ledger()) == Counter({"delivered": 4000})

    def test_a_label_cannot_mention_or_link_on_slack(self, make_setup: SetupFactory, receiver: Receiver) -> None:
        """A label value ``<!channel>`` or ``<http://evil|click>`` is shown escaped in the grouped Slack message."""
        receiver.limits = slack_limits
        setup = make_setup(
            f'[{{channel: slack, webhook_url: "{receiver.url}/slack"}}]',
            rows=[("<!channel>", 9.0), ("<http://evil|click>", 9.0)],
        )
        assert setup.run().failure is None
        (post,) = bodies(receiver, "/slack")
        text = "\n".join(block["text"]["text"] for block in post["blocks"])
        assert "&lt;!channel&gt;" in text and "&lt;http://evil|click&gt;" in text
        assert "<!channel>" not in text and "<http://evil" not in text
        assert post["text"] == f"{ALERT}: 2 firing"


class TestOneMessagePerInstance:
    def test_pagerduty_gets_one_trigger_per_instance_and_a_resolve_with_the_same_key(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """PagerDuty: a trigger per firing instance, dedup_key ``sqlsentinel/<instance>``, with the labels; us
        recovering resolves that key only; eu vanishing resolves its key after missing_after."""
        resource = NotificationsResource(
            pagerduty_events_url=f"{receiver.url}/v2/enqueue", retry_base_delay_seconds=0.01
        )
        setup = make_setup(
            f'[{{channel: pagerduty, routing_key: R0UTING}}, {{channel: webhook, url: "{receiver.url}/hook"}}]',
            notifications_resource=resource,
            rows=THREE_REGIONS,
        )
        setup.run()
        events = [r.body for r in receiver.delivered() if r.path == "/v2/enqueue"]
        assert sorted((e["event_action"], e["dedup_key"]) for e in events) == [
            ("trigger", f"sqlsentinel/{named('eu')}"),
            ("trigger", f"sqlsentinel/{named('us')}"),
        ]
        assert {e["dedup_key"]: e["payload"]["custom_details"]["labels"] for e in events} == {
            f"sqlsentinel/{named('eu')}": {"region": "eu"},
            f"sqlsentinel/{named('us')}": {"region": "us"},
        }
        assert len(listed_messages(receiver)) == 1

        setup.set_rows([("us", 1.0), ("eu", 7.0), ("ap", 1.0)])
        setup.run()
        setup.set_rows([("us", 1.0), ("ap", 1.0)])
        setup.run()
        setup.run()
        events = [r.body for r in receiver.delivered() if r.path == "/v2/enqueue"]
        assert [(e["event_action"], e["dedup_key"]) for e in events[2:]] == [
            ("resolve", f"sqlsentinel/{named('us')}"),
            ("resolve", f"sqlsentinel/{named('eu')}"),
        ]

    def test_a_target_with_a_body_template_gets_one_message_per_instance(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """A webhook with a ``body`` template renders it once per firing instance, with its ``labels``."""
        setup = make_setup(
            f'[{{channel: webhook, url: "{receiver.url}/hook", body: "{{{{ labels.region }}}} is {{{{ event }}}}"}}]',
            rows=THREE_REGIONS,
        )
        cycle = setup.run()
        assert cycle.failure is None, cycle.failure
        assert sorted(bodies(receiver)) == ["eu is firing", "us is firing"]

    def test_a_json_body_template_gets_the_instance_and_labels_escaped(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """A JSON ``body`` template with ``{{ instance }}`` and ``{{ labels.region }}`` in strings posts valid JSON
        per instance: the quotes of the name and of a label value are escaped, so no value adds a key."""
        hostile = 'x", "admin": "yes'
        template = '{\\"who\\": \\"{{ instance }}\\", \\"region\\": \\"{{ labels.region }}\\"}'
        setup = make_setup(
            f'[{{channel: webhook, url: "{receiver.url}/hook", body: "{template}"}}]',
            rows=[("us", 9.0), (hostile, 9.0)],
        )
        cycle = setup.run()
        assert cycle.failure is None, cycle.failure
        received = bodies(receiver)
        assert all(isinstance(b, dict) for b in received), received
        assert sorted(received, key=lambda b: b["region"]) == [
            {"who": named("us"), "region": "us"},
            {"who": f'{ALERT}{{region="x\\", \\"admin\\": \\"yes"}}', "region": hostile},
        ]


class TestPayloadsAndCli:
    def test_an_alert_without_instances_carries_a_null_instance_and_empty_labels(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """A plain alert's webhook message has ``instance: null`` and ``labels: {}``."""
        path = tmp_path / "plain.yaml"
        path.write_text(
            f"""
database:
  url: "sqlite:///{tmp_path / "w.db"}"
alerts:
  - name: plain
    query: "SELECT 'ALERT' AS status, 7 AS actual_value, 5 AS threshold"
    schedule: "*/5 * * * *"
    notify: [{{channel: webhook, url: "{receiver.url}/plain"}}]
""",
            encoding="utf-8",
        )
        result = CliRunner().invoke(
            cli, ["run", str(path), "--database-url", f"sqlite:///{tmp_path / 's.db'}", "--json"]
        )
        assert result.exit_code == 0, result.output
        (message,) = bodies(receiver, "/plain")
        assert message["instance"] is None and message["labels"] == {} and message["event"] == "firing"

    def test_the_run_command_reports_the_instances_and_a_cut_result(
        self, make_setup: SetupFactory, receiver: Receiver
    ) -> None:
        """``sqlsentinel run --json`` on an instance alert: decision ``instances`` with the instances' reason,
        then, over max, ``several_rows`` and the error decision."""
        setup = make_setup(hook(receiver), instances_yaml="{by: [region], max: 3}", rows=THREE_REGIONS)
        args = ["run", str(setup.path), "--database-url", setup.state_url, "--json"]
        first = CliRunner().invoke(cli, args)
        assert first.exit_code == 0, first.output
        (row,) = json.loads(first.output)
        assert row["decision"] == "instances" and row["reason"] == "2 of 3 instances firing; notifying 2 firing"
        assert row["several_rows"] is False and row["status"] == "ALERT"
        setup.set_rows([*THREE_REGIONS, ("sa", 1.0)])
        second = CliRunner().invoke(cli, args)
        (row,) = json.loads(second.output)
        assert row["several_rows"] is True and row["decision"] == "error"
        assert [m["event"] for m in single_messages(receiver)] == ["error"]
