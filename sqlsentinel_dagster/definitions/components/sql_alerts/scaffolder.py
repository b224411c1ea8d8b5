"""``dg scaffold defs sqlsentinel_dagster.SqlAlertsComponent NAME``: a defs.yaml and a starter alerts.yaml."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import BaseModel, Field

from ....naming import safe_name
from ....starter import starter_alerts

__all__ = ["SqlAlertsScaffoldParams", "SqlAlertsScaffolder"]


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
        starter = starter_alerts(params.database_url, name=safe_name(request.target_path.name))
        (request.target_path / "alerts.yaml").write_text(starter, encoding="utf-8")
