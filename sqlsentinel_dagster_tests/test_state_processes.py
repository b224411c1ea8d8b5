"""Exactly once, nothing lost, with real processes: `dagster job execute` runs of one alert against a persistent
instance (SQLite and Postgres storage), the `sqlsentinel` CLI, and a real webhook receiver on loopback."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sqlsentinel_dagster.definitions.instance_db import instance_state_url
from sqlsentinel_dagster.naming import TAG_DECISION
from sqlsentinel_dagster.state.rows import dumps, state_from_json
from sqlsentinel_dagster.state.schema import alert_state

from .loopback import Receiver, loopback_receiver
from .processes import create_storage

BIN = Path(sys.executable).parent
REPEAT = "1h"  # no run of the test comes near it: the reminder is made due by ageing the recorded notification


@dataclass
class Setup:
    """An alert on a SQLite warehouse that notifies a loopback webhook, run against one Dagster instance."""

    folder: Path
    home: Path
    receiver: Receiver

    def set_error_pct(self, value: float) -> None:
        with sqlite3.connect(self.folder / "warehouse.db") as db:
            db.execute("UPDATE api_metrics SET error_pct = ?", (value,))

    def env(self) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.home), "SX_WEBHOOK_URL": self.receiver.url}

    def execute(self) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "dagster"), "job", "execute", "-f", "defs.py", "-j", "sqlsentinel__error_rate"]
        return subprocess.run(command, cwd=self.folder, env=self.env(), capture_output=True, text=True, timeout=300)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "sqlsentinel"), *args], env=self.env(), capture_output=True, text=True, timeout=120
        )

    def events(self) -> list[str]:
        return [r.body["event"] for r in self.receiver.delivered()]

    def last_decision(self) -> str:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return instance.get_runs(limit=1)[0].tags[TAG_DECISION]

    def age_last_notification(self, by: dt.timedelta) -> None:
        """Move the alert's recorded last notification back by ``by``, as if that much time had passed: the
        test's timing follows recorded times, not how fast this machine runs the processes."""
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            engine = sa.create_engine(instance_state_url(instance))
        row = alert_state.c.alert == "error_rate"
        with engine.begin() as conn:
            state = state_from_json("error_rate", conn.execute(sa.select(alert_state.c.data).where(row)).scalar_one())
            assert state.last_notified_at is not None
            aged = state.evolve(last_notified_at=state.last_notified_at - by)
            conn.execute(sa.update(alert_state).where(row).values(data=dumps(asdict(aged))))
        engine.dispose()


