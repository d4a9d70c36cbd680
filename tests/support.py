"""What tests share: paths, the test passphrase, generated training data, an independent accountant,
host-side listeners for network tests, the TUI tests' helpers, and a reader of requirements.lock.
Fixtures live in conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

if TYPE_CHECKING:
    from vault.train import TrainData

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VECTORS = REPO / "tests" / "vectors"
DEMO = REPO / "vault" / "demo_data"
PASSPHRASE = "correct horse battery staple"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/{'/'.join(parts)} is absent (public datasets live beside the repo)")
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def launcher(isolation: str | None = "waive", *, real_kdf: bool = False) -> list[str]:
    """The command line that runs `strongroom` as tests do (tests/launch.py)."""
    flags = ["--waive-isolation"] if isolation == "waive" else []
    return [sys.executable, "-m", "tests.launch", *flags, *(["--real-kdf"] if real_kdf else []), "--"]


# ----------------------------------------------------------------------------- training data
def blobs(n: int = 240, side: int = 16, seed: int = 0) -> TrainData:
    """Two easy image classes: a bright square in the top-left or the bottom-right quarter."""
    import torch

    from vault.train import TrainData

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 60, (n, 1, side, side), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 2
    half = side // 2
    for i in range(n):
        if y[i] == 0:
            x[i, 0, :half, :half] += 150
        else:
            x[i, 0, half:, half:] += 150
    return TrainData("image", ["top-left", "bottom-right"], x, y.to(torch.int64), name="blobs")


def texts(n: int = 200) -> TrainData:
    import torch

    from vault.train import TrainData

    words = [["win", "cash", "prize", "now"], ["see", "you", "at", "lunch"]]
    records = [" ".join(words[i % 2][j % 4] for j in range(i % 5 + 2)) + f" {i}" for i in range(n)]
    return TrainData("text", ["spam", "ham"], records, torch.arange(n, dtype=torch.int64) % 2)


# ----------------------------------------------------------------------------- an independent accountant
def google_epsilon(history: list, delta: float, method: str) -> float:
    """Epsilon from Google's dp-accounting (PLD or RDP): the independent check of our accountant."""
    import dp_accounting

    event = dp_accounting.ComposedDpEvent(
        [
            dp_accounting.SelfComposedDpEvent(
                dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise)), steps
            )
            for noise, rate, steps in history
        ]
    )
    accountant = dp_accounting.pld.PLDAccountant() if method == "pld" else dp_accounting.rdp.RdpAccountant()
    accountant.compose(event)
    return float(accountant.get_epsilon(delta))


# ----------------------------------------------------------------------------- host-side listeners
class CountingServer:
    """TCP and UDP on the host's 127.0.0.1 (one port), served by a thread of the test process."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.connections = 0
        self.datagrams = 0
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="counting-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.tcp, self.udp, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            self._take(ready)

    def _take(self, ready: list[Any]) -> None:
        if self.tcp in ready:
            conn, _ = self.tcp.accept()
            self.connections += 1
            conn.close()
        if self.udp in ready:
            self.udp.recvfrom(65536)
            self.datagrams += 1

    def close(self) -> tuple[int, int]:
        """Stop the thread, then count whatever is still queued; returns (connections, datagrams)."""
        if self._closed:
            return self.connections, self.datagrams
        self._closed = True
        self._wake_w.send(b"x")
        self._thread.join()
        for sock in (self.tcp, self.udp):
            sock.setblocking(False)
        while True:
            ready, _, _ = select.select([self.tcp, self.udp], [], [], 0)
            if not ready:
                break
            self._take(ready)
        for sock in (self.tcp, self.udp, self._wake_r, self._wake_w):
            sock.close()
        return self.connections, self.datagrams


class UnixListener:
    """A host process's Unix socket: a filesystem path (or an abstract name) that counts connections."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(16)
        self.sock.setblocking(False)

    def close(self) -> int:
        return close_counting(self.sock)


def close_counting(sock: socket.socket) -> int:
    """Accept and count what waits in a non-blocking listener's backlog, then close it."""
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            break
        conn.close()
        count += 1
    sock.close()
    return count


