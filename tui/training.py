"""A training run in its own process, so the UI keeps answering keys while torch works.

The run's events arrive as JSON lines; a reader thread turns them into Textual messages.
Step progress coalesces: while the UI has not yet taken the latest one, newer ones replace
it, so a fast trainer cannot flood the message queue.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from tui import launcher as launchers
from tui.launcher import ROOT, trainer_command, trainer_environment

PROGRESS_EVENTS = {"StepProgress"}


@dataclass(frozen=True)
class RunUpdate:
    """One event from the trainer: its class name in the core and its fields."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)


class RunProgress(Message):
    """The latest step progress is ready: take it with `TrainingRun.take_progress()`."""


class RunEvent(Message):
    def __init__(self, update: RunUpdate) -> None:
        super().__init__()
        self.update = update


class RunEnded(Message):
    """The run is over: `result` on success, else `title`/`hint` of the error."""

    def __init__(
        self, result: dict[str, Any] | None, title: str = "", hint: str = "", error: str = ""
    ) -> None:
        super().__init__()
        self.result = result
        self.title = title
        self.hint = hint
        self.error = error


class TrainingRun:
    """Starts `python -m tui.train_child`, hands it the job on stdin, and relays what it reports.

    A run of one process is this process's child and inherits the UI's own isolation. A run of
    several goes through the trainer launcher when the UI has one (`tui.launcher`): the trainer is
    the launcher's child and inherits its loopback level instead."""

    def __init__(
        self, target: MessagePump, *, vault_path: Path, user: str, secrets: bytes, request: dict[str, Any]
    ) -> None:
        self.target = target
        self.request = dict(request)
        self._lock = threading.Lock()
        self._latest: RunUpdate | None = None
        self._progress_pending = False
        self._ended = False
        from vault.netguard import (
            state as netguard_state,  # the UI's own isolation, for the trainer to inherit
        )

        isolation = netguard_state.current_report()
        launcher = launchers.current() if int(self.request.get("nproc") or 1) > 1 else None
        self.process: Any
        if launcher is not None and launcher.refusal() is None:
            self.process = launcher.spawn()
            isolation = dict(launcher.status()["isolation"])
        else:
            self.process = subprocess.Popen(
                trainer_command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=trainer_environment(),
                cwd=str(ROOT),
            )
        assert self.process.stdin is not None
        job = {
            "vault": str(Path(vault_path).resolve()),
            "user": user,
            "request": self.request,
            "slot_secrets_b64": base64.b64encode(secrets).decode("ascii"),
            "isolation": isolation,
        }
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        self._reader = threading.Thread(target=self._read, daemon=True, name="training-reader")
        self._reader.start()

    @property
    def active(self) -> bool:
        return not self._ended

    def cancel(self) -> None:
        """Ask the trainer to stop between steps (it charges the ledger for the steps taken)."""
        if self._ended or self.process.stdin is None:
            return
        try:
            self.process.stdin.write("cancel\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    async def wait(self) -> None:
        """Until the process has ended and its last message is posted (for tests and benchmarks)."""
        import asyncio

        await asyncio.to_thread(self._reader.join)

    def take_progress(self) -> RunUpdate | None:
        with self._lock:
            latest, self._latest = self._latest, None
            self._progress_pending = False
        return latest

    def _read(self) -> None:
        assert self.process.stdout is not None
        ended: RunEnded | None = None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = message.get("type")
            if kind == "event":
                update = RunUpdate(str(message.get("event")), dict(message.get("fields") or {}))
                if update.event in PROGRESS_EVENTS:
                    with self._lock:
                        self._latest = update
                        post = not self._progress_pending
                        self._progress_pending = True
                    if post:
                        self.target.post_message(RunProgress())
                else:
                    self.target.post_message(RunEvent(update))
            elif kind == "finished":
                ended = RunEnded(dict(message.get("result") or {}))
            elif kind == "error":
                ended = RunEnded(
                    None,
                    str(message.get("title", "")),
                    str(message.get("hint", "")),
                    str(message.get("error", "")),
                )
        code = self.process.wait()
        if ended is None:
            ended = RunEnded(
                None,
                f"the training process ended unexpectedly (exit code {code})",
                "the vault is unchanged or holds the run's audit trail; try again, or "
                "run `strongroom train` to see the full error",
            )
        self._ended = True
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        self.target.post_message(ended)
