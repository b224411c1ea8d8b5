"""sqlsentinel-dagster: SQL alerts from alerts.yaml as Dagster jobs and schedules."""

from .components import SqlAlertsComponent
from .config import AlertConfig, AlertsFile, DatabaseConfig, LoadedConfig, load_config
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
from .evaluate import evaluate_query
from .factory import build_definitions, build_job, build_schedule
from .naming import job_name, schedule_name
from .resources import AlertStateResource, NotificationsResource, WarehouseResource
from .results import AlertResult, parse_result

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
