"""A crash at any instant leaves the vault as it was before or after the action.

Real subprocesses: an import is killed with SIGKILL at several points of its run; a disk fills up
mid-import (a real small tmpfs, when this process may mount one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import PASSPHRASE, REPO, launcher
from vault.errors import StrongroomError


def make_text_source(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("label,text\n")
        for i in range(rows):
            f.write(
                f'{"spam" if i % 7 == 0 else "ham"},"message number {i} with some padding text to make it longer '
                f'{"x" * (i % 50)}"\n'
            )
    return path


def cli_env(vault: Path) -> dict[str, str]:
    return dict(os.environ, STRONGROOM_VAULT=str(vault), STRONGROOM_PASSPHRASE=PASSPHRASE)


def start_import(vault: Path, source: Path, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*launcher(), "import", str(source), "--name", name],
        env=cli_env(vault),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def check_consistent(vault: Path, name: str, expected_rows: int) -> str:
    """Open the vault; the dataset is either absent or complete. Returns which."""
    from vault.door import Vault

    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        names = [d["name"] for d in v.datasets()]
        report = v.verify()
        assert report["ok"], report["findings"]
        if name not in names:
            return "before"
        data = v._datasets.load(name, purpose="verify")
        assert len(data) == expected_rows
        return "after"


@pytest.mark.slow
def test_kill_9_during_import_leaves_vault_before_or_after(new_vault, vault_path, tmp_path):
    new_vault().close()
    rows = 60_000
    source = make_text_source(tmp_path / "big.csv", rows)
    t0 = time.monotonic()
    proc = start_import(vault_path, source, "full")
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
    duration = time.monotonic() - t0
    assert check_consistent(vault_path, "full", rows) == "after"

    outcomes = []
    for i, fraction in enumerate((0.15, 0.35, 0.55, 0.7, 0.8, 0.9, 0.97)):
        name = f"crash{i}"
        proc = start_import(vault_path, source, name)
        time.sleep(duration * fraction)  # a kill point inside the import's run, not a wait for a result
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        outcomes.append(check_consistent(vault_path, name, rows))
        leftovers = list(vault_path.rglob(".tmp-*"))
        # Temp files of the killed writer may remain until the next writer sweeps them; never a catalog.
        assert all(f.name.startswith(".tmp-") for f in leftovers)
    assert "before" in outcomes


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return proc.returncode == 0


def test_disk_full_mid_import_leaves_vault_unchanged(tmp_path):
    from vault.door import Vault

    mnt = tmp_path / "small-disk"
    if os.geteuid() != 0 or not _mount_tmpfs(mnt, "3m"):
        pytest.skip("needs root and mount(2) to make a real small filesystem that fills up")
    try:
        vault = mnt / "vault"
        with Vault.create(vault, passphrase=PASSPHRASE.encode()) as v:
            v.import_dataset(make_text_source(tmp_path / "small.csv", 200), name="small")
            before = {
                p.relative_to(vault): p.read_bytes()
                for p in vault.rglob("*")
                if p.is_file() and p.parent.name != "audit" and p.name != "lock"
            }
            big = make_text_source(tmp_path / "big.csv", 80_000)
            with pytest.raises(StrongroomError, match="full"):
                v.import_dataset(big, name="big")
            after = {
                p.relative_to(vault): p.read_bytes()
                for p in vault.rglob("*")
                if p.is_file() and p.parent.name != "audit" and p.name != "lock"
            }
            assert after == before
            assert [d["name"] for d in v.datasets()] == ["small"]
            assert v.verify()["ok"]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


KILLED_AT_THE_HEADER_WRITE = """
import os, sys
from vault import netguard

netguard.isolate(keep=[sys.argv[1]])  # first, as the command does

from vault.crypto import keys
from vault.door import Vault
from vault.door.session import Session
from tests.support import PASSPHRASE

keys.use_test_kdf()  # the vault was made with the tests' cheap key derivation


def killed(*args, **kwargs):
    os._exit(137)  # dies there, as if killed (PID 1 of its namespace cannot SIGKILL itself)


Session._write_header = killed  # the commit point of every change to the signed header
with Vault.open(sys.argv[1], user="admin", passphrase=PASSPHRASE.encode()) as v:  # a format 1 vault upgrades here
    if sys.argv[2] == "add":
        v.keys_add("peter", "operator", b"peter's passphrase")
    elif sys.argv[2] == "remove":
        v.keys_remove("olivia")
    elif sys.argv[2] == "rotate":
        v.keys_rotate()
    elif sys.argv[2] == "policy":
        v.policy_set(open("policies/strict.toml").read(), source="policies/strict.toml")
"""


@pytest.mark.parametrize("change", ["add", "remove", "rotate", "policy"])
def test_a_key_change_killed_at_its_commit_point_leaves_the_vault_as_it_was(
    new_vault, vault_path: Path, change: str
) -> None:
    """The change is logged first (audit before action) with the generation it commits as; killed
    at the header write, it never committed: the next open takes the vault as it was, not as a
    rollback, and the change can be made again."""
    from vault.door import Vault

    with new_vault() as v:
        v.keys_add("olivia", "operator", b"olivia's passphrase")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_THE_HEADER_WRITE, str(vault_path), change],
        cwd=REPO,
        capture_output=True,
    )
    assert killed.returncode == 137, killed.stderr.decode()[-2000:]
    with Vault.open(vault_path, user="admin", passphrase=PASSPHRASE.encode()) as v:
        assert sorted(s["user"] for s in v.keys_list()) == ["admin", "olivia"]
        assert v.verify()["ok"]
        assert v.policy.name == "default"
        v.keys_remove("olivia")
    with Vault.open(vault_path, user="admin", passphrase=PASSPHRASE.encode()) as v:
        assert [s["user"] for s in v.keys_list()] == ["admin"]
