"""The package stays ruff- and mypy-clean (strict), as the style guide asks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import REPO

BIN = Path(sys.executable).parent


def test_ruff_finds_nothing() -> None:
    """ruff check passes on the package, tests, examples and benchmarks."""
    paths = ["sqlsentinel_dagster", "sqlsentinel_dagster_tests", "examples", "bench"]
    result = subprocess.run([str(BIN / "ruff"), "check", *paths], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    """mypy --strict (configured in pyproject.toml) passes on the package."""
    result = subprocess.run([str(BIN / "mypy")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
