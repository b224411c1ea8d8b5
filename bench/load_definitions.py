"""Benchmark: loading N alerts as Dagster definitions (jobs and checks mode) vs bare Dagster with N one-op jobs
and schedules.

Run:  .venv/bin/python bench/load_definitions.py [--sizes 100 1000 5000] [--repeat 3]

For each N it writes, in a temporary folder, an alerts.yaml with N alerts and a bare Dagster file with N one-op
jobs and N schedules, then measures in the same run, bare and ours interleaved, median of --repeat:
  * in-process: building the Definitions and the repository snapshot the webserver is served;
  * end to end: `dagster definitions validate -f FILE` in a fresh process (Dagster's import included);
  * the serialized snapshot size (jobs and checks mode).
Times are CPU seconds (user + system; of the child process for `validate`): on a shared 2-core machine wall
time swings by a third between identical runs, CPU time much less. It prints ratios (sqlsentinel / bare);
the target at 1,000 alerts is <= 1.2x, and checks mode (one job, batched schedules) loads faster than jobs mode.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

CRONS = ["*/5 * * * *", "0 * * * *", "15 9 * * MON-FRI", "@daily", "30 */2 * * *"]

BARE = """
import dagster as dg

def make(i):
    @dg.op(name=f"bare_{i}__evaluate", tags={"alert": f"alert_{i}"})
    def evaluate(context):
        return None

    job = dg.JobDefinition(
        graph_def=dg.GraphDefinition(name=f"bare_{i}", node_defs=[evaluate]),
        description=f"alert {i}",
        tags={"alert": f"alert_{i}", "severity": "warning"},
    )
    schedule = dg.ScheduleDefinition(
        name=f"bare_{i}__schedule", cron_schedule=CRONS[i % len(CRONS)], job=job, execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return job, schedule

CRONS = __CRONS__
pairs = [make(i) for i in range(__COUNT__)]
defs = dg.Definitions(jobs=[j for j, _ in pairs], schedules=[s for _, s in pairs])
"""

OURS = """
from sqlsentinel_dagster import build_definitions
defs = build_definitions(%r, mode=%r)
"""


def write_alerts(path: Path, count: int) -> None:
    lines = ['database:\n  url: "sqlite:///warehouse.db"\ndefaults:\n  owners: ["team:data"]\nalerts:\n']
    for i in range(count):
        lines.append(
            textwrap.dedent(
                f"""\
                  - name: alert_{i}
                    description: "Error rate of service {i} above 5%"
                    query: |
                      SELECT CASE WHEN error_pct > 5 THEN 'ALERT' ELSE 'OK' END AS status,
                             error_pct AS actual_value, 5 AS threshold, endpoint
                      FROM api_metrics WHERE service_id = {i}
                    schedule: "{CRONS[i % len(CRONS)]}"
                    severity: warning
                    tags: {{service: s{i}}}
                """
            )
        )
    path.write_text("".join(lines))


def cpu_seconds(action: Callable[[], object]) -> float:
    """CPU time of ``action``, its child processes included."""
    before = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    action()
    after = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    children = (after[1].ru_utime + after[1].ru_stime) - (before[1].ru_utime + before[1].ru_stime)
    return after[0] - before[0] + children


def in_process(code: str) -> tuple[Callable[[], object], Callable[[], int]]:
    """Build the Definitions and the snapshot the UI is served, from fresh module code each time."""
    from dagster._core.remote_representation.external_data import RepositorySnap  # bench-only
    from dagster_shared.serdes import serialize_value

    from sqlsentinel_dagster.definitions import resources

    def build() -> object:
        resources._CONFIGS.clear()  # measure a cold load of the file, as a fresh code server would
        namespace: dict[str, object] = {}
        exec(code, namespace)
        repo = namespace["defs"].get_repository_def()  # type: ignore[attr-defined]
        return RepositorySnap.from_def(repo)

    def size() -> int:
        return len(serialize_value(build()))

    return build, size


def validate_cli(file: Path) -> None:
    dagster = str(Path(sys.executable).parent / "dagster")
    env = {**os.environ, "DAGSTER_HOME": ""}
    result = subprocess.run(
        [dagster, "definitions", "validate", "-f", str(file)], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"validate failed for {file}:\n{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"{'alerts':>7} | {'in-process bare':>15} {'jobs':>7} {'ratio':>6} {'checks':>7} {'ratio':>6} | "
        f"{'validate bare':>13} {'jobs':>7} {'ratio':>6} {'checks':>7} {'ratio':>6} | {'snapshot MB jobs':>16} "
        f"{'checks':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for count in args.sizes:
            alerts = folder / f"alerts_{count}.yaml"
            write_alerts(alerts, count)
            files = {"bare": folder / f"bare_{count}.py"}
            files["bare"].write_text(BARE.replace("__CRONS__", repr(CRONS)).replace("__COUNT__", str(count)))
            for mode in ("jobs", "checks"):
                files[mode] = folder / f"{mode}_{count}.py"
                files[mode].write_text(OURS % (str(alerts), mode))
            builds = {name: in_process(path.read_text()) for name, path in files.items()}
            samples: dict[str, list[float]] = {f"{name}{kind}": [] for name in files for kind in ("", "_v")}
            for _ in range(args.repeat):
                for name, path in files.items():
                    samples[name].append(cpu_seconds(builds[name][0]))
                    samples[f"{name}_v"].append(cpu_seconds(lambda f=path: validate_cli(f)))
            m = {key: statistics.median(values) for key, values in samples.items()}
            print(
                f"{count:>7} | {m['bare']:>14.2f}s {m['jobs']:>6.2f}s {m['jobs'] / m['bare']:>5.2f}x "
                f"{m['checks']:>6.2f}s {m['checks'] / m['bare']:>5.2f}x | "
                f"{m['bare_v']:>12.2f}s {m['jobs_v']:>6.2f}s {m['jobs_v'] / m['bare_v']:>5.2f}x "
                f"{m['checks_v']:>6.2f}s {m['checks_v'] / m['bare_v']:>5.2f}x | "
                f"{builds['jobs'][1]() / 1e6:>16.1f} {builds['checks'][1]() / 1e6:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
