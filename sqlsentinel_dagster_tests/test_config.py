"""alerts.yaml: which files are accepted, and the exact message for each problem in those that are not."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from sqlsentinel_dagster import ConfigError, load_config
from sqlsentinel_dagster.config import AlertsFile
from sqlsentinel_dagster.config.targets import EmailTarget, SlackTarget, WebhookTarget

from .conftest import FIXTURES

INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return [
        f"{p.line} {p.location}: {p.message}" if p.location else f"{p.line}: {p.message}" for p in caught.value.problems
    ]


class TestInvalidFiles:
    @pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
    def test_every_problem_is_reported_with_line_location_and_what_is_allowed(self, path: Path) -> None:
        """Each invalid fixture yields exactly the problems listed in its .expected file, all at once."""
        expected = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
        assert _problems(path) == expected

    def test_error_message_names_the_file_and_counts_problems(self) -> None:
        """The exception text starts with the file and the number of problems, then one line each."""
        path = FIXTURES / "invalid" / "queries.yaml"
        with pytest.raises(ConfigError) as caught:
            load_config(path, environ={})
        lines = str(caught.value).splitlines()
        assert lines[0] == f"{path}: 8 problems found"
        assert lines[2].startswith(f"  {path}:8 alerts[1] (deletes).query: ")

    def test_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A path that does not exist is reported as a problem of that file, not a traceback."""
        with pytest.raises(ConfigError, match="cannot read the file: No such file or directory"):
            load_config(tmp_path / "nope.yaml")


class TestValidFiles:
    @pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
    def test_valid_fixture_loads(self, path: Path) -> None:
        """Every valid fixture loads without problems."""
        config = load_config(path, environ={"ALERT_TZ": "Asia/Tokyo"})
        assert config.alerts

    def test_legacy_format_nested_and_flat_channel_settings_both_parse(self) -> None:
        """The original SQL Sentinel file loads unchanged: `config:` nesting and flat keys mean the same."""
        config = load_config(FIXTURES / "valid" / "legacy_sql_sentinel.yaml", environ={})
        slack, email = config.alerts[0].notify
        assert isinstance(slack, SlackTarget) and slack.webhook_url == "${SLACK_WEBHOOK_URL}"
        assert isinstance(email, EmailTarget) and email.recipients == ["team@company.com"]
        assert email.subject == "Critical: Data Quality Alert"
        webhook = config.alerts[1].notify[0]
        assert isinstance(webhook, WebhookTarget) and webhook.method == "POST"
        assert config.alerts[1].enabled is False and config.alerts[1].schedule_running is False

    def test_defaults_are_inherited_and_tags_merged(self) -> None:
        """An alert without a key takes it from `defaults:`; tags from both are merged, the alert winning."""
        config = load_config(FIXTURES / "valid" / "full_reference.yaml", environ={})
        explicit, inherited = config.alerts[0], config.alerts[-1]
        assert (inherited.schedule, inherited.timezone, inherited.timeout) == ("0 * * * *", "Europe/Paris", 120.0)
        assert inherited.owners == ["team:data-platform"]
        assert [t.channel for t in config.targets(inherited)] == ["slack"]  # routes.warning beats defaults.notify
        assert config.database_name(inherited) == "analytics"
        assert explicit.tags == {"team": "data-platform", "domain": "sales", "tier": "1"}
        assert explicit.timezone == "America/New_York" and config.database_name(explicit) == "billing"
        assert explicit.schedule_running is False and inherited.schedule_running is True

    def test_receivers_by_name_and_routes_by_severity(self) -> None:
        """Own notify wins, then routes[severity], then defaults.notify; receiver names expand to their targets."""
        config = load_config(FIXTURES / "valid" / "receivers_and_routes.yaml", environ={})
        channels = {a.name: [t.channel for t in config.targets(a)] for a in config.alerts}
        assert channels == {
            "critical_routed": ["pagerduty", "slack"],
            "warning_routed": ["slack"],
            "info_defaults": ["log", "webhook"],
            "own_notify": ["log", "webhook", "log"],
        }

    def test_structural_values_are_substituted_and_secrets_are_not(self) -> None:
        """${VAR} in schedule/timezone/name resolve at load; URLs and notify settings keep their ${VAR} text."""
        env = {"ALERT_TZ": "Asia/Tokyo", "DB_PASSWORD": "s3cret", "SLACK_WEBHOOK_URL": "https://hooks/x"}
        config = load_config(FIXTURES / "valid" / "environment.yaml", environ=env)
        alert = config.alerts[0]
        assert (alert.name, alert.schedule, alert.timezone) == ("prod_error_rate", "*/5 * * * *", "Asia/Tokyo")
        assert config.database(alert).url == "postgresql://alerts:${DB_PASSWORD}@${DB_HOST:-localhost}/warehouse"
        assert alert.notify[0].webhook_url == "${SLACK_WEBHOOK_URL}"  # type: ignore[union-attr]

    def test_sanitized_names_are_reported_as_notes(self, write_alerts: Any) -> None:
        """A name Dagster cannot use as-is is sanitized, and the loader says which name it became."""
        path = write_alerts(
            """
            database: {url: "sqlite:///w.db"}
            alerts:
              - {name: "orders late!", query: "SELECT 'OK' AS status", schedule: "@daily"}
            """
        )
        notes = load_config(path).notes
        assert [n.message for n in notes] == [
            "alert name 'orders late!' contains characters Dagster does not allow; "
            "its job and schedule use 'orders_late_'"
        ]


