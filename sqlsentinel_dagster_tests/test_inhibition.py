"""Inhibition (``inhibit:``, Alertmanager's ``inhibit_rules``): while a source alert fires, its targets' notifications
are held and recorded as inhibited naming the source; when it resolves and a target still fires, the target
notifies once. Real SQLite warehouse and state, through ``sqlsentinel run``; instances as targets too."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sqlsentinel_dagster import load_config
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.state.inhibition import InhibitRule, inhibited
from sqlsentinel_dagster.state.instance_model import InstanceLabels
from sqlsentinel_dagster.state.silences import AlertLabels, parse_matcher

FILE = """database: {{url: "sqlite:///warehouse.db"}}
inhibit:
  - {{source: ["alert=warehouse_down"], target: ["severity=warning"]{equal}}}
alerts:
  - {{name: warehouse_down, query: "SELECT CASE WHEN down = 1 THEN 'ALERT' ELSE 'OK' END AS status FROM w",
      schedule: "@hourly", severity: critical, tags: {{region: {source_region}}}, notify: [{{channel: log}}]}}
  - {{name: orders_late, query: "SELECT 'ALERT' AS status", schedule: "@hourly", severity: warning,
      tags: {{region: eu}}, notify: [{{channel: log}}]}}
  - {{name: late_loads, query: "SELECT source, 'ALERT' AS status FROM w", schedule: "@hourly", severity: warning,
      instances: {{by: [source]}}, notify: [{{channel: log}}]}}
"""


class Warehouse:
    """The file above on a SQLite warehouse whose ``w.down`` the test flips, run by ``sqlsentinel run``."""

    def __init__(self, tmp_path: Path, equal: str = "", source_region: str = "eu") -> None:
        self.folder = tmp_path
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE w (down INTEGER, source TEXT)")
            db.execute("INSERT INTO w VALUES (1, 'crm')")
        (tmp_path / "alerts.yaml").write_text(FILE.format(equal=equal, source_region=source_region), encoding="utf-8")

    def down(self, down: bool) -> None:
        with sqlite3.connect(self.folder / "warehouse.db") as db:
            db.execute("UPDATE w SET down = ?", (int(down),))

    def run(self) -> dict[str, dict[str, Any]]:
        state = f"sqlite:///{self.folder / 'state.db'}"
        result = CliRunner().invoke(main, ["run", str(self.folder / "alerts.yaml"), "--json", "--database-url", state])
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return {row["alert"]: row for row in rows}


def sent(row: dict[str, Any]) -> list[str]:
    return [n["event"] for n in row["notifications"] if n["outcome"] == "delivered"]


class TestInhibition:
    def test_a_firing_source_holds_its_targets_until_it_resolves_then_they_notify_once(self, tmp_path: Path) -> None:
        """The warehouse is down: it notifies; orders_late and the crm instance of late_loads are held, recorded as
        inhibited naming it. It comes back: both still fire, so each notifies once; the next run sends nothing."""
        warehouse = Warehouse(tmp_path)
        first = warehouse.run()
        assert sent(first["warehouse_down"]) == ["firing"]
        assert (first["orders_late"]["decision"], sent(first["orders_late"])) == ("inhibited", [])
        assert first["orders_late"]["reason"] == "inhibited firing: inhibited by warehouse_down, which is firing"
        [crm] = first["late_loads"]["instances"]
        assert crm["decision"] == "inhibited" and sent(first["late_loads"]) == []
        held = warehouse.run()
        assert held["orders_late"]["decision"] == "still_inhibited"
        warehouse.down(False)
        released = warehouse.run()
        assert sent(released["warehouse_down"]) == ["resolved"]
        assert (released["orders_late"]["decision"], sent(released["orders_late"])) == ("silence_ended", ["firing"])
        assert sent(released["late_loads"]) == ["firing"]
        after = warehouse.run()
        assert sent(after["orders_late"]) == [] and sent(after["late_loads"]) == []

    def test_equal_labels_must_have_the_same_values(self, tmp_path: Path) -> None:
        """With equal: [region], a source in region us does not hold orders_late of region eu (nor the instances,
        which have no region)."""
        warehouse = Warehouse(tmp_path, equal=", equal: [region]", source_region="us")
        first = warehouse.run()
        assert sent(first["orders_late"]) == ["firing"] and sent(first["late_loads"]) == ["firing"]

    def test_an_alert_never_inhibits_itself_and_bad_rules_are_located(self, tmp_path: Path) -> None:
        """A rule whose source and target both match an alert holds it by another firing alert, never by itself;
        a rule without a target, or with a matcher that is not one, is a located error."""
        rule = InhibitRule((parse_matcher("severity=~.*"),), (parse_matcher("severity=critical"),))
        down = AlertLabels("warehouse_down", "critical")
        assert not rule.holds(down, down)
        assert rule.holds(down, AlertLabels("disk_full", "warning"))
        assert inhibited([rule], down, [down]) is None
        broken = tmp_path / "broken.yaml"
        broken.write_text(
            'database: {url: "sqlite:///w.db"}\ninhibit:\n  - {source: ["nonsense"]}\n'
            'alerts:\n  - {name: a, query: "SELECT \'OK\' AS status", schedule: "@hourly"}\n',
            encoding="utf-8",
        )
        problems = "\n".join(f"{p.line} {p.location} {p.message}" for p in load_config(broken, strict=False).problems)
        assert "invalid matcher 'nonsense'" in problems
        assert "inhibit[0].target give at least one matcher" in problems and "or write upstream: true" in problems

    def test_an_upstream_rule_holds_only_by_alerts_on_upstream_assets_and_names_the_asset(self) -> None:
        """With upstream: true a firing alert holds the target only when it is among the alerts on the target's
        upstream assets (an instance by its alert); the hold names the upstream asset; source matchers narrow."""
        rule = InhibitRule((), (), upstream=True)
        daily = AlertLabels("daily_late", "warning")
        raw, other = AlertLabels("raw_late", "critical"), AlertLabels("disk_full", "critical")
        upstream = {"raw_late": "shop/raw_orders"}
        hold = inhibited([rule], daily, [other, raw], upstream)
        assert hold is not None
        assert hold.describe() == "inhibited by raw_late, which is firing on upstream asset shop/raw_orders"
        assert inhibited([rule], daily, [other], upstream) is None
        assert inhibited([rule], daily, [raw], {}) is None
        narrowed = InhibitRule((parse_matcher("severity=warning"),), (), upstream=True)
        assert inhibited([narrowed], daily, [raw], upstream) is None
        instance = InstanceLabels.of(raw, 'raw_late{source="crm"}', {"source": "crm"})
        via_instance = inhibited([rule], daily, [instance], upstream)
        assert via_instance is not None and via_instance.names == ('raw_late{source="crm"}', "shop/raw_orders")