def run_python(
    code: str, *args: str, timeout: float = 120, cwd: Path = REPO, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    return subprocess.run(
        [*(prefix or []), sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# unshare(2) itself, with the flags isolation tries (netguard/isolation.py): as root without a user
# namespace first, then (or otherwise) with one.
UNSHARE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
NEWNS, NEWUSER, NEWNET = 0x00020000, 0x10000000, 0x40000000
tries = ([("CLONE_NEWNET|CLONE_NEWNS", NEWNET | NEWNS)] if os.geteuid() == 0 else []) + [
    ("CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWNS", NEWUSER | NEWNET | NEWNS)]
refused = []
for name, flags in tries:
    if libc.unshare(flags) == 0:
        raise SystemExit(0)
    refused.append(f"unshare({name}): {os.strerror(ctypes.get_errno())}")
print("; ".join(refused), file=sys.stderr)
raise SystemExit(1)
"""


def unshare_refused(prefix: list[str] | None = None) -> str | None:
    """Why the host refuses unshare to a fresh process (None when it allows it)."""
    proc = run_python(UNSHARE, cwd=Path("/"), prefix=prefix)
    return None if proc.returncode == 0 else (proc.stderr.strip()[-400:] or f"exit {proc.returncode}")


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.stdout.strip(), f"no output (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the TUI
SIZE = (80, 24)


def fresh_vault(tmp_path: Path, *, real_kdf: bool = False) -> Path:
    """An empty vault at tmp_path/vault: cheap key derivation, or with `real_kdf` the product's own
    parameters, for a process the tests cannot switch (the TUI that `strongroom tui` execs)."""
    from vault.door import Vault

    path = tmp_path / "vault"
    with product_kdf() if real_kdf else contextlib.nullcontext():
        Vault.create(path, passphrase=PASSPHRASE.encode()).close()
    return path


@contextlib.contextmanager
def product_kdf() -> Iterator[None]:
    """Within the block, new key slots get the product's Argon2id parameters, not the cheap ones."""
    from vault.crypto import keys

    was = keys.test_kdf_enabled()
    keys.use_test_kdf(False)
    try:
        yield
    finally:
        keys.use_test_kdf(was)


async def settle(pilot) -> None:
    """Until no worker runs (a finished worker may start the next, e.g. unlock -> area load). A worker
    cancelled meanwhile (an exclusive one replaced by a newer call, e.g. the live policy check) is
    settled too."""
    from textual.worker import WorkerCancelled

    for _ in range(10):
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            break
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            continue
    await pilot.pause()


async def unlock(pilot, passphrase: str = PASSPHRASE) -> None:
    from textual.widgets import Input

    await pilot.pause()
    field = pilot.app.screen.query_one("#passphrase", Input)
    field.focus()
    field.value = passphrase
    await pilot.press("enter")
    await settle(pilot)


def text_of(app, selector: str) -> str:
    from textual.widgets import Static

    return str(app.screen.query_one(selector, Static).render())


# ----------------------------------------------------------------------------- requirements.lock
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?P<options>(?:\s+--hash=\S+)*)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    hashes: tuple[str, ...]
    line: int


def parse_lock(text: str) -> tuple[dict[str, Pin], list[str]]:
    """Pins by canonical name, and the problems found: anything but `name==version --hash=...` lines."""
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        pending = []
        if joined:
            logical.append((start, joined))
    for number, entry in logical:
        match = PIN.match(entry)
        if not match:
            problems.append(f"line {number}: {entry[:80]!r} is not a pinned requirement with hashes")
            continue
        name = canonicalize_name(match["name"])
        hashes = tuple(match["options"].split())
        bad = [h for h in hashes if not HASH.match(h)]
        if not hashes or bad:
            problems.append(
                f"line {number}: {name} has no sha256 hash" if not hashes else f"line {number}: {bad[0]}"
            )
        if name in pins:
            problems.append(f"line {number}: {name} is pinned twice (first on line {pins[name].line})")
        pins[name] = Pin(name, Version(match["version"]), hashes, number)
    return pins, problems


def finding_json(seq: int | None, kind: str, expected: str, found: str, message: str) -> dict[str, Any]:
    """A verification finding as `Finding.to_json()` gives it (an error at a log entry)."""
    return {
        "kind": kind,
        "expected": expected,
        "found": found,
        "message": message,
        "object": None,
        "seq": seq,
        "severity": "error",
    }
