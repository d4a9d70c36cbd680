"""Durable files: atomic writes (write, check, fsync, rename, fsync the directory), the writer lock,
the one canonical JSON encoding, and the time format every record uses.

Writes follow restic's order: a temp file inside the vault, write, check the length, fsync,
rename, fsync the directory; objects first, the catalog last. So a crash at any instant leaves
the vault as it was before or after an action: objects written by an action that did not reach
its catalog write are unreferenced, invisible, and removed by the next writer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import Any

from vault.errors import IntegrityError, StrongroomError, VaultBusy
from vault.storage.layout import LOCK_FILE, RUNS_DIR, TMP_PREFIX


def utc_now() -> str:
    """The current time as RFC 3339 UTC with microseconds, as every record in the vault writes it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full_error(path: Path) -> StrongroomError:
    return StrongroomError(
        f"the disk holding {path.parent} is full; nothing was changed",
        "free space on that disk (or choose a vault on another disk) and run the command again",
        detail={"disk_full": True},
    )


def atomic_write(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix."""
    tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += os.write(fd, view[written:])
            if os.fstat(fd).st_size != len(view):
                raise IntegrityError(
                    f"short write to {tmp.name}: expected {len(view)} bytes",
                    "check the disk for errors; the vault was not changed",
                )
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise disk_full_error(path) from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding of every signed, MACed or hashed JSON value in a vault: keys sorted by
    code point, no spaces, UTF-8, and no NaN or infinity (refused, so no reader has to guess)."""
    return _CANONICAL.encode(obj).encode("utf-8")


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class VaultLock:
    """One writer at a time: an exclusive flock on `<vault>/lock`; a second writer is told, not hung."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (process {int(self.path.read_text().strip() or 0)})"
            raise VaultBusy(
                f"vault is busy: another strongroom process is writing to it{holder}",
                "wait for that command to finish, then run this one again",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> VaultLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunMarker:
    """A training run's mark of life: an exclusive flock on `<vault>/runs/<run>.lock`, held by the
    process that runs it from before its charge until it is settled. The kernel drops the lock when
    that process dies however it dies, so a charge still "running" whose mark is free was
    interrupted. flock works across the PID namespaces a sandbox makes (it is the same file)."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.path = root / RUNS_DIR / f"{run_id}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the mark (the run is settled)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def alive(self) -> bool:
        """Whether a live process holds this run's mark (from any process, this one included)."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def forget(self) -> None:
        """Remove a dead run's mark file."""
        with contextlib.suppress(OSError):
            self.path.unlink()
