"""The pydantic model of ``alerts.yaml``: strict (unknown keys are errors), validated when loaded."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator

from ..durations import parse_duration
from ..state.time_intervals import TimeInterval
from .baseline import BaselineSpec
from .fields import (
    AssetKeyPath,
    Cron,
    Duration,
    Owner,
    Query,
    ReceiverName,
    Streak,
    TagKey,
    TagValue,
    Timeout,
    Timezone,
    as_list,
)
from .heartbeat import Heartbeat
from .inhibit import InhibitRuleSpec
from .instances import InstancesSpec
from .routes import Route, RoutedBy
from .rows import RowsSpec
from .runs import ChecksSettings, RunSettings
from .targets import CHANNELS, InlineTarget, NotifyEntry, NotifyTarget, Secret
from .time_intervals import NamedTimeInterval
from .watch import WatchRule

__all__ = ["CHANNELS", "AlertConfig", "AlertDefaults", "AlertsFile", "DatabaseConfig", "NotifyTarget", "Severity"]

Severity = Literal["info", "warning", "error", "critical"]
NoData = Literal["error", "ok", "alert", "keep"]
ScheduleStatus = Literal["running", "stopped"]

MAX_INSTANCE_ALERT_NAME = 150
"""The longest name of an alert with ``instances:`` (its instances' names add their labels, up to 200 in all)."""


def _routes_form(value: Any) -> str:
    return "list" if isinstance(value, list) else "by_severity"


def _routes(value: Any) -> Any:
    if not isinstance(value, dict | list):
        raise ValueError(
            f"expected a mapping of severity to receiver names, or a list of routes (- match: [...], receivers: "
            f"[...]), got {type(value).__name__} {value!r}"
        )
    return value


Routes = Annotated[
    Annotated[dict[Severity, list[str]], Tag("by_severity")] | Annotated[list[Route], Tag("list")],
    Discriminator(_routes_form),
    BeforeValidator(_routes),
]
"""``routes:``: receiver names by severity, or a list of routes matching by label (see ``routes``)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class DatabaseConfig(_Strict):
    """A warehouse connection. The URL may contain ``${VAR}``; it is resolved inside the run, never earlier."""

    url: Secret = Field(description="SQLAlchemy URL, e.g. postgresql://user:${DB_PASSWORD}@host/db")
    dialect: str | None = Field(
        default=None,
        description="sqlglot dialect used to check queries are read-only; inferred from the URL when omitted",
    )
    timeout: Timeout | None = Field(
        default=None, description="Default timeout of the alerts on this database (an alert's own timeout wins)"
    )
    pool_size: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Connections to this warehouse at once: the engine's pool, and the cap on concurrent queries "
        "in a checks-mode batch",
    )


class AlertDefaults(_Strict):
    """Settings every alert inherits unless it sets them itself (``tags`` are merged)."""

    schedule: Cron | None = None
    timezone: Timezone | None = None
    severity: Severity | None = None
    owners: list[Owner] | None = None
    tags: dict[TagKey, TagValue] | None = None
    timeout: Timeout | None = None
    database: str | None = None
    enabled: bool | None = None
    schedule_status: ScheduleStatus | None = None
    notify: list[NotifyEntry] | None = None
    repeat_interval: Duration | None = None
    for_: Streak | None = Field(default=None, alias="for")
    recover_after: Streak | None = None
    error_after: Streak | None = None
    asset: AssetKeyPath | None = None
    on_materialization: bool | None = None
    min_interval: Duration | None = None
    mute_time_intervals: list[str] | None = None
    active_time_intervals: list[str] | None = None


class AlertConfig(_Strict):
    """One alert: a query returning a ``status`` column, when to run it and whom to tell."""

    name: str = Field(min_length=1, max_length=200, description="Unique name; job and schedule names derive from it")
    description: str = ""
    query: Query
    schedule: Cron | None = Field(
        default=None, description="Cron expression; optional only with on_materialization: true"
    )
    enabled: bool = True
    timezone: Timezone = "UTC"
    severity: Severity = "warning"
    owners: list[Owner] = Field(default_factory=list)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    timeout: Timeout = 60.0
    database: str | None = None
    schedule_status: ScheduleStatus | None = Field(
        default=None, description="'running' or 'stopped'; default: running when enabled, stopped when not"
    )
    notify: list[NotifyEntry] = Field(default_factory=list, description="Targets inline, or receiver names")
    repeat_interval: Duration | None = Field(
        default=None, description="While firing, remind this often (e.g. '4h'); unset: never remind"
    )
    for_: Streak = Field(default=1, alias="for", description="Consecutive ALERT results needed before firing")
    recover_after: Streak = Field(default=1, description="Consecutive OK results needed before resolving")
    error_after: Streak = Field(default=1, description="Consecutive errors needed before notifying an error")
    min_interval: Duration | None = Field(
        default=None,
        description="Hold a new firing notification while the last one sent is younger than this (e.g. '30m'); "
        "sent when it expires if the alert still fires",
    )
    mute_time_intervals: list[str] = Field(
        default_factory=list, description="Names of time_intervals during which notifications are held"
    )
    active_time_intervals: list[str] = Field(
        default_factory=list, description="Names of time_intervals outside which notifications are held"
    )
    asset: AssetKeyPath | None = Field(
        default=None,
        description="Asset key the alert watches ('shop/orders' or ['shop', 'orders']): in checks mode the alert "
        "is an asset check on it",
    )
    on_materialization: bool = Field(
        default=False, description="Also evaluate after each materialization of `asset` (one evaluation per burst)"
    )
    rows: RowsSpec | None = Field(
        default=None, description="A failed-rows alert: fires when the query returns more than `max` rows"
    )
    baseline: BaselineSpec | None = Field(
        default=None,
        description="Learn the threshold from the alert's recorded actual_value (the status column becomes optional)",
    )
    instances: InstancesSpec | None = Field(
        default=None,
        description="One instance per row, named by the `by` label columns, each with its own state and notifications",
    )
    no_data: NoData = Field(
        default="error",
        description="What a result without rows means: error (default), ok, alert, or keep (the alert stays as it is)",
    )
    routed_by: RoutedBy | None = Field(
        default=None, description="Set by the loader (not written in alerts.yaml): notify came from a list of routes"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> AlertConfig:
        if self.rows is not None and self.baseline is not None:
            raise ValueError("rows and baseline cannot be combined: a failed-rows alert's threshold is rows.max")
        if self.instances is not None and ("{" in self.name or len(self.name) > MAX_INSTANCE_ALERT_NAME):
            raise ValueError(
                f"an instance alert's name has no '{{' and at most {MAX_INSTANCE_ALERT_NAME} characters: its instances "
                "are named <alert>{labels}, and the name must stay whole in them"
            )
        if self.no_data != "error" and (self.instances is not None or self.rows is not None):
            kind = "an instance alert counts every instance missing" if self.instances else "0 rows is OK"
            raise ValueError(
                f"no_data applies to alerts that read one row; on this one an empty result is clear: {kind}"
            )
        if self.instances is not None and self.rows is not None:
            raise ValueError(
                "instances and rows cannot be combined: a failed-rows alert counts its rows, an instance alert "
                "judges each row on its own"
            )
        return self

    @property
    def schedule_running(self) -> bool:
        """Whether the schedule starts RUNNING (until someone toggles it in the UI)."""
        if self.schedule is None:
            return False
        if self.schedule_status is None:
            return self.enabled
        return self.enabled and self.schedule_status == "running"


class AlertsFile(_Strict):
    """The whole ``alerts.yaml``: warehouses, defaults, alerts, and watch rules for asset checks."""

    database: DatabaseConfig | None = None
    databases: dict[str, DatabaseConfig] = Field(default_factory=dict)
    receivers: dict[ReceiverName, Annotated[list[InlineTarget], BeforeValidator(as_list)]] = Field(
        default_factory=dict, description="Named notification targets, referenced by name from notify lists"
    )
    routes: Routes = Field(
        default_factory=dict,
        description="For alerts that set no notify of their own: receivers per severity, or a list of routes "
        "matching by label (first match wins unless continue: true)",
    )
    fallback: list[NotifyEntry] = Field(
        default_factory=list,
        description="Told when notifications are given up, evaluations error, or an alert job fails unexpectedly",
    )
    defaults: AlertDefaults = Field(default_factory=AlertDefaults)
    alerts: list[AlertConfig]
    watch: list[WatchRule] = Field(
        default_factory=list, description="Rules that notify about the deployment's asset checks (optional)"
    )
    inhibit: list[InhibitRuleSpec] = Field(
        default_factory=list, description="Rules holding alerts while a matching alert fires (Alertmanager's)"
    )
    time_intervals: list[NamedTimeInterval] = Field(
        default_factory=list, description="Named time intervals (Alertmanager's syntax) that alerts mute or act in"
    )
    checks: ChecksSettings = Field(
        default_factory=ChecksSettings, description="Checks mode's batches: shard_size splits a tick into runs"
    )
    runs: RunSettings = Field(
        default_factory=RunSettings,
        description="What every alert run carries: tags for the run launcher and queue, max_runtime, max_retries",
    )
    watch_interval: Annotated[float, BeforeValidator(parse_duration), Field(ge=5, le=3600)] = Field(
        default=30.0,
        description="How often the sqlsentinel_watch sensor reads new asset check evaluations (5s to 1h)",
    )
    heartbeat: Heartbeat | None = Field(
        default=None,
        description="A dead man's switch: ping a URL every `every` while alerting is live (sqlsentinel_heartbeat)",
    )

    def targets(self, entries: list[Any]) -> list[NotifyTarget]:
        """``entries`` with receiver names replaced by the receivers' targets."""
        expanded: list[NotifyTarget] = []
        for entry in entries:
            expanded.extend(self.receivers[entry] if isinstance(entry, str) else [entry])
        return expanded

    def time_windows(self, names: list[str]) -> tuple[TimeInterval, ...]:
        """The named time intervals, as the decision reads them (names the file does not define are refused when
        it loads)."""
        defined = {interval.name: interval for interval in self.time_intervals}
        return tuple(defined[name].compiled() for name in names if name in defined)

    def all_databases(self) -> dict[str, DatabaseConfig]:
        """Named databases, with the single ``database:`` form available as ``default``."""
        merged = dict(self.databases)
        if self.database is not None:
            merged.setdefault("default", self.database)
        return merged
