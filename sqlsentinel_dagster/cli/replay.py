"""``sqlsentinel replay``: what an alert's recorded evaluations would have notified under other settings.

Only reads the state database (a database without the sqlsentinel tables is an error, nothing is created);
stored text is printed escaped, as by the other state commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..replay import Changes, ReplayRun, parse_period, replay_config, summary, text
from ..replay import as_json as replay_json
from .common import database_errors, database_option, load_or_exit, open_store, printable

__all__ = ["DEFAULT_FILE", "replay"]

DEFAULT_FILE = "alerts.yaml"
"""The alerts file used without ``--file``, in the current directory."""


@click.command()
@click.argument("name", required=False)
@click.option("--file", "path", type=click.Path(dir_okay=False), help="The alerts file; default: ./alerts.yaml.")
@click.option("--for", "for_count", type=click.IntRange(1, 1000), help="Proposed `for`: ALERTs in a row to fire.")
@click.option(
    "--recover-after", type=click.IntRange(1, 1000), help="Proposed `recover_after`: OKs in a row to resolve."
)
@click.option("--error-after", type=click.IntRange(1, 1000), help="Proposed `error_after`: errors in a row to notify.")
@click.option("--repeat-interval", help="Proposed `repeat_interval`, e.g. 4h; 'none' turns reminders off.")
@click.option("--min-interval", help="Proposed `min_interval`, e.g. 30m; 'none' holds no firing.")
@click.option(
    "--mute-time-intervals", help="Proposed `mute_time_intervals`: names from the file's time_intervals, or 'none'."
)
@click.option(
    "--active-time-intervals", help="Proposed `active_time_intervals`: names from the file's time_intervals, or 'none'."
)
@click.option("--days", type=int, help="Replay the last N days (default 30).")
@click.option("--since", help="Replay from then on: a duration back (7d) or an ISO date or time.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
@database_errors
def replay(
    name: str | None,
    path: str | None,
    for_count: int | None,
    recover_after: int | None,
    error_after: int | None,
    repeat_interval: str | None,
    min_interval: str | None,
    mute_time_intervals: str | None,
    active_time_intervals: str | None,
    days: int | None,
    since: str | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """Replay the recorded evaluations of alert NAME through the alert-state decision, under its settings in the
    alerts file and under the settings the options propose, and compare: notifications by event, when each
    incident fires and resolves, incidents the proposal misses, and a timeline. Silences, time intervals,
    acknowledgements and inhibitions apply as they were (when a source alert fired is replayed from its own
    recorded evaluations under its own settings).

    Without NAME, every alert of the file: the version of the file last recorded in the state database (the
    deployed one) against the file as it is now, plus the options; largest change in notifications first.
    Only what is still recorded can be replayed: history older than history_retention_days is pruned.

    A baseline alert whose baseline: differs from the deployed one has its statuses re-judged from the recorded
    actual_value (the value alone: a query's own status column is not replayed).
    """
    if name is not None and path is None and name.endswith((".yaml", ".yml")) and Path(name).is_file():
        name, path = None, name  # `replay alerts.yaml`, as `history alerts.yaml` takes the file first
    file = _alerts_file(path)
    config = load_or_exit(file)
    try:
        changes = Changes.parse(
            for_count=for_count,
            recover_after=recover_after,
            error_after=error_after,
            repeat_interval=repeat_interval,
            min_interval=min_interval,
            mute_time_intervals=mute_time_intervals,
            active_time_intervals=active_time_intervals,
            defined=[interval.compiled() for interval in config.file.time_intervals],
        )
    except ValueError as exc:
        raise click.ClickException(printable(str(exc))) from None
    store = open_store(database_url, create_tables=False)
    end = store.clock()
    try:
        start = parse_period(end, days=days, since=since)
        run = replay_config(store, config, changes, name=name, start=start, end=end)
    except ValueError as exc:
        raise click.ClickException(printable(str(exc))) from None
    if as_json:
        rows = [replay_json(r, notes=run.notes) for r in run.replays]
        click.echo(json.dumps(rows[0] if name is not None and len(rows) == 1 else rows, indent=2))
        return
    _print(run, single=name is not None and len(run.replays) == 1, file=file)


def _alerts_file(path: str | None) -> str:
    if path is not None:
        return path
    if Path(DEFAULT_FILE).is_file():
        return DEFAULT_FILE
    raise click.ClickException(f"no {DEFAULT_FILE} in the current directory: give the alerts file with --file")


def _print(run: ReplayRun, *, single: bool, file: str) -> None:
    lines = [f"note: {note}" for note in run.notes]
    if not single:
        if not run.replays:
            lines.append(f"no alerts in {file}")
        else:
            lines += summary(run.replays)
    for replay_ in run.replays:
        lines += [*([""] if lines else []), *text(replay_, incident_limit=20 if single else 5)]
    for line in lines:
        click.echo(printable(line))
