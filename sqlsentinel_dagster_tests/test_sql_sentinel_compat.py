"""SQL Sentinel's own repository, used verbatim: its README's first run, ``silence --duration HOURS`` without a
reason, and notify targets in the nested ``config:`` form, through the real CLI on real files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner, Result
from pydantic import AliasChoices

from sqlsentinel_dagster import load_config
from sqlsentinel_dagster.cli.main import main
from sqlsentinel_dagster.config.targets import (
    EmailTarget,
    LogTarget,
    MSTeamsTarget,
    PagerDutyTarget,
    SlackTarget,
    WebhookTarget,
)
from sqlsentinel_dagster.definitions.admin_jobs import SilenceConfig
from sqlsentinel_dagster.state import admin
from sqlsentinel_dagster.state.store import StateStore

from .conftest import FIXTURES
from .loopback import Receiver, loopback_receiver

BIN = Path(sys.executable).parent
HERE = FIXTURES / "sql_sentinel"
README_URL = "sqlite:///examples/sample_data.db"
"""The warehouse URL of SQL Sentinel's examples/alerts.yaml, written for a run from the repository's root."""
TARGETS = {
    "email": EmailTarget,
    "slack": SlackTarget,
    "webhook": WebhookTarget,
    "pagerduty": PagerDutyTarget,
    "msteams": MSTeamsTarget,
    "log": LogTarget,
}


def invoke(*args: str) -> Result:
    """Run ``sqlsentinel ARGS`` in this process."""
    return CliRunner().invoke(main, list(args))


def sql_sentinel_checkout(root: Path, url: str = README_URL, query: str = "SELECT 'OK' AS status") -> Path:
    """A folder laid out as SQL Sentinel's repository: examples/alerts.yaml with one alert, ``orders_check``."""
    (root / "examples").mkdir(parents=True, exist_ok=True)
    path = root / "examples" / "alerts.yaml"
    path.write_text(
        f'database:\n  url: "{url}"\nalerts:\n'
        f'  - name: orders_check\n    query: "{query}"\n    schedule: "*/5 * * * *"\n',
        encoding="utf-8",
    )
    return path


def make_warehouse(path: Path) -> Path:
    """A SQLite file with a table ``t`` holding one ``'OK'`` status."""
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE t (status TEXT); INSERT INTO t VALUES ('OK');")
    return path


