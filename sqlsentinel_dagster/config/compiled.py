"""Compiled alerts files: the validated configuration, saved once so a run reads only the alerts it runs.

Parsing and validating a file of 5,000 alerts takes about 2 s of CPU; a run of one alert needs one of them.
When a file is first loaded (by the code server), its validated form is written to the cache folder as one
entry, keyed by a digest of the file's path and bytes and of this package's config code: a header (file-level
settings, the alerts' names and where each alert is) and one document per alert. A run worker loading the same
bytes reads the header and then only the alerts it asks for. The entry is used only if every variable
substituted at load time (``${VAR}`` in schedules, names...; never secrets, which stay ``${VAR}`` until the
run) still has the same value.

**Data, never code.** An entry is JSON (a fixed binary prefix, then the header, then one JSON document per
alert), read back through the same pydantic models that validate ``alerts.yaml``: the worst a damaged or
planted entry can give is a configuration those models accept, never code to run (a pickle runs whatever its
author put in it). Before writing, every part is read back and compared with what was parsed: a configuration
that would not come back identical is not cached. The prefix carries the format, the full key and a digest of
the header; the header carries a digest of each alert's bytes, so damage anywhere is noticed.

**Trust.** The cache folder is ``$SQLSENTINEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/sqlsentinel``, else
``~/.cache/sqlsentinel``. It is used only when it is a folder owned by the current (effective) user and not
writable by group or others; one created here is made 0700. An entry is used only when it is a regular file
with the same owner and the same rule, opened without following a symbolic link at its name. Anything else is
refused with a warning, once per process, and the file is parsed instead. Entries are written 0600 to a new
temporary file in the same folder, then moved into place with ``os.replace``; every step goes through a
descriptor of the checked folder, so the folder cannot be swapped between the check and its use.

**Misses.** A missing, unreadable, refused, truncated, corrupted, wrong-format or stale entry, or a folder
that cannot be created or written (read-only home, full disk), means the file is parsed as usual:
``load_compiled`` and ``save_compiled`` never raise. If an alert's entry cannot be read after its header was
(it was removed meanwhile), the alert comes from a parse of the file. A file that loads no alert because of its
problems is not cached: runs parse it, and so fall back on its last valid version. Each load by a code server
checks its entry against its digests and touches it (a damaged one is written again); entries untouched for a
week are removed when a new one is written. Needs POSIX (owners, ``O_NOFOLLOW``, descriptor-relative calls);
elsewhere nothing is cached.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import logging
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .cache_files import FORMAT, MAGIC, MAX_ENTRY_BYTES, PREFIX, Header, checksum, open_folder, warn_once
from .loaded import LoadedConfig
from .loader import load_config
from .models import AlertConfig, AlertsFile

__all__ = ["CompiledConfig", "cache_dir", "code_digest", "load_compiled", "save_compiled"]

_SUPPORTED = (
    hasattr(os, "geteuid")
    and hasattr(os, "O_NOFOLLOW")
    and {os.open, os.rename, os.stat, os.unlink} <= os.supports_dir_fd  # os.replace is listed as os.rename
    and {os.scandir, os.utime} <= os.supports_fd
)
_log = logging.getLogger("sqlsentinel")


def cache_dir() -> Path:
    """Where compiled files are kept."""
    explicit = os.environ.get("SQLSENTINEL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sqlsentinel"


@functools.cache
def _code_digest() -> bytes:
    """:func:`code_digest` of this package, once per process."""
    return code_digest(Path(__file__).resolve().parent.parent)


def code_digest(package: Path) -> bytes:
    """A digest of the code validation depends on: every module of the package at ``package`` (config, read-only
    checks, templates, durations, crons...) and the versions of the libraries it validates with. A change of any
    of them (an upgrade) invalidates every entry."""
    digest = hashlib.sha256()
    for module in sorted(package.rglob("*.py")):
        digest.update(str(module.relative_to(package)).encode() + b"\0" + module.read_bytes())
    for library in ("dagster", "pydantic", "sqlglot", "sqlalchemy", "jinja2", "pyyaml", "google-re2"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            digest.update(f"{library}=={importlib.metadata.version(library)}\0".encode())
    return digest.digest()


def _key(source: Path, content: bytes) -> bytes:
    """What an entry is valid for: this format, the file's path and bytes, and the models' code."""
    digest = hashlib.sha256(f"{FORMAT}\0{source}\0".encode())
    digest.update(_code_digest())
    digest.update(content)
    return digest.digest()


def _entry_name(key: bytes) -> str:
    return f"{key.hex()[:32]}.compiled"


def _entry_path(source: Path, content: bytes) -> Path:
    return cache_dir() / _entry_name(_key(source, content))


@dataclass(frozen=True)
class CompiledConfig(LoadedConfig):
    """A validated alerts file read from the cache: alerts are read one by one, when asked for."""

    names: tuple[str, ...] = ()
    entry: Path = Path()
    key: bytes = field(default=b"", repr=False)
    offsets: tuple[tuple[int, int], ...] = ()
    """Per alert: offset in the entry and length."""
    digests: tuple[str, ...] = field(default=(), repr=False)
    _read: dict[str, AlertConfig] = field(default_factory=dict, repr=False, compare=False)

    @property
    def alerts(self) -> list[AlertConfig]:
        """Every alert (all entries are read)."""
        return self._load(range(len(self.names)))

    @property
    def alert_names(self) -> list[str]:
        """The alerts' names, in file order, without reading the alerts."""
        return list(self.names)

    def alert(self, name: str) -> AlertConfig:
        """The alert called ``name``, read from its entry on first use."""
        try:
            index = self.names.index(name)
        except ValueError:
            raise KeyError(name) from None
        return self._load([index])[0]

    def _load(self, indices: Iterable[int]) -> list[AlertConfig]:
        wanted = list(indices)
        missing = [i for i in wanted if self.names[i] not in self._read]
        if missing:
            self._read.update(self._read_entries(missing))
        if any(self.names[i] not in self._read for i in missing):
            # The entry changed or went away since its header was read: parse the file, as without a cache.
            for alert in load_config(self.path, strict=False).alerts:
                self._read.setdefault(alert.name, alert)
        return [self._read[self.names[i]] for i in wanted]  # KeyError: the file no longer has it

    def _read_entries(self, indices: list[int]) -> dict[str, AlertConfig]:
        """The alerts at ``indices`` that can still be read from the entry and match their digests."""
        found: dict[str, AlertConfig] = {}
        try:
            with open_folder(self.entry.parent, create=False) as folder:
                opened = folder.open_entry(self.entry.name, self.key) if folder else None
                if opened is None:
                    return found
                with contextlib.closing(opened):
                    for i in indices:
                        blob = opened.read(*self.offsets[i])
                        if checksum(blob).hex() == self.digests[i]:
                            alert = AlertConfig.model_validate_json(blob)
                            found[alert.name] = alert
        except (OSError, ValueError, RecursionError) as exc:
            _log.debug("compiled alerts file %s: cannot read its alerts: %s", self.entry, exc)
        except Exception as exc:  # a bug here must not fail the run: the alerts are parsed instead
            warn_once(f"compiled alerts file {self.entry}: unexpected error, parsing instead: {exc!r}")
        return found


