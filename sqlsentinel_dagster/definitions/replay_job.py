"""The ``sqlsentinel_replay`` job: ``sqlsentinel replay`` from the Launchpad, its result in the run's metadata."""

# No `from __future__ import annotations`: Dagster inspects the op's `config` annotation at runtime.

import dagster as dg
from pydantic import Field

from ..naming import STATE_RESOURCE_KEY
from ..replay import DEFAULT_DAYS, Changes, ReplayRun, as_json, markdown, parse_period, replay_config
from .lineage import AssetLineage
from .resources import AlertStateResource, cached_config

__all__ = [
    "ALERTS_IN_METADATA",
    "INCIDENTS_IN_METADATA",
    "REPLAY_JOB_NAME",
    "ReplayConfig",
    "build_replay_job",
    "replay_metadata",
]

REPLAY_JOB_NAME = "sqlsentinel_replay"
"""The job's name; its op is ``sqlsentinel_replay_op``."""
INCIDENTS_IN_METADATA = (200, 20)
"""The most incidents listed per setting in the JSON metadata when one alert is replayed, and per alert when
every alert is: the event log keeps metadata for good."""
ALERTS_IN_METADATA = 50
"""The most alerts in the JSON metadata (largest change first); the Markdown summary lists every alert."""


class ReplayConfig(dg.Config):
    """Which alert to replay, the settings to propose, and how far back."""

    alert: str = Field(
        default="",
        description="The alert to replay; empty: every alert, the version of the file last recorded in the state "
        "database against the file as the code location loads it.",
    )
    for_count: int | None = Field(default=None, description="Proposed `for`: ALERTs in a row to fire (1 to 1000).")
    recover_after: int | None = Field(default=None, description="Proposed `recover_after` (1 to 1000).")
    error_after: int | None = Field(default=None, description="Proposed `error_after` (1 to 1000).")
    repeat_interval: str | None = Field(
        default=None, description="Proposed `repeat_interval`, e.g. 4h; 'none' turns reminders off."
    )
    min_interval: str | None = Field(
        default=None, description="Proposed `min_interval`, e.g. 30m; 'none' holds no firing."
    )
    mute_time_intervals: str | None = Field(
        default=None, description="Proposed `mute_time_intervals`: names from the file's time_intervals, or 'none'."
    )
    active_time_intervals: str | None = Field(
        default=None, description="Proposed `active_time_intervals`: names from the file's time_intervals, or 'none'."
    )
    days: int = Field(
        default=DEFAULT_DAYS,
        description="Replay the last N days (history older than the state resource's retention is pruned).",
    )


def build_replay_job(config_path: str, name: str = REPLAY_JOB_NAME) -> dg.JobDefinition:
    """``sqlsentinel_replay``: replay recorded evaluations of the alerts in ``config_path`` under proposed
    settings; the comparison and timeline are in the op's output metadata (``replay``, ``replay_json``)."""

    @dg.op(name=f"{name}_op", required_resource_keys={STATE_RESOURCE_KEY})  # op names are unique per location
    def sqlsentinel_replay_op(context: dg.OpExecutionContext, config: ReplayConfig) -> None:
        """Replay, then show the comparison as a Markdown table and the same data as ``sqlsentinel replay --json``."""
        state: AlertStateResource = getattr(context.resources, STATE_RESOURCE_KEY)
        store = state.get_store(context.instance)
        end = store.clock()
        try:
            alerts = cached_config(config_path)
            changes = Changes.parse(
                for_count=config.for_count,
                recover_after=config.recover_after,
                error_after=config.error_after,
                repeat_interval=config.repeat_interval,
                min_interval=config.min_interval,
                mute_time_intervals=config.mute_time_intervals,
                active_time_intervals=config.active_time_intervals,
                defined=[interval.compiled() for interval in alerts.file.time_intervals],
            )
            start = parse_period(end, days=config.days, option="")  # named `days`, as in this config
            lineage = AssetLineage(context.instance)  # for inhibit: [{upstream: true}], as the runs read it
            run = replay_config(
                store,
                alerts,
                changes,
                name=config.alert or None,
                start=start,
                end=end,
                lineage=lineage,
            )
        except ValueError as exc:
            raise dg.Failure(description=f"cannot replay: {exc}") from None
        context.add_output_metadata(replay_metadata(run, single=bool(config.alert) and len(run.replays) == 1))
        current = sum(r.comparison.current.total for r in run.replays)
        proposed = sum(r.comparison.proposed.total for r in run.replays)
        context.log.info(f"replayed {len(run.replays)} alert(s): {current} notifications now, {proposed} proposed")

    return dg.JobDefinition(
        graph_def=dg.GraphDefinition(name=name, node_defs=[sqlsentinel_replay_op]),
        description="Replay alerts' recorded evaluations under other settings: fill in the config and launch.",
        executor_def=dg.in_process_executor,
    )


def replay_metadata(run: ReplayRun, *, single: bool) -> dict[str, dg.MetadataValue]:
    """``replay``: the Markdown summary, details and timelines; ``replay_json``: what ``sqlsentinel replay --json``
    prints, within :data:`INCIDENTS_IN_METADATA` and :data:`ALERTS_IN_METADATA`."""
    notes = run.notes
    if len(run.replays) > ALERTS_IN_METADATA:
        more = len(run.replays) - ALERTS_IN_METADATA
        notes = [
            *notes,
            f"the JSON has the {ALERTS_IN_METADATA} largest changes; {more} more alert(s) are in the table only "
            "(sqlsentinel replay --file FILE --json gives them all)",
        ]
    limit = INCIDENTS_IN_METADATA[0 if single else 1]
    rows = [as_json(r, limit, notes) for r in run.replays[:ALERTS_IN_METADATA]]
    return {
        "replay": dg.MetadataValue.md(markdown(run.replays, notes)),
        "replay_json": dg.MetadataValue.json(rows[0] if single else rows),
    }
