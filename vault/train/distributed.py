"""One run across several processes on this host: torch.distributed workers started by
torch.multiprocessing (spawn), gloo between CPU processes and NCCL between GPUs, the rendezvous on a
file (torch's FileStore) in the command's private /tmp.

The processes are workers only: the door (policy, ledger, audit log, sealed objects) stays in the
command's own process, which planned and charged the run before any of them started. Each worker
checks that its network namespace holds nothing but `lo` before the process group opens (gloo's
pairs are TCP connections over loopback; no other transport is built into torch's gloo), takes the
isolation of the command (`netguard.inherit`), and trains its share of every Poisson batch with the
plan's sample rate; rank 0 adds the noise once, emits the progress, evaluates and sends the
weights back. Ctrl-C is the command's alone (workers ignore SIGINT): it sets a flag that every
worker reads at the same step, so they stop together. A worker that dies stops the others (torch's
process context terminates them), and the run fails with the steps taken, which the door charges.
"""

from __future__ import annotations

import datetime
import os
import queue
import secrets
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

from vault import errors
from vault.errors import IsolationError, StrongroomError
from vault.train.config import TrainConfig, TrainOutcome, World
from vault.vocabulary import LOOPBACK_ISOLATION

POLL_S = 0.1
ERROR_GRACE_S = 5.0  # how long the others may take to finish after one process reported an error
GROUP_TIMEOUT = datetime.timedelta(minutes=10)  # a worker silent this long in a collective fails it
RENDEZVOUS = "file: torch.distributed.FileStore in the command's private /tmp"
NO_LOOPBACK_HINT = (
    "several processes need the sandbox's loopback level, which only a host that allows network "
    "namespaces reaches (`strongroom netcheck` shows the level); train in one process (--nproc 1)"
)


def _check_level() -> dict[str, Any]:
    from vault.netguard import current_report

    report = current_report()
    mode = report.mode if report is not None else "none"
    if report is None or mode != LOOPBACK_ISOLATION:
        raise IsolationError(
            f"training in several processes needs isolation {LOOPBACK_ISOLATION!r}, and this "
            f"command reached {mode!r}",
            NO_LOOPBACK_HINT,
        )
    return report.to_json()


def train(
    data: Any,
    config: TrainConfig,
    *,
    on_event: Any = None,
    cancel: threading.Event | None = None,
    run: Any,
) -> TrainOutcome:
    """Carry out `run` (its world_size above 1) in that many processes; the outcome is rank 0's."""
    import torch.multiprocessing as mp

    parent = _check_level()
    if config.seed is None:  # every rank draws the same split and initialisation
        config = replace(config, seed=secrets.randbits(31))
    backend = "nccl" if run.device.startswith("cuda") else "gloo"
    size = run.world_size
    context = mp.get_context("spawn")
    messages = context.Queue()
    stop = context.Event()
    folder = tempfile.mkdtemp(prefix="strongroom-rendezvous-")
    args = (size, backend, os.path.join(folder, "store"), (data, config, run), messages, stop, parent)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:  # started with SIGINT ignored, which they keep: Ctrl-C reaches the command's handler only
        workers = mp.start_processes(_worker, args=args, nprocs=size, join=False, start_method="spawn")
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    inbox = _Inbox(on_event)
    try:
        failure = _supervise(workers, messages, stop, cancel, inbox)
    except BaseException:
        stop.set()
        raise
    finally:
        for process in workers.processes:
            if process.is_alive():
                process.terminate()
        for process in workers.processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()
        shutil.rmtree(folder, ignore_errors=True)
    return inbox.result(failure, run, backend)


