"""The ``sqlsentinel`` command: wires the commands, which live in their own modules and import none of this one.

A registry names each command's module and summary, as pip's does, so ``sqlsentinel --help`` imports no command
and a command imports only what it needs: the state commands never load Dagster when given ``--database-url``.

- :mod:`.alerts_file`: ``validate``, ``init``, ``list``, ``test-notify`` (the file, without Dagster)
- :mod:`.run`: ``run`` (evaluate alerts in the shell)
- :mod:`.replay`: ``replay`` (what other settings would have sent)
- :mod:`.history`: ``status``, ``history``, ``prune``; :mod:`.silences`: ``silence``, ``unsilence``, ``silences``
  (alert state in the Dagster instance)
- :mod:`.health`: ``health`` (is alerting live: ticks, run queue, state database, file version)

What the commands share is in :mod:`.common`.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import click

__all__ = ["COMMANDS", "main"]


class Command(NamedTuple):
    """Where a command lives, and the first sentence of its help (``--help`` lists it shortened, as click does)."""

    module: str
    function: str
    summary: str


COMMANDS = {
    "ack": Command(
        ".silences",
        "ack",
        "Acknowledge the firing alert (or instance) NAME: no reminders until it resolves; its resolved notice "
        "still goes out, and PagerDuty gets the acknowledge event.",
    ),
    "health": Command(
        ".health",
        "health",
        "Exit 0 and print one line when the alerting of PATH is live; exit 1 naming each cause when it is not.",
    ),
    "history": Command(
        ".history",
        "history",
        "The latest evaluations of NAME and statistics over everything recorded; without NAME, the latest "
        "evaluations of every alert.",
    ),
    "init": Command(
        ".alerts_file",
        "init",
        "Write a starter alerts.yaml and definitions.py into DIRECTORY; both validate and run as they are.",
    ),
    "list": Command(
        ".alerts_file",
        "list_alerts",
        "Show each alert in PATH: schedule, timezone, next run times, channels, job and schedule names.",
    ),
    "prune": Command(
        ".history",
        "prune",
        "Delete history, finished notifications, expired silences and gone instances older than --older-than.",
    ),
    "replay": Command(
        ".replay",
        "replay",
        "Replay the recorded evaluations of alert NAME through the alert-state decision, under its settings in "
        "the alerts file and under the settings the options propose, and compare: notifications by event, when "
        "each incident fires and resolves, incidents the proposal misses, and a timeline.",
    ),
    "run": Command(
        ".run", "run", "Evaluate the alerts in PATH now: status, value, decision and what was notified, per alert."
    ),
    "silence": Command(
        ".silences",
        "silence",
        "Silence the alert NAME (or every alert matching --match) for --duration or until --until.",
    ),
    "silences": Command(".silences", "silences", "Pending and active silences (--all: expired ones too)."),
    "status": Command(
        ".history",
        "status",
        "Every evaluated alert (with CONFIG_FILE: every alert in it, evaluated or not): state, since when, "
        "silenced or not, last value, last delivered notification.",
    ),
    "test-notify": Command(
        ".alerts_file",
        "test_notify",
        "Send a test message through the channels of alert NAME in PATH (SMTP_* and ${VAR} from the environment).",
    ),
    "unsilence": Command(
        ".silences", "unsilence", "End the silence with id TARGET, or the silences made for the alert named TARGET."
    ),
    "validate": Command(".alerts_file", "validate", "Check PATH; list every problem."),
}
"""Every command, by name: its module, its function, and its summary as ``--help`` shows it."""


class _Registry(click.Group):
    """A group whose commands are imported when one is run (or its own ``--help`` shown), not before."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = COMMANDS.get(cmd_name)
        if found is None:
            return None
        command: click.Command = getattr(importlib.import_module(found.module, __package__), found.function)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click lists commands, from the summaries: stand-ins cost nothing to make, the commands do."""
        stand_ins = [(name, click.Command(name, help=command.summary)) for name, command in sorted(COMMANDS.items())]
        limit = formatter.width - 6 - max(len(name) for name, _ in stand_ins)
        with formatter.section("Commands"):
            formatter.write_dl([(name, stand_in.get_short_help_str(limit)) for name, stand_in in stand_ins])


@click.group(cls=_Registry)
@click.version_option(package_name="sqlsentinel-dagster")
def main() -> None:
    """SQL alerts as Dagster jobs and schedules."""