def _make_setup(folder: Path, home: Path, receiver: Receiver, repeat: str = REPEAT) -> Setup:
    with sqlite3.connect(folder / "warehouse.db") as db:
        db.execute("CREATE TABLE api_metrics (endpoint TEXT, error_pct REAL)")
        db.execute("INSERT INTO api_metrics VALUES ('/orders', 1.0)")
    (folder / "alerts.yaml").write_text(
        textwrap.dedent(
            f"""
            database:
              url: "sqlite:///warehouse.db"
            alerts:
              - name: error_rate
                query: "SELECT CASE WHEN error_pct > 5 THEN 'ALERT' ELSE 'OK' END AS status, error_pct AS actual_value,
                  5 AS threshold FROM api_metrics"
                schedule: "*/5 * * * *"
                severity: critical
                tags: {{team: payments}}
                repeat_interval: {repeat}
                notify:
                  - channel: webhook
                    url: "${{SX_WEBHOOK_URL}}"
            """
        )
    )
    (folder / "defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml')\n"
    )
    return Setup(folder, home, receiver)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    with loopback_receiver() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, tmp_path: Path, dagster_home: Path, receiver: Receiver) -> Setup:
    """The alert against a persistent instance on SQLite (DAGSTER_HOME) or Postgres (dagster-postgres)."""
    home = dagster_home if request.param == "sqlite" else request.getfixturevalue("postgres_home")
    return _make_setup(tmp_path, home, receiver)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_firing_reminder_resolved_each_once_and_cli_silence_suppresses(setup: Setup) -> None:
    """Separate processes in sequence send one firing, one reminder after the interval, one resolved; a CLI
    silence suppresses the next firing, which is sent once the silence is lifted."""
    setup.set_error_pct(7.5)
    _ok(setup.execute())
    assert setup.events() == ["firing"]
    _ok(setup.execute())
    assert setup.events() == ["firing"] and setup.last_decision() == "already_firing"
    setup.age_last_notification(dt.timedelta(hours=1, seconds=1))  # the repeat interval has elapsed
    _ok(setup.execute())
    assert setup.events() == ["firing", "reminder"]
    setup.set_error_pct(1.0)
    _ok(setup.execute())
    _ok(setup.execute())
    assert setup.events() == ["firing", "reminder", "resolved"]
    delivered = setup.receiver.delivered()
    keys = [r.body["idempotency_key"] for r in delivered]
    assert len(set(keys)) == 3 and [r.headers["Idempotency-Key"] for r in delivered] == keys
    assert delivered[0].body["alert_name"] == "error_rate" and delivered[0].body["actual_value"] == 7.5

    _ok(setup.cli("silence", "error_rate", "--duration", "1h", "--reason", "deploying a fix", "--author", "ana"))
    setup.set_error_pct(9.0)
    _ok(setup.execute())
    assert setup.events() == ["firing", "reminder", "resolved"] and setup.last_decision() == "suppressed"
    status = json.loads(setup.cli("status", "--json").stdout)
    assert status[0]["alert"] == "error_rate" and status[0]["state"] == "firing"
    assert status[0]["silenced"].startswith("silenced by ana until ") and status[0]["silenced"].endswith(
        ": deploying a fix"
    )
    _ok(setup.cli("unsilence", "error_rate"))
    _ok(setup.execute())
    assert setup.events() == ["firing", "reminder", "resolved", "firing"] and setup.last_decision() == "silence_ended"

    history = setup.cli("history", "error_rate", "--limit", "3")
    _ok(history)
    assert history.stdout.startswith("error_rate: 7 runs (5 ALERT, 2 OK, 0 ERROR), firing 71%")
    assert (
        "notifications: 4 sent, 1 suppressed, 0 muted, 0 failed, 0 pending, 0 being sent, 0 expired" in history.stdout
    )


@pytest.mark.slow
def test_concurrent_runs_of_a_firing_alert_notify_once(tmp_path: Path, postgres_home: Path, receiver: Receiver) -> None:
    """Eight processes evaluating the same firing alert at the same moment produce exactly one notification."""
    setup = _make_setup(tmp_path, postgres_home, receiver)
    setup.set_error_pct(7.5)
    create_storage(postgres_home)  # before the processes open it together
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: setup.execute(), range(8)))
    for result in results:
        _ok(result)
    assert setup.events() == ["firing"]
    with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
        decisions = sorted(run.tags[TAG_DECISION] for run in instance.get_runs())
    assert decisions == ["already_firing"] * 7 + ["first_notification"]


@pytest.mark.slow
def test_failing_channel_is_retried_by_later_evaluations_and_delivered_once(
    tmp_path: Path, dagster_home: Path, receiver: Receiver
) -> None:
    """While the webhook answers 500 the notification stays pending and the runs fail saying so; once it
    recovers, the next evaluation delivers it exactly once."""
    setup = _make_setup(tmp_path, dagster_home, receiver)
    setup.set_error_pct(7.5)
    receiver.fail_with = 500
    for _ in range(2):
        failed = setup.execute()
        assert failed.returncode != 0
        assert (
            "1 notification(s) not delivered: firing via 0:webhook: webhook: HTTP 500" in failed.stdout + failed.stderr
        )
    receiver.fail_with = None
    _ok(setup.execute())
    _ok(setup.execute())
    assert setup.events() == ["firing"]
    keys = {r.body["idempotency_key"] for r in receiver.requests}
    assert len(receiver.requests) == 7 and len(keys) == 1  # 2 failed runs x 3 tries, then 1 delivery; one key
