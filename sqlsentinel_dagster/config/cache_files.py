"""The compiled cache's files: a folder and entries that only the user can have written (owner and mode checked,
no symbolic links, no FIFOs), written atomically and read within bounds."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, NonNegativeInt

from .._yaml import MAX_FILE_BYTES
from ..errors import ConfigProblem

_log = logging.getLogger("sqlsentinel")

__all__ = [
    "FORMAT",
    "KEEP_SECONDS",
    "MAGIC",
    "MAX_ENTRY_BYTES",
    "PREFIX",
    "Entry",
    "Folder",
    "Header",
    "checksum",
    "open_folder",
    "untrusted",
    "warn_once",
]


FORMAT = 2
"""The entry format's version: an entry of another version is a miss."""


class Header(BaseModel):
    """The JSON header of an entry (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    file: dict[str, Any]
    """The file's settings without its alerts, as validated by :class:`AlertsFile`."""
    notes: list[ConfigProblem]
    environment: dict[str, str | None]
    alerts: list[tuple[str, NonNegativeInt, NonNegativeInt, str]]
    """Per alert: name, offset in the body, length, blake2b digest of its JSON."""


MAGIC = f"sqlsentinel compiled alerts, format {FORMAT}\n".encode()

PREFIX = struct.Struct(f">{len(MAGIC)}s32s16sQQ")  # magic, the full key, header digest, header and body lengths

MAX_ENTRY_BYTES = 8 * MAX_FILE_BYTES  # the JSON of a file of at most MAX_FILE_BYTES, inherited settings included

KEEP_SECONDS = 7 * 24 * 3600
"""Entries no code server touched for this long are removed when a new one is written."""

warned: set[str] = set()
"""The warnings already given in this process."""


def checksum(blob: bytes) -> bytes:
    """The 16-byte BLAKE2b digest of ``blob``, as entries record each part's."""
    return hashlib.blake2b(blob, digest_size=16).digest()


def warn_once(message: str) -> None:
    """Log ``message`` as a warning, once per process."""
    if message not in warned:
        warned.add(message)
        _log.warning("%s", message)


def untrusted(info: os.stat_result, what: Literal["folder", "file"], path: Path) -> bool:
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
    warn_once(f"compiled alerts cache: the {what} {path} {problem}; not used, alerts files are parsed ({fix})")
    return True


@dataclass
class Entry:
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

    def header(self) -> Header | None:
        """The header, if it matches its digest and every alert it lists lies within the body; else None."""
        raw = self.read(PREFIX.size, self.header_length)
        if checksum(raw) != self.header_digest:
            return None
        header = Header.model_validate_json(raw)
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
        body = self.read(PREFIX.size + self.header_length, self.body_length)
        return all(checksum(body[at : at + size]).hex() == digest for _, at, size, digest in header.alerts)

    def close(self) -> None:
        """Close the descriptor."""
        os.close(self.fd)


@contextlib.contextmanager
def open_folder(path: Path, *, create: bool) -> Iterator[Folder | None]:
    """The cache folder at ``path`` (created 0700 if ``create``) when it is safe to use, else None."""
    created = False
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
            created = True
    try:  # never through a symbolic link: a planted one would make another folder the cache (and prune it)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        yield None  # nothing was saved yet
        return
    except OSError as exc:  # ELOOP (a symbolic link), ENOTDIR: not a folder of ours
        warn_once(f"the cache folder {path} is not used: {exc.strerror or exc}")
        yield None
        return
    try:
        info = os.fstat(fd)
        if created and stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            os.fchmod(fd, 0o700)  # whatever the umask
            info = os.fstat(fd)
        yield None if untrusted(info, "folder", path) else Folder(fd, path)
    finally:
        os.close(fd)


@dataclass
class Folder:
    """An open descriptor of the checked cache folder: every file operation goes through it."""

    fd: int
    path: Path

    def open_entry(self, name: str, key: bytes) -> Entry | None:
        """The entry ``name`` if it is ours and its prefix names this format, ``key`` and its size; else None."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a planted FIFO never hangs
        try:
            fd = os.open(name, flags, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            warn_once(f"compiled alerts cache: {self.path / name} is a symbolic link; not followed, not used")
            return None
        entry = None
        try:
            info = os.fstat(fd)
            if untrusted(info, "file", self.path / name) or not PREFIX.size <= info.st_size <= MAX_ENTRY_BYTES:
                return None
            magic, stored, digest, header_length, body_length = PREFIX.unpack(os.pread(fd, PREFIX.size, 0))
            if magic != MAGIC or stored != key or PREFIX.size + header_length + body_length != info.st_size:
                _log.debug("compiled alerts file %s: another format, another key, or truncated", self.path / name)
                return None
            entry = Entry(fd, self.path / name, digest, header_length, body_length)
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
        cutoff = time.time() - KEEP_SECONDS
        with os.scandir(self.fd) as entries:
            for item in entries:
                if item.name.endswith((".compiled", ".tmp")):
                    with contextlib.suppress(OSError):
                        if item.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(item.name, dir_fd=self.fd)
