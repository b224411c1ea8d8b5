"""Past one machine: a checks-mode tick split into shards (one run each, stable run keys, per-database tags), the
tags every alert run carries, and one evaluation per alert per schedule tick however often a tick's run is retried
or repeated. Real Dagster runs (in process and as `dagster job execute` processes on Postgres storage), real SQLite
warehouses and state."""

from __future__ import annotations

import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from sqlsentinel_dagster import AlertStateResource, SqlAlertsComponent, build_definitions, load_config
from sqlsentinel_dagster.config.shards import shards
from sqlsentinel_dagster.naming import TAG_DATABASE, TAG_DECISION, TAG_HOST
from sqlsentinel_dagster.state.schema import history

from .loopback import loopback_receiver
from .processes import BIN, create_storage, dagster_env

TICK = ".dagster/scheduled_execution_time"
FIRST, SECOND = "2026-12-07T09:00:00+00:00", "2026-12-07T09:01:00+00:00"


def write(folder: Path, alerts: int = 10, extra: str = "", other_from: int = 7) -> Path:
    """``alerts`` firing alerts on two SQLite warehouses (main for the first ``other_from``, other after), every
    minute, with ``for: 2``; alerts 1 and 4 tell a ``group: true`` receiver."""
    for name in ("main", "other"):
        with sqlite3.connect(folder / f"{name}.db") as db:
            db.execute("CREATE TABLE IF NOT EXISTS m (v REAL)")
            db.execute("INSERT INTO m VALUES (9)")
    lines = []
    for i in range(alerts):
        database = "main" if i < other_from else "other"
        notify = ", notify: [grouped]" if i in (1, 4) else ""
        lines.append(f"  - {{name: a{i}, database: {database}, query: \"SELECT 'ALERT' AS status FROM m\"{notify}}}")
    path = folder / "alerts.yaml"
    path.write_text(
        f"""databases:
  main: {{url: "sqlite:///{folder / "main.db"}"}}
  other: {{url: "sqlite:///{folder / "other.db"}"}}
receivers:
  grouped: {{channel: log, group: true}}
defaults: {{schedule: "* * * * *", for: 2, notify: [{{channel: log}}]}}
{extra}
alerts:
"""
        + "\n".join(lines)
        + "\n",
        encoding="utf-8",
    )
    return path


