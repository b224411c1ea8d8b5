"""A mistake in alerts.yaml never takes alerting (or the team's definitions) down: per-alert isolation, files that
cannot be read, `strict=True` for CI, and the `sqlsentinel_config` sensor that shows problems and tells the
fallback receivers once per distinct set of problems."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from sqlsentinel_dagster import ConfigError, build_definitions, load_config

from .loopback import Receiver, loopback_receiver

WriteAlerts = Callable[..., Path]
OK = "SELECT 'OK' AS status"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (the fallback)."""
    with loopback_receiver() as rec:
        yield rec


def _alert_jobs(defs: dg.Definitions) -> list[str]:
    return sorted(j.name for j in defs.get_repository_def().get_all_jobs() if j.name.startswith("sqlsentinel__"))


class TestIsolation:
    def test_each_problem_takes_out_only_the_alerts_it_concerns(self, write_alerts: WriteAlerts) -> None:
        """A bad cron takes out its alert; a broken receiver the alerts notifying it; a database whose driver is
        missing its alerts; a broken fallback is dropped; the healthy alert loads. Every problem is listed."""
        path = write_alerts(
            f"""
            databases:
              main: {{url: "sqlite:///w.db"}}
              legacy: {{url: "mssql+pyodbc://u@h/db"}}
            receivers:
              team: {{channel: log}}
              broken: {{channel: slak}}
            fallback: [{{channel: email, recipients: [not-an-address]}}]
            defaults: {{database: main, schedule: "@daily"}}
            alerts:
              - {{name: healthy, query: "{OK}", notify: [team]}}
              - {{name: bad_cron, query: "{OK}", schedule: "every day"}}
              - {{name: notifies_broken, query: "{OK}", notify: [broken]}}
              - {{name: on_legacy, query: "{OK}", database: legacy}}
            """
        )
        config = load_config(path, environ={}, strict=False)
        assert config.alert_names == ["healthy"]
        assert config.fallback_targets() == []
        problems = "\n".join(str(p) for p in config.problems)
        assert "alerts[1] (bad_cron).schedule: invalid cron expression 'every day'" in problems
        assert "receivers.broken" in problems and "unknown channel 'slak'" in problems
        assert "databases.legacy.url: the driver for 'mssql+pyodbc' is not installed" in problems
        assert "fallback[0].recipients[0]: invalid email address 'not-an-address'" in problems

    def test_a_broken_heartbeat_is_dropped_and_the_alerts_still_load(self, write_alerts: WriteAlerts) -> None:
        """`heartbeat: {every: 1s}` (below its 10s floor): the block is left out, every alert loads, the problem
        is listed (and `sqlsentinel health` reports the file as not the one running)."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///w.db"}}
            heartbeat: {{url: "${{HEARTBEAT_URL}}", every: 1s}}
            defaults: {{schedule: "@daily"}}
            alerts:
              - {{name: first, query: "{OK}"}}
              - {{name: second, query: "{OK}"}}
            """
        )
        config = load_config(path, environ={}, strict=False)
        assert config.alert_names == ["first", "second"]
        assert config.file.heartbeat is None
        assert [p.location for p in config.problems] == ["heartbeat.every"]

    def test_a_broken_default_takes_out_the_alerts_that_inherit_it(self, write_alerts: WriteAlerts) -> None:
        """`defaults: {timeout: forever}`: alerts with their own timeout stay, the others are left out."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///w.db"}}
            defaults: {{schedule: "@daily", timeout: forever}}
            alerts:
              - {{name: inherits, query: "{OK}"}}
              - {{name: own_timeout, query: "{OK}", timeout: 30s}}
            """
        )
        config = load_config(path, environ={}, strict=False)
        assert config.alert_names == ["own_timeout"]
        assert [p.location for p in config.problems] == ["defaults.timeout"]


