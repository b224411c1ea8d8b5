"""``dg scaffold defs sqlsentinel_dagster.SqlAlertsComponent NAME``: a defs.yaml and a starter alerts.yaml."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import BaseModel, Field

__all__ = ["SqlAlertsScaffoldParams", "SqlAlertsScaffolder"]

STARTER = """\
# SQL alerts, one per entry: a read-only query returning a 'status' column ('ALERT' or 'OK'), and optional
# 'actual_value' and 'threshold' columns. Every key is described in the sqlsentinel-dagster README.
database:
  url: "{url}"                # ${{VAR}} is resolved inside each run; relative SQLite paths: from this folder
receivers:
  team: {{channel: log}}      # the run log; swap in slack, email, webhook, pagerduty or msteams
alerts:
  - name: example_always_ok
    description: "Replace with your own check, e.g. rows loaded in the last hour"
    query: |
      SELECT 'OK' AS status, 0 AS actual_value, 0 AS threshold
    schedule: "@hourly"
    notify: [team]
"""


class SqlAlertsScaffoldParams(BaseModel):
    """Options of ``dg scaffold defs sqlsentinel_dagster.SqlAlertsComponent NAME``."""

    database_url: str = Field(
        default="sqlite:///warehouse.db",
        description="Warehouse URL written into alerts.yaml (use ${VAR} for passwords).",
    )
    mode: Literal["jobs", "checks"] = Field(default="jobs", description="jobs or checks (asset checks, batched).")


class SqlAlertsScaffolder(dg.Scaffolder[SqlAlertsScaffoldParams]):
    """Writes ``defs.yaml`` (path and mode) and a starter ``alerts.yaml`` that validates and runs as is."""

    @classmethod
    def get_scaffold_params(cls) -> type[SqlAlertsScaffoldParams]:
        """The options ``dg scaffold defs`` accepts."""
        return SqlAlertsScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[SqlAlertsScaffoldParams]) -> None:
        """Write the two files into the new component's folder."""
        params = request.params or SqlAlertsScaffoldParams()
        dg.scaffold_component(request, {"path": "alerts.yaml", "mode": params.mode})
        url = params.database_url.replace('"', '\\"')
        (request.target_path / "alerts.yaml").write_text(STARTER.format(url=url), encoding="utf-8")
