"""The ``sqlsentinel`` command: wires the commands, which live in their own modules and import none of this one.

- :mod:`.alerts_file`: ``validate``, ``init``, ``list``, ``test-notify`` (the file, without Dagster)
- :mod:`.run`: ``run`` (evaluate alerts in the shell)
- :mod:`.replay`: ``replay`` (what other settings would have sent)
- :mod:`.history`: ``status``, ``history``, ``prune``; :mod:`.silences`: ``silence``, ``unsilence``, ``silences``
  (alert state in the Dagster instance)

What the commands share is in :mod:`.common`.
"""

from __future__ import annotations

import click

from .alerts_file import init, list_alerts, test_notify, validate
from .history import history, prune, status
from .replay import replay
from .run import run
from .silences import silence, silences, unsilence

__all__ = ["main"]


@click.group()
@click.version_option(package_name="sqlsentinel-dagster")
def main() -> None:
    """SQL alerts as Dagster jobs and schedules."""


for _command in (
    validate,
    init,
    list_alerts,
    test_notify,
    run,
    replay,
    status,
    silence,
    unsilence,
    silences,
    history,
    prune,
):
    main.add_command(_command)
