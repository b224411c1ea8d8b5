"""sqlsentinel-dagster: SQL alerts from alerts.yaml as Dagster jobs and schedules."""

from .config import AlertConfig, AlertsFile, DatabaseConfig, LoadedConfig, load_config
from .cycle.evaluate import evaluate_query
from .cycle.results import AlertResult, parse_result
from .definitions.components import SqlAlertsComponent
from .definitions.factory import build_definitions
from .definitions.jobs_mode import build_job, build_schedule
from .definitions.resources import AlertStateResource, NotificationsResource, WarehouseResource
from .errors import (
    AlertQueryError,
    ConfigError,
    ConfigProblem,
    ResultContractError,
    SecretResolutionError,
    SentinelError,
    StateDatabaseError,
    TemplateLimitError,
    TemplateRenderError,
)
from .naming import job_name, schedule_name

__all__ = [
    "AlertConfig",
    "AlertQueryError",
    "AlertResult",
    "AlertStateResource",
    "AlertsFile",
    "ConfigError",
    "ConfigProblem",
    "DatabaseConfig",
    "LoadedConfig",
    "NotificationsResource",
    "ResultContractError",
    "SecretResolutionError",
    "SentinelError",
    "SqlAlertsComponent",
    "StateDatabaseError",
    "TemplateLimitError",
    "TemplateRenderError",
    "WarehouseResource",
    "build_definitions",
    "build_job",
    "build_schedule",
    "evaluate_query",
    "job_name",
    "load_config",
    "parse_result",
    "schedule_name",
]
