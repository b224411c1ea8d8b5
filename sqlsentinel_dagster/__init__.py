"""sqlsentinel-dagster: SQL alerts from alerts.yaml as Dagster jobs and schedules.

Every public name is imported when it is first used (PEP 562), so ``import sqlsentinel_dagster`` and the
``sqlsentinel`` command load neither Dagster nor the Component until something asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "AlertConfig": ".config",
    "AlertQueryError": ".errors",
    "AlertResult": ".cycle.results",
    "AlertStateResource": ".definitions.resources",
    "AlertsFile": ".config",
    "ConfigError": ".errors",
    "ConfigProblem": ".errors",
    "DatabaseConfig": ".config",
    "LoadedConfig": ".config",
    "NotificationsResource": ".definitions.resources",
    "ResultContractError": ".errors",
    "SecretResolutionError": ".errors",
    "SentinelError": ".errors",
    "SqlAlertsComponent": ".definitions.components",
    "StateDatabaseError": ".errors",
    "TemplateLimitError": ".errors",
    "TemplateRenderError": ".errors",
    "WarehouseResource": ".definitions.resources",
    "build_definitions": ".definitions.factory",
    "build_job": ".definitions.jobs_mode",
    "build_schedule": ".definitions.jobs_mode",
    "evaluate_query": ".cycle.evaluate",
    "job_name": ".naming",
    "load_config": ".config",
    "parse_result": ".cycle.results",
    "schedule_name": ".naming",
}
"""Where each public name lives."""

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


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported now (and kept, so this runs once per name)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the public ones not yet imported included (``dg list components`` reads them)."""
    return sorted({*globals(), *__all__})
