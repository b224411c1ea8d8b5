"""``no_data:`` on an alert: what a result without rows means (``error``, the default; ``ok``; ``alert``; ``keep``),
as Grafana's and Datadog's no-data settings say it. Real SQLite warehouse and state, through ``sqlsentinel run``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sqlsentinel_dagster.cli.main import main

QUERY = "SELECT CASE WHEN v > 5 THEN 'ALERT' ELSE 'OK' END AS status, v AS actual_value FROM m"


class Alert:
    """One alert over a table ``m(v)`` whose rows the test sets, evaluated by ``sqlsentinel run`` on a state file."""

    def __init__(self, tmp_path: Path, no_data: str | None) -> None:
        self.folder = tmp_path
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE m (v REAL)")
        setting = f", no_data: {no_data}" if no_data else ""
        (tmp_path / "alerts.yaml").write_text(
            'database: {url: "sqlite:///warehouse.db"}\nalerts:\n'
            f'  - {{name: a, query: "{QUERY}", schedule: "@hourly", notify: [{{channel: log}}]{setting}}}\n',
            encoding="utf-8",
        )

    def rows(self, *values: float) -> None:
        with sqlite3.connect(self.folder / "warehouse.db") as db:
            db.execute("DELETE FROM m")
            db.executemany("INSERT INTO m VALUES (?)", [(v,) for v in values])

    def run(self) -> dict[str, Any]:
        state = f"sqlite:///{self.folder / 'state.db'}"
        result = CliRunner().invoke(main, ["run", str(self.folder / "alerts.yaml"), "--json", "--database-url", state])
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return rows[0]


def events(run: dict[str, Any]) -> list[str]:
    return [n["event"] for n in run["notifications"]]


class TestNoData:
    def test_by_default_no_rows_is_an_error_naming_it(self, tmp_path: Path) -> None:
        """Without no_data, an empty result is an evaluation error that says the query returned no rows."""
        alert = Alert(tmp_path, None)
        run = alert.run()
        assert run["status"] == "ERROR" and "the query returned no rows" in run["error"]
        assert events(run) == ["error"]

    def test_ok_resolves_a_firing_alert_on_an_empty_result(self, tmp_path: Path) -> None:
        """no_data: ok: a firing alert whose query then returns nothing resolves, and the context says why."""
        alert = Alert(tmp_path, "ok")
        alert.rows(9)
        assert events(alert.run()) == ["firing"]
        alert.rows()
        run = alert.run()
        assert (run["status"], run["decision"], events(run)) == ("OK", "resolved", ["resolved"])
        assert run["context"] == {"no_data": "the query returned no rows (no_data: ok)"}

    def test_alert_fires_on_an_empty_result(self, tmp_path: Path) -> None:
        """no_data: alert: a table that should never be empty fires when it is."""
        alert = Alert(tmp_path, "alert")
        alert.rows(1)
        assert alert.run()["status"] == "OK"
        alert.rows()
        run = alert.run()
        assert (run["status"], run["decision"], events(run)) == ("ALERT", "first_notification", ["firing"])

    @pytest.mark.parametrize(("before", "status", "decision"), [(9, "ALERT", "already_firing"), (1, "OK", "ok")])
    def test_keep_leaves_the_alert_as_it_is(self, tmp_path: Path, before: float, status: str, decision: str) -> None:
        """no_data: keep: an empty result changes nothing: a firing alert stays firing (not resolved, not notified
        again), an OK one stays OK; the status shown is the kept one."""
        alert = Alert(tmp_path, "keep")
        alert.rows(before)
        alert.run()
        alert.rows()
        run = alert.run()
        assert (run["status"], run["decision"], events(run)) == (status, decision, [])

    def test_a_baseline_alert_with_no_rows_follows_no_data_instead_of_judging_nothing(self, tmp_path: Path) -> None:
        """A baseline alert (no status column) with no_data: alert: no rows fires rather than erroring on a
        missing value."""
        with sqlite3.connect(tmp_path / "warehouse.db") as db:
            db.execute("CREATE TABLE m (v REAL)")
        (tmp_path / "alerts.yaml").write_text(
            'database: {url: "sqlite:///warehouse.db"}\nalerts:\n'
            '  - {name: a, query: "SELECT v AS actual_value FROM m", schedule: "@hourly", baseline: {min_history: 3},'
            " no_data: alert, notify: [{channel: log}]}\n",
            encoding="utf-8",
        )
        state = f"sqlite:///{tmp_path / 'state.db'}"
        result = CliRunner().invoke(main, ["run", str(tmp_path / "alerts.yaml"), "--json", "--database-url", state])
        run = json.loads(result.stdout)[0]
        assert (run["status"], run["error"], events(run)) == ("ALERT", None, ["firing"])
