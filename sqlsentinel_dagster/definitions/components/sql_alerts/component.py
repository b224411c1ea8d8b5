"""``SqlAlertsComponent``: an alerts file as a Dagster Component (``defs.yaml``), beside ``build_definitions``.

```yaml
# defs/my_alerts/defs.yaml
type: sqlsentinel_dagster.SqlAlertsComponent
attributes:
  path: alerts.yaml            # relative to this defs.yaml
  mode: checks                 # or jobs (default)
  name: my_alerts              # ends the file's sensor, job and schedule names; default: this folder's path
  state_database_url: "${STATE_DB_URL}"
  smtp_host: smtp.example.com
  smtp_password: "${SMTP_PASSWORD}"
  shard_size: 50               # checks mode: a tick of more alerts is launched as several runs
  run_tags: {dagster-celery/queue: alerts}
```

Secrets (``state_database_url``, ``smtp_password``, ``smtp_username``) are written ``${VAR}`` and resolved inside
each run, never while the definitions load; ``{{ env.X }}`` in them is refused, because Dagster would render it
into the definitions the UI shows.
"""

# No `from __future__ import annotations`: Dagster's Resolvable reads the field annotations at runtime.

import re
from pathlib import Path
from typing import Annotated, Literal

import dagster as dg
from pydantic import Field

from ...factory import build_definitions
from ...resources import AlertStateResource, NotificationsResource
from .scaffolder import SqlAlertsScaffolder

__all__ = ["SqlAlertsComponent"]

_WHOLE_VARIABLE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}$")

Secret = Annotated[str | None, dg.Resolver.passthrough()]


@dg.scaffold_with(SqlAlertsScaffolder)
class SqlAlertsComponent(dg.Component, dg.Resolvable, dg.Model):
    """SQL alerts from an alerts.yaml file: one job and schedule per alert, or asset checks in batched runs."""

    path: str = Field(default="alerts.yaml", description="The alerts file, relative to this defs.yaml.")
    mode: Literal["jobs", "checks"] = Field(
        default="jobs",
        description="jobs: one job and one schedule per alert; checks: alerts as asset checks, one batched job.",
    )
    name: str | None = Field(
        default=None,
        description="Ends the names of this file's sensors, checks job and schedules (sqlsentinel_config__<name>) "
        "so several alerts components live in one project; default: this component's folder under defs/, e.g. "
        "team_a. Alert names are not changed: they must be unique in the project.",
    )
    state_database_url: Secret = Field(
        default=None,
        description="SQLAlchemy URL for alert state, as ${VAR}; default: the Dagster instance's own database.",
    )
    webserver_base_url: str | None = Field(default=None, description="Base URL of the Dagster UI, for run links.")
    smtp_host: str | None = Field(default=None, description="SMTP server; default SMTP_HOST.")
    smtp_port: int | None = Field(default=None, description="SMTP port; default SMTP_PORT, else by security.")
    smtp_security: Literal["starttls", "ssl", "none"] | None = Field(
        default=None, description="starttls, ssl (implicit TLS) or none; default from SMTP_SECURITY."
    )
    smtp_username: Secret = Field(default=None, description="SMTP login, as ${VAR}; default SMTP_USERNAME.")
    smtp_password: Secret = Field(default=None, description="SMTP password, as ${VAR}; default SMTP_PASSWORD.")
    smtp_from_address: str | None = Field(default=None, description="From address; default SMTP_FROM_ADDRESS.")
    shard_size: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Checks mode: a tick with more alerts is launched as several runs (sets checks.shard_size).",
    )
    run_tags: dict[str, str] | None = Field(
        default=None, description="Tags of every alert run, for the run launcher and queue (added to runs.tags)."
    )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The same definitions ``build_definitions`` makes of the file, with these settings."""
        _refuse_templates("state_database_url", self.state_database_url)
        state = AlertStateResource(database_url=self.state_database_url)  # ${VAR} in it: resolved in the run
        notifications = NotificationsResource(
            webserver_base_url=self.webserver_base_url,
            smtp_host=self.smtp_host,
            smtp_port=self.smtp_port,
            smtp_security=self.smtp_security,
            smtp_username=_secret("smtp_username", self.smtp_username),
            smtp_password=_secret("smtp_password", self.smtp_password),
            smtp_from_address=self.smtp_from_address,
        )
        return build_definitions(
            context.path / self.path,
            mode=self.mode,
            name=self.name or _folder_name(context),
            state=state,
            notifications=notifications,
            shard_size=self.shard_size,
            run_tags=self.run_tags,
        )


def _folder_name(context: dg.ComponentLoadContext) -> str:
    """The component's folder relative to the defs folder, as a name: ``defs/teams/a`` gives ``teams_a``."""
    try:
        folder = context.path.relative_to(context.defs_module_path)
    except ValueError:  # a component loaded outside a defs folder (e.g. in a test)
        folder = Path(context.path.name)
    return "_".join(folder.parts) or context.path.name


def _refuse_templates(field: str, value: str | None) -> None:
    if value is not None and ("{{" in value or "{%" in value):
        raise ValueError(
            f"SqlAlertsComponent.{field}: write secrets as ${{VAR}} (resolved inside each run); "
            "a {{ env.X }} template would be rendered into the definitions the Dagster UI shows"
        )


def _secret(field: str, value: str | None) -> str | None:
    """``${VAR}`` as an ``EnvVar`` (read when a run starts), a literal value as is; templates are refused."""
    _refuse_templates(field, value)
    if value is None or "${" not in value:
        return value
    match = _WHOLE_VARIABLE.match(value)
    if match is None:
        raise ValueError(f"SqlAlertsComponent.{field}: write the whole value as one ${{VAR}}, got a partial reference")
    return dg.EnvVar(match.group("name"))
