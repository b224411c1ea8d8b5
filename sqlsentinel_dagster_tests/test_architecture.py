"""The house stays readable: the import contracts hold (layers, no circle, no Dagster in the core), the package
and the CLI load Dagster only when it is used, and the command list is what click itself would print."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import sqlsentinel_dagster
from sqlsentinel_dagster.cli.main import COMMANDS, main
from sqlsentinel_dagster.state.model import Outcome, StateSettings
from sqlsentinel_dagster.state.silences import AlertLabels
from sqlsentinel_dagster.state.store import StateStore

from .conftest import REPO

BIN = Path(sys.executable).parent
LOADED = """
import json, sys
import click
from sqlsentinel_dagster.cli.main import main
try:
    main(sys.argv[1:], standalone_mode=False)
except (SystemExit, click.ClickException):  # e.g. unsilence with nothing to end: it ran all the same
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("dagster", "sqlsentinel_dagster"))))
"""
"""Run the command given as arguments in this process, then print the dagster and sqlsentinel modules loaded."""


def _loaded_by(*argv: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", LOADED, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def test_the_import_contracts_hold() -> None:
    """lint-imports (import-linter, contracts in pyproject.toml): the layers, no circle at any depth, and no
    Dagster import in the core but Dagster's cron parser."""
    done = subprocess.run([str(BIN / "lint-imports")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_help_and_the_package_load_neither_dagster_nor_the_component() -> None:
    """`sqlsentinel --help` imports no command module, no Dagster and no Dagster layer."""
    loaded = _loaded_by("--help")
    assert not [m for m in loaded if m.split(".")[0] == "dagster"]
    assert not [m for m in loaded if m.startswith(("sqlsentinel_dagster.definitions", "sqlsentinel_dagster.cycle"))]


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["history"],
        ["silences"],
        ["silence", "orders_late", "--duration", "1h"],
        ["unsilence", "orders_late"],
    ],
    ids=lambda argv: argv[0],
)
def test_state_commands_given_a_database_url_load_no_dagster(argv: list[str], tmp_path: Path) -> None:
    """The state commands with --database-url work without importing Dagster or the Dagster layer."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore.from_url(url)
    store.record(AlertLabels(name="orders_late"), Outcome("ALERT", actual_value=7.0), StateSettings(), {}, {}, None)
    loaded = _loaded_by(*argv, "--database-url", url)
    assert not [m for m in loaded if m.split(".")[0] == "dagster"], argv
    assert not [m for m in loaded if m.startswith("sqlsentinel_dagster.definitions")], argv
    assert f"sqlsentinel_dagster.cli.{COMMANDS[argv[0]].module[1:]}" in loaded  # the command did run


def test_validate_loads_dagster_for_the_cron_check_only_when_it_runs(tmp_path: Path) -> None:
    """validate checks crons with Dagster's own parser, so it loads Dagster, but never the Dagster layer."""
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text('database: {url: "sqlite://"}\nalerts:\n  - {name: a, query: "SELECT 1", schedule: "@daily"}\n')
    loaded = _loaded_by("validate", str(alerts))
    assert "dagster._utils.schedules" in loaded
    assert not [m for m in loaded if m.startswith("sqlsentinel_dagster.definitions")]


def test_the_command_list_is_the_one_click_prints_from_the_commands_themselves() -> None:
    """The registry's summaries are the commands' own first sentences: --help reads as an eager group's would."""
    eager = click.Group(name="main", help=main.help)
    for name in COMMANDS:
        command = main.get_command(click.Context(main), name)
        assert command is not None and command.name == name
        eager.add_command(command)
    lazy, plain = CliRunner().invoke(main, ["--help"]), CliRunner().invoke(eager, ["--help"])
    assert lazy.exit_code == plain.exit_code == 0
    assert lazy.output.split("Commands:")[1] == plain.output.split("Commands:")[1]


def test_every_public_name_resolves_and_is_listed() -> None:
    """`__all__` is sorted and complete: each name imports on first use and `dir()` shows it."""
    assert sqlsentinel_dagster.__all__ == sorted(sqlsentinel_dagster.__all__)
    for name in sqlsentinel_dagster.__all__:
        assert getattr(sqlsentinel_dagster, name) is not None
    assert set(sqlsentinel_dagster.__all__) <= set(dir(sqlsentinel_dagster))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = sqlsentinel_dagster.nothing_here  # type: ignore[attr-defined]


def test_no_module_is_much_over_three_hundred_lines() -> None:
    """Small files: every module of the package stays under 320 lines (the style guide aims at about 300)."""
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path in (REPO / "sqlsentinel_dagster").rglob("*.py")
    }
    assert {path: lines for path, lines in sizes.items() if lines > 320} == {}
