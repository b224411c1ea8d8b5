"""Instance alerts in the CLI: run lists the instances, status lists them under their alert, silence takes an
instance's name or its labels, history and replay work per instance and summed for the alert."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.state import admin
from sqlsentinel_dagster.state.schema import metadata
from sqlsentinel_dagster.state.store import StateStore

ALERTS = """
database: {url: "sqlite:///warehouse.db"}
receivers:
  ops: {channel: log}
alerts:
  - name: error_rate_by_region
    query: >-
      SELECT region, CASE WHEN err > 5 THEN 'ALERT' ELSE 'OK' END AS status, err AS actual_value,
      5 AS threshold FROM metrics
    schedule: "*/5 * * * *"
    instances: {by: [region]}
    notify: [ops]
"""
US, EU, AP = (f'error_rate_by_region{{region="{r}"}}' for r in ("us", "eu", "ap"))


@pytest.fixture
def alerts(tmp_path: Path) -> Path:
    """An instance alert over three regions: us and eu above 5 (firing), ap below."""
    with sqlite3.connect(tmp_path / "warehouse.db") as db:
        db.execute("CREATE TABLE metrics (region TEXT, err REAL)")
        db.executemany("INSERT INTO metrics VALUES (?, ?)", [("us", 9), ("eu", 7), ("ap", 1)])
    path = tmp_path / "alerts.yaml"
    path.write_text(textwrap.dedent(ALERTS), encoding="utf-8")
    return path


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


class TestRun:
    def test_dry_run_lists_each_instance_with_its_status_and_decision(self, alerts: Path) -> None:
        """--dry-run prints a row per instance (labels, status, value, decision) and --json lists them all."""
        text = cli("run", str(alerts), "--dry-run")
        assert text.exit_code == 0, text.output
        assert '{region="us"}  ALERT   9.0' in text.output and '{region="ap"}  OK' in text.output
        rows = json.loads(cli("run", str(alerts), "--dry-run", "--json").stdout)
        listed = {i["instance"]: (i["status"], i["labels"], i["decision"]) for i in rows[0]["instances"]}
        assert listed[US] == ("ALERT", {"region": "us"}, "first_notification")
        assert listed[AP][0] == "OK" and rows[0]["status"] == "ALERT" and rows[0]["actual_value"] == 2


class TestStatusAndSilences:
    def test_status_lists_instances_under_their_alert(self, alerts: Path, tmp_path: Path) -> None:
        """After a run, status prints the alert, then each instance indented, with its own state."""
        state = f"sqlite:///{tmp_path / 'state.db'}"
        assert cli("run", str(alerts), "--database-url", state).exit_code == 0
        lines = cli("status", str(alerts), "--database-url", state).output.splitlines()
        assert lines[0].startswith("error_rate_by_region: firing")
        assert [line.split(":")[0].strip() for line in lines[1:4]] == [AP, EU, US]
        assert lines[3].startswith(f"  {US}: firing") and lines[1].startswith(f"  {AP}: inactive")

    def test_a_silence_by_instance_name_or_by_label_holds_only_that_instance(
        self, alerts: Path, tmp_path: Path
    ) -> None:
        """Silencing us by name and eu by --match region=eu leaves ap and the alert itself unsilenced; a name no
        instance has is refused with the closest one."""
        state = f"sqlite:///{tmp_path / 'state.db'}"
        assert cli("run", str(alerts), "--database-url", state).exit_code == 0
        assert cli("silence", str(alerts), "--alert", US, "--duration", "1h", "--database-url", state).exit_code == 0
        by_label = cli(
            "silence", "error_rate_by_region", "--match", "region=eu", "--duration", "1h", "--database-url", state
        )
        assert by_label.exit_code == 0
        typo = CliRunner().invoke(
            main,
            ["silence", str(alerts), "--alert", US.replace("us", "ux"), "--duration", "1h", "--database-url", state],
        )
        assert typo.exit_code != 0 and f"did you mean '{US}'" in typo.output
        rows = {r["alert"]: r for r in json.loads(cli("status", "--json", "--database-url", state).stdout)}
        assert rows[US]["silenced"] and rows[EU]["silenced"]
        assert not rows[AP]["silenced"] and not rows["error_rate_by_region"]["silenced"]


class TestHistoryAndReplay:
    def test_history_and_replay_work_per_instance_and_sum_for_the_alert(self, alerts: Path, tmp_path: Path) -> None:
        """Two runs: history of one instance shows its two evaluations; replay of the alert replays each instance
        and sums them (2 firing notifications), and a proposed 1m reminder only adds to the firing ones."""
        state = f"sqlite:///{tmp_path / 'state.db'}"
        for _ in range(2):
            assert cli("run", str(alerts), "--database-url", state).exit_code == 0
        history = json.loads(cli("history", US, "--json", "--database-url", state).stdout)
        assert [e["status"] for e in history["evaluations"]] == ["ALERT", "ALERT"]
        replay = cli("replay", "error_rate_by_region", "--file", str(alerts), "--database-url", state)
        assert replay.exit_code == 0, replay.output
        assert "3 instances replayed; notifications 2 under the current settings, 2 under the proposed" in replay.output
        one = json.loads(cli("replay", US, "--file", str(alerts), "--json", "--database-url", state).stdout)
        assert one["alert"] == US and one["current"]["notifications"]["firing"] == 1


class TestOnMariaDB:
    def test_instances_on_a_mariadb_warehouse_and_state_notify_once_and_resolve_alone(
        self, empty_mariadb: str, metrics_table: str, tmp_path: Path
    ) -> None:
        """Warehouse and state both on the local MariaDB (the state written with ON DUPLICATE KEY UPDATE, the rows
        read unbuffered): three of four regions fire once each (us and US are two), nothing the second time, then
        one resolves alone."""
        mariadb_url = empty_mariadb  # a database of its own: its state tables are seen by no other test
        engine = sa.create_engine(mariadb_url)
        state_tables = [t.name for t in metadata.sorted_tables]
        with engine.begin() as conn:
            for table in reversed(state_tables):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            conn.exec_driver_sql(f"CREATE TABLE {metrics_table} (region VARCHAR(10), err DOUBLE)")
            conn.exec_driver_sql(f"INSERT INTO {metrics_table} VALUES ('us', 9), ('US', 8), ('eu', 7), ('ap', 1)")
        path = tmp_path / "alerts.yaml"
        query = (
            "SELECT region, CASE WHEN err > 5 THEN 'ALERT' ELSE 'OK' END AS status, err AS actual_value "
            f"FROM {metrics_table}"
        )
        path.write_text(
            textwrap.dedent(
                f"""
                database: {{url: "{mariadb_url}"}}
                alerts:
                  - {{name: by_region, query: "{query}", schedule: "@hourly", instances: {{by: [region]}},
                      notify: [{{channel: log}}]}}
                """
            ),
            encoding="utf-8",
        )
        try:
            runs = [json.loads(cli("run", str(path), "--json", "--database-url", mariadb_url).stdout)[0]]
            runs.append(json.loads(cli("run", str(path), "--json", "--database-url", mariadb_url).stdout)[0])
            with engine.begin() as conn:
                conn.exec_driver_sql(f"UPDATE {metrics_table} SET err = 1 WHERE region = 'eu'")
            runs.append(json.loads(cli("run", str(path), "--json", "--database-url", mariadb_url).stdout)[0])
            events = [sorted((n["event"], n["outcome"]) for n in run["notifications"]) for run in runs]
            assert events[0] == [("firing", "delivered")] * 3 and events[1] == []
            assert events[2] == [("resolved", "delivered")]
            states = {i["instance"]: i["state"] for i in runs[2]["instances"]}
            assert states == {
                'by_region{region="us"}': "firing",
                'by_region{region="US"}': "firing",  # names compare byte for byte, not as MariaDB's default does
                'by_region{region="eu"}': "inactive",
                'by_region{region="ap"}': "inactive",
            }
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {metrics_table}")
                for table in reversed(state_tables):
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            engine.dispose()


class TestBaselinePerInstance:
    def test_each_instance_learns_its_own_baseline(self, tmp_path: Path) -> None:
        """Store a sells about 100 and store b about 10: after 3 evaluations learning, 50 is anomalous for b
        (it fires) but a's 100 is not, each judged by what it learnt from its own values, and a new store c is still
        learning."""
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE sales (store TEXT, amount REAL)")
            db.executemany("INSERT INTO sales VALUES (?, ?)", [("a", 100), ("b", 10)])
        path = tmp_path / "alerts.yaml"
        path.write_text(
            textwrap.dedent(
                """
                database: {url: "sqlite:///warehouse.db"}
                alerts:
                  - name: sales_by_store
                    query: "SELECT store, amount AS actual_value FROM sales"
                    schedule: "@hourly"
                    instances: {by: [store]}
                    baseline: {min_history: 3, history: 7d, min_change: 10%}
                    notify: [{channel: log}]
                """
            ),
            encoding="utf-8",
        )
        state = f"sqlite:///{tmp_path / 'state.db'}"

        def run() -> dict[str, dict[str, Any]]:
            rows = json.loads(cli("run", str(path), "--json", "--database-url", state).stdout)
            return {i["instance"]: i for i in rows[0]["instances"]}

        learning = [run() for _ in range(3)]
        assert all(i["status"] == "OK" for r in learning for i in r.values())
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("UPDATE sales SET amount = 50 WHERE store = 'b'")
            db.execute("INSERT INTO sales VALUES ('c', 50)")
        judged = run()
        a, b, c = (judged[f'sales_by_store{{store="{s}"}}'] for s in "abc")
        assert (a["status"], b["status"], c["status"]) == ("OK", "ALERT", "OK")
        assert b["decision"] == "first_notification" and a["decision"] == "ok"
        assert (a["threshold"], b["threshold"], c["threshold"]) == ("100", "10", None)  # each its own history

    def test_more_history_than_the_bound_is_a_named_error_not_a_slow_read(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With the bound on values learnt from lowered to 3, the third evaluation of two stores (4 recorded
        values) errors, saying what to shorten; nothing is resolved."""
        monkeypatch.setattr("sqlsentinel_dagster.cycle.learned.MAX_INSTANCE_SAMPLES", 3)
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE sales (store TEXT, amount REAL)")
            db.executemany("INSERT INTO sales VALUES (?, ?)", [("a", 100), ("b", 10)])
        path = tmp_path / "alerts.yaml"
        path.write_text(
            'database: {url: "sqlite:///warehouse.db"}\nalerts:\n  - {name: s, query: "SELECT store, amount AS '
            'actual_value FROM sales", schedule: "@hourly", instances: {by: [store]}, baseline: {min_history: 3}}\n',
            encoding="utf-8",
        )
        state = f"sqlite:///{tmp_path / 'state.db'}"
        runs = [json.loads(cli("run", str(path), "--json", "--database-url", state).stdout)[0] for _ in range(3)]
        assert [r["status"] for r in runs] == ["OK", "OK", "ERROR"]
        assert "more than 3 evaluations of 2 instances to learn from" in runs[2]["error"]
        assert "shorten baseline.history or lower instances.max" in runs[2]["error"]


