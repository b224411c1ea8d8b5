"""Compiled alerts files: the validated configuration, saved once so a run reads only the alerts it runs.

Parsing and validating a file of 5,000 alerts takes about 2 s of CPU; a run of one alert needs one of them.
When a file is first loaded (by the code server), its validated form is written to the cache folder, keyed by
a digest of the file's path and bytes and of this package's version: a header (file-level settings and the
alerts' names) and one entry per alert. A run worker loading the same bytes reads the header and then only
the entries it asks for. The entry is used only if every variable substituted at load time (``${VAR}`` in
schedules, names...; never secrets, which stay ``${VAR}`` until the run) still has the same value.

The cache folder is ``$SQLSENTINEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/sqlsentinel``, else
``~/.cache/sqlsentinel``; it is created private to the user (0700), and anything unreadable there is ignored
(the file is then parsed as usual). Each load by a code server touches its entry; entries untouched for a week
are removed when a new one is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import struct
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .loader import LoadedConfig
from .models import AlertConfig

__all__ = ["CompiledConfig", "cache_dir", "load_compiled", "save_compiled"]

_FORMAT = 1
_KEEP_SECONDS = 7 * 24 * 3600
_LENGTH = struct.Struct(">Q")
_log = logging.getLogger("sqlsentinel")


def cache_dir() -> Path:
    """Where compiled files are kept."""
    explicit = os.environ.get("SQLSENTINEL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sqlsentinel"


def _entry_path(source: Path, content: bytes) -> Path:
    digest = hashlib.sha256(f"{_FORMAT}\0{source}\0".encode())
    for module in sorted(Path(__file__).parent.glob("*.py")):  # the models' code: a change invalidates entries
        digest.update(module.read_bytes())
    digest.update(content)
    return cache_dir() / f"{digest.hexdigest()[:32]}.compiled"


@dataclass(frozen=True)
class CompiledConfig(LoadedConfig):
    """A validated alerts file read from the cache: alerts are read one by one, when asked for."""

    names: tuple[str, ...] = ()
    entry: Path = Path()
    offsets: tuple[tuple[int, int], ...] = ()
    _read: dict[str, AlertConfig] = field(default_factory=dict, repr=False, compare=False)

    @property
    def alerts(self) -> list[AlertConfig]:
        """Every alert (all entries are read)."""
        return [self._load(i) for i in range(len(self.names))]

    @property
    def alert_names(self) -> list[str]:
        """The alerts' names, in file order, without reading the alerts."""
        return list(self.names)

    def alert(self, name: str) -> AlertConfig:
        """The alert called ``name``, read from its entry on first use."""
        try:
            return self._load(self.names.index(name))
        except ValueError:
            raise KeyError(name) from None

    def _load(self, index: int) -> AlertConfig:
        name = self.names[index]
        if name not in self._read:
            offset, length = self.offsets[index]
            with self.entry.open("rb") as handle:
                handle.seek(offset)
                alert = pickle.loads(handle.read(length))
            if not isinstance(alert, AlertConfig):
                raise KeyError(name)
            self._read[name] = alert
        return self._read[name]


def save_compiled(config: LoadedConfig, content: bytes) -> None:
    """Write the compiled form of ``config`` (loaded from ``content``), unless it is already there."""
    target = _entry_path(config.path, content)
    if target.exists():
        with contextlib.suppress(OSError):
            os.utime(target)  # in use: keep it out of the pruning below
        return
    blobs = [pickle.dumps(alert, protocol=pickle.HIGHEST_PROTOCOL) for alert in config.alerts]
    base = replace(config, file=config.file.model_copy(update={"alerts": []}))
    offsets, position = [], 0
    for blob in blobs:
        offsets.append((position, len(blob)))
        position += len(blob)
    header = pickle.dumps(
        {"format": _FORMAT, "base": base, "names": config.alert_names, "offsets": offsets},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".tmp") as handle:
            handle.write(_LENGTH.pack(len(header)) + header + b"".join(blobs))
        os.replace(handle.name, target)
        _prune(target.parent)
    except OSError as exc:  # a read-only home, a full disk: runs parse the file instead
        _log.debug("could not save the compiled alerts file %s: %s", target, exc)


def _prune(folder: Path) -> None:
    """Remove compiled files no code server has loaded for a week (edited files leave old versions behind)."""
    cutoff = time.time() - _KEEP_SECONDS
    for entry in folder.glob("*.compiled"):
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                entry.unlink()


def load_compiled(source: Path, content: bytes, environ: Mapping[str, str]) -> CompiledConfig | None:
    """The compiled form of ``source`` with exactly ``content``, or None (not saved, stale, unreadable)."""
    entry = _entry_path(source, content)
    try:
        with entry.open("rb") as handle:
            (length,) = _LENGTH.unpack(handle.read(_LENGTH.size))
            header: dict[str, Any] = pickle.loads(handle.read(length))
    except (OSError, pickle.UnpicklingError, struct.error, EOFError, AttributeError, ImportError):
        return None
    base = header.get("base")
    if header.get("format") != _FORMAT or not isinstance(base, LoadedConfig):
        return None
    if any(environ.get(name) != value for name, value in base.environment.items()):
        return None  # a variable the schedules or names were built from has changed
    start = _LENGTH.size + length
    return CompiledConfig(
        path=base.path,
        file=base.file,
        notes=base.notes,
        environment=base.environment,
        names=tuple(header["names"]),
        entry=entry,
        offsets=tuple((start + offset, size) for offset, size in header["offsets"]),
    )
