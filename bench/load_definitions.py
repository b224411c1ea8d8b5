"""Benchmark: loading N alerts as Dagster definitions vs bare Dagster with N one-op jobs and schedules.

Run:  .venv/bin/python bench/load_definitions.py [--sizes 100 1000 5000] [--repeat 3]

For each N it writes, in a temporary folder, an alerts.yaml with N alerts and a bare Dagster file with N one-op
jobs and N schedules, then measures in the same run, bare and ours interleaved, median of --repeat:
  * in-process: building the Definitions and the repository snapshot the webserver is served;
  * end to end: `dagster definitions validate -f FILE` in a fresh process (Dagster's import included);
  * the serialized snapshot size, against Dagster's default gRPC message limit.
Times are CPU seconds (user + system; of the child process for `validate`): on a shared 2-core machine wall
time swings by a third between identical runs, CPU time much less. It prints ratios (sqlsentinel / bare);
the target at 1,000 alerts is <= 1.2x.
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

GRPC_DEFAULT_LIMIT = 100 * 10**6  # Dagster 1.13 default max gRPC message (DAGSTER_GRPC_MAX_RX_BYTES)
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
defs = build_definitions(%r)
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

    from sqlsentinel_dagster import resources

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
        f"{'alerts':>7} | {'in-process bare':>15} {'ours':>8} {'ratio':>6} | "
        f"{'validate bare':>13} {'ours':>8} {'ratio':>6} | {'snapshot MB':>11} {'of gRPC limit':>13}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for count in args.sizes:
            alerts = folder / f"alerts_{count}.yaml"
            write_alerts(alerts, count)
            bare_file, ours_file = folder / f"bare_{count}.py", folder / f"ours_{count}.py"
            bare_file.write_text(BARE.replace("__CRONS__", repr(CRONS)).replace("__COUNT__", str(count)))
            ours_file.write_text(OURS % str(alerts))
            bare_build, _ = in_process(bare_file.read_text())
            ours_build, ours_size = in_process(ours_file.read_text())
            samples: dict[str, list[float]] = {"bare": [], "ours": [], "bare_v": [], "ours_v": []}
            for _ in range(args.repeat):
                samples["bare"].append(cpu_seconds(bare_build))
                samples["ours"].append(cpu_seconds(ours_build))
                samples["bare_v"].append(cpu_seconds(lambda f=bare_file: validate_cli(f)))
                samples["ours_v"].append(cpu_seconds(lambda f=ours_file: validate_cli(f)))
            bare_s, ours_s, bare_v, ours_v = (statistics.median(v) for v in samples.values())
            size = ours_size()
            print(
                f"{count:>7} | {bare_s:>14.2f}s {ours_s:>7.2f}s {ours_s / bare_s:>5.2f}x | "
                f"{bare_v:>12.2f}s {ours_v:>7.2f}s {ours_v / bare_v:>5.2f}x | "
                f"{size / 1e6:>11.1f} {size / GRPC_DEFAULT_LIMIT:>12.0%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