class TestChurn:
    def test_a_whole_result_adds_every_row_while_the_missing_ones_wait_to_resolve(self, tmp_path: Path) -> None:
        """max: 3 and three regions; then three other regions (a whole result, not cut): all three new ones fire
        at once, while the three gone ones count as missing (1 of 2) rather than keeping them out."""
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE metrics (region TEXT, err REAL)")
            db.executemany("INSERT INTO metrics VALUES (?, 9)", [("a",), ("b",), ("c",)])
        path = tmp_path / "alerts.yaml"
        path.write_text(
            'database: {url: "sqlite:///warehouse.db"}\nalerts:\n  - {name: r, query: "SELECT region, '
            "CASE WHEN err > 5 THEN 'ALERT' ELSE 'OK' END AS status FROM metrics\", schedule: \"@hourly\", "
            "instances: {by: [region], max: 3}, notify: [{channel: log}]}\n",
            encoding="utf-8",
        )
        state = f"sqlite:///{tmp_path / 'state.db'}"
        assert cli("run", str(path), "--database-url", state).exit_code == 0
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("DELETE FROM metrics")
            db.executemany("INSERT INTO metrics VALUES (?, 9)", [("d",), ("e",), ("f",)])
        run = json.loads(cli("run", str(path), "--json", "--database-url", state).stdout)[0]
        decisions = {i["instance"][1:]: i["decision"] for i in run["instances"]}
        assert decisions == {
            '{region="d"}': "first_notification",
            '{region="e"}': "first_notification",
            '{region="f"}': "first_notification",
            '{region="a"}': "missing",
            '{region="b"}': "missing",
            '{region="c"}': "missing",
        }
        assert "not added" not in run["reason"] and run["several_rows"] is False


