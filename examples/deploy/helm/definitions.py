"""Code location of the Helm example: the alerts file mounted from the sqlsentinel-alerts ConfigMap, in checks mode.

SQLSENTINEL_ALERTS_FILE (set in values.yaml) names the file; run pods launched by the K8sRunLauncher get the same
variable and the same mount, so a run reads the file its code server read.
"""

from __future__ import annotations

import os

from sqlsentinel_dagster import build_definitions

defs = build_definitions(os.environ.get("SQLSENTINEL_ALERTS_FILE", "/opt/alerts/alerts.yaml"), mode="checks")
