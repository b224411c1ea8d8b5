"""Dagster resources: the warehouse connections alert jobs query."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import dagster as dg
from pydantic import Field
from sqlalchemy.engine import Engine, make_url

from . import envsubst
from .config import AlertConfig, LoadedConfig, load_config
from .evaluate import AlertResult, create_warehouse_engine, evaluate_query, resolve_sqlite_path

__all__ = ["WarehouseResource"]


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """A warehouse named in an alerts file, connected with SQLAlchemy inside the run.

    The resource's config holds only where the URL is written (file and database name), never the URL itself:
    ``${VAR}`` references and any password are resolved in the run process, so the Dagster UI, run config
    and event log never show them.
    """

    config_path: str = Field(description="Absolute path of the alerts file that defines this warehouse.")
    database: str = Field(description="Name of the warehouse in the file ('default' for the single `database:` form).")

    def get_engine(self) -> Engine:
        """A pooled SQLAlchemy engine for this warehouse (one per URL and process)."""
        return _engine(self._resolved_url(f"database '{self.database}'"))

    def evaluate(self, alert: AlertConfig) -> AlertResult:
        """Run ``alert``'s query on this warehouse, read-only and bounded by the alert's timeout."""
        url = self._resolved_url(f"alert '{alert.name}': database '{self.database}' url")
        password = make_url(url).password
        return evaluate_query(
            _engine(url),
            alert=alert.name,
            database=self.database,
            query=alert.query,
            timeout=alert.timeout,
            secrets=[str(password)] if password else [],
        )

    def _resolved_url(self, where: str) -> str:
        config = cached_config(self.config_path)
        template = config.file.all_databases()[self.database].url
        url = envsubst.resolve(template, where)
        return resolve_sqlite_path(url, config.path.parent)


@functools.lru_cache(maxsize=64)
def _engine(url: str) -> Engine:
    return create_warehouse_engine(url)


_CONFIGS: dict[str, tuple[int, LoadedConfig]] = {}


def cached_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """``load_config(path)``, reused while the file is unchanged (definitions and runs share one load)."""
    key = str(Path(path).resolve())
    mtime = Path(key).stat().st_mtime_ns
    hit = _CONFIGS.get(key)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    config = load_config(key)
    _CONFIGS[key] = (mtime, config)
    return config
