"""The alerts file's versions in the state database: record each valid version a code server loads, and when the
file cannot be used at all (no alert loads), run its last valid version instead, saying so loudly.

This needs the state database at load time: ``AlertStateResource.database_url``, ``STATE_DB_URL``, or the
Dagster instance of ``DAGSTER_HOME``. When none is reachable, nothing is recorded and an unusable file runs no
alerts (the ``sqlsentinel_config`` sensor and the fallback receivers still say so).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from ._yaml import read_text
from .config import LoadedConfig, load_config
from .errors import ConfigProblem
from .redact import redact_text
from .resources import AlertStateResource, use_config
from .state.configs import last_valid, remember
from .state.store import StateStore

__all__ = ["with_last_valid_version"]

_log = logging.getLogger("sqlsentinel")


def with_last_valid_version(config: LoadedConfig, state: AlertStateResource, *, record: bool) -> LoadedConfig:
    """``config``, recorded as the latest valid version (``record``: a code server's load of a clean file), or
    replaced by the last valid version when it loads no alert because of its problems."""
    unusable = bool(config.problems) and not config.alerts
    if not unusable and (config.problems or not record):
        return config
    try:
        store = _store_at_load(state)
        if store is None:
            return config
        if not unusable:
            remember(store, str(config.path), read_text(config.path), len(config.alerts))  # bounded read
            return config
        saved = last_valid(store, str(config.path))
    except Exception as exc:  # the state database is down or unreachable: load without it, never fail
        _log.warning("alerts file versions: the state database is not usable: %s", redact_text(str(exc))[:300])
        return config
    if saved is None:
        return config
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
    return running


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
