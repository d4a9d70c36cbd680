"""Split a loop over n items between this process and forked helpers writing into shared memory.

Shared arrays are anonymous shared mappings (MAP_SHARED | MAP_ANONYMOUS): decoded records stay in the
RAM of this process and its children and never pass through a file, /dev/shm included. A helper
sends back only "done" or the title and hint of the StrongroomError it hit, through a pipe.
Forking is skipped (the work runs here) where os.fork is missing or refused.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import select
import signal
from collections.abc import Callable

import numpy as np

from vault import errors
from vault.errors import StrongroomError

Tick = Callable[[int], None]
Job = Callable[[int, int, Tick], None]
"""job(lo, hi, tick) handles items lo..hi-1 and calls tick(k) after its k-th item."""

_POLL_SECONDS = 0.1
_TICKS_PER_REPORT = 32
_ERROR_CLASSES = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, StrongroomError)
}


class _Stop(Exception):
    """Raised inside a helper when the parent asked every helper to stop."""


def shared_zeros(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A zero-filled array in an anonymous mapping that forked children write into directly."""
    dt = np.dtype(dtype)
    count = math.prod(shape)
    mapping = mmap.mmap(-1, max(1, count * dt.itemsize))
    return np.frombuffer(mapping, dtype=dt, count=count).reshape(shape)


def run_split(n: int, job: Job, workers: int, on_done: Callable[[int], None]) -> None:
    """Run job over [0, n) in `workers` contiguous ranges, the first here and the others in forked
    children; on_done(total) hears the running total (and may raise, e.g. Cancelled, to stop all).
    Errors surface in range order, so the first bad item wins whichever process met it."""
    workers = max(1, min(workers, n))
    bounds = [n * k // workers for k in range(workers + 1)]
    counters = shared_zeros((workers + 1,), np.int64)  # one per range, then the stop flag
    children: list[tuple[int, int]] = []
    local = [0]
    try:
        for k in range(1, workers):
            child = _fork(job, bounds[k], bounds[k + 1], counters, k)
            if child is None:
                local.extend(range(k, workers))
                break
            children.append(child)
        for k in local:
            size = bounds[k + 1] - bounds[k]

            def tick(done: int, k: int = k, size: int = size) -> None:
                counters[k] = done
                if done % _TICKS_PER_REPORT == 0 or done == size:
                    on_done(int(counters[:workers].sum()))

            job(bounds[k], bounds[k + 1], tick)
        while children:
            outcome = _drain(children[0], counters, workers, on_done)
            children.pop(0)  # reaped: never signal or close it again
            _raise_failure(*outcome)
    except BaseException:
        counters[workers] = 1
        for pid, read_fd in children:
            _end(pid, read_fd)
        raise


def _fork(job: Job, lo: int, hi: int, counters: np.ndarray, k: int) -> tuple[int, int] | None:
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except (AttributeError, OSError):
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # pragma: no cover - runs in the child, which leaves through os._exit
        os.close(read_fd)
        _child(job, lo, hi, counters, k, write_fd)
    os.close(write_fd)
    return pid, read_fd


def _child(
    job: Job, lo: int, hi: int, counters: np.ndarray, k: int, write_fd: int
) -> None:  # pragma: no cover
    status = 1
    try:

        def tick(done: int) -> None:
            counters[k] = done
            if counters[-1]:
                raise _Stop

        job(lo, hi, tick)
        message: dict = {"ok": True}
        status = 0
    except _Stop:
        message = {"stopped": True}
    except StrongroomError as exc:
        message = {"error": type(exc).__name__, "title": exc.title, "hint": exc.hint, "detail": exc.detail}
    except BaseException as exc:  # noqa: BLE001 - only the type crosses the pipe, never the message
        message = {"crash": type(exc).__name__}
    try:
        data = json.dumps(message, default=str).encode()
        while data:
            data = data[os.write(write_fd, data) :]
    finally:
        os._exit(status)


def _drain(
    child: tuple[int, int], counters: np.ndarray, workers: int, on_done: Callable[[int], None]
) -> tuple[dict, int]:
    """Wait for a child's report, keeping progress and cancellation alive; reaps the child."""
    pid, read_fd = child
    chunks = []
    while True:
        ready, _, _ = select.select([read_fd], [], [], _POLL_SECONDS)
        on_done(int(counters[:workers].sum()))
        if ready:
            data = os.read(read_fd, 65536)
            if not data:
                break
            chunks.append(data)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    try:
        message = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        message = {}
    return message, status


def _raise_failure(message: dict, status: int) -> None:
    if message.get("ok"):
        return
    if message.get("error") in _ERROR_CLASSES:
        cls = _ERROR_CLASSES[message["error"]]
        raise cls(message.get("title", ""), message.get("hint", ""), detail=message.get("detail") or None)
    reason = message.get("crash") or (
        f"signal {-os.waitstatus_to_exitcode(status)}" if os.WIFSIGNALED(status) else "no report"
    )
    raise StrongroomError(
        f"an image decoding process failed ({reason})", "run the import again with one worker (workers=1)"
    )


def _end(pid: int, read_fd: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    os.close(read_fd)
