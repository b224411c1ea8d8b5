"""Helpers for tests that run real Dagster processes (`dagster`, `dagster-daemon`) against a DAGSTER_HOME."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

BIN = Path(sys.executable).parent
"""The virtualenv's scripts: `dagster`, `dagster-daemon`, `sqlsentinel`."""


def dagster_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a Dagster process on the instance in ``home``, without telemetry."""
    return {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", **extra}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every second; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def sensor_ticks(instance: dg.DagsterInstance, name: str) -> int:
    """How many ticks the daemon has recorded for the sensor ``name`` (0 before its first)."""
    states = [s for s in instance.all_instigator_state() if s.name == name]
    if not states:
        return 0
    return len(instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=1000))
