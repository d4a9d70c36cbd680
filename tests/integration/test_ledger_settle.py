"""Every charge ends in a true state: a run killed after its charge is charged in full and shown as
interrupted (not "running") from the next open; a run whose model cannot be written because the disk
is full says what it charged and why, and is settled as failed. Real processes, a real full disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.test_ledger_lineage import import_idx, mnist, policy
from tests.support import PASSPHRASE, REPO, launcher
from vault.door import Vault
from vault.errors import StrongroomError
from vault.storage.files import RunMarker
from vault.train.events import TrainFinished


def charges(v: Vault, name: str) -> list[dict]:
    return list(v.budget(name)[0]["runs"])


def log_lines(vault: Path) -> list[dict]:
    path = vault / "audit" / "log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_start(vault: Path, proc: subprocess.Popen, limit: float = 240) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        started = [e for e in log_lines(vault) if e["action"] == "train.start"]
        if started:
            return started[-1]
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)
    raise AssertionError("the run never started")


def test_a_run_killed_after_its_charge_is_interrupted_and_charged_in_full(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    with Vault.create(vault, passphrase=PASSPHRASE.encode(), policy_text=policy(20.0)) as v:
        x, y = mnist(200)
        import_idx(v, tmp_path, "clinic", x, y)
    env = dict(os.environ, STRONGROOM_VAULT=str(vault), STRONGROOM_PASSPHRASE=PASSPHRASE)
    proc = subprocess.Popen(
        [*launcher(), "train", "clinic", "--epsilon", "3", "--epochs", "200", "--model", "cnn"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        start = wait_for_start(vault, proc)
        run_id = start["detail"]["run"]
        # Opened while the run is alive: its charge is still running, not settled under it.
        with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
            assert [c["outcome"] for c in charges(v, "clinic")] == ["running"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        # The command itself runs inside its PID namespace and dies with its supervisor (the pid
        # killed here) a moment later; the kernel drops its run mark when it does.
        mark = RunMarker(vault, run_id)
        deadline = time.monotonic() + 60
        while mark.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not mark.alive(), "the killed run's process still holds its mark"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        (charge,) = charges(v, "clinic")
        assert charge["run"] == run_id and charge["outcome"] == "interrupted"
        assert charge["epsilon"] == pytest.approx(3.0, rel=0.05)
        assert sum(h[2] for h in charge["history"]) == start["detail"]["steps"]  # the full plan
        assert v.budget("clinic")[0]["epsilon_spent"] == pytest.approx(charge["epsilon"], rel=0.02)
    ends = [e for e in log_lines(vault) if e["action"] == "train.end"]
    assert [(e["outcome"], e["detail"]["run"]) for e in ends] == [("interrupted", run_id)]
    # Settled once: a later open finds nothing left to settle.
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        assert [c["outcome"] for c in charges(v, "clinic")] == ["interrupted"]
    assert len([e for e in log_lines(vault) if e["action"] == "train.end"]) == 1


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return proc.returncode == 0


def test_disk_full_while_the_model_is_written_says_what_was_charged(tmp_path: Path) -> None:
    mnt = tmp_path / "small-disk"
    if os.geteuid() != 0 or not _mount_tmpfs(mnt, "8m"):
        pytest.skip("needs root and mount(2) to make a real small filesystem that fills up")
    vault = mnt / "vault"
    filler = mnt / "filler"

    def fill_disk_when_trained(event: object) -> None:
        if isinstance(event, TrainFinished):  # training is over; the weights come next
            stat = os.statvfs(mnt)
            filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 64 * 1024))

    try:
        with Vault.create(vault, passphrase=PASSPHRASE.encode(), policy_text=policy(20.0)) as v:
            x, y = mnist(200)
            import_idx(v, tmp_path, "clinic", x, y)
            with pytest.raises(StrongroomError) as caught:
                v.train(
                    {"dataset": "clinic", "epsilon": 3.0, "epochs": 1, "model": "cnn", "seed": 1},
                    on_event=fill_disk_when_trained,
                )
            message = caught.value.title
            assert "nothing was changed" not in message
            assert "disk is full" in message and "recorded as failed" in message
            charged = caught.value.detail["epsilon_charged"]
            assert f"ε {charged:.2f}" in message and "was charged" in message
            filler.unlink()
            (charge,) = charges(v, "clinic")
            assert charge["outcome"] == "failed" and charge["epsilon"] == pytest.approx(charged)
            assert v.models() == []
            assert v.verify()["ok"]
        ends = [e for e in log_lines(vault) if e["action"] == "train.end"]
        assert [e["outcome"] for e in ends] == ["failed"]
        assert ends[0]["detail"]["epsilon"] == pytest.approx(charged)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
