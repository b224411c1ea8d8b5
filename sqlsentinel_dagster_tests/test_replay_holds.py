"""Replay applies acknowledgements and inhibitions as they were: an ``ACK`` row stops the replayed reminders of a side
firing then, and a target is held while a source alert fired, when the source fired being the replay of its own
recorded evaluations under its own settings. Histories are written by the real store (with the file's settings,
inhibition included) on a real SQLite state database, with an injected clock."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.config import load_config
from sqlsentinel_dagster.cycle.cycles import alert_labels, settings_of
from sqlsentinel_dagster.replay import AlertReplay, Changes, replay_config
from sqlsentinel_dagster.replay.report import describe_settings
from sqlsentinel_dagster.state.acks import acknowledge
from sqlsentinel_dagster.state.history import alert_history
from sqlsentinel_dagster.state.instance_model import InstanceLabels, InstanceRow
from sqlsentinel_dagster.state.model import Outcome, OutcomeStatus, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=5)
STATUS: dict[str, OutcomeStatus] = {"A": "ALERT", "O": "OK", "E": "ERROR"}

ACKED = """
database: {url: "sqlite:///warehouse.db"}
alerts:
  - {name: orders_late, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", repeat_interval: 30m}
"""

INHIBITED = """
database: {url: "sqlite:///warehouse.db"}
inhibit:
  - {source: ["alert=warehouse_down"], target: ["severity=warning"], equal: [region]}
alerts:
  - {name: warehouse_down, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", severity: critical,
     tags: {region: eu}}
  - {name: orders_late, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", severity: warning,
     tags: {region: eu}, repeat_interval: 30m}
  - {name: us_orders_late, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", severity: warning,
     tags: {region: us}}
"""


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


class History:
    """A state database written by the real store under the settings of an alerts file: one tick every 5 minutes
    from ``start``, each alert recorded in the order given (so a source, given first, is evaluated first)."""

    def __init__(self, tmp_path: Path, text: str, start: dt.datetime = T0) -> None:
        self.path = tmp_path / "alerts.yaml"
        self.path.write_text(text.lstrip(), encoding="utf-8")
        self.config = load_config(self.path)
        self.url = f"sqlite:///{tmp_path / 'state.db'}"
        self.start = start
        self.clock = FakeClock(start)
        self.store = StateStore.from_url(self.url, self.clock)
        self.ticks = 0

    def record(self, **columns: str) -> None:
        """Record ``columns`` (A ALERT, O OK, E ERROR, one tick each) for the alerts they name, as runs would."""
        for tick in range(len(next(iter(columns.values())))):
            for name, marks in columns.items():
                self.record_one(alert_labels(self.config.alert(name)), marks[tick], name)
            self.next_tick()

    def next_tick(self) -> None:
        self.clock.now += STEP
        self.ticks += 1

    def record_one(self, labels: AlertLabels, mark: str, name: str | None = None) -> None:
        """Record one evaluation of ``labels`` now, under the settings of the alert ``name`` of the file (None: an
        alert the file does not have, with the default settings)."""
        settings = settings_of(self.config.alert(name), self.config) if name else StateSettings()
        self.store.record(labels, Outcome(STATUS[mark]), settings, {}, {}, None)

    def acknowledge(self, name: str) -> None:
        """``sqlsentinel ack NAME`` one minute after the last tick."""
        self.clock.now -= STEP - dt.timedelta(minutes=1)
        assert acknowledge(self.store, name, author="ana", reason="reloading the feed") == [name]
        self.clock.now += STEP - dt.timedelta(minutes=1)

    def replay(self, name: str, changes: Changes | None = None) -> AlertReplay:
        """The replay of ``name`` over the recorded ticks, against ``changes``."""
        end = self.start + self.ticks * STEP
        run = replay_config(self.store, self.config, changes or Changes(), name=name, start=self.start, end=end)
        [replay] = run.replays
        return replay

    def decisions(self, name: str) -> list[str]:
        """The decisions the real runs recorded for ``name``, oldest first."""
        rows = alert_history(self.store, name, limit=1000)[::-1]
        return [row["decision"] for row in rows if row["status"] != "ACK"]


def counts(replay: AlertReplay, side: str) -> tuple[int, int, int, int, int]:
    """(firing, reminder, resolved, suppressed, acknowledged_quiet) of one side."""
    replayed = getattr(replay.comparison, side)
    n = replayed.notifications
    return n["firing"], n["reminder"], n["resolved"], replayed.suppressed, replayed.acknowledged_quiet


class TestAcknowledgements:
    def test_an_acknowledged_alert_sends_no_reminders_after_the_ack_but_sends_the_resolved_notice(
        self, tmp_path: Path
    ) -> None:
        """Two hours of ALERTs, a reminder every 30m, acknowledged after 40 minutes: the reminder at 35m goes out,
        the two after the ack are kept quiet (shown as ``a``), the resolved notice goes out; with reminders every
        hour, the one reminder, due after the ack, is kept quiet too."""
        history = History(tmp_path, ACKED)
        history.record(orders_late="O" + "A" * 8)
        history.acknowledge("orders_late")
        history.record(orders_late="A" * 16 + "O")
        replay = history.replay("orders_late", Changes(repeat_interval=dt.timedelta(hours=1)))
        assert counts(replay, "current") == (1, 1, 1, 0, 2)
        assert replay.comparison.current.marks == ".F-----r-----a-----a-----R"
        assert counts(replay, "proposed") == (1, 0, 1, 0, 1)
        assert replay.comparison.proposed.marks == ".F-----------a-----------R"

    def test_an_acknowledgement_applies_only_to_a_side_firing_then(self, tmp_path: Path) -> None:
        """The ack came after 8 ALERTs: with for 10 the alert was not firing yet, so, as ``sqlsentinel ack`` would
        have refused, nothing is acknowledged and its reminders go out as usual."""
        history = History(tmp_path, ACKED)
        history.record(orders_late="O" + "A" * 8)
        history.acknowledge("orders_late")
        history.record(orders_late="A" * 16 + "O")
        replay = history.replay("orders_late", Changes(for_count=10))
        assert counts(replay, "current")[1:] == (1, 1, 0, 2)
        assert counts(replay, "proposed") == (1, 2, 1, 0, 0)
        assert replay.comparison.proposed.marks == "." * 10 + "F-----r-----r--R"

    def test_the_next_incident_after_an_acknowledged_one_reminds_as_usual(self, tmp_path: Path) -> None:
        """The acknowledgement ends when its incident resolves: the next incident's reminders go out."""
        history = History(tmp_path, ACKED)
        history.record(orders_late="OAA")
        history.acknowledge("orders_late")
        history.record(orders_late="A" * 7 + "O" + "A" * 8 + "O")
        replay = history.replay("orders_late")
        assert replay.comparison.current.marks == ".F-----a--RF-----r-R"
        assert counts(replay, "current") == (2, 1, 2, 0, 1)


class TestInhibition:
    def test_a_target_sends_nothing_while_its_source_fires_and_fires_once_when_the_source_resolves(
        self, tmp_path: Path
    ) -> None:
        """warehouse_down fires from the first tick to the sixth: orders_late, firing from the second, is held
        (``i``), then fires once when the source resolves and resolves as usual, as the real runs decided; the
        notes say whose firing was replayed."""
        history = History(tmp_path, INHIBITED)
        history.record(warehouse_down="OAAAAAOOOO", orders_late="OOAAAAAAAO")
        replay = history.replay("orders_late")
        assert replay.comparison.current.marks == "..i---F--R"
        assert counts(replay, "current") == (1, 0, 1, 1, 0)
        assert replay.comparison.current.suppressed_by == {"silence": 0, "muted": 0, "inhibited": 1}
        incident = replay.comparison.current.incidents[0]
        assert (incident.suppressed, incident.held_by) == (True, "inhibited")
        recorded = history.decisions("orders_late")
        assert (recorded[2], recorded[3], recorded[6]) == ("inhibited", "still_inhibited", "silence_ended")
        assert any(
            note.startswith("inhibition: may be inhibited by warehouse_down, which fired") for note in replay.notes
        )

    def test_a_target_that_resolves_while_its_source_fires_sends_nothing(self, tmp_path: Path) -> None:
        """Held while firing, resolved before the source: no firing and no resolved notice."""
        history = History(tmp_path, INHIBITED)
        history.record(warehouse_down="OAAAAAAAAO", orders_late="OOAAAOOOOO")
        replay = history.replay("orders_late")
        assert replay.comparison.current.marks == "..i--....."
        assert counts(replay, "current") == (0, 0, 0, 1, 0)

    def test_a_source_in_another_region_does_not_inhibit_when_the_rule_wants_equal_regions(
        self, tmp_path: Path
    ) -> None:
        """equal: [region]: warehouse_down (eu) does not hold us_orders_late, and is not even read for it."""
        history = History(tmp_path, INHIBITED)
        history.record(warehouse_down="OAAAAAOOOO", us_orders_late="OOAAAAAAAO")
        replay = history.replay("us_orders_late")
        assert replay.comparison.current.marks == "..F------R"
        assert not any("inhibition" in note for note in replay.notes)

    def test_a_proposed_setting_still_honours_the_inhibition(self, tmp_path: Path) -> None:
        """for 3 fires while the source still fires: held, then sent when it resolves; for 6 fires after the
        source resolved: sent at once."""
        history = History(tmp_path, INHIBITED)
        history.record(warehouse_down="OAAAAAOOOO", orders_late="OOAAAAAAAO")
        held = history.replay("orders_late", Changes(for_count=3))
        assert held.comparison.proposed.marks == "....i-F--R"
        assert counts(held, "proposed") == (1, 0, 1, 1, 0)
        late = history.replay("orders_late", Changes(for_count=6))
        assert late.comparison.proposed.marks == ".......F-R"
        assert counts(late, "proposed") == (1, 0, 1, 0, 0)

    def test_the_proposal_applies_to_the_replayed_alert_only_its_source_keeps_its_own_settings(
        self, tmp_path: Path
    ) -> None:
        """recover_after 2 is proposed for orders_late: warehouse_down still resolves at its first OK (its own
        recover_after 1), so orders_late fires at that tick, not one later."""
        history = History(tmp_path, INHIBITED)
        history.record(warehouse_down="OAAAOOOOOOO", orders_late="OOAAAAAAAOO")
        replay = history.replay("orders_late", Changes(recover_after=2))
        assert replay.comparison.current.marks == "..i-F----R."
        assert replay.comparison.proposed.marks == "..i-F-----R"

    def test_a_source_the_file_does_not_have_fires_as_recorded_with_default_settings(self, tmp_path: Path) -> None:
        """warehouse_down belongs to another file sharing the state database: its recorded evaluations still tell
        when it fired (for 1, recover_after 1), and the notes say so."""
        history = History(tmp_path, INHIBITED.replace("warehouse_down, query", "warehouse_up, query"))
        other = AlertLabels("warehouse_down", "critical", (), {"region": "eu"})
        for source, target in zip("OAAAAAOOOO", "OOAAAAAAAO", strict=True):
            history.record_one(other, source)
            history.record_one(alert_labels(history.config.alert("orders_late")), target, "orders_late")
            history.next_tick()
        replay = history.replay("orders_late")
        assert replay.comparison.current.marks == "..i---F--R"
        assert any("warehouse_down: not in " in note and "for 1 and recover_after 1" in note for note in replay.notes)

    def test_an_instance_inhibits_as_its_alerts_settings_say(self, tmp_path: Path) -> None:
        """late_loads has for 2: its crm instance, ALERT once, never fired, so orders_late fired at once; its erp
        instance fired later, while orders_late was already notified, which holds nothing (as in the runs)."""
        history = History(tmp_path, INSTANCES)
        late_loads = history.config.alert("late_loads")
        parent, settings = alert_labels(late_loads), settings_of(late_loads, history.config)
        for crm, erp, target in zip("OOAOOOOOOO", "OOOAAAAOOO", "OOAAAAAAAO", strict=True):
            rows = [
                InstanceRow(InstanceLabels.of(parent, f'late_loads{{source="{name}"}}', {"source": name}), outcome, {})
                for name, outcome in (("crm", Outcome(STATUS[crm])), ("erp", Outcome(STATUS[erp])))
            ]
            worst = Outcome("ALERT" if "A" in crm + erp else "OK")
            history.store.record_instances(parent, worst, settings, {}, {}, rows, None, instance_channels=lambda _: {})
            history.record_one(alert_labels(history.config.alert("orders_late")), target, "orders_late")
            history.next_tick()
        replay = history.replay("orders_late")
        assert replay.comparison.current.marks == "..F------R"
        assert history.decisions("orders_late")[2] == "first_notification"
        assert any('late_loads{source="erp"}, which fired' in note for note in replay.notes)

    def test_an_upstream_rule_holds_by_the_alert_on_an_upstream_asset_given_the_lineage(self, tmp_path: Path) -> None:
        """inhibit: [{upstream: true}]: with the lineage (as the sqlsentinel_replay job reads it from the instance)
        raw_late, on an asset upstream of orders_late's, holds it while it fires; without it (the command) nothing
        is held, and a note says such rules are not replayed."""
        history = History(tmp_path, UPSTREAM)
        history.record(raw_late="OAAAAAOOOO", orders_late="OOAAAAAAAO")
        end = history.start + history.ticks * STEP

        def lineage(key: tuple[str, ...]) -> frozenset[tuple[str, ...]]:
            return frozenset({("raw", "orders")}) if key == ("shop", "orders") else frozenset()

        run = replay_config(
            history.store, history.config, Changes(), name="orders_late", start=history.start, end=end, lineage=lineage
        )
        assert run.replays[0].comparison.current.marks == "..i---F--R"
        assert not any("upstream: true" in note for note in run.notes)
        blind = replay_config(
            history.store, history.config, Changes(), name="orders_late", start=history.start, end=end
        )
        assert blind.replays[0].comparison.current.marks == "..F------R"
        assert any(note.startswith("inhibit rules with upstream: true are not replayed") for note in blind.notes)


UPSTREAM = """
database: {url: "sqlite:///warehouse.db"}
inhibit:
  - {upstream: true}
alerts:
  - {name: raw_late, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", asset: raw/orders}
  - {name: orders_late, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", asset: shop/orders}
"""

INSTANCES = """
database: {url: "sqlite:///warehouse.db"}
inhibit:
  - {source: ["alert=late_loads"], target: ["severity=warning"]}
alerts:
  - {name: late_loads, query: "SELECT source, 'ALERT' AS status FROM w", schedule: "*/5 * * * *", severity: critical,
     instances: {by: [source]}, for: 2}
  - {name: orders_late, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *", severity: warning}
"""


class TestReplayCommandShowsHolds:
    def test_text_and_json_show_inhibited_notifications_and_reminders_an_ack_kept_quiet(self, tmp_path: Path) -> None:
        """The text table has the inhibited row under suppressed and the quiet (ack) row; the incident says it was
        inhibited; the JSON has suppressed_by and acknowledged_quiet on each side."""
        start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(days=1)
        history = History(tmp_path, INHIBITED, start)
        history.record(warehouse_down="OAAO" + "O" * 5, orders_late="OOAA" + "A" * 5)
        history.acknowledge("orders_late")
        history.record(warehouse_down="O" * 16, orders_late="A" * 15 + "O")
        args = ["replay", "orders_late", "--file", str(history.path), "--database-url", history.url]
        args += ["--since", start.isoformat(), "--repeat-interval", "1h"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        # held at 2 (10m), sent at 3 when the source resolves; reminders every 30m from 15m: 45m (tick 9, after
        # the ack at 41m), 75m, 105m kept quiet; every hour: 75m kept quiet
        assert "  reminder              0         0           0\n" in result.output
        assert "  suppressed            1         1           0\n" in result.output
        assert "    inhibited           1         1           0\n" in result.output
        assert "  quiet (ack)           3         1          -2\n" in result.output
        assert "current: fired +0s (inhibited), resolved" in result.output
        assert "held: s by a silence, m muted, i inhibited; a reminder quiet (acknowledged)" in result.output
        data = json.loads(CliRunner().invoke(main, [*args, "--json"]).output)
        assert data["current"]["suppressed_by"] == {"silence": 0, "muted": 0, "inhibited": 1}
        assert (data["current"]["acknowledged_quiet"], data["proposed"]["acknowledged_quiet"]) == (3, 1)


WINDOWED = """
database: {url: "sqlite:///warehouse.db"}
time_intervals:
  - {name: morning, time_intervals: [{times: [{start_time: "08:00", end_time: "08:30"}]}]}
alerts:
  - {name: orders_late, query: "SELECT 'OK' AS status", schedule: "*/5 * * * *"}
"""


class TestProposedTimeIntervals:
    def test_a_proposed_mute_holds_the_firing_and_sends_it_once_after(self, tmp_path: Path) -> None:
        """Fired at 08:05 in the recorded history; proposed mute_time_intervals [morning] (08:00-08:30): the
        firing is held (``m``) and sent at 08:30, the first tick after the mute; 'none' takes a mute away."""
        history = History(tmp_path, WINDOWED)
        history.record(orders_late="OAAAAAAAAO")
        config = history.config
        defined = [interval.compiled() for interval in config.file.time_intervals]
        muted = history.replay("orders_late", Changes.parse(mute_time_intervals="morning", defined=defined))
        assert muted.comparison.current.marks == ".F-------R"
        assert muted.comparison.proposed.marks == ".m----F--R"
        assert muted.comparison.proposed.suppressed_by["muted"] == 1
        assert "mute_time_intervals morning" in describe_settings(muted.comparison.proposed.settings)
        outside = history.replay("orders_late", Changes.parse(active_time_intervals="morning", defined=defined))
        assert outside.comparison.proposed.marks == ".F-------m"  # the resolved notice, at 08:45, is outside it
        with pytest.raises(ValueError, match="unknown time interval 'mornin'; defined: morning; did you mean"):
            Changes.parse(mute_time_intervals="mornin", defined=defined)
        assert Changes.parse(mute_time_intervals="none", defined=defined).mute == ()

    def test_the_cli_proposes_time_intervals_by_name(self, tmp_path: Path) -> None:
        """`sqlsentinel replay NAME --mute-time-intervals morning --json`: the proposed side names the interval and
        counts the held firing; an unknown name is an error naming what is defined."""
        history = History(tmp_path, WINDOWED, start=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
        history.record(orders_late="OAAAAAAAAO")
        args = ["replay", "orders_late", "--file", str(history.path), "--database-url", history.url, "--json"]
        result = CliRunner().invoke(main, [*args, "--mute-time-intervals", "none"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["settings"]["proposed"]["mute_time_intervals"] == []
        wrong = CliRunner().invoke(main, [*args, "--active-time-intervals", "evening"])
        assert wrong.exit_code == 1 and "unknown time interval 'evening'; defined: morning" in wrong.output