class TestNeverRaises:
    @pytest.mark.parametrize(
        "content",
        [b"alerts: [unclosed", "alerts:\n  - name: caf\xe9\n".encode("latin-1"), b"just a string"],
        ids=["yaml_syntax", "latin1", "not_a_mapping"],
    )
    def test_an_unreadable_file_loads_no_alerts_and_the_team_definitions_still_load(
        self, tmp_path: Path, content: bytes
    ) -> None:
        """Broken YAML, a non-UTF-8 file or a non-mapping: no alerts, the problem listed, and the merged
        definitions (the team's asset included) load."""
        path = tmp_path / "alerts.yaml"
        path.write_bytes(content)

        @dg.asset
        def team_asset() -> None:
            return None

        merged = dg.Definitions.merge(dg.Definitions(assets=[team_asset]), build_definitions(path))
        repo = merged.get_repository_def()
        assert repo.asset_graph.has(dg.AssetKey("team_asset"))
        assert _alert_jobs(merged) == []
        assert repo.has_sensor_def("sqlsentinel_config")
        with pytest.raises(ConfigError):
            build_definitions(path, strict=True)

    def test_a_missing_file_loads_no_alerts(self, tmp_path: Path) -> None:
        """A path that does not exist: no alerts, and strict mode names the file."""
        assert _alert_jobs(build_definitions(tmp_path / "nope.yaml")) == []
        with pytest.raises(ConfigError, match="No such file or directory"):
            build_definitions(tmp_path / "nope.yaml", strict=True)

    def test_valid_alerts_keep_their_jobs_and_schedules(self, write_alerts: WriteAlerts) -> None:
        """One typo in one alert: the other alert's job and schedule are there, in both modes."""
        path = write_alerts(
            f"""
            database: {{url: "sqlite:///w.db"}}
            alerts:
              - {{name: fine, query: "{OK}", schedule: "@hourly"}}
              - {{name: typo, query: "{OK}", schedul: "@hourly"}}
            """
        )
        defs = build_definitions(path)
        assert _alert_jobs(defs) == ["sqlsentinel__fine"]
        assert defs.get_repository_def().has_schedule_def("sqlsentinel__fine__schedule")
        checks = build_definitions(path, mode="checks").get_repository_def()
        assert [k.name for k in checks.asset_graph.asset_check_keys] == ["fine"]


class TestConfigSensor:
    def _tick(self, defs: dg.Definitions, cursor: str | None) -> tuple[dg.SensorExecutionData | None, str]:
        repo = defs.get_repository_def()
        sensor = repo.get_sensor_def("sqlsentinel_config")
        with (
            dg.instance_for_test() as instance,
            dg.build_sensor_context(
                instance=instance, cursor=cursor, repository_def=repo, resources=repo.get_top_level_resources()
            ) as context,
        ):
            try:
                data = sensor.evaluate_tick(context)
            except Exception as exc:  # a failing tick, as the daemon records it
                return None, str(exc)
        return data, data.cursor or ""

    def test_fallback_is_told_once_per_distinct_problems_and_when_fixed(
        self, write_alerts: WriteAlerts, receiver: Receiver
    ) -> None:
        """First tick: the fallback hears the problems once. Next ticks fail listing them, telling no one. Fixed:
        the fallback hears it once, and the ticks pass."""
        good = f"""
            database: {{url: "sqlite:///w.db"}}
            fallback: [{{channel: webhook, url: "{receiver.url}"}}]
            alerts:
              - {{name: fine, query: "{OK}", schedule: "@hourly"}}
            """
        bad = '              - {name: bad, query: "SELECT 1", schedule: "61 * * * *"}\n'
        path = write_alerts(f"{good.rstrip()}\n{bad}")
        broken = build_definitions(path)
        first, cursor = self._tick(broken, None)
        assert first is not None and "1 problem(s)" in (first.skip_message or "")
        failed, message = self._tick(broken, cursor)
        assert failed is None and "alerts[1] (bad).schedule: invalid cron expression '61 * * * *'" in message
        events = [r.body["event"] for r in receiver.delivered()]
        assert events == ["error"]
        assert "invalid cron expression" in receiver.delivered()[0].body["error"]
        fixed = build_definitions(write_alerts(good))
        done, cursor = self._tick(fixed, cursor)
        assert done is not None and "fixed" in (done.skip_message or "")
        quiet, _ = self._tick(fixed, cursor)
        assert quiet is not None and "no problems" in (quiet.skip_message or "")
        assert [r.body["event"] for r in receiver.delivered()] == ["error", "resolved"]


