"""File access confined to one folder, safe against traversal and symlink races.

Rules (the workspace tools rely on every one of them):
- a path is relative, at most 1024 characters, with no NUL or control
  character, no backslash, no percent-encoded byte (``%2e``), no ``..``
  component; empty and ``.`` components are dropped;
- the path joined to the root and resolved after symlinks must lie inside the
  resolved root, compared as paths (``/root_x`` is not inside ``/root``);
- then the path is opened component by component from a descriptor of the
  root (``openat``), every component with ``O_NOFOLLOW``: a symlink anywhere on
  the way, even one swapped in after the check above, fails the call instead
  of being followed, so nothing outside the root is ever opened;
- only regular files with a single link are read or written (a hard link may
  point outside the root);
- after opening, ``/proc/self/fd`` must name a file inside the root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat as stat_mode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_PATH_CHARS = 1024
MAX_READ_BYTES = 1024 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_LIST_ENTRIES = 1000

_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathRefused(Exception):
    """The path is not acceptable, or leads outside the root; the message says why."""


def split_relative(path: str) -> tuple[str, ...]:
    """The components of a workspace path, or ``PathRefused``."""
    if not isinstance(path, str):
        raise PathRefused("the path must be a string")
    if len(path) > MAX_PATH_CHARS:
        raise PathRefused(f"the path is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise PathRefused("the path contains a NUL byte")
    if _CONTROL.search(path):
        raise PathRefused("the path contains a control character")
    if "\\" in path:
        raise PathRefused("backslashes are not allowed in paths (use '/')")
    if _PERCENT_ESCAPE.search(path):
        raise PathRefused("percent-encoded characters are not allowed in paths")
    if path.startswith("/"):
        raise PathRefused("absolute paths are not allowed; give a path inside the workspace")
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise PathRefused("'..' is not allowed in paths")
    return parts


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    kind: str  # file, directory, symlink, other
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "size": self.size}


def _kind(mode: int) -> str:
    if stat_mode.S_ISREG(mode):
        return "file"
    if stat_mode.S_ISDIR(mode):
        return "directory"
    if stat_mode.S_ISLNK(mode):
        return "symlink"
    return "other"


def _refusal(exc: OSError, shown: str) -> PathRefused:
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return PathRefused(f"'{shown}' is or passes through a symlink; symlinks are not followed")
    if exc.errno == errno.ENOTDIR:
        return PathRefused(f"'{shown}': a component is not a directory (or is a symlink)")
    if exc.errno == errno.ENOENT:
        return PathRefused(f"'{shown}' does not exist")
    if exc.errno == errno.EISDIR:
        return PathRefused(f"'{shown}' is a directory")
    if exc.errno == errno.ENXIO:
        return PathRefused(f"'{shown}' is not a regular file")
    return PathRefused(f"'{shown}': {os.strerror(exc.errno or 0)}")


class ConfinedFolder:
    """Reads, writes, lists and stats files inside one root folder only."""

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = root.resolve(strict=True)

    # -- checks -----------------------------------------------------------------

    def _check(self, path: str) -> tuple[str, ...]:
        parts = split_relative(path)
        resolved = self.root.joinpath(*parts).resolve(strict=False)
        if not resolved.is_relative_to(self.root):
            raise PathRefused(f"'{path}' resolves outside the workspace")
        return parts

    def _verify_open(self, fd: int, shown: str) -> None:
        with contextlib.suppress(OSError):  # no /proc: the O_NOFOLLOW walk already holds
            opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if not opened.is_relative_to(self.root):
                raise PathRefused(f"'{shown}' was opened outside the workspace")

    @contextlib.contextmanager
    def _directory(
        self, parts: tuple[str, ...], shown: str, *, create: bool = False
    ) -> Iterator[int]:
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts:
                try:
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o700, dir_fd=fd)
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = next_fd
            self._verify_open(fd, shown)
            yield fd
        except OSError as exc:
            raise _refusal(exc, shown) from None
        finally:
            os.close(fd)

    # -- operations -------------------------------------------------------------

    def read(self, path: str, *, limit: int = MAX_READ_BYTES) -> tuple[bytes, int]:
        """The file's first ``limit`` bytes and its size."""
        parts = self._check(path)
        if not parts:
            raise PathRefused("give a file path, not the workspace itself")
        with self._directory(parts[:-1], path) as parent:
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=parent)  # fmt: skip
            except OSError as exc:
                raise _refusal(exc, path) from None
            try:
                self._regular(fd, path)
                size = os.fstat(fd).st_size
                chunks, left = [], limit
                while left > 0 and (chunk := os.read(fd, min(left, 65536))):
                    chunks.append(chunk)
                    left -= len(chunk)
                return b"".join(chunks), size
            finally:
                os.close(fd)

    def write(self, path: str, data: bytes) -> int:
        """Create or replace the file (and missing parent folders); returns bytes written."""
        if len(data) > MAX_WRITE_BYTES:
            raise PathRefused(f"content larger than {MAX_WRITE_BYTES} bytes")
        parts = self._check(path)
        if not parts:
            raise PathRefused("give a file path, not the workspace itself")
        with self._directory(parts[:-1], path, create=True) as parent:
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(parts[-1], flags, 0o600, dir_fd=parent)
            except OSError as exc:
                raise _refusal(exc, path) from None
            try:
                self._regular(fd, path)
                os.ftruncate(fd, 0)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                return len(data)
            finally:
                os.close(fd)

    def _regular(self, fd: int, shown: str) -> None:
        info = os.fstat(fd)
        if not stat_mode.S_ISREG(info.st_mode):
            raise PathRefused(f"'{shown}' is not a regular file")
        if info.st_nlink > 1:
            raise PathRefused(f"'{shown}' has several hard links; refused")
        self._verify_open(fd, shown)

    def list(self, path: str = ".") -> list[Entry]:
        parts = self._check(path)
        with self._directory(parts, path) as fd:
            entries = []
            with os.scandir(fd) as found:
                for item in found:
                    info = item.stat(follow_symlinks=False)
                    entries.append(Entry(item.name, _kind(info.st_mode), info.st_size))
                    if len(entries) >= MAX_LIST_ENTRIES:
                        break
        return sorted(entries, key=lambda e: e.name)

    def stat(self, path: str) -> dict[str, Any]:
        parts = self._check(path)
        if not parts:
            with self._directory((), path) as fd:
                info = os.fstat(fd)
        else:
            with self._directory(parts[:-1], path) as parent:
                try:
                    info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                except OSError as exc:
                    raise _refusal(exc, path) from None
        return {
            "path": "/".join(parts) or ".",
            "type": _kind(info.st_mode),
            "size": info.st_size,
            "modified": info.st_mtime,
        }