def _declared(model: type[BaseModel], seen: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    """Every (model, field) pair reachable from ``model`` through its field types."""
    seen = set() if seen is None else seen
    for name, info in model.model_fields.items():
        if (_owner(model, name), name) in seen:
            continue
        seen.add((_owner(model, name), name))
        for inner in _models_in(info.annotation):
            _declared(inner, seen)
    return seen


def _owner(model: type[BaseModel], field: str) -> str:
    """The class that declares ``field`` (a base class for inherited fields such as send_resolved)."""
    return next(c.__name__ for c in model.__mro__ if field in inspect.get_annotations(c))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _used(value: Any) -> set[tuple[str, str]]:
    """Every (model, field) pair set explicitly somewhere in a loaded file."""
    if isinstance(value, BaseModel):
        pairs = {(_owner(type(value), name), name) for name in value.model_fields_set}
        return pairs.union(*(_used(getattr(value, name)) for name in value.model_fields_set))
    if isinstance(value, dict):
        return set().union(*(_used(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_used(v) for v in value))
    return set()


def test_reference_fixture_uses_every_field_of_the_model() -> None:
    """full_reference.yaml sets every key of every model, so a new key cannot go untested."""
    config = load_config(FIXTURES / "valid" / "full_reference.yaml", environ={})
    assert _declared(AlertsFile) - _used(config.file) == set()


class TestSqlSentinelCompatibility:
    def test_database_timeout_is_the_default_alert_timeout(self, write_alerts: Any) -> None:
        """`timeout` under the database applies to its alerts that set none; defaults and the alert's own win."""
        path = write_alerts(
            """
            databases:
              slow: {url: "sqlite:///s.db", timeout: 5m}
              fast: {url: "sqlite:///f.db"}
            alerts:
              - {name: inherits, query: "SELECT 'OK' AS status", schedule: "@daily", database: slow}
              - {name: own, query: "SELECT 'OK' AS status", schedule: "@daily", database: slow, timeout: 10s}
              - {name: other_db, query: "SELECT 'OK' AS status", schedule: "@daily", database: fast}
            """
        )
        timeouts = {a.name: a.timeout for a in load_config(path, environ={}).alerts}
        assert timeouts == {"inherits": 300.0, "own": 10.0, "other_db": 60.0}

    def test_database_url_from_the_environment_when_the_file_has_none(self, write_alerts: Any) -> None:
        """No `database:`: DATABASE_URL is used, kept as ${DATABASE_URL} until the run (it holds a password)."""
        path = write_alerts('alerts:\n  - {name: a, query: "SELECT \'OK\' AS status", schedule: "@daily"}\n')
        config = load_config(path, environ={"DATABASE_URL": "postgresql://u:secret@db/x"})
        assert config.file.all_databases()["default"].url == "${DATABASE_URL}"
        with pytest.raises(ConfigError, match="or set DATABASE_URL"):
            load_config(path, environ={})

    def test_webhook_url_and_variables_in_recipients_are_accepted(self, write_alerts: Any) -> None:
        """`webhook_url` on a webhook is its `url`; `${VAR}` in email recipients is resolved when sending."""
        path = write_alerts(
            """
            database: {url: "sqlite:///w.db"}
            alerts:
              - name: a
                query: "SELECT 'OK' AS status"
                schedule: "@daily"
                notify:
                  - {channel: webhook, webhook_url: "${HOOK}"}
                  - {channel: webhook}
                  - {channel: email, recipients: ["${ONCALL_EMAILS}", ops@example.com]}
            """
        )
        webhook, default_webhook, email = load_config(path, environ={}).alerts[0].notify
        assert (webhook.url, default_webhook.url) == ("${HOOK}", None)  # type: ignore[union-attr]
        assert email.recipients == ["${ONCALL_EMAILS}", "ops@example.com"]  # type: ignore[union-attr]

    def test_url_and_webhook_url_together_are_refused(self, write_alerts: Any) -> None:
        """Both names for the same setting: a located error."""
        path = write_alerts(
            """
            database: {url: "sqlite:///w.db"}
            alerts:
              - name: a
                query: "SELECT 'OK' AS status"
                schedule: "@daily"
                notify: [{channel: webhook, url: "https://a.example", webhook_url: "https://b.example"}]
            """
        )
        with pytest.raises(ConfigError, match="give 'url' or 'webhook_url'"):
            load_config(path, environ={})
