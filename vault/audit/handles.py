"""The audit directory's locks, and the descriptors the log keeps open between appends (its lock
file and the log itself).

Opening, closing and looking up a path for every append costs as much as the rest of the append's
work. A kept descriptor is used only while it still names the file at its path (same device and
inode: a file removed, replaced or renamed away is opened afresh) and only in the process that opened
it: a forked child shares its parent's open file description, and with it the parent's flock, so it
opens its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from vault.storage.files import fsync_dir


def identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class HeldFile:
    """One path, opened once per process with `flags` and kept open while it names the same file."""

    def __init__(self, path: Path, flags: int, mode: int) -> None:
        self.path = os.fspath(path)
        self._flags = flags | os.O_CLOEXEC
        self._mode = mode
        self._fd: int | None = None
        self._pid = 0
        self._id: tuple[int, int] | None = None

    def fd(self, current: os.stat_result | None = None) -> int:
        """The descriptor, reopened unless the path still names the file it was opened on. `current`
        is the path's stat when the caller has just taken it; OSError when the path cannot be opened."""
        if self._fd is not None and self._pid == os.getpid():
            if current is None:
                try:
                    current = os.stat(self.path)
                except FileNotFoundError:
                    current = None
            if current is not None and identity(current) == self._id:
                return self._fd
        self.close()
        fd = os.open(self.path, self._flags, self._mode)
        self._fd, self._pid, self._id = fd, os.getpid(), identity(os.fstat(fd))
        return fd

    def close(self) -> None:
        """Close the descriptor (in a forked child, only the child's copy: a parent's flock stays)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        self.close()


class DirLocks:
    """The audit directory's lock file: writers take an exclusive flock (and a mutex within this
    process), readers a shared one for a consistent snapshot."""

    def __init__(self, lock_path: Path) -> None:
        self.path = Path(lock_path)
        self._mutex = threading.Lock()
        self._held = HeldFile(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def _ensure_dir(self) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fsync_dir(folder.parent)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Serialise writers, in this process (mutex) and across processes (flock on the lock file)."""
        with self._mutex:
            try:
                fd = self._held.fd()
            except FileNotFoundError:
                self._ensure_dir()
                fd = self._held.fd()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """A shared lock when the lock file is readable; else none."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)
