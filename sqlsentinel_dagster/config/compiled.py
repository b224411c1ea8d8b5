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
import errno
import functools
import hashlib
import logging
import os
import secrets
import stat
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, NonNegativeInt

from .._yaml import MAX_FILE_BYTES
from ..errors import ConfigProblem
from .loader import LoadedConfig, load_config
from .models import AlertConfig, AlertsFile

__all__ = ["CompiledConfig", "cache_dir", "load_compiled", "save_compiled"]

_FORMAT = 2
_MAGIC = f"sqlsentinel compiled alerts, format {_FORMAT}\n".encode()
_PREFIX = struct.Struct(f">{len(_MAGIC)}s32s16sQQ")  # magic, the full key, header digest, header and body lengths
_MAX_ENTRY_BYTES = 8 * MAX_FILE_BYTES  # the JSON of a file of at most MAX_FILE_BYTES, inherited settings included
_KEEP_SECONDS = 7 * 24 * 3600
_SUPPORTED = (
    hasattr(os, "geteuid")
    and hasattr(os, "O_NOFOLLOW")
    and {os.open, os.rename, os.stat, os.unlink} <= os.supports_dir_fd  # os.replace is listed as os.rename
    and {os.scandir, os.utime} <= os.supports_fd
)
_log = logging.getLogger("sqlsentinel")
_warned: set[str] = set()


