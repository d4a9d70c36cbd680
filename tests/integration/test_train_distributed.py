"""`strongroom train --nproc 2`: two CPU processes under gloo, inside the real sandbox (the loopback
level), against the same recipe in one process. The accounting is the single process's plan
(checked with Google's dp-accounting), the ledger is charged once, the model is as good; Ctrl-C
stops every process; a killed process stops the run, charges the steps taken and writes no model.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from tests.peers import mnist_idx
from tests.support import PASSPHRASE, REPO, google_epsilon, launcher, shared_path, unshare_refused
from vault.door import Vault
from vault.ingest import ImportOptions

pytestmark = pytest.mark.slow
LOOPBACK = "namespace+seccomp-loopback"


def policy(required: str = LOOPBACK) -> str:
    text = (REPO / "policies" / "default.toml").read_text()
    text = text.replace('required = "namespace+seccomp"', f'required = "{required}"')
    return text.replace(
        'allowed = ["cnn", "resnet18", "bow", "transformer"]',
        'allowed = ["scatternet", "cnn", "resnet18", "bow", "transformer"]',
    )


def digits_vault(tmp_path: Path, records: int) -> Path:
    """A vault whose dataset `digits` holds the first `records` MNIST test images, under a policy
    that allows the loopback level; skips where the host refuses network namespaces."""
    refused = unshare_refused()
    if refused:
        pytest.skip(f"this host forbids network namespaces, so no loopback level: {refused}")
    vault = tmp_path / "vault"
    shared_path("datasets", "mnist")
    images, labels = mnist_idx(tmp_path, records, "d")
    with Vault.create(vault, passphrase=PASSPHRASE.encode(), policy_text=policy()) as v:
        v.import_dataset(images, name="digits", options=ImportOptions(labels=labels))
    return vault


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return digits_vault(tmp_path, 2000)


def env_for(vault: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_VAULT=str(vault), STRONGROOM_PASSPHRASE=PASSPHRASE)


def strongroom(vault: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The real command, isolated for real (no waiver): the policy is checked against the level."""
    return subprocess.run(
        [*launcher(None), *args],
        env=env_for(vault),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def charges(vault: Path) -> list[dict[str, Any]]:
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        (row,) = v.budget("digits")
        models = v.models()
    return [dict(r, models=len(models)) for r in row["runs"]]


RECIPE = ("--epsilon", "3", "--seed", "7", "--reproducible", "--epochs", "6", "--json")


def test_two_processes_keep_the_single_process_accounting_and_accuracy(digits: Path) -> None:
    one = strongroom(digits, "train", "digits", *RECIPE, "--nproc", "1")
    assert one.returncode == 0, one.stderr[-3000:]
    two = strongroom(digits, "train", "digits", *RECIPE, "--nproc", "2")
    assert two.returncode == 0, two.stderr[-3000:]
    single, double = json.loads(one.stdout), json.loads(two.stdout)

    assert double["world_size"] == 2 and single["world_size"] == 1
    for key in ("sample_rate", "steps", "noise_multiplier", "epsilon", "delta", "accountant"):
        assert double[key] == single[key], key
    history = [[double["noise_multiplier"], double["sample_rate"], double["steps"]]]
    assert double["epsilon"] == pytest.approx(google_epsilon(history, double["delta"], "pld"), rel=0.01)
    assert double["epsilon"] <= 3.0
    assert abs(double["accuracy"] - single["accuracy"]) <= 0.01, (single["accuracy"], double["accuracy"])

    distributed = double["distributed"]
    assert distributed["backend"] == "gloo" and len(distributed["devices"]) == 2
    assert [c["interfaces_seen"] for c in distributed["interface_checks"]] == [["lo"], ["lo"]]

    with Vault.open(digits, user="admin", passphrase=PASSPHRASE.encode()) as v:
        card = v.model_card(double["model"])
        (row,) = v.budget("digits")
    assert card["distributed"]["world_size"] == 2 and len(card["distributed"]["devices"]) == 2
    runs = {r["run"]: r for r in row["runs"]}
    assert len(runs) == 2, "each run is charged once, the two-process one included"
    charged = runs[double["run"]]
    assert charged["outcome"] == "ok"
    assert sum(h[2] for h in charged["history"]) == double["steps"]
    assert charged["epsilon"] == pytest.approx(double["epsilon"], rel=1e-9)
    # the session ran at the loopback level, and the log records its interface check
    lines = (digits / "audit" / "log.jsonl").read_text().splitlines()
    isolation = [json.loads(line)["detail"] for line in lines if '"network.isolation"' in line]
    checked = [d for d in isolation if d.get("mode") == LOOPBACK]
    assert checked and all(d["loopback_check"]["interfaces_seen"] == ["lo"] for d in checked)
    assert all(d["loopback_check"]["allowed"] for d in checked)


class Terminal:
    """The command on a pseudo-terminal that is its controlling terminal, in its own session as a
    shell runs it: its progress is read from the terminal, and Ctrl-C is the ^C character typed
    there, which the kernel turns into SIGINT for the whole foreground group (the workers too)."""

    def __init__(self, vault: Path, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [*launcher(None), *args],
            env=env_for(vault),
            cwd=REPO,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.seen = ""

    def ctrl_c(self) -> None:
        os.write(self.master, b"\x03")

    def wait_for_step(self, step: int, limit: float = 600) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                chunk = os.read(self.master, 65536).decode(errors="replace")
            except OSError:
                break
            self.seen += chunk
            done = [int(m) for m in re.findall(r"(\d+)/\d+ loss", self.seen)]
            if done and max(done) >= step:
                return
        raise AssertionError(f"no progress to step {step}: {self.seen[-2000:]}")

    def finish(self, limit: float = 300) -> int:
        try:
            code = self.proc.wait(timeout=limit)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        while True:
            try:
                chunk = os.read(self.master, 65536).decode(errors="replace")
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        os.close(self.master)
        return code


def workers_of(pid: int) -> list[int]:
    """Host pids of the training processes under `pid` (torch.multiprocessing's spawned children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            todo.append(child)
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"multiprocessing.spawn" in command and b"spawn_main" in command:
                found.append(child)
    return found


def gone(pids: list[int], limit: float = 60) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() and _alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


LONG = ("--epsilon", "3", "--seed", "3", "--epochs", "40", "--nproc", "2")


def test_ctrl_c_stops_every_process_and_charges_the_steps_taken(digits: Path) -> None:
    run = Terminal(digits, "train", "digits", *LONG)
    run.wait_for_step(3)
    workers = workers_of(run.proc.pid)
    assert len(workers) == 2, workers
    run.ctrl_c()
    code = run.finish()
    assert code != 0, run.seen[-2000:]
    assert "training cancelled after" in run.seen, run.seen[-2000:]
    assert "Traceback" not in run.seen
    assert gone(workers), "a training process outlived the cancelled run"
    (charge,) = charges(digits)
    assert charge["outcome"] == "cancelled" and charge["models"] == 0
    steps = sum(h[2] for h in charge["history"])
    assert 3 <= steps < 40 * 8


def test_a_killed_process_stops_the_run_charges_its_steps_and_writes_no_model(digits: Path) -> None:
    run = Terminal(digits, "train", "digits", *LONG)
    run.wait_for_step(3)
    workers = workers_of(run.proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[-1], signal.SIGKILL)
    code = run.finish()
    assert code != 0
    assert "training stopped on every process" in run.seen, run.seen[-2000:]
    assert "Traceback" not in run.seen
    assert gone(workers), "the surviving process was left running"
    (charge,) = charges(digits)
    assert charge["outcome"] == "failed" and charge["models"] == 0
    assert sum(h[2] for h in charge["history"]) >= 3


def test_a_policy_that_requires_the_plain_level_refuses_several_processes(tmp_path: Path) -> None:
    if unshare_refused():
        pytest.skip("this host forbids network namespaces")
    vault = tmp_path / "vault"
    shared_path("datasets", "mnist")
    images, labels = mnist_idx(tmp_path, 200, "d")
    with Vault.create(vault, passphrase=PASSPHRASE.encode(), policy_text=policy("namespace+seccomp")) as v:
        v.import_dataset(images, name="digits", options=ImportOptions(labels=labels))
    proc = strongroom(vault, "train", "digits", "--nproc", "2", "--epochs", "1")
    assert proc.returncode == 6, proc.stderr
    assert LOOPBACK in proc.stderr and "Traceback" not in proc.stderr
    assert charges(vault) == []


def test_reproducible_runs_of_two_processes_give_the_same_weights(digits: Path) -> None:
    """The same seed and N give the same weights file. The weights were always the same; the file's
    hash was not, half the time (safetensors wrote its metadata in a random order, see
    tests/unit/test_train_weights.py), which is what one loaded run once showed."""
    recipe = ("--epsilon", "3", "--seed", "5", "--reproducible", "--epochs", "2", "--nproc", "2", "--json")
    first = strongroom(digits, "train", "digits", *recipe)
    second = strongroom(digits, "train", "digits", *recipe)
    assert first.returncode == 0 and second.returncode == 0, (first.stderr[-2000:], second.stderr[-2000:])
    lines = (digits / "audit" / "log.jsonl").read_text().splitlines()
    ends = [json.loads(line)["detail"] for line in lines if '"train.end"' in line]
    hashes = {e["run"]: e["weights_sha256"] for e in ends}
    runs = [json.loads(first.stdout)["run"], json.loads(second.stdout)["run"]]
    assert hashes[runs[0]] == hashes[runs[1]], "the same seed and N gave different weights"
