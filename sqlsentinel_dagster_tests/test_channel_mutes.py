"""Time intervals on receivers, targets and routes (Alertmanager's ``mute_time_intervals`` on a route): while they
hold, that channel's notifications are recorded as muted and owed, the alert's other channels are told; once the
mute ends the channel is sent the firing once if the alert still fires, nothing if it resolved meanwhile. Real
SQLite and Postgres state with an injected clock; real runs of ``sqlsentinel run`` on a SQLite warehouse."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner

from sqlsentinel_dagster import load_config
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.cycle.cycles import alert_labels, settings_of
from sqlsentinel_dagster.cycle.delivery import ledger_channels
from sqlsentinel_dagster.state import admin
from sqlsentinel_dagster.state.model import Outcome
from sqlsentinel_dagster.state.schema import notifications
from sqlsentinel_dagster.state.store import StateStore

NIGHT = """database: {url: "sqlite:///w.db"}
time_intervals:
  - {name: night, time_intervals: [{times: [{start_time: "01:00", end_time: "03:00"}]}]}
receivers:
  day_team: {channel: log, mute_time_intervals: [night]}
  oncall: {channel: log}
alerts:
  - {name: a, query: "SELECT 'OK' AS status", schedule: "@hourly", notify: [day_team, oncall]}
"""


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 7, 1, 30, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, hh_mm: str) -> None:
        hour, minute = map(int, hh_mm.split(":"))
        self.now = self.now.replace(hour=hour, minute=minute)


class Night:
    """Alert ``a`` told on ``day_team`` (muted 01:00-03:00 UTC) and ``oncall``, recorded in a real state database
    at the clock's time."""

    def __init__(self, tmp_path: Path, state_url: str) -> None:
        path = tmp_path / "alerts.yaml"
        path.write_text(NIGHT, encoding="utf-8")
        self.config = load_config(path)
        self.alert = self.config.alert("a")
        self.clock = Clock()
        self.store = StateStore.from_url(state_url, self.clock)
        self.channels = ledger_channels(self.config.targets(self.alert), [])

    def evaluate(self, status: str, at: str) -> tuple[str, dict[str, list[str]]]:
        """Record one evaluation at ``at``: its decision code, and the events it wrote per ledger status."""
        self.clock.at(at)
        before = self._ids()
        decision = self.store.record(
            alert_labels(self.alert), Outcome(status), settings_of(self.alert, self.config), self.channels, {}, None
        )
        written: dict[str, list[str]] = {}
        with self.store.engine.connect() as conn:
            query = sa.select(notifications).where(notifications.c.id.not_in(before)).order_by(notifications.c.id)
            for row in conn.execute(query).mappings():
                written.setdefault(row["status"], []).append(f"{row['event']} {row['channel']}")
        return decision.code, written

    def _ids(self) -> list[int]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(sa.select(notifications.c.id)).scalars())


class TestReceiverTimeIntervals:
    def test_a_muted_channel_is_told_once_after_its_mute_while_the_others_are_told_at_once(
        self, tmp_path: Path, state_url: str
    ) -> None:
        """Fired at 01:30: oncall is told, day_team's firing is recorded as muted. 02:30: nothing. 03:10 (the
        night ended, still firing): day_team alone is sent the firing. 03:20: nothing. Resolved: both are told."""
        night = Night(tmp_path, state_url)
        assert night.evaluate("ALERT", "01:30") == (
            "first_notification",
            {"muted": ["firing 0:log"], "pending": ["firing 1:log"]},
        )
        assert [s.owed_channels for s in admin.alert_statuses(night.store)] == [("0:log",)]
        assert night.evaluate("ALERT", "02:30") == ("already_firing", {})
        assert night.evaluate("ALERT", "03:10") == ("channel_mute_ended", {"pending": ["firing 0:log"]})
        assert night.evaluate("ALERT", "03:20") == ("already_firing", {})
        assert night.evaluate("OK", "04:00") == ("resolved", {"pending": ["resolved 0:log", "resolved 1:log"]})

    def test_an_alert_resolved_inside_the_mute_tells_the_muted_channel_nothing(
        self, tmp_path: Path, state_url: str
    ) -> None:
        """Fired at 01:30 and resolved at 02:00: oncall gets firing and resolved; day_team, never told it fired,
        gets no resolved notice (recorded as muted, saying why), and nothing after the night either."""
        night = Night(tmp_path, state_url)
        night.evaluate("ALERT", "01:30")
        code, written = night.evaluate("OK", "02:00")
        assert (code, written) == ("resolved", {"muted": ["resolved 0:log"], "pending": ["resolved 1:log"]})
        with night.store.engine.connect() as conn:
            reason = conn.execute(
                sa.select(notifications.c.reason).where(notifications.c.status == "muted").order_by(notifications.c.id)
            ).all()[-1][0]
        assert "never told it fired" in reason
        assert [s.owed_channels for s in admin.alert_statuses(night.store)] == [()]
        assert night.evaluate("OK", "03:10") == ("ok", {})

    def test_a_reminder_inside_the_mute_is_owed_as_the_firing_is(self, tmp_path: Path, state_url: str) -> None:
        """Fired at 00:30 (both told), a reminder falls due at 02:30: oncall is reminded, day_team's is held; at
        03:10 day_team alone is sent the episode once (oncall's next reminder is at 04:30)."""
        path = tmp_path / "alerts.yaml"
        night = Night(tmp_path, state_url)
        path.write_text(NIGHT.replace('schedule: "@hourly"', 'schedule: "@hourly", repeat_interval: 2h'), "utf-8")
        night.config = load_config(path)
        night.alert = night.config.alert("a")
        assert night.evaluate("ALERT", "00:30")[1] == {"pending": ["firing 0:log", "firing 1:log"]}
        assert night.evaluate("ALERT", "02:30") == (
            "repeat_interval_elapsed",
            {"muted": ["reminder 0:log"], "pending": ["reminder 1:log"]},
        )
        assert night.evaluate("ALERT", "03:10")[1] == {"pending": ["firing 0:log"]}