def cache_dir() -> Path:
    """Where compiled files are kept."""
    explicit = os.environ.get("SQLSENTINEL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sqlsentinel"


@functools.cache
def _code_digest() -> bytes:
    """A digest of the models' code: a change of it invalidates every entry."""
    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.digest()


def _key(source: Path, content: bytes) -> bytes:
    """What an entry is valid for: this format, the file's path and bytes, and the models' code."""
    digest = hashlib.sha256(f"{_FORMAT}\0{source}\0".encode())
    digest.update(_code_digest())
    digest.update(content)
    return digest.digest()


def _entry_name(key: bytes) -> str:
    return f"{key.hex()[:32]}.compiled"


def _entry_path(source: Path, content: bytes) -> Path:
    return cache_dir() / _entry_name(_key(source, content))


class _Header(BaseModel):
    """The JSON header of an entry (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    file: dict[str, Any]
    """The file's settings without its alerts, as validated by :class:`AlertsFile`."""
    notes: list[ConfigProblem]
    environment: dict[str, str | None]
    alerts: list[tuple[str, NonNegativeInt, NonNegativeInt, str]]
    """Per alert: name, offset in the body, length, blake2b digest of its JSON."""


def _digest(blob: bytes) -> bytes:
    return hashlib.blake2b(blob, digest_size=16).digest()


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
            with _open_folder(self.entry.parent, create=False) as folder:
                opened = folder.open_entry(self.entry.name, self.key) if folder else None
                if opened is None:
                    return found
                with contextlib.closing(opened):
                    for i in indices:
                        blob = opened.read(*self.offsets[i])
                        if _digest(blob).hex() == self.digests[i]:
                            alert = AlertConfig.model_validate_json(blob)
                            found[alert.name] = alert
        except (OSError, ValueError, RecursionError) as exc:
            _log.debug("compiled alerts file %s: cannot read its alerts: %s", self.entry, exc)
        except Exception as exc:  # a bug here must not fail the run: the alerts are parsed instead
            _warn_once(f"compiled alerts file {self.entry}: unexpected error, parsing instead: {exc!r}")
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
        _warn_once(f"compiled alerts file of {source}: unexpected error, parsing instead: {exc!r}")
    return None


def _load_compiled(source: Path, content: bytes, environ: Mapping[str, str]) -> CompiledConfig | None:
    key = _key(source, content)
    entry = cache_dir() / _entry_name(key)
    with _open_folder(entry.parent, create=False) as folder:
        opened = folder.open_entry(entry.name, key) if folder else None
        if opened is None:
            return None
        with contextlib.closing(opened):
            header = opened.header()
    if header is None:
        return None
    if any(environ.get(name) != value for name, value in header.environment.items()):
        return None  # a variable the schedules or names were built from has changed
    start = _PREFIX.size + opened.header_length
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
        _warn_once(f"compiled alerts file of {config.path}: unexpected error, not saved: {exc!r}")


def _save_compiled(config: LoadedConfig, content: bytes) -> None:
    key = _key(config.path, content)
    name = _entry_name(key)
    with _open_folder(cache_dir(), create=True) as folder:
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
        dumped["checks"] = [str(pattern) for pattern in rule.checks]  # as written: parsed again when read
    if AlertsFile.model_validate({**settings, "alerts": []}) != config.file.model_copy(update={"alerts": []}):
        return None
    index, position = [], 0
    for alert, blob in zip(config.alerts, blobs, strict=True):
        index.append((alert.name, position, len(blob), _digest(blob).hex()))
        position += len(blob)
    header = _Header(
        path=str(config.path), file=settings, notes=config.notes, environment=config.environment, alerts=index
    )
    raw = header.model_dump_json().encode()
    data = b"".join([_PREFIX.pack(_MAGIC, key, _digest(raw), len(raw), position), raw, *blobs])
    return data if len(data) <= _MAX_ENTRY_BYTES else None


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        _log.warning("%s", message)


def _untrusted(info: os.stat_result, what: Literal["folder", "file"], path: Path) -> bool:
    """Whether ``info`` (of ``path``, a ``what``) must be refused; warns once per process if so."""
    kind_ok = stat.S_ISDIR(info.st_mode) if what == "folder" else stat.S_ISREG(info.st_mode)
    if not kind_ok:
        problem = f"is not a {'folder' if what == 'folder' else 'regular file'}"
    elif info.st_uid != os.geteuid():
        problem = f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    else:
        return False
    fix = "make it yours and 0700, or remove it" if what == "folder" else "remove it"
    _warn_once(f"compiled alerts cache: the {what} {path} {problem}; not used, alerts files are parsed ({fix})")
    return True


@dataclass
class _Entry:
    """An open entry whose prefix matched: its descriptor, its header's digest and the lengths of its parts."""

    fd: int
    path: Path
    header_digest: bytes
    header_length: int
    body_length: int

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` in the file; ValueError if it is shorter (truncated meanwhile)."""
        chunks, done = [], 0
        while done < length:
            chunk = os.pread(self.fd, length - done, offset + done)
            if not chunk:
                raise ValueError(f"{self.path} is shorter than its header says")
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)

    def header(self) -> _Header | None:
        """The header, if it matches its digest and every alert it lists lies within the body; else None."""
        raw = self.read(_PREFIX.size, self.header_length)
        if _digest(raw) != self.header_digest:
            return None
        header = _Header.model_validate_json(raw)
        if any(offset + length > self.body_length for _, offset, length, _ in header.alerts):
            return None
        return header

    def intact(self) -> bool:
        """Whether the header and every alert match their digests (a code server's check before reusing it)."""
        try:
            header = self.header()
        except ValueError:
            return False
        if header is None:
            return False
        body = self.read(_PREFIX.size + self.header_length, self.body_length)
        return all(_digest(body[at : at + size]).hex() == digest for _, at, size, digest in header.alerts)

    def close(self) -> None:
        """Close the descriptor."""
        os.close(self.fd)


@contextlib.contextmanager
def _open_folder(path: Path, *, create: bool) -> Iterator[_Folder | None]:
    """The cache folder at ``path`` (created 0700 if ``create``) when it is safe to use, else None."""
    created = False
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
            created = True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None  # nothing was saved yet
        return
    try:
        info = os.fstat(fd)
        if created and stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            os.fchmod(fd, 0o700)  # whatever the umask
            info = os.fstat(fd)
        yield None if _untrusted(info, "folder", path) else _Folder(fd, path)
    finally:
        os.close(fd)


@dataclass
class _Folder:
    """An open descriptor of the checked cache folder: every file operation goes through it."""

    fd: int
    path: Path

    def open_entry(self, name: str, key: bytes) -> _Entry | None:
        """The entry ``name`` if it is ours and its prefix names this format, ``key`` and its size; else None."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a planted FIFO never hangs
        try:
            fd = os.open(name, flags, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            _warn_once(f"compiled alerts cache: {self.path / name} is a symbolic link; not followed, not used")
            return None
        entry = None
        try:
            info = os.fstat(fd)
            if _untrusted(info, "file", self.path / name) or not _PREFIX.size <= info.st_size <= _MAX_ENTRY_BYTES:
                return None
            magic, stored, digest, header_length, body_length = _PREFIX.unpack(os.pread(fd, _PREFIX.size, 0))
            if magic != _MAGIC or stored != key or _PREFIX.size + header_length + body_length != info.st_size:
                _log.debug("compiled alerts file %s: another format, another key, or truncated", self.path / name)
                return None
            entry = _Entry(fd, self.path / name, digest, header_length, body_length)
            return entry
        finally:
            if entry is None:
                os.close(fd)

    def write(self, name: str, data: bytes) -> None:
        """Write ``name`` atomically: a new 0600 file beside it, then ``os.replace``."""
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600, dir_fd=self.fd)
        try:
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)
            raise

    def prune(self) -> None:
        """Remove entries (and leftover temporary files) no code server has loaded for a week."""
        cutoff = time.time() - _KEEP_SECONDS
        with os.scandir(self.fd) as entries:
            for item in entries:
                if item.name.endswith((".compiled", ".tmp")):
                    with contextlib.suppress(OSError):
                        if item.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(item.name, dir_fd=self.fd)