def requests(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    [schedule] = [s for s in defs.schedules if s.name.startswith("sqlsentinel_checks")]
    with dg.build_schedule_context(instance=instance) as context:
        result = schedule.evaluate_tick(context)
    return list(result.run_requests or [])


class TestPlanning:
    def test_a_large_batch_is_split_by_database_keeping_grouped_alerts_together(self, tmp_path: Path) -> None:
        """Shards of at most 3: main's 7 alerts in three (a1 and a4, sharing a group: true receiver, together),
        other's 3 in one; each shard names its one database."""
        config = load_config(write(tmp_path))
        planned = shards(config.alerts, config, 3)
        assert [[a.name for a in shard.alerts] for shard in planned] == [
            ["a0", "a1", "a4"],
            ["a2", "a3", "a5"],
            ["a6"],
            ["a7", "a8", "a9"],
        ]
        assert [shard.database for shard in planned] == ["main", "main", "main", "other"]
        assert [len(s.alerts) for s in shards(config.alerts, config, None)] == [10]
        assert [len(s.alerts) for s in shards(config.alerts, config, 10)] == [10]
        whole = shards(config.alerts, config, 1)  # a group larger than the size is one shard of its own
        assert ["a1", "a4"] in [[a.name for a in s.alerts] for s in whole]

    def test_the_schedule_launches_one_run_per_shard_with_stable_keys_and_tags(self, tmp_path: Path) -> None:
        """The tick's run requests: one per shard, run keys shard-i-of-n (so a tick evaluated again launches none
        twice), tags sqlsentinel/shard and sqlsentinel/database, and together every alert's check once."""
        defs = build_definitions(write(tmp_path, extra="checks: {shard_size: 3}"), mode="checks")
        with dg.instance_for_test() as instance:
            first, again = requests(defs, instance), requests(defs, instance)
        assert [r.run_key for r in first] == [f"shard-{i}-of-4" for i in range(1, 5)] == [r.run_key for r in again]
        assert [r.tags["sqlsentinel/shard"] for r in first] == ["1/4", "2/4", "3/4", "4/4"]
        assert [r.tags[TAG_DATABASE] for r in first] == ["main", "main", "main", "other"]
        checks = sorted(k.name for r in first for k in r.asset_check_keys or [])
        assert checks == sorted(f"a{i}" for i in range(10))

    def test_an_unsharded_tick_is_one_run_without_a_run_key(self, tmp_path: Path) -> None:
        """Without shard_size (or with a batch no larger), one run per tick as before, no shard tag."""
        defs = build_definitions(write(tmp_path, extra="checks: {shard_size: 10}"), mode="checks")
        with dg.instance_for_test() as instance:
            [only] = requests(defs, instance)
        assert only.run_key is None and "sqlsentinel/shard" not in only.tags and TAG_DATABASE not in only.tags
        assert len(only.asset_check_keys or []) == 10


RUNS = """runs:
  tags: {dagster-celery/queue: alerts, dagster-k8s/config: {container_config: {resources: {limits: {cpu: "1"}}}}}
  max_runtime: 10m
  max_retries: 2"""


class TestRunTags:
    def test_every_alert_run_carries_the_files_tags_and_dagsters_limits(self, tmp_path: Path) -> None:
        """runs: tags pass as they are (a mapping as JSON), max_runtime and max_retries become dagster/max_runtime
        and dagster/max_retries: on the checks job, and on each alert job with its database."""
        path = write(tmp_path, extra=RUNS)
        expected = {
            "dagster-celery/queue": "alerts",
            "dagster-k8s/config": '{"container_config": {"resources": {"limits": {"cpu": "1"}}}}',
            "dagster/max_runtime": "600",
            "dagster/max_retries": "2",
        }
        checks_job = build_definitions(path, mode="checks").resolve_job_def("sqlsentinel_checks")
        assert checks_job.tags == expected
        alert_job = build_definitions(path).resolve_job_def("sqlsentinel__a8")
        assert {**expected, TAG_DATABASE: "other"}.items() <= alert_job.run_tags.items()

    def test_tags_sqlsentinel_sets_and_dagsters_limits_as_tags_are_located_errors(self, tmp_path: Path) -> None:
        """A sqlsentinel/ tag, a dagster/max_retries tag (write runs.max_retries) and a bad shard_size are each
        reported at their line."""
        path = write(
            tmp_path, extra="checks: {shard_size: 0}\nruns: {tags: {sqlsentinel/shard: x, dagster/max_retries: 3}}"
        )
        problems = "\n".join(f"{p.line} {p.location}: {p.message}" for p in load_config(path, strict=False).problems)
        assert "7 checks.shard_size: must be at least 1, got 0" in problems
        assert "8 runs.tags: tag 'sqlsentinel/shard' is set by sqlsentinel itself; use another name" in problems
        runs = write(tmp_path, extra="runs: {tags: {dagster/max_retries: 3}}")
        refused = "\n".join(p.message for p in load_config(runs, strict=False).problems)
        assert "write runs.max_retries instead of the tag 'dagster/max_retries'" in refused

    def test_build_definitions_and_the_component_set_shard_size_and_add_tags(self, tmp_path: Path) -> None:
        """shard_size= and run_tags= override the file (tags merged, the argument's winning); the Component's
        attributes do the same; a bad value is a ValueError saying what is wrong."""
        path = write(tmp_path, extra="runs: {tags: {team: data, queue: a}}")
        defs = build_definitions(path, mode="checks", shard_size=5, run_tags={"queue": "b"})
        assert defs.resolve_job_def("sqlsentinel_checks").tags == {"team": "data", "queue": "b"}
        with dg.instance_for_test() as instance:
            assert len(requests(defs, instance)) == 3  # main's 7 in 2 shards of at most 5, other's 3 in 1
        component = SqlAlertsComponent(path=str(path), mode="checks", name="c", shard_size=4, run_tags={"x": "y"})
        built = component.build_defs(dg.ComponentTree.for_test().load_context)
        assert built.resolve_job_def("sqlsentinel_checks__c").tags == {"team": "data", "queue": "a", "x": "y"}
        with dg.instance_for_test() as instance:
            assert [r.tags[TAG_DATABASE] for r in requests(built, instance)] == ["main", "main", "other"]
        with pytest.raises(ValueError, match=r"tags: .*sqlsentinel/x.* is set by sqlsentinel itself"):
            build_definitions(path, mode="checks", run_tags={"sqlsentinel/x": "y"})


def run_checks(defs: dg.Definitions, instance: dg.DagsterInstance, tick: str | None, names: list[str]) -> Any:
    job = defs.resolve_job_def("sqlsentinel_checks")
    keys = {k for k in job.asset_layer.asset_graph.asset_check_keys if k.name in names}  # type: ignore[union-attr]
    tags = {TICK: tick} if tick else {}
    return job.get_subset(asset_check_selection=keys).execute_in_process(instance=instance, tags=tags)


def evaluated(state_url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(state_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(history.c.alert, history.c.decision).order_by(history.c.id)).all()
    engine.dispose()
    found: dict[str, list[str]] = {}
    for alert, decision in rows:
        found.setdefault(alert, []).append(decision)
    return found


class TestOneEvaluationPerTick:
    def test_a_ticks_run_repeated_evaluates_nothing_and_for_2_waits_for_a_second_tick(self, tmp_path: Path) -> None:
        """The same tick run twice (a retried shard): the second run succeeds, evaluates nothing and reports no
        check; `for: 2` stays pending until the next tick, which fires it. A manual run (no tick) evaluates."""
        state_url = f"sqlite:///{tmp_path / 'state.db'}"
        defs = build_definitions(write(tmp_path, 3), mode="checks", state=AlertStateResource(database_url=state_url))
        with dg.instance_for_test() as instance:
            first = run_checks(defs, instance, FIRST, ["a0", "a1", "a2"])
            assert {e.metadata["decision"].value for e in first.get_asset_check_evaluations()} == {"pending"}
            again = run_checks(defs, instance, FIRST, ["a0", "a1", "a2"])
            assert again.success and again.get_asset_check_evaluations() == []
            assert instance.get_run_by_id(again.run_id).tags[TAG_HOST].rpartition(":")[2].isdigit()
            second = run_checks(defs, instance, SECOND, ["a0"])
            assert [e.metadata["decision"].value for e in second.get_asset_check_evaluations()] == [
                "first_notification"
            ]
            manual = run_checks(defs, instance, None, ["a0"])
            assert len(manual.get_asset_check_evaluations()) == 1
        assert evaluated(state_url)["a1"] == ["pending"]
        assert evaluated(state_url)["a0"] == ["pending", "first_notification", "already_firing"]

    def test_a_retry_of_the_tick_delivers_what_the_first_run_left_undelivered(self, tmp_path: Path) -> None:
        """The first run of a tick records the alert but its webhook refuses the notification (the run fails, as
        a run whose machine died mid-send would): the retry of the tick does not evaluate the alert again but
        delivers the notification, once."""
        state_url = f"sqlite:///{tmp_path / 'state.db'}"
        with loopback_receiver() as receiver:
            path = write(tmp_path, 1)
            hook = f"[{{channel: webhook, url: '{receiver.url}'}}]"
            path.write_text(path.read_text().replace("for: 2, notify: [{channel: log}]", f"notify: {hook}"), "utf-8")
            defs = build_definitions(path, mode="checks", state=AlertStateResource(database_url=state_url))
            receiver.fail_with = 503
            with dg.instance_for_test() as instance:
                job = defs.resolve_job_def("sqlsentinel_checks")
                first = job.execute_in_process(instance=instance, tags={TICK: FIRST}, raise_on_error=False)
                assert not first.success and receiver.delivered() == []
                receiver.fail_with = None
                retry = job.execute_in_process(instance=instance, tags={TICK: FIRST})
                assert retry.success and retry.get_asset_check_evaluations() == []
            assert [r.body["event"] for r in receiver.delivered()] == ["firing"]
        assert evaluated(state_url) == {"a0": ["first_notification"]}

    def test_jobs_mode_and_instance_alerts_take_the_same_key(self, tmp_path: Path) -> None:
        """An alert's job run twice for one tick records one evaluation (the second run's decision tag says
        already_evaluated); so does an instance alert, whose instances are evaluated with it."""
        state_url = f"sqlite:///{tmp_path / 'state.db'}"
        path = write(tmp_path, 1)
        text = path.read_text().replace(
            "alerts:\n",
            "alerts:\n  - {name: per_row, database: main, query: \"SELECT v, 'ALERT' AS status FROM m\","
            " instances: {by: [v]}}\n",
        )
        path.write_text(text, encoding="utf-8")
        defs = build_definitions(path, state=AlertStateResource(database_url=state_url))
        with dg.instance_for_test() as instance:
            for job in ("sqlsentinel__a0", "sqlsentinel__per_row"):
                for _ in range(2):
                    result = defs.resolve_job_def(job).execute_in_process(instance=instance, tags={TICK: FIRST})
                    assert result.success
                assert instance.get_run_by_id(result.run_id).tags[TAG_DECISION] == "already_evaluated"
        found = evaluated(state_url)
        assert found["a0"] == ["pending"] and found["per_row"] == ["instances"]
        assert [decisions for name, decisions in found.items() if name.startswith("per_row{")] == [["pending"]]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_processes_running_one_tick_together_evaluate_each_alert_once(tmp_path: Path, postgres_home: Path) -> None:
    """Two `dagster job execute` processes of the same tick, started together on Postgres storage (a tick
    launched twice, or a retry racing a slow first attempt): every alert has exactly one evaluation."""
    write(tmp_path, 12, other_from=12)
    (tmp_path / "defs.py").write_text(
        "from sqlsentinel_dagster import build_definitions\ndefs = build_definitions('alerts.yaml', mode='checks')\n"
    )
    create_storage(postgres_home)  # before the processes open it together
    tags = f'{{"{TICK}": "{FIRST}"}}'
    command = [str(BIN / "dagster"), "job", "execute", "-f", "defs.py", "-j", "sqlsentinel_checks", "--tags", tags]

    def execute(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=tmp_path, env=dagster_env(postgres_home), capture_output=True, text=True, timeout=300
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(execute, range(2)))
    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(postgres_home)) as instance:
        url = instance.run_storage._engine.url  # type: ignore[attr-defined]
    found = evaluated(url.render_as_string(hide_password=False))
    assert {name: len(decisions) for name, decisions in found.items()} == {f"a{i}": 1 for i in range(12)}