ROUTED = """database: {{url: "sqlite:///warehouse.db"}}
time_intervals:
  - {{name: always, time_intervals: [{{times: [{{start_time: "00:00", end_time: "24:00"}}]}}]}}
receivers:
  team: {{channel: log}}
  oncall: {{channel: log}}
routes:
  - {{match: ["endpoint=/orders"], receivers: [team]{mute}}}
  - {{match: ["severity=warning"], receivers: [oncall]}}
alerts:
  - {{name: errors, query: "SELECT endpoint, 'ALERT' AS status FROM e", schedule: "@hourly",
      instances: {{by: [endpoint]}}}}
"""


class TestRouteTimeIntervals:
    def run(self, tmp_path: Path, mute: str) -> dict[str, Any]:
        (tmp_path / "alerts.yaml").write_text(ROUTED.format(mute=mute), encoding="utf-8")
        state = f"sqlite:///{tmp_path / 'state.db'}"
        result = CliRunner().invoke(main, ["run", str(tmp_path / "alerts.yaml"), "--json", "--database-url", state])
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return {i["instance"]: i for i in rows[0]["instances"]}

    def test_a_routes_mute_holds_what_it_routes_and_releases_it_once(self, tmp_path: Path) -> None:
        """The /orders instance is routed to team through a muted route: recorded as muted, nothing sent; the
        /search instance goes to oncall at once. With the mute gone, /orders is sent its firing once."""
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE e (endpoint TEXT)")
            db.executemany("INSERT INTO e VALUES (?)", [("/orders",), ("/search",)])
        first = self.run(tmp_path, ", mute_time_intervals: [always]")
        orders, search = first['errors{endpoint="/orders"}'], first['errors{endpoint="/search"}']
        assert "held for 1 channel (muted by time interval always)" in orders["reason"]
        assert "held" not in search["reason"]
        released = self.run(tmp_path, "")
        assert released['errors{endpoint="/orders"}']["decision"] == "channel_mute_ended"
        assert released['errors{endpoint="/search"}']["decision"] == "already_firing"
        assert self.run(tmp_path, "")['errors{endpoint="/orders"}']["decision"] == "already_firing"

    def test_a_receiver_another_route_reaches_unmuted_is_told(self, tmp_path: Path) -> None:
        """With continue: true the /orders instance reaches team through the muted route and through an
        unmuted one: it is told at once (a channel is held only while every route that reaches it holds)."""
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE e (endpoint TEXT)")
            db.execute("INSERT INTO e VALUES ('/orders')")
        text = ROUTED.replace("receivers: [oncall]}", "receivers: [team, oncall]}")
        (tmp_path / "alerts.yaml").write_text(text, encoding="utf-8")
        first = self.run_text(tmp_path, text.format(mute=", mute_time_intervals: [always], continue: true"))
        assert "held" not in first['errors{endpoint="/orders"}']["reason"]

    def run_text(self, tmp_path: Path, text: str) -> dict[str, Any]:
        (tmp_path / "alerts.yaml").write_text(text, encoding="utf-8")
        state = f"sqlite:///{tmp_path / 'state.db'}"
        result = CliRunner().invoke(main, ["run", str(tmp_path / "alerts.yaml"), "--json", "--database-url", state])
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return {i["instance"]: i for i in rows[0]["instances"]}


class TestLoading:
    def test_unknown_intervals_on_receivers_targets_and_routes_are_located(self, tmp_path: Path) -> None:
        """Each misspelt name is reported at its place, with what is defined and a did-you-mean."""
        path = tmp_path / "alerts.yaml"
        path.write_text(
            """database: {url: "sqlite:///w.db"}
time_intervals:
  - {name: night, time_intervals: [{times: [{start_time: "01:00", end_time: "03:00"}]}]}
receivers:
  team: {channel: log, mute_time_intervals: [nigth]}
routes:
  - {receivers: [team], active_time_intervals: [nite]}
alerts:
  - {name: a, query: "SELECT 'OK' AS status", schedule: "@hourly",
     notify: [{channel: log, mute_time_intervals: [noon]}]}
""",
            encoding="utf-8",
        )
        problems = [(p.line, p.message) for p in load_config(path, strict=False).problems]
        messages = "\n".join(f"{line} {message}" for line, message in problems)
        assert "unknown time interval 'nigth'; defined: night; did you mean 'night'?" in messages
        assert "unknown time interval 'nite'" in messages
        assert "unknown time interval 'noon'" in messages
        assert {line for line, _ in problems} == {5, 7, 10}
