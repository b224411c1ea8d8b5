"""``sqlsentinel status | silence | unsilence | silences | history | prune``: alert state in the Dagster instance.

:data:`COMMANDS` lists them: ``status``, ``history`` and ``prune`` are in :mod:`.cli_history`, ``silence``,
``unsilence`` and ``silences`` in :mod:`.cli_silences`. What they share (with ``run`` and ``replay``) is in
:mod:`.cli_common`, and importable from here too.
"""

from __future__ import annotations

from .common import NO_TABLES, database_errors, database_option, open_store, printable
from .history import history, prune, status
from .silences import silence, silences, unsilence

__all__ = ["COMMANDS", "NO_TABLES", "database_errors", "database_option", "open_store", "printable"]

COMMANDS = [status, silence, unsilence, silences, history, prune]
"""The state commands, in the order ``sqlsentinel --help`` lists them."""