class TestMariaDBMigration:
    def test_tables_made_before_schema_4_get_binary_names(self, empty_mariadb: str) -> None:
        """A state database whose alert column still has MariaDB's default collation (schema 3) is migrated to
        compare names byte for byte."""
        engine = sa.create_engine(empty_mariadb)  # a database of its own: no other test sees its state tables
        state_tables = [t.name for t in metadata.sorted_tables]
        try:
            with engine.begin() as conn:
                for table in reversed(state_tables):
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            StateStore(engine)
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "ALTER TABLE sqlsentinel_alert_state MODIFY alert VARCHAR(255) "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL"
                )
                conn.exec_driver_sql("DELETE FROM sqlsentinel_schema_version WHERE version = 4")
                conn.exec_driver_sql("INSERT INTO sqlsentinel_schema_version VALUES (3, NOW())")
            StateStore(engine)
            with engine.connect() as conn:
                collation = conn.exec_driver_sql(
                    "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = 'sqlsentinel_alert_state' AND COLUMN_NAME = 'alert'"
                ).scalar()
            assert collation == "utf8mb4_bin"
        finally:
            with engine.begin() as conn:
                for table in reversed(state_tables):
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            engine.dispose()

    def test_the_prune_forgets_instances_gone_past_the_retention_but_not_current_ones(self, tmp_path: Path) -> None:
        """b is gone (missing_after: 1): pruning everything older than now removes b's state and listing, keeps a
        (current), and the next evaluation reads only a."""
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE metrics (region TEXT, err REAL)")
            db.executemany("INSERT INTO metrics VALUES (?, 9)", [("a",), ("b",)])
        path = tmp_path / "alerts.yaml"
        path.write_text(
            'database: {url: "sqlite:///warehouse.db"}\nalerts:\n  - {name: r, query: "SELECT region, '
            "CASE WHEN err > 5 THEN 'ALERT' ELSE 'OK' END AS status FROM metrics\", schedule: \"@hourly\", "
            "instances: {by: [region], missing_after: 1}, notify: [{channel: log}]}\n",
            encoding="utf-8",
        )
        state = f"sqlite:///{tmp_path / 'state.db'}"
        assert cli("run", str(path), "--database-url", state).exit_code == 0
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("DELETE FROM metrics WHERE region = 'b'")
        assert cli("run", str(path), "--database-url", state).exit_code == 0
        store = StateStore.from_url(state)
        assert admin.prune_history(store, dt.timedelta(0))["instances"] == 1
        assert list(store.instances_of("r")) == ['r{region="a"}']
        names = {s.alert for s in admin.alert_statuses(store)}
        assert names == {"r", 'r{region="a"}'}
        run = json.loads(cli("run", str(path), "--json", "--database-url", state).stdout)[0]
        assert [i["instance"] for i in run["instances"]] == ['r{region="a"}']
