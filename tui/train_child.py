"""The training process: opens the vault through the one door, trains, and reports events.

Started by `tui.training` as `python -I -u -m tui.train_child`. It reads one JSON line (vault, user,
the UI session's slot secrets, request) from stdin, then watches stdin for "cancel" (or end of file, when the UI
has gone). Events, the result or the error go to the UI as JSON lines on a private copy of
stdout; anything else the libraries print goes to stderr, which the UI discards.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from typing import IO, Any


def _send(stream: IO[str], lock: threading.Lock, message: dict[str, Any]) -> None:
    line = json.dumps(message, default=str)
    with lock:
        stream.write(line + "\n")
        stream.flush()


def _watch_stdin(cancel: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "cancel":
            cancel.set()
    cancel.set()


def _isolate(vault_path: str, parent: dict[str, Any] | None, processes: int) -> None:
    """First thing, before any thread exists. The process that started this one is isolated
    already (the UI, or for a run of several processes the UI's trainer launcher, at the loopback
    level), and namespaces and seccomp pass to children but cannot be entered twice: the trainer
    checks that it really is inside that isolation and reports it as inherited. Started by a UI
    that is not isolated (a host without namespaces, the tests), it isolates on its own, at the
    loopback level for several processes."""
    from vault import netguard
    from vault.vocabulary import LOOPBACK_ISOLATION

    if parent and parent.get("mode") in ("namespace+seccomp", LOOPBACK_ISOLATION):
        netguard.inherit(parent, keep=[vault_path])
    else:
        netguard.isolate_session(keep=[vault_path], loopback=processes > 1)


def main() -> int:
    from vault.netguard import hardening

    hardening.harden()  # not dumpable, no core: before the slot secrets arrive on stdin
    private_fd = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(private_fd, "w", encoding="utf-8")
    lock = threading.Lock()
    try:
        os.nice(5)
    except OSError:
        pass
    job = json.loads(sys.stdin.readline())
    secrets = base64.b64decode(job.pop("slot_secrets_b64"))
    try:
        processes = int((job.get("request") or {}).get("nproc") or 1)
        _isolate(job["vault"], job.get("isolation"), processes)
    except Exception as error:
        _send(
            out,
            lock,
            {
                "type": "error",
                "error": type(error).__name__,
                "title": str(getattr(error, "title", error)),
                "hint": str(getattr(error, "hint", "")),
            },
        )
        return int(getattr(error, "exit_code", 6))
    cancel = threading.Event()
    threading.Thread(target=_watch_stdin, args=(cancel,), daemon=True, name="cancel-watch").start()

    from tui.backend import Backend, as_dict

    def on_event(event: Any) -> None:
        _send(out, lock, {"type": "event", "event": type(event).__name__, "fields": as_dict(event)})

    try:
        backend = Backend.resume(job["vault"], user=job["user"], secrets=secrets)
        del secrets
        try:
            result = backend.train(job["request"], on_event=on_event, cancel=cancel)
        finally:
            backend.close()
    except Exception as error:
        title = getattr(error, "title", None) or f"training failed: {type(error).__name__}"
        hint = getattr(error, "hint", None) or str(error)[:300]
        _send(
            out,
            lock,
            {"type": "error", "error": type(error).__name__, "title": str(title), "hint": str(hint)},
        )
        return int(getattr(error, "exit_code", 1))
    _send(out, lock, {"type": "finished", "result": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
