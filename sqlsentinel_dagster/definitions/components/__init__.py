"""Dagster Components (``defs.yaml``) for sqlsentinel-dagster."""

from .sql_alerts.component import SqlAlertsComponent
from .sql_alerts.scaffolder import SqlAlertsScaffolder, SqlAlertsScaffoldParams

__all__ = ["SqlAlertsComponent", "SqlAlertsScaffoldParams", "SqlAlertsScaffolder"]