def run_from(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``sqlsentinel ARGS`` as a separate process started in ``cwd``."""
    env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"}
    return subprocess.run(
        [str(BIN / "sqlsentinel"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


class TestRelativeSqlitePaths:
    def test_the_readme_url_is_a_located_note_naming_the_path_tried(self, tmp_path: Path) -> None:
        """``validate`` notes the README's URL at its line with the absolute path tried and the folder it is read
        from, and keeps the alert (a deployment may create the file later)."""
        path = sql_sentinel_checkout(tmp_path)
        folder = (tmp_path / "examples").resolve()
        result = invoke("validate", str(path))
        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == [
            f"note: {path}:2 database.url: {README_URL}: no such file {folder / 'examples' / 'sample_data.db'}; "
            f"relative SQLite paths are read from the alerts file's folder {folder}; runs of its alerts fail until "
            "it exists (its folder does not exist either, so SQLite cannot create it)",
            f"{path}: valid, 1 alert",
        ]
        assert load_config(path).alert_names == ["orders_check"]

    def test_a_named_database_is_noted_at_its_own_url(self, write_alerts: Callable[..., Path], tmp_path: Path) -> None:
        """With ``databases:``, the note names the database whose file is missing, at the line of its URL."""
        make_warehouse(tmp_path / "main.db")
        path = write_alerts(
            """
            databases:
              main: {url: "sqlite:///main.db"}
              archive:
                url: "sqlite:///old/archive.db"
            alerts:
              - {name: a, database: main, query: "SELECT 'OK' AS status", schedule: "@hourly"}
            """
        )
        notes = [str(note) for note in load_config(path).notes]
        assert notes == [
            f"{path}:4 databases.archive.url: sqlite:///old/archive.db: no such file "
            f"{tmp_path / 'old' / 'archive.db'}; relative SQLite paths are read from the alerts file's folder "
            f"{tmp_path}; runs of its alerts fail until it exists (its folder does not exist either, so SQLite cannot "
            "create it)"
        ]

    def test_an_absolute_path_is_noted_without_the_relative_hint(self, write_alerts: Callable[..., Path]) -> None:
        """A missing absolute path is noted as it is: nothing about the alerts file's folder."""
        path = write_alerts(
            """
            database: {url: "sqlite:////nonexistent-sqlsentinel/w.db"}
            alerts: [{name: a, query: "SELECT 'OK' AS status", schedule: "@hourly"}]
            """
        )
        [note] = load_config(path).notes
        assert note.message.startswith("sqlite:////nonexistent-sqlsentinel/w.db: no such file /nonexistent-sqlsentinel")
        assert "alerts file's folder" not in note.message

    def test_a_folder_where_the_file_should_be_is_noted(
        self, write_alerts: Callable[..., Path], tmp_path: Path
    ) -> None:
        """A path naming a folder is noted as such, since SQLite cannot open it."""
        (tmp_path / "data.db").mkdir()
        path = write_alerts(
            """
            database: {url: "sqlite:///data.db"}
            alerts: [{name: a, query: "SELECT 'OK' AS status", schedule: "@hourly"}]
            """
        )
        [note] = load_config(path).notes
        assert note.message == (
            f"sqlite:///data.db: {tmp_path / 'data.db'} is a folder, not a database file; runs of its alerts fail "
            "until it is a file"
        )

    def test_a_run_of_the_readme_first_run_names_the_absolute_path_tried(self, tmp_path: Path) -> None:
        """``sqlsentinel run examples/alerts.yaml`` from the checkout's root fails naming the absolute path tried and
        where relative paths are read from, instead of SQLite's bare 'unable to open database file'."""
        sql_sentinel_checkout(tmp_path)
        folder = (tmp_path / "examples").resolve()
        state = f"sqlite:///{tmp_path / 'state.db'}"
        ran = run_from(tmp_path, "run", "examples/alerts.yaml", "--alert", "orders_check", "--database-url", state)
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert (
            f"error: alert 'orders_check': query on database 'default' failed: unable to open database file "
            f"({README_URL}: no such file {folder / 'examples' / 'sample_data.db'}; relative SQLite paths are read "
            f"from the alerts file's folder {folder})"
        ) in ran.stdout
        assert not (folder / "examples").exists()

    def test_the_path_relative_to_the_alerts_file_runs(self, tmp_path: Path) -> None:
        """The fix the note points to, the file beside alerts.yaml named relative to it, validates clean and runs."""
        path = sql_sentinel_checkout(tmp_path, "sqlite:///sample_data.db", "SELECT status FROM t")
        make_warehouse(tmp_path / "examples" / "sample_data.db")
        assert invoke("validate", str(path)).output == f"{path}: valid, 1 alert\n"
        state = f"sqlite:///{tmp_path / 'state.db'}"
        ran = run_from(tmp_path, "run", "examples/alerts.yaml", "--database-url", state)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.startswith("orders_check: OK")

    def test_a_file_sqlite_creates_empty_is_no_note_and_its_failed_run_says_so(self, tmp_path: Path) -> None:
        """A missing file in an existing folder is not noted (SQLite creates it, as the starter expects); when the
        query then fails, the error names the path tried and says SQLite created it empty."""
        path = sql_sentinel_checkout(tmp_path, "sqlite:///sample_data.db", "SELECT status FROM t")
        assert "note:" not in invoke("validate", str(path)).output
        folder = (tmp_path / "examples").resolve()
        state = f"sqlite:///{tmp_path / 'state.db'}"
        ran = run_from(tmp_path, "run", "examples/alerts.yaml", "--database-url", state)
        assert ran.returncode == 1
        assert (
            f"failed: no such table: t (sqlite:///sample_data.db: no such file {folder / 'sample_data.db'}; relative "
            f"SQLite paths are read from the alerts file's folder {folder}; SQLite created it, empty, at this run)"
        ) in ran.stdout

    @pytest.mark.parametrize(
        "url",
        [
            "sqlite:///file:{warehouse}?mode=ro&uri=true",
            "sqlite:///warehouse.db?mode=ro",
            "sqlite://",
            "sqlite:///:memory:",
        ],
        ids=["read_only_uri", "relative_with_mode", "memory", "named_memory"],
    )
    def test_uris_and_memory_databases_are_not_noted_and_still_run(self, tmp_path: Path, url: str) -> None:
        """SQLite URIs (``mode=ro``), query options and in-memory databases load without a note and run OK."""
        (tmp_path / "examples").mkdir()
        warehouse = make_warehouse(tmp_path / "examples" / "warehouse.db")
        path = sql_sentinel_checkout(tmp_path, url.format(warehouse=warehouse), "SELECT 'OK' AS status")
        assert invoke("validate", str(path)).output == f"{path}: valid, 1 alert\n"
        ran = run_from(tmp_path, "run", "examples/alerts.yaml", "--database-url", f"sqlite:///{tmp_path / 's.db'}")
        assert ran.returncode == 0 and ran.stdout.startswith("orders_check: OK"), ran.stdout + ran.stderr


@pytest.fixture
def state(tmp_path: Path) -> str:
    """A state database URL in tmp_path (created by the first ``silence``)."""
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def alerts_file(write_alerts: Callable[..., Path]) -> Path:
    """An alerts file with one alert, ``orders_late``, that is OK."""
    return write_alerts(
        """
        database: {url: "sqlite://"}
        alerts:
          - {name: orders_late, query: "SELECT 'OK' AS status", schedule: "@hourly", notify: [{channel: log}]}
        """
    )


def silence_lengths(state: str) -> list[float]:
    """How many seconds each stored silence lasts, to the second (its end is set a moment before its start)."""
    store = StateStore.from_url(state)
    try:
        return [round((s.ends_at - s.starts_at).total_seconds()) for s in admin.list_silences(store)]
    finally:
        store.engine.dispose()


class TestSilenceDurationInHours:
    def test_a_bare_number_silences_for_that_many_hours(self, alerts_file: Path, state: str) -> None:
        """``--duration 2`` silences for two hours, as SQL Sentinel's ``--duration HOURS`` did (not 2 seconds)."""
        result = invoke(
            "silence", str(alerts_file), "--alert", "orders_late", "--duration", "2", "--database-url", state
        )
        assert result.exit_code == 0, result.output
        assert silence_lengths(state) == [2 * 3600]

    @pytest.mark.parametrize(
        ("written", "length"),
        [("1.5", 90 * 60), ("90s", 90), ("30m", 30 * 60)],
        ids=["fractional_hours", "seconds_unit", "minutes_unit"],
    )
    def test_a_duration_with_a_unit_keeps_its_unit(self, state: str, written: str, length: int) -> None:
        """A unit given is obeyed; a bare number, whole or not, is hours."""
        result = invoke("silence", "orders_late", "--force", "--duration", written, "--database-url", state)
        assert result.exit_code == 0, result.output
        assert silence_lengths(state) == [length]

    def test_a_bare_number_too_long_says_it_was_read_as_hours(self, state: str) -> None:
        """The refusal quotes the number with the unit it was read in."""
        result = invoke("silence", "orders_late", "--force", "--duration", "100000", "--database-url", state)
        assert result.exit_code == 1
        assert "Error: duration '100000h' is too long; at most 3650d (10 years)" in result.output

    def test_the_help_says_a_bare_number_is_hours(self) -> None:
        """``silence --help`` says what a number without a unit means."""
        output = " ".join(invoke("silence", "--help").output.split())
        assert "How long: hours as a bare number (2, as in SQL Sentinel), or 30m, 2h, 1d" in output

    def test_alerts_yaml_durations_still_read_a_bare_number_as_seconds(self, write_alerts: Callable[..., Path]) -> None:
        """Only the silence option reads hours: ``repeat_interval: 2`` in alerts.yaml stays two seconds."""
        path = write_alerts(
            """
            database: {url: "sqlite://"}
            alerts: [{name: a, query: "SELECT 'OK' AS status", schedule: "@hourly", repeat_interval: 2}]
            """
        )
        assert load_config(path).alerts[0].repeat_interval == 2.0

    def test_the_launchpad_silence_job_reads_a_bare_number_as_hours(self, alerts_file: Path) -> None:
        """The sqlsentinel_silence job's ``duration: "2"`` silences for two hours, and its description says so."""
        from sqlsentinel_dagster import AlertStateResource, build_definitions

        assert "hours as a bare number" in str(SilenceConfig.model_fields["duration"].description)
        job = build_definitions(alerts_file).resolve_job_def("sqlsentinel_silence")
        config = {"alert": "orders_late", "duration": "2", "author": "ana", "reason": "deploy"}
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(
                instance=instance, run_config={"ops": {"sqlsentinel_silence_op": {"config": config}}}
            )
            assert result.success
            [silence] = admin.list_silences(AlertStateResource().get_store(instance))
        assert round((silence.ends_at - silence.starts_at).total_seconds()) == 2 * 3600


class TestSilenceWithoutReason:
    def test_sql_sentinel_form_silences_without_a_reason(self, alerts_file: Path, state: str) -> None:
        """``silence alerts.yaml --alert NAME --duration 1`` works without ``--reason`` and records none given, which
        ``silence``, ``silences`` and ``status`` show."""
        result = invoke(
            "silence", str(alerts_file), "--alert", "orders_late", "--duration", "1", "--database-url", state
        )
        assert result.exit_code == 0, result.output
        assert result.output.rstrip().endswith(": (none given)")
        listed = invoke("silences", "--database-url", state).output
        assert "alert=orders_late" in listed and listed.rstrip().endswith(": (none given)")
        assert invoke("run", str(alerts_file), "--database-url", state).exit_code == 0
        status = invoke("status", str(alerts_file), "--database-url", state).output
        assert status.rstrip().endswith(": (none given)]") and "[silenced by " in status

    def test_our_form_silences_without_a_reason(self, state: str) -> None:
        """``silence NAME --duration 1`` works without ``--reason`` too."""
        result = invoke("silence", "orders_late", "--force", "--duration", "1", "--database-url", state)
        assert result.exit_code == 0, result.output
        [row] = json.loads(invoke("silences", "--database-url", state, "--json").output)
        assert (row["reason"], row["matchers"]) == ("(none given)", ["alert=orders_late"])

    def test_a_reason_given_is_recorded_as_given(self, state: str) -> None:
        """``--reason`` still sets the reason."""
        args = [
            "silence",
            "orders_late",
            "--force",
            "--duration",
            "1h",
            "--reason",
            "backfill",
            "--database-url",
            state,
        ]
        assert invoke(*args).exit_code == 0
        store = StateStore.from_url(state)
        assert [s.reason for s in admin.list_silences(store)] == ["backfill"]
        store.engine.dispose()


def flattened(document: Any) -> Any:
    """``document`` with every notify target's ``config:`` keys moved beside its ``channel:``."""
    if isinstance(document, dict):
        nested = document.get("config") if "channel" in document else None
        flat = {k: v for k, v in document.items() if not (k == "config" and isinstance(nested, dict))}
        return {k: flattened(v) for k, v in {**flat, **(nested or {})}.items()}
    if isinstance(document, list):
        return [flattened(item) for item in document]
    return document


def accepted_names(model: type[Any]) -> set[str]:
    """Every key a target model takes: its field names and their SQL Sentinel aliases (``channel`` aside)."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        names |= {c for c in alias.choices if isinstance(c, str)} if isinstance(alias, AliasChoices) else {name}
    return names - {"channel"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as rec:
        yield rec


class TestNestedConfigForm:
    def test_the_fixture_writes_every_key_of_every_channel_nested(self) -> None:
        """The nested fixture covers every key each channel takes (a new key must be added to it)."""
        document = yaml.safe_load((HERE / "nested_config.yaml").read_text(encoding="utf-8"))
        written = {target["channel"]: set(target["config"]) for target in document["receivers"]["every_channel"]}
        assert {channel: accepted_names(model) - written[channel] for channel, model in TARGETS.items()} == {
            "webhook": {"url"},  # written as webhook_url, SQL Sentinel's name for it
            **{channel: set() for channel in TARGETS if channel != "webhook"},
        }

    def test_every_key_nested_in_every_place_validates_and_equals_the_flat_form(self, tmp_path: Path) -> None:
        """Receivers, notify lists, fallback and defaults take every channel's keys under ``config:``, and load to
        the same targets as the same keys written flat."""
        nested = HERE / "nested_config.yaml"
        result = invoke("validate", str(nested))
        assert result.exit_code == 0, result.output
        flat = tmp_path / "flat.yaml"
        flat.write_text(yaml.safe_dump(flattened(yaml.safe_load(nested.read_text(encoding="utf-8")))), encoding="utf-8")
        assert "config" not in flat.read_text(encoding="utf-8")
        from_nested, from_flat = load_config(nested, environ={}), load_config(flat, environ={})
        assert from_nested.file.receivers == from_flat.file.receivers
        assert from_nested.fallback_targets() == from_flat.fallback_targets()
        per_alert = [from_nested.targets(a) for a in from_nested.alerts]
        assert per_alert == [from_flat.targets(a) for a in from_flat.alerts]
        assert [[t.channel for t in targets] for targets in per_alert] == [list(TARGETS)] * 3
        assert all(
            t.send_resolved is False for targets in per_alert for t in targets
        )  # set under config:, not defaults
        webhook = per_alert[0][2]
        assert isinstance(webhook, WebhookTarget) and (webhook.url, webhook.method) == ("${HOOK}", "PUT")

    def test_mistakes_under_config_are_located_at_their_line(self) -> None:
        """Unknown keys (listing what is allowed), bad values, a key given flat and nested, and a ``config:`` that
        is no mapping are each reported at the line where they are written."""
        path = HERE / "nested_config_problems.yaml"
        result = invoke("validate", str(path))
        assert result.exit_code == 1
        expected = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
        assert result.output.splitlines()[1:] == [f"  {path}:{line}" for line in expected]

    def test_mistakes_under_config_in_receivers_and_fallback_are_located_at_their_line(
        self, write_alerts: Callable[..., Path]
    ) -> None:
        """In a receiver (a list or a single mapping) and in fallback, a mistake under ``config:`` is reported at
        its own line, as in a notify list."""
        path = write_alerts(
            """
            database: {url: "sqlite://"}
            receivers:
              one:
                channel: email
                config:
                  recipients: [not-an-address]
              listed:
                - channel: slack
                  config:
                    webhok_url: x
            fallback:
              - channel: webhook
                config:
                  method: DELETE
            alerts: [{name: a, query: "SELECT 'OK' AS status", schedule: "@hourly", notify: [one, listed]}]
            """
        )
        lines = [line.split(" ", 3)[2] for line in invoke("validate", str(path)).output.splitlines()[1:]]
        assert lines == [f"{path}:{n}" for n in (6, 10, 14)]

    def test_a_nested_webhook_delivers_with_its_nested_settings(
        self, write_alerts: Callable[..., Path], receiver: Receiver, tmp_path: Path
    ) -> None:
        """``sqlsentinel run`` of a firing alert delivers to the nested ``webhook_url`` with the nested method and
        headers."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite://"}}
            alerts:
              - name: orders_late
                query: "SELECT 'ALERT' AS status"
                schedule: "@hourly"
                notify:
                  - channel: webhook
                    config:
                      webhook_url: "{receiver.url}"
                      method: PUT
                      headers: {{X-Team: data}}
            """
        )
        result = invoke("run", str(path), "--database-url", f"sqlite:///{tmp_path / 'state.db'}")
        assert result.exit_code == 0, result.output
        [request] = receiver.delivered()
        assert (request.method, request.headers.get("X-Team"), request.body["event"]) == ("PUT", "data", "firing")


def test_the_nested_fixture_has_the_shape_of_sql_sentinel_seed_documents() -> None:
    """Every target in the nested fixture is ``channel:`` plus ``config:`` and nothing else, as SQL Sentinel wrote."""
    document = yaml.safe_load((HERE / "nested_config.yaml").read_text(encoding="utf-8"))
    targets = [
        *document["receivers"]["every_channel"],
        *document["fallback"],
        *document["defaults"]["notify"],
        *document["alerts"][0]["notify"],
    ]
    assert len(targets) == 4 * len(TARGETS) and all(set(t) == {"channel", "config"} for t in targets)
