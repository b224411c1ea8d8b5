"""The SqlAlertsComponent and its scaffolder."""