def load_compiled(source: Path, content: bytes, environ: Mapping[str, str]) -> CompiledConfig | None:
    """The compiled form of ``source`` with exactly ``content``, or None (not saved, stale, unreadable, refused).

    Never raises: whatever is wrong with the cache, the caller parses the file instead.
    """
    if not _SUPPORTED:
        return None
    try:
        return _load_compiled(source, content, environ)
    except (OSError, ValueError, RecursionError, struct.error) as exc:
        _log.debug("no usable compiled form of %s: %s", source, exc)
    except Exception as exc:  # a bug here must not fail the load: the file is parsed instead
        warn_once(f"compiled alerts file of {source}: unexpected error, parsing instead: {exc!r}")
    return None


def _load_compiled(source: Path, content: bytes, environ: Mapping[str, str]) -> CompiledConfig | None:
    key = _key(source, content)
    entry = cache_dir() / _entry_name(key)
    with open_folder(entry.parent, create=False) as folder:
        opened = folder.open_entry(entry.name, key) if folder else None
        if opened is None:
            return None
        with contextlib.closing(opened):
            header = opened.header()
    if header is None:
        return None
    if any(environ.get(name) != value for name, value in header.environment.items()):
        return None  # a variable the schedules or names were built from has changed
    start = PREFIX.size + opened.header_length
    return CompiledConfig(
        path=Path(header.path),
        file=AlertsFile.model_validate({**header.file, "alerts": []}),
        notes=header.notes,
        environment=header.environment,
        names=tuple(name for name, *_ in header.alerts),
        entry=entry,
        key=key,
        offsets=tuple((start + offset, length) for _, offset, length, _ in header.alerts),
        digests=tuple(digest for *_, digest in header.alerts),
    )


