"""The sqlsentinel command: validate, list, run and init."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from sqlsentinel_dagster.cli.main import main

from .conftest import FIRING_QUERY, FIXTURES, REPO
from .loopback import Receiver, loopback_receiver

BIN = Path(sys.executable).parent


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as rec:
        yield rec


class TestValidate:
    def test_valid_file_exits_zero_and_counts_alerts(self) -> None:
        """A valid file prints a one-line summary (plus notes) and exits 0."""
        result = CliRunner().invoke(main, ["validate", str(REPO / "examples" / "alerts.yaml")])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1].endswith("alerts.yaml: valid, 5 alerts, 4 watch rules")
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


class TestRun:
    @pytest.fixture
    def alerts(self, write_alerts: Callable[..., Path], sqlite_warehouse: Path, receiver: Receiver) -> Path:
        """A firing alert notifying a loopback webhook, and an alert whose query fails."""
        return write_alerts(
            f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            alerts:
              - name: error_rate
                query: "{FIRING_QUERY.format(threshold=5, table="api_metrics")}"
                schedule: "@hourly"
                notify: [{{channel: webhook, url: "{receiver.url}"}}]
              - {{name: broken, query: "SELECT nope FROM api_metrics", schedule: "@hourly"}}
            """
        )

    def test_dry_run_without_state_shows_decisions_and_notifies_nobody(
        self, alerts: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No DAGSTER_HOME: decisions as for a first evaluation, nothing sent; exit 1 because one alert errored."""
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
        result = CliRunner().invoke(main, ["run", str(alerts), "--dry-run", "--json"])
        assert result.exit_code == 1, result.output
        rows = {row["alert"]: row for row in json.loads(result.stdout)}
        assert (rows["error_rate"]["status"], rows["error_rate"]["decision"]) == ("ALERT", "first_notification")
        assert rows["error_rate"]["actual_value"] == 7.5 and rows["error_rate"]["notifications"] == []
        assert rows["broken"]["status"] == "ERROR" and "no such column: nope" in rows["broken"]["error"]
        assert receiver.delivered() == []

    def test_run_shares_state_with_dagster_runs_so_it_notifies_once(
        self, alerts: Path, receiver: Receiver, tmp_path: Path
    ) -> None:
        """Two `run --alert error_rate` on the same state database: one firing notification, then none."""
        state = f"sqlite:///{tmp_path / 'state.db'}"
        first = CliRunner().invoke(main, ["run", str(alerts), "--alert", "error_rate", "--database-url", state])
        assert first.exit_code == 0, first.output
        assert "error_rate: ALERT (value 7.5, threshold 5); decision: firing: first notification" in first.output
        assert "firing via 0:webhook: delivered" in first.output
        second = CliRunner().invoke(main, ["run", str(alerts), "--alert", "error_rate", "--database-url", state])
        assert second.exit_code == 0, second.output
        assert "decision: firing: already notified" in second.output
        assert [r.body["event"] for r in receiver.delivered()] == ["firing"]

    def test_an_unknown_alert_name_is_refused_with_a_suggestion(self, alerts: Path) -> None:
        """A typo in --alert evaluates nothing and suggests the closest name."""
        result = CliRunner().invoke(main, ["run", str(alerts), "--alert", "error_rat", "--dry-run"])
        assert result.exit_code != 0
        assert "no alert named 'error_rat'" in result.output and "did you mean 'error_rate'?" in result.output


class TestInit:
    def test_starter_files_validate_and_the_job_runs(self, tmp_path: Path) -> None:
        """`init` writes alerts.yaml and definitions.py; the file validates and its alert job runs OK in Dagster."""
        folder = tmp_path / "new_project"
        result = CliRunner().invoke(main, ["init", str(folder), "--database-url", "sqlite:///warehouse.db"])
        assert result.exit_code == 0, result.output
        assert CliRunner().invoke(main, ["validate", str(folder / "alerts.yaml")]).exit_code == 0
        home = tmp_path / "home"
        home.mkdir()
        execute = subprocess.run(
            [str(BIN / "dagster"), "job", "execute", "-f", "definitions.py", "-j", "sqlsentinel__example_always_ok"],
            cwd=folder,
            env={**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert execute.returncode == 0, execute.stderr[-2000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            [run] = instance.get_runs()
            assert run.tags["sqlsentinel/status"] == "OK"

    def test_init_never_overwrites(self, tmp_path: Path) -> None:
        """An existing alerts.yaml is kept and the command fails naming it."""
        (tmp_path / "alerts.yaml").write_text("mine")
        result = CliRunner().invoke(main, ["init", str(tmp_path)])
        assert result.exit_code != 0 and "not overwriting" in result.output
        assert (tmp_path / "alerts.yaml").read_text() == "mine"
        assert not (tmp_path / "definitions.py").exists()


def test_state_db_url_from_sql_sentinel_is_honoured_by_the_resource_and_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STATE_DB_URL names the state database for AlertStateResource and for every state command."""
    from sqlsentinel_dagster import AlertStateResource

    url = f"sqlite:///{tmp_path / 'sentinel_state.db'}"
    monkeypatch.setenv("STATE_DB_URL", url)
    monkeypatch.delenv("SQLSENTINEL_STATE_URL", raising=False)
    store = AlertStateResource().get_store()
    assert str(store.engine.url) == url
    result = CliRunner().invoke(main, ["silence", "orders_late", "--duration", "1h", "--reason", "maintenance"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "sentinel_state.db").exists()
    listed = CliRunner().invoke(main, ["silences", "--json"])
    assert "orders_late" in listed.output


class TestStateCommandsFromSqlSentinel:
    @pytest.fixture
    def evaluated(self, write_alerts: Callable[..., Path], sqlite_warehouse: Path, tmp_path: Path) -> tuple[Path, str]:
        """Three alerts, two of them evaluated once by `sqlsentinel run` into a state database; (file, state URL)."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            defaults: {{schedule: "@hourly", notify: [{{channel: log}}]}}
            alerts:
              - {{name: error_rate, query: "{FIRING_QUERY.format(threshold=5, table="api_metrics")}"}}
              - {{name: calm, query: "SELECT 'OK' AS status"}}
              - {{name: never_run, query: "SELECT 'OK' AS status"}}
            """
        )
        state = f"sqlite:///{tmp_path / 'state.db'}"
        for name in ("error_rate", "calm"):
            result = CliRunner().invoke(main, ["run", str(path), "--alert", name, "--database-url", state])
            assert result.exit_code == 0, result.output
        return path, state

    def test_status_of_a_file_lists_every_alert_evaluated_or_not(self, evaluated: tuple[Path, str]) -> None:
        """`status alerts.yaml` lists the file's alerts in order, the unevaluated one as never evaluated."""
        path, state = evaluated
        result = CliRunner().invoke(main, ["status", str(path), "--database-url", state, "--json"])
        assert result.exit_code == 0, result.output
        rows = {row["alert"]: row for row in json.loads(result.output)}
        assert list(rows) == ["error_rate", "calm", "never_run"]
        assert (rows["error_rate"]["state"], rows["never_run"]["state"]) == ("firing", "never evaluated")
        assert rows["error_rate"]["last_notified_at"] != "-" and rows["calm"]["last_notified_at"] == "-"

    def test_sql_sentinel_forms_and_a_typo_needs_force(self, evaluated: tuple[Path, str]) -> None:
        """`silence alerts.yaml --alert NAME` works; a name no alert has is refused (with a suggestion) unless
        --force; `history alerts.yaml --alert NAME` and `unsilence alerts.yaml --alert NAME` too."""
        path, state = evaluated
        common = ["--duration", "1h", "--reason", "deploy", "--database-url", state]
        typo = CliRunner().invoke(main, ["silence", str(path), "--alert", "eror_rate", *common])
        assert typo.exit_code != 0 and "no alert named 'eror_rate'" in typo.output
        assert "did you mean 'error_rate'?" in typo.output
        from_state = CliRunner().invoke(main, ["silence", "eror_rate", *common])
        assert from_state.exit_code != 0 and "in the state database" in from_state.output
        assert CliRunner().invoke(main, ["silence", "eror_rate", "--force", *common]).exit_code == 0
        assert CliRunner().invoke(main, ["silence", str(path), "--alert", "error_rate", *common]).exit_code == 0
        listed = CliRunner().invoke(main, ["silences", "--json", "--database-url", state])
        assert sorted(row["matchers"][0] for row in json.loads(listed.output)) == [
            "alert=eror_rate",
            "alert=error_rate",
        ]
        history = CliRunner().invoke(main, ["history", str(path), "--alert", "error_rate", "--state-db", state])
        assert history.exit_code == 0 and "error_rate: 1 runs (1 ALERT" in history.output
        ended = CliRunner().invoke(main, ["unsilence", str(path), "--alert", "error_rate", "--database-url", state])
        assert ended.exit_code == 0 and "ended silence" in ended.output

    def test_history_without_a_name_lists_every_alert_with_offset(self, evaluated: tuple[Path, str]) -> None:
        """`history` alone: the newest evaluations of all alerts; --offset pages back."""
        _, state = evaluated
        everything = CliRunner().invoke(main, ["history", "--json", "--database-url", state])
        rows = json.loads(everything.output)["evaluations"]
        assert [row["alert"] for row in rows] == ["calm", "error_rate"]
        paged = CliRunner().invoke(main, ["history", "--json", "--offset", "1", "--database-url", state])
        assert [row["alert"] for row in json.loads(paged.output)["evaluations"]] == ["error_rate"]
