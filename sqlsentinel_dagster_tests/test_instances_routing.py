"""Instance alerts routed by label: ``routes:`` as a list picks each instance's receivers by its labels (first
match wins, ``continue: true``), and ``recipients_from`` sends each owner only their own instances. Real runs of
the CLI's cycle, a loopback webhook server and a loopback SMTP server."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.state.schema import notifications

from .loopback import Receiver, loopback_receiver
from .smtp_server import Mailbox, smtp_server

QUERY = (
    "SELECT endpoint, team, owner, CASE WHEN err > 5 THEN 'ALERT' ELSE 'OK' END AS status, err AS actual_value "
    "FROM metrics"
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as server:
        yield server


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    with smtp_server(tmp_path) as box:
        yield box


def _warehouse(tmp_path: Path, rows: list[tuple[str, str, str, float]]) -> None:
    with sqlite3.connect(tmp_path / "warehouse.db") as db:
        db.execute("DROP TABLE IF EXISTS metrics")
        db.execute("CREATE TABLE metrics (endpoint TEXT, team TEXT, owner TEXT, err REAL)")
        db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", rows)


def _run(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    path = tmp_path / "alerts.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    state = f"sqlite:///{tmp_path / 'state.db'}"
    result = CliRunner().invoke(main, ["run", str(path), "--json", "--database-url", state], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows[0]


def _named(receiver: Receiver, path: str) -> list[str]:
    """The instances named in the grouped messages delivered to ``path``."""
    return sorted(m["instance"] for r in receiver.delivered() if r.path == path for m in r.body)


class TestRoutesByLabel:
    def test_each_instance_goes_to_the_first_route_its_labels_match(self, tmp_path: Path, receiver: Receiver) -> None:
        """/orders goes to the orders team only; /users (team data) to the data team; /cart matches no specific
        route and goes to the catch-all; each receiver gets one message listing only its instances."""
        _warehouse(
            tmp_path, [("/orders", "shop", "a@x.io", 9), ("/users", "data", "b@x.io", 8), ("/cart", "web", "c@x.io", 7)]
        )
        _run(
            tmp_path,
            f"""
            database: {{url: "sqlite:///warehouse.db"}}
            receivers:
              orders_team: {{channel: webhook, url: "{receiver.url}/orders"}}
              data_team: {{channel: webhook, url: "{receiver.url}/data"}}
              everyone: {{channel: webhook, url: "{receiver.url}/all"}}
            routes:
              - {{match: ["endpoint=/orders"], receivers: [orders_team]}}
              - {{match: ["team=~da.*"], receivers: [data_team]}}
              - {{receivers: [everyone]}}
            alerts:
              - name: errors
                query: "{QUERY}"
                schedule: "*/5 * * * *"
                instances: {{by: [endpoint, team]}}
            """,
        )
        assert _named(receiver, "/orders") == ['errors{endpoint="/orders",team="shop"}']
        assert _named(receiver, "/data") == ['errors{endpoint="/users",team="data"}']
        assert _named(receiver, "/all") == ['errors{endpoint="/cart",team="web"}']

    def test_continue_also_tells_the_routes_below(self, tmp_path: Path, receiver: Receiver) -> None:
        """With continue: true on the /orders route, /orders is told to both its route and the catch-all."""
        _warehouse(tmp_path, [("/orders", "shop", "a@x.io", 9), ("/users", "data", "b@x.io", 8)])
        _run(
            tmp_path,
            f"""
            database: {{url: "sqlite:///warehouse.db"}}
            receivers:
              orders_team: {{channel: webhook, url: "{receiver.url}/orders"}}
              everyone: {{channel: webhook, url: "{receiver.url}/all"}}
            routes:
              - {{match: ["endpoint=/orders"], receivers: [orders_team], continue: true}}
              - {{receivers: [everyone]}}
            alerts:
              - name: errors
                query: "{QUERY}"
                schedule: "*/5 * * * *"
                instances: {{by: [endpoint]}}
            """,
        )
        assert _named(receiver, "/orders") == ['errors{endpoint="/orders"}']
        assert _named(receiver, "/all") == ['errors{endpoint="/orders"}', 'errors{endpoint="/users"}']


class TestRecipientsFrom:
    def test_each_owner_gets_only_their_instances_and_a_bad_address_fails_alone(
        self, tmp_path: Path, mailbox: Mailbox
    ) -> None:
        """Two endpoints owned by ana, one by li, one whose owner column is not an address: ana gets one email
        listing her two, li one with hers; the bad one is failed for good naming the column and the value, and
        nothing else fails. The column is found whatever its case (the query returns OWNER)."""
        _warehouse(
            tmp_path,
            [
                ("/a", "t", "ana@example.com", 9),
                ("/b", "t", "ana@example.com", 8),
                ("/c", "t", "li@example.com", 7),
                ("/d", "t", "not-an-address", 6),
            ],
        )
        env = {"SMTP_HOST": mailbox.host, "SMTP_PORT": str(mailbox.port), "SMTP_SECURITY": "none"}
        run = _run(
            tmp_path,
            f"""
            database: {{url: "sqlite:///warehouse.db"}}
            alerts:
              - name: errors
                query: "{QUERY.replace("owner,", "owner AS OWNER,")}"
                schedule: "*/5 * * * *"
                instances: {{by: [endpoint]}}
                notify: [{{channel: email, recipients_from: owner}}]
            """,
            env=env,
        )
        sent = {tuple(rcpts): message for (_, rcpts), message in zip(mailbox.envelopes, mailbox.messages, strict=True)}
        assert sorted(sent) == [("ana@example.com",), ("li@example.com",)]
        ana = sent[("ana@example.com",)].get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert '/a"' in ana and '/b"' in ana and '/c"' not in ana and '/d"' not in ana
        failed = [n for n in run["notifications"] if n["outcome"] == "failed"]
        assert (
            len(failed) == 1
            and "recipients_from 'owner'" in failed[0]["error"]
            and "not-an-address" in failed[0]["error"]
        )
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
        with engine.connect() as conn:
            statuses = dict(conn.execute(sa.select(notifications.c.alert, notifications.c.status)).all())
        engine.dispose()
        assert statuses['errors{endpoint="/d"}'] == "failed"
        assert {statuses[f'errors{{endpoint="/{e}"}}'] for e in "abc"} == {"delivered"}


class TestGivenUp:
    def test_sixty_refused_notifications_make_one_short_fallback_notice(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """A webhook refusing for good (400) the firing of 60 instances: the fallback is told once, counting them
        (60 x firing via 0:webhook), with a short idempotency key."""
        _warehouse(tmp_path, [(f"/e{i:02d}", "t", "x", 9) for i in range(60)])
        receiver.fail_with, receiver.fail_when = 400, lambda body: isinstance(body, list)
        _run(
            tmp_path,
            f"""
            database: {{url: "sqlite:///warehouse.db"}}
            fallback: [{{channel: webhook, url: "{receiver.url}/fallback"}}]
            alerts:
              - name: errors
                query: "{QUERY}"
                schedule: "*/5 * * * *"
                instances: {{by: [endpoint]}}
                notify: [{{channel: webhook, url: "{receiver.url}/hook"}}]
            """,
        )
        [told] = [r for r in receiver.delivered() if r.path == "/fallback"]
        assert "could not be delivered: 60 x firing via 0:webhook (failed: webhook: HTTP 400" in told.body["error"]
        assert len(told.headers["Idempotency-Key"]) < 120

    def test_a_notification_on_a_target_removed_from_the_file_is_given_up_and_told(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """The second webhook refuses (retryable 503) and is then removed from the file: the next run gives its
        pending notification up as no longer in the file and tells the fallback, instead of keeping it forever."""
        _warehouse(tmp_path, [("/orders", "t", "x", 9)])
        receiver.fail_with, receiver.fail_when = 503, lambda body: isinstance(body, list)
        text = """
            database: {{url: "sqlite:///warehouse.db"}}
            fallback: [{{channel: webhook, url: "{url}/fallback"}}]
            alerts:
              - name: errors
                query: "{query}"
                schedule: "*/5 * * * *"
                instances: {{by: [endpoint]}}
                notify: {notify}
            """
        two = f'[{{channel: log}}, {{channel: webhook, url: "{receiver.url}/second"}}]'
        first = _run(tmp_path, text.format(url=receiver.url, query=QUERY, notify=two))
        assert sorted((n["channel"], n["outcome"]) for n in first["notifications"]) == [
            ("0:log", "delivered"),
            ("1:webhook", "retry"),
        ]
        second = _run(tmp_path, text.format(url=receiver.url, query=QUERY, notify="[{channel: log}]"))
        assert [(n["channel"], n["outcome"]) for n in second["notifications"]] == [("1:webhook", "failed")]
        assert "no longer exists in the alerts file" in second["notifications"][0]["error"]
        assert [r.path for r in receiver.delivered()] == ["/fallback"]
