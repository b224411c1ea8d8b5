"""Starter files for a new project: an alerts.yaml that validates and runs as is, and a definitions.py.

``sqlsentinel init`` and the Component's scaffolder (``dg scaffold defs``) both write them.
"""

from __future__ import annotations

__all__ = ["starter_alerts", "starter_definitions"]

STARTER = """\
# SQL alerts, one per entry: a read-only query returning a 'status' column ('ALERT' or 'OK'), and optional
# 'actual_value' and 'threshold' columns. Every key is described in the sqlsentinel-dagster README.
database:
  # ${{VAR}} is resolved inside each run; a relative SQLite path is relative to this file
  url: "{url}"
receivers:
  team: {{channel: log}}  # the run log; swap in slack, email, webhook, pagerduty or msteams
alerts:
  - name: {name}_always_ok
    description: "Replace with your own check, e.g. rows loaded in the last hour"
    query: |
      SELECT 'OK' AS status, 0 AS actual_value, 0 AS threshold
    schedule: "@hourly"
    notify: [team]
"""


DEFINITIONS = """\
\"\"\"Dagster definitions for the alerts in alerts.yaml (`dagster dev -f definitions.py`).\"\"\"

from pathlib import Path

from sqlsentinel_dagster import build_definitions

defs = build_definitions(Path(__file__).parent / "alerts.yaml", mode="{mode}")
"""


def starter_alerts(database_url: str, name: str = "example") -> str:
    """A starter alerts.yaml on ``database_url``: one alert, ``<name>_always_ok``, that is always OK, notifying the
    run log (alert names are unique in a code location: each scaffolded component names its own)."""
    return STARTER.format(url=database_url.replace("\\", "\\\\").replace('"', '\\"'), name=name)


def starter_definitions(mode: str) -> str:
    """A definitions.py loading alerts.yaml beside it in ``mode`` (jobs or checks)."""
    return DEFINITIONS.format(mode=mode)
