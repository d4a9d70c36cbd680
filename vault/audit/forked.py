"""A pure computation run in a forked child while this process goes on with its own part.

Verification splits into independent parts (the hash tree, the seals, the entries' fields), so on a
host with more than one core they run side by side. The child inherits its inputs by fork, so
nothing is copied up front; its result comes back pickled through a pipe. Anything unusual (fork
refused, the child killed or failing, a short pipe) makes `result()` run the computation here
instead: the answer is the same either way, only slower.

The child runs only the given function (hashing and parsing, no locks, no I/O) and leaves with
`os._exit`, so it never runs this process's exit handlers or flushes its buffers.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_FAILED = 70  # the child's exit status when the function raised


def cores() -> int:
    """Cores this process may run on (its affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Forked(Generic[T]):
    """`fn(*args)` computed in a forked child; `result()` waits for it (or computes it here)."""

    def __init__(self, fn: Callable[..., T], *args: object) -> None:
        self._fn, self._args = fn, args
        self._pid: int | None = None
        self._read_fd: int | None = None
        self._status = -1
        if cores() < 2:
            return  # one core: a child would only take turns with this process
        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            return
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return
        if pid == 0:  # the child
            status = _FAILED
            try:
                os.close(read_fd)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                payload = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
                view = memoryview(payload)
                while view:
                    view = view[os.write(write_fd, view) :]
                os.close(write_fd)  # the end of the result, before this process's teardown
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        self._pid, self._read_fd = pid, read_fd

    def result(self) -> T:
        if self._pid is None:
            return self._fn(*self._args)
        chunks = []
        assert self._read_fd is not None
        result: list[T] = []
        try:
            while chunk := os.read(self._read_fd, 1 << 20):
                chunks.append(chunk)
            if chunks:  # read while the child is still leaving (unmapping its copy of this process)
                result.append(pickle.loads(b"".join(chunks)))  # noqa: S301 - written by our own child
        except (OSError, pickle.UnpicklingError, EOFError, ValueError):
            result.clear()
        finally:
            self._reap()
        if self._status == 0 and result:
            return result[0]
        return self._fn(*self._args)

    def cancel(self) -> None:
        """Stop the child (when this process gives up on its result)."""
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()

    def _reap(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None
        if self._pid is not None:
            _, status = os.waitpid(self._pid, 0)
            self._status = os.waitstatus_to_exitcode(status)
            self._pid = None
