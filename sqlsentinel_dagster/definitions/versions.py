"""The alerts file's versions in the state database: record each valid version a code server loads, and when the
file cannot be used at all (no alert loads), run its last valid version instead, saying so loudly.

A new valid version that removes every alert of the version before it, or more than half of them, is valid and
runs, but one edit must not retire the alerts without anyone being told: :func:`load_version` compares it with the
version it replaced (read before recording it; on a later load of the same version, the one before it), and the
``sqlsentinel_config`` sensor reports the :class:`RemovedAlerts` and tells the fallback receivers once.

This needs the state database at load time: ``AlertStateResource.database_url``, ``STATE_DB_URL``, or the
Dagster instance of ``DAGSTER_HOME``. When none is reachable, nothing is recorded or compared and an unusable file
runs no alerts (the ``sqlsentinel_config`` sensor and the fallback receivers still say so).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .._yaml import read_text
from ..config import LoadedConfig, load_config
from ..config.targets import NotifyTarget
from ..errors import ConfigProblem
from ..redact import redact_text
from ..state.configs import SavedConfig, content_digest, last_valid, remember
from ..state.store import StateStore
from .resources import AlertStateResource, use_config

__all__ = ["NAMES_SHOWN", "LoadedVersion", "RemovedAlerts", "load_version", "removed_names"]

NAMES_SHOWN = 20
"""The most removed alerts a report names; the others are counted."""
_log = logging.getLogger("sqlsentinel")


@dataclass(frozen=True)
class RemovedAlerts:
    """A new valid version of an alerts file that removes every alert of the version it replaced, or more than
    half of them (see :func:`removed_names`)."""

    path: str
    """The alerts file."""
    before: int
    """How many alerts the replaced version had (as recorded when it was loaded)."""
    after: int
    """How many the new version has."""
    names: tuple[str, ...]
    """The alerts removed (names of the replaced version that the new one does not have), in its file order."""
    key: str
    """Which removal this is, the same on every tick and load: from the two versions' digests and when the replaced
    one was recorded (so the same edit made again later is told again)."""
    fallback: tuple[NotifyTarget, ...] = ()
    """The replaced version's fallback receivers: told when the new version has none (``alerts: []`` alone)."""

    def summary(self) -> str:
        """``3 alert(s) removed: was 4, now 1 (a, b, c)``: at most :data:`NAMES_SHOWN` names, then how many more."""
        shown = ", ".join(self.names[:NAMES_SHOWN])
        more = len(self.names) - NAMES_SHOWN
        shown += f" and {more} more" if more > 0 else ""
        return f"{len(self.names)} alert(s) removed: was {self.before}, now {self.after} ({shown})"


@dataclass(frozen=True)
class LoadedVersion:
    """What a load makes of the alerts file: the config that runs, and what its new version removed."""

    config: LoadedConfig
    """The file as loaded, or its last valid version when the file cannot be used."""
    removed: RemovedAlerts | None = None
    """Set when this valid version removes every alert of the version it replaced, or more than half of them."""


def removed_names(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """The alerts of ``before`` (names, in file order) that ``after`` lacks, when that is worth telling: every
    alert, or more than half of them, with fewer alerts left. Else an empty list.

    A renamed alert counts as removed (its state and history stay under the old name), but a version with as many
    alerts as before is never reported: renaming alerts is not retiring them."""
    kept = set(after)
    gone = [name for name in before if name not in kept]
    if len(after) < len(before) and 2 * len(gone) > len(before):
        return gone
    return []


def load_version(config: LoadedConfig, state: AlertStateResource, *, record: bool) -> LoadedVersion:
    """``config``, recorded as the latest valid version (``record``: a code server's load of a clean file) and
    compared with the version it replaced, or replaced by the last valid version when it loads no alert because
    of its problems. Never raises: without a usable state database, ``config`` as it is."""
    unusable = bool(config.problems) and not config.alerts
    if not unusable and (config.problems or not record):
        return LoadedVersion(config)
    try:
        store = _store_at_load(state)
        if store is None:
            return LoadedVersion(config)
        if not unusable:
            content = read_text(config.path)  # bounded read
            removed = _compare(store, config, content)
            remember(store, str(config.path), content, len(config.alerts))
            return LoadedVersion(config, removed)
        saved = last_valid(store, str(config.path))
    except Exception as exc:  # the state database is down or unreachable: load without it, never fail
        _log.warning("alerts file versions: the state database is not usable: %s", redact_text(str(exc))[:300])
        return LoadedVersion(config)
    if saved is None:
        return LoadedVersion(config)
    previous = load_config(config.path, text=saved.content, strict=False)
    note = ConfigProblem(
        0,
        "",
        f"the file cannot be used, so its last valid version runs until it is fixed: {saved.alerts} alert(s), "
        f"loaded {saved.loaded_at:%Y-%m-%d %H:%M} UTC (sha256 {saved.digest[:12]})",
        str(config.path),
    )
    running = replace(previous, problems=[*config.problems, note])
    use_config(config.path, running)  # the warehouse resources of this process read the same version
    _log.error("%s", note)
    return LoadedVersion(running)


def _compare(store: StateStore, config: LoadedConfig, content: str) -> RemovedAlerts | None:
    """What ``config`` (whose text is ``content``) removed of the version it replaced, if worth telling; None
    too when that cannot be found out (the version is recorded all the same)."""
    path = str(config.path)
    try:
        digest = content_digest(content)
        previous = last_valid(store, path, other_than=digest)
        if previous is None or previous.alerts <= len(config.alerts):  # as many alerts or more: nothing to tell
            return None
        earlier = load_config(config.path, text=previous.content, strict=False)
        gone = removed_names(earlier.alert_names, config.alert_names)
        if not gone:
            return None
        key = _key(path, previous, digest)
        fallback = tuple(earlier.fallback_targets())
        removed = RemovedAlerts(path, previous.alerts, len(config.alerts), tuple(gone), key, fallback)
    except Exception as exc:  # never keep a valid version from loading or being recorded
        _log.warning("alerts file versions: cannot compare with the previous version: %s", redact_text(str(exc))[:300])
        return None
    _log.warning("%s: %s", path, removed.summary())
    return removed


def _key(path: str, previous: SavedConfig, digest: str) -> str:
    told = f"{path}\n{previous.digest}\n{previous.loaded_at.isoformat()}\n{digest}"
    return hashlib.sha256(told.encode()).hexdigest()[:16]


def _store_at_load(state: AlertStateResource) -> StateStore | None:
    import dagster as dg

    url = state.database_url.get_value() if isinstance(state.database_url, dg.EnvVar) else state.database_url
    url = url or os.environ.get("STATE_DB_URL")
    if url:
        return AlertStateResource(database_url=url).get_store()
    if not os.environ.get("DAGSTER_HOME"):
        return None
    with dg.DagsterInstance.get() as instance:
        return state.get_store(instance)