def test_dagster_definitions_validate_is_strict_while_a_code_server_stays_up(
    write_alerts: WriteAlerts, tmp_path: Path
) -> None:
    """`dagster definitions validate` (DAGSTER_IS_DEFS_VALIDATION_CLI=1) fails on the typo, with file:line; the
    same definitions load elsewhere with the typo'd alert left out."""
    path = write_alerts(
        f"""
        database: {{url: "sqlite:///w.db"}}
        alerts:
          - {{name: fine, query: "{OK}", schedule: "@hourly"}}
          - {{name: typo, query: "{OK}", schedule: "@hourly", severity: critcal}}
        """
    )
    (tmp_path / "defs.py").write_text(
        f"from sqlsentinel_dagster import build_definitions\ndefs = build_definitions({str(path)!r})\n"
    )
    validate = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-f", str(tmp_path / "defs.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": ""},
    )
    assert validate.returncode != 0
    assert f"{path}:4 alerts[1] (typo).severity: invalid value 'critcal'" in validate.stdout + validate.stderr
    assert _alert_jobs(build_definitions(path)) == ["sqlsentinel__fine"]


class TestLastValidVersion:
    def test_an_unusable_file_runs_its_last_valid_version_and_says_so(
        self, write_alerts: WriteAlerts, sqlite_warehouse: Path, dagster_home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each valid version a code server loads is recorded once (audit trail); when the file breaks, the last
        valid version's alerts keep their jobs and run, and the config sensor says which version runs."""
        import sqlalchemy as sa

        from sqlsentinel_dagster.state.schema import configs

        monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
        valid = f"""
            database: {{url: "sqlite:///{sqlite_warehouse}"}}
            alerts:
              - {{name: kept_running, query: "{OK}", schedule: "@hourly"}}
            """
        path = write_alerts(valid)
        build_definitions(path)
        build_definitions(path)  # the same version: recorded once
        with dg.DagsterInstance.get() as instance:
            from sqlsentinel_dagster.definitions.instance_db import instance_state_url

            engine = sa.create_engine(instance_state_url(instance))
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(configs)).scalar() == 1
        path.write_text("alerts: [unclosed")
        broken = build_definitions(path)
        assert _alert_jobs(broken) == ["sqlsentinel__kept_running"]
        with dg.instance_for_test() as instance:
            result = broken.resolve_job_def("sqlsentinel__kept_running").execute_in_process(instance=instance)
            assert result.success
        told, _ = TestConfigSensor()._tick(broken, "ok")  # the first tick after the file broke
        shown = told.skip_message if told is not None else ""
        assert "YAML syntax error" in (shown or "")
        assert "its last valid version runs until it is fixed: 1 alert(s)" in (shown or "")
        with engine.connect() as conn:  # a broken file is never recorded as a valid version
            assert conn.execute(sa.select(sa.func.count()).select_from(configs)).scalar() == 1
        path.unlink()  # a deleted file: the same, and its warehouse is still found when the job runs
        deleted = build_definitions(path)
        assert _alert_jobs(deleted) == ["sqlsentinel__kept_running"]
        with dg.instance_for_test() as instance:
            assert deleted.resolve_job_def("sqlsentinel__kept_running").execute_in_process(instance=instance).success