class _Inbox:
    """What the workers sent: rank 0's events (passed on), each rank's check, the outcome, errors."""

    def __init__(self, on_event: Any) -> None:
        self.on_event = on_event
        self.checks: dict[int, dict[str, Any]] = {}
        self.outcome: TrainOutcome | None = None
        self.errors: list[tuple[int, str, str, str, dict[str, Any]]] = []
        self.steps = 0
        self.history: list[list[float]] = []

    def take(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "event":
            event = message[1]
            if getattr(event, "step", None) is not None and type(event).__name__ == "StepProgress":
                self.steps = int(event.step)
            if self.on_event is not None:
                self.on_event(event)
        elif kind in ("ready", "finished"):
            self.checks.setdefault(int(message[1]), {}).update(message[2])
        elif kind == "outcome":
            self.outcome = _thaw(message[1])
        elif kind == "error":
            self.errors.append(message[1:])

    def drain(self, messages: Any, wait: float = 0.0) -> None:
        while True:
            try:
                self.take(messages.get(timeout=wait) if wait else messages.get_nowait())
            except queue.Empty:
                return

    def result(self, failure: str | None, run: Any, backend: str) -> TrainOutcome:
        for name in ("Cancelled", "IsolationError"):  # what every rank agreed on comes first
            for _rank, kind, title, hint, detail in self.errors:
                if kind == name:
                    raise _rebuilt(kind, title, hint, detail)
        if self.errors:
            rank, kind, title, hint, detail = self.errors[0]
            raise _rebuilt(kind, f"training process {rank}: {title}", hint, detail)
        if failure is not None or self.outcome is None:
            raise StrongroomError(
                f"training stopped on every process: {failure or 'rank 0 sent no model'}",
                "no model was written; the steps taken are charged to the dataset's privacy ledger",
                detail={"steps": self.steps},
            )
        devices = [self.checks[r].get("device", "?") for r in sorted(self.checks)]
        distributed = {
            "world_size": run.world_size,
            "backend": backend,
            "launcher": "torch.multiprocessing.spawn",
            "rendezvous": RENDEZVOUS,
            "devices": devices,
            "interface_checks": [self.checks[r].get("loopback", {}) for r in sorted(self.checks)],
        }
        if backend == "nccl":
            distributed["peak_gpu_bytes"] = [
                self.checks[r].get("peak_gpu_bytes") for r in sorted(self.checks)
            ]
        return replace(self.outcome, distributed=distributed)


def _supervise(workers: Any, messages: Any, stop: Any, cancel: Any, inbox: _Inbox) -> str | None:
    """Pass messages on until every worker has finished; the reason when one failed."""
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    failure = None
    first_error = None
    while True:
        inbox.drain(messages)
        if cancel is not None and cancel.is_set():
            stop.set()
        if inbox.errors and not all(e[1] == "Cancelled" for e in inbox.errors):
            # one process gave up on its own (out of memory, a failed check): the others would wait
            # for it in the next collective until the group's timeout, so they are stopped
            first_error = first_error or time.monotonic()
            if time.monotonic() - first_error > ERROR_GRACE_S:
                break
        try:
            if workers.join(timeout=POLL_S):
                break
        except ProcessExitedException as exc:
            how = f"killed by {exc.signal_name}" if exc.signal_name else f"exit code {exc.exit_code}"
            failure = f"process {exc.error_index} stopped ({how})"
            break
        except ProcessRaisedException as exc:
            last = [line for line in str(exc).strip().splitlines() if line.strip()]
            failure = f"process {exc.error_index} failed: {last[-1] if last else 'an error'}"
            break
    inbox.drain(messages, wait=0.2)
    return failure


def _rebuilt(kind: str, title: str, hint: str, detail: dict[str, Any]) -> StrongroomError:
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, StrongroomError)):
        cls = StrongroomError
    return cls(title, hint, detail=detail)


def _frozen(outcome: TrainOutcome) -> TrainOutcome:
    """The weights as numpy arrays: a tensor crosses a queue through shared memory that the
    receiver maps from the sender, which may have exited by then; arrays travel in the message."""
    return replace(outcome, state_dict={k: v.numpy() for k, v in outcome.state_dict.items()})


def _thaw(outcome: TrainOutcome) -> TrainOutcome:
    import torch

    return replace(outcome, state_dict={k: torch.from_numpy(v) for k, v in outcome.state_dict.items()})


def _device_name(backend: str, rank: int) -> str:
    import platform

    import torch

    if backend == "nccl":
        return f"cuda:{rank} ({torch.cuda.get_device_name(rank)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def _peak_memory(backend: str) -> dict[str, Any]:
    import torch

    return {"peak_gpu_bytes": int(torch.cuda.max_memory_allocated())} if backend == "nccl" else {}


def join_group(rank: int, size: int, backend: str, store: str, parent: dict[str, Any]) -> dict[str, Any]:
    """In a worker: check the namespace, take the command's isolation, open the process group.
    Returns the interface check's evidence; raises IsolationError before any socket exists."""
    from vault.netguard import isolation, loopback

    checked = loopback.confirm(where=f"process {rank}", host_netns=str(parent.get("host_netns", "")))
    isolation.inherit(parent)
    import torch
    import torch.distributed as dist

    if backend == "nccl":
        torch.cuda.set_device(rank)
    else:  # the host's cores shared out, not each process believing it has them all
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    dist.init_process_group(
        backend, store=dist.FileStore(store, size), rank=rank, world_size=size, timeout=GROUP_TIMEOUT
    )
    return checked


def _worker(
    rank: int,
    size: int,
    backend: str,
    store: str,
    payload: tuple[Any, TrainConfig, Any],
    messages: Any,
    stop: Any,
    parent: dict[str, Any],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch.distributed as dist

    try:
        checked = join_group(rank, size, backend, store, parent)
        messages.put(("ready", rank, {"loopback": checked, "device": _device_name(backend, rank)}))
        from vault.train import engine

        data, config, run = payload
        forward = (lambda event: messages.put(("event", event))) if rank == 0 else None
        outcome = engine.train(
            data, config, on_event=forward, cancel=stop, run=run, world=World(rank, size, backend)
        )
        messages.put(("finished", rank, _peak_memory(backend)))
        if outcome is not None:
            messages.put(("outcome", _frozen(outcome)))
    except StrongroomError as error:
        messages.put(("error", rank, type(error).__name__, error.title, error.hint, dict(error.detail)))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    _leave(messages)


def _leave(messages: Any) -> None:
    """End a worker whose messages are all sent, without the interpreter's shutdown.

    Objects of torch's C++ side that a run leaves behind (the gloo group a model's reducer still
    holds, their threads) are destroyed at interpreter exit in an order that, now and then, meets a
    thread still joinable: std::terminate, SIGABRT, and a run that finished lost. Nothing is left
    to do at that point but deliver the queue, so the process leaves through os._exit once it is.
    An exception other than the ones reported above never gets here: torch's spawn wrapper records
    it and the process exits as usual."""
    import sys

    messages.close()
    messages.join_thread()  # every message is in the pipe
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)
