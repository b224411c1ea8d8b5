"""Loaded versions of alerts files (``sqlsentinel_configs``): an audit trail, and the last valid version to keep
running while the file cannot be used (as SQL Sentinel's ``sqlsentinel_configs`` table did)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from .schema import configs
from .store import StateStore

__all__ = ["SavedConfig", "content_digest", "last_valid", "remember"]


@dataclass(frozen=True)
class SavedConfig:
    """A valid version of an alerts file, as it was loaded."""

    digest: str
    loaded_at: dt.datetime
    alerts: int
    content: str


def _path_key(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def content_digest(content: str) -> str:
    """The digest a version of a file is recorded under (``SavedConfig.digest``): sha256 of its text, in hex."""
    return hashlib.sha256(content.encode()).hexdigest()


def remember(store: StateStore, path: str, content: str, alerts: int) -> bool:
    """Record ``content`` as the latest valid version of ``path`` unless it already is; True if recorded."""
    digest = content_digest(content)
    latest = last_valid(store, path)
    if latest is not None and latest.digest == digest:
        return False
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(configs).values(
                path_key=_path_key(path),
                path=path,
                digest=digest,
                loaded_at=store.clock(),
                alerts=alerts,
                content=content,
            )
        )
    return True


def last_valid(store: StateStore, path: str, *, other_than: str | None = None) -> SavedConfig | None:
    """The latest valid version recorded for ``path``; with ``other_than`` (a digest), the latest with another
    content: the version that one replaced, whether or not it is recorded yet."""
    query = (
        sa.select(configs.c.digest, configs.c.loaded_at, configs.c.alerts, configs.c.content)
        .where(configs.c.path_key == _path_key(path))
        .order_by(configs.c.id.desc())
        .limit(1)
    )
    if other_than is not None:
        query = query.where(configs.c.digest != other_than)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return SavedConfig(*row) if row is not None else None
