"""Shared fixtures: cheap key derivation and the isolation waiver through their explicit in-process
switches, vaults, and the real CLI (through tests/launch.py, which sets the same switches)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import PASSPHRASE, REPO, CliResult, launcher, shared_path
from vault.crypto import keys
from vault.netguard import state as isolation_state

# Explicit test switches, in this process only (each recorded where it matters: cheap parameters in
# every slot made under it, the waiver in every session's isolation evidence):
keys.use_test_kdf()
# The pytest process cannot isolate itself; CLI tests run real isolated processes (tests/launch.py).
isolation_state.waive_for_tests()
for var in (
    "STRONGROOM_VAULT",
    "STRONGROOM_USER",
    "STRONGROOM_PASSPHRASE",
    "STRONGROOM_NEW_PASSPHRASE",
    "STRONGROOM_APPROVER",
    "STRONGROOM_APPROVER_PASSPHRASE",
):
    os.environ.pop(var, None)


@pytest.fixture
def shared() -> Callable[..., Path]:
    return shared_path


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def new_vault(vault_path: Path) -> Callable[..., Any]:
    """Create a vault (cheap KDF) and return it opened as admin; closed at teardown."""
    from vault.door import Vault

    opened: list[Any] = []

    def make(policy_text: str | None = None, **kwargs: Any) -> Any:
        v = Vault.create(vault_path, passphrase=PASSPHRASE.encode(), policy_text=policy_text, **kwargs)
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()


@pytest.fixture
def cli(vault_path: Path) -> Callable[..., CliResult]:
    """Run the real `strongroom` command in a subprocess against `vault_path`."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 300,
        isolation: str | None = "waive",
    ) -> CliResult:
        full_env = dict(
            os.environ,
            STRONGROOM_VAULT=str(vault_path),
            STRONGROOM_PASSPHRASE=PASSPHRASE,
            PYTHONUNBUFFERED="1",
        )
        full_env.update(env or {})
        for k, v in list(full_env.items()):
            if v is None:
                del full_env[k]
        proc = subprocess.run(
            [*launcher(isolation), *args],
            env=full_env,
            cwd=REPO,
            text=True,
            capture_output=True,
            input=input,
            timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
