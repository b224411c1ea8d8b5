"""The sqlsentinel command: validate and list."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from sqlsentinel_dagster.cli import main

from .conftest import FIXTURES, REPO


class TestValidate:
    def test_valid_file_exits_zero_and_counts_alerts(self) -> None:
        """A valid file prints a one-line summary (plus notes) and exits 0."""
        result = CliRunner().invoke(main, ["validate", str(REPO / "examples" / "alerts.yaml")])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1].endswith("alerts.yaml: valid, 3 alerts")
        assert "its job and schedule use 'customers_missing_email'" in result.output

    def test_invalid_file_exits_one_and_lists_every_problem(self) -> None:
        """An invalid file prints every problem with file:line and exits 1."""
        path = FIXTURES / "invalid" / "queries.yaml"
        result = CliRunner().invoke(main, ["validate", str(path)])
        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert lines[0] == f"{path}: 8 problems found" and len(lines) == 9
        assert f"{path}:20 alerts[5] (two_statements).query: the query must be one statement" in result.output


class TestList:
    def test_lists_schedule_timezone_next_runs_channels_and_names(self) -> None:
        """Each alert shows its cron, timezone, upcoming run times in that timezone, channels and Dagster names."""
        result = CliRunner().invoke(main, ["list", str(REPO / "examples" / "alerts.yaml"), "--json", "--next", "2"])
        assert result.exit_code == 0, result.output
        rows = {row["name"]: row for row in json.loads(result.output)}
        orders = rows["orders_volume"]
        assert (orders["schedule"], orders["timezone"], orders["channels"]) == ("0 9 * * *", "Europe/Paris", ["log"])
        runs = [dt.datetime.fromisoformat(t) for t in orders["next_runs"]]
        assert len(runs) == 2 and all(r.hour == 9 and r.minute == 0 for r in runs)
        assert runs[1] - runs[0] == dt.timedelta(days=1) and runs[0] > dt.datetime.now(dt.UTC)
        assert rows["customers missing email"]["schedule_status"] == "stopped"
        assert rows["high_error_rate"]["job"] == "sqlsentinel__high_error_rate"

    def test_text_output_shows_each_alert(self, tmp_path: Path) -> None:
        """The default output is readable text with one block per alert."""
        result = CliRunner().invoke(main, ["list", str(REPO / "examples" / "alerts.yaml")])
        assert result.exit_code == 0
        assert "high_error_rate  [critical, enabled, schedule running]" in result.output
        assert "  schedule:  */5 * * * * (UTC)" in result.output

    def test_list_of_an_invalid_file_exits_one(self) -> None:
        """list refuses invalid files with the same problem listing as validate."""
        result = CliRunner().invoke(main, ["list", str(FIXTURES / "invalid" / "names.yaml")])
        assert result.exit_code == 1 and "duplicate alert name 'orders_late'" in result.output
