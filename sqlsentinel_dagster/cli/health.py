"""``sqlsentinel health PATH``: is the alerting of the file live? For a Kubernetes probe or a cron check.

It runs the same check as the ``sqlsentinel_heartbeat`` sensor (:func:`..definitions.health.check_health`) on the
Dagster instance of ``DAGSTER_HOME`` and the state database (that instance's, or ``--database-url``): exit 0 and
one line when live; exit 1 and one line per cause when not. ``--json`` prints one object: ``live``,
``checked_at``, ``summary`` and ``causes`` (each with ``code``, ``message`` and ``subjects``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import cast

import click

from ..config import LoadedConfig, load_config
from ..config.heartbeat import Heartbeat
from ..definitions.health_judging import CAUSE_CODES, Cause, HealthReport, HealthSettings, Mode
from ..durations import parse_duration
from .common import database_option, echo, echo_json

__all__ = ["health"]


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--mode",
    type=click.Choice(["jobs", "checks"]),
    default="jobs",
    show_default=True,
    help="How the file's definitions are built: build_definitions(mode=...).",
)
@click.option(
    "--name", "namespace", help="The file's name in a code location of several files: build_definitions(name=...)."
)
@click.option(
    "--grace",
    callback=_duration,
    metavar="DURATION",
    help="How late a tick may be (default: heartbeat.grace, else 2m).",
)
@click.option(
    "--queued-limit",
    callback=_duration,
    metavar="DURATION",
    help="How long an alert run may stay queued (default: heartbeat.queued_limit, else 10m).",
)
@click.option(
    "--config-grace",
    callback=_duration,
    metavar="DURATION",
    default="5m",
    show_default=True,
    help="How long the file on disk may differ from the version the deployment runs.",
)
@click.option(
    "--failed-runs",
    type=click.IntRange(0, 100),
    help="Checks mode: not live when the latest this many batch runs all failed (default: heartbeat.failed_runs, "
    "else 3; 0: not checked).",
)
@click.option(
    "--timeout",
    callback=_duration,
    metavar="DURATION",
    default="10s",
    show_default=True,
    help="Deadline for the instance and the state database to answer.",
)
@click.option(
    "--ignore",
    multiple=True,
    type=click.Choice(CAUSE_CODES),
    help="Do not count this cause (repeatable), e.g. config_stale in a liveness probe that restarts the daemon.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_option
def health(
    path: str,
    mode: str,
    namespace: str | None,
    grace: float | None,
    queued_limit: float | None,
    config_grace: float,
    failed_runs: int | None,
    timeout: float,
    ignore: tuple[str, ...],
    as_json: bool,
    database_url: str | None,
) -> None:
    """Exit 0 and print one line when the alerting of PATH is live; exit 1 naming each cause when it is not.

    Not live: a RUNNING schedule or sensor of the file whose tick is later than --grace (dagster-daemon down or
    stuck); an alert run queued longer than --queued-limit; the state database not answering within --timeout; the
    file on disk not the version the deployment runs (changed and not reloaded, or invalid) for longer than
    --config-grace; in checks mode, the latest --failed-runs batch runs all failed before recording any outcome.
    Reads the Dagster instance of DAGSTER_HOME; --mode and --name as the file's definitions are built; --ignore
    leaves a cause out.
    """
    config = load_config(path, strict=False)  # a file with problems is a cause, not an exit
    settings = _settings(config.file.heartbeat, grace, queued_limit, config_grace, failed_runs, timeout)
    report = _report(config, cast(Mode, mode), namespace, settings, database_url, [str(p) for p in config.problems])
    ignored = sorted({cause.code for cause in report.causes if cause.code in ignore})
    if ignored:
        kept = tuple(cause for cause in report.causes if cause.code not in ignore)
        report = replace(report, causes=kept, checked=f"{report.checked} (ignored: {', '.join(ignored)})")
    if as_json:
        echo_json(report.as_json())
    elif report.live:
        echo(report.summary())
    else:
        click.echo(f"not live: {len(report.causes)} cause(s)")
        for cause in report.causes:
            echo(f"- {cause.code}: {cause.message}")
    if not report.live:
        raise SystemExit(1)


def _settings(
    heartbeat: Heartbeat | None,
    grace: float | None,
    queued_limit: float | None,
    config_grace: float,
    failed_runs: int | None,
    timeout: float,
) -> HealthSettings:
    base = HealthSettings()
    return HealthSettings(
        grace=grace or (heartbeat.grace if heartbeat else base.grace),
        queued_limit=queued_limit or (heartbeat.queued_limit if heartbeat else base.queued_limit),
        config_grace=config_grace,
        failed_runs=failed_runs
        if failed_runs is not None
        else (heartbeat.failed_runs if heartbeat else base.failed_runs),
        timeout=timeout,
    )


def _report(
    config: LoadedConfig,
    mode: Mode,
    namespace: str | None,
    settings: HealthSettings,
    database_url: str | None,
    problems: list[str],
) -> HealthReport:
    import dagster as dg

    from ..definitions.health import check_health, within
    from ..definitions.instance_db import instance_state_url
    from ..naming import FileNames
    from ..redact import redact_text
    from ..state.store import StateStore, utcnow

    try:
        instance = within(settings.timeout, dg.DagsterInstance.get)
    except Exception as exc:  # no or bad DAGSTER_HOME, or its storage not answering
        message = " ".join(redact_text(f"{type(exc).__name__}: {exc}").split())[:300]
        cause = Cause("instance_unreachable", f"cannot open the Dagster instance (set DAGSTER_HOME): {message}")
        return HealthReport(checked_at=utcnow(), causes=(cause,))

    def open_store() -> StateStore:
        return StateStore.from_url(database_url or instance_state_url(instance), create_tables=False)

    with instance:  # disposed of (its storage's connections) when done
        return check_health(
            instance,
            config,
            open_store,
            mode=mode,
            names=FileNames(namespace),
            settings=settings,
            problems=problems,
            now=dt.datetime.now(dt.UTC),
        )