def save_compiled(config: LoadedConfig, content: bytes) -> None:
    """Write the compiled form of ``config`` (loaded from ``content``), unless it is already there.

    Never raises: a cache that cannot be written (read-only home, full disk, refused folder) only means that
    runs parse the file.
    """
    if not _SUPPORTED or (config.problems and not config.alerts):
        return  # an unusable file: runs must parse it, and so run its last valid version
    try:
        _save_compiled(config, content)
    except (OSError, ValueError, RecursionError) as exc:  # a read-only home, a full disk: runs parse the file
        _log.debug("could not save the compiled form of %s: %s", config.path, exc)
    except Exception as exc:  # a bug here must not fail the load: runs parse the file instead
        warn_once(f"compiled alerts file of {config.path}: unexpected error, not saved: {exc!r}")


def _save_compiled(config: LoadedConfig, content: bytes) -> None:
    key = _key(config.path, content)
    name = _entry_name(key)
    with open_folder(cache_dir(), create=True) as folder:
        if folder is None:
            return
        existing = folder.open_entry(name, key)
        if existing is not None:
            with contextlib.closing(existing):
                if existing.intact():
                    os.utime(existing.fd)  # in use: keep it out of the pruning below
                    return
        data = _serialize(config, key)
        if data is None:
            _log.debug("the validated form of %s does not read back the same: not cached", config.path)
            return
        folder.write(name, data)
        folder.prune()


def _serialize(config: LoadedConfig, key: bytes) -> bytes | None:
    """The entry for ``config``, or None if a part would not read back equal to what was parsed (or is too big)."""
    blobs = [alert.model_dump_json(by_alias=True, exclude_unset=True).encode() for alert in config.alerts]
    if any(AlertConfig.model_validate_json(blob) != alert for blob, alert in zip(blobs, config.alerts, strict=True)):
        return None
    settings = config.file.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude={"alerts"})
    for rule, dumped in zip(config.file.watch, settings.get("watch", []), strict=False):
        for kind in ("checks", "assets"):  # patterns as written: parsed again when read
            if getattr(rule, kind) is not None:
                dumped[kind] = [str(pattern) for pattern in getattr(rule, kind)]
    if AlertsFile.model_validate({**settings, "alerts": []}) != config.file.model_copy(update={"alerts": []}):
        return None
    index, position = [], 0
    for alert, blob in zip(config.alerts, blobs, strict=True):
        index.append((alert.name, position, len(blob), checksum(blob).hex()))
        position += len(blob)
    header = Header(
        path=str(config.path), file=settings, notes=config.notes, environment=config.environment, alerts=index
    )
    raw = header.model_dump_json().encode()
    data = b"".join([PREFIX.pack(MAGIC, key, checksum(raw), len(raw), position), raw, *blobs])
    return data if len(data) <= MAX_ENTRY_BYTES else None
