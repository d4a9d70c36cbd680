"""Smoke test in a real terminal: `strongroom tui` under tmux at 80x24, driven with send-keys
and read back with capture-pane. Skipped where tmux is absent.

The UI runs exactly as installed: real isolation and no test switch, so its vaults are made with
the product's own key derivation parameters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import PASSPHRASE, REPO, fresh_vault, unshare_refused

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is absent (apt-get install tmux; .ci/run installs it)"
)


class Pane:
    """One detached tmux session running a command at 80x24."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.name = f"strongroom-test-{uuid.uuid4().hex[:8]}"
        exports = [f"{key}={value}" for key, value in env.items()]
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "80", "-y", "24", "env", *exports, *command],
            check=True,
            cwd=REPO,
        )

    def text(self) -> str:
        done = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return done.stdout

    def send(self, *keys: str, literal: bool = False) -> None:
        subprocess.run(
            ["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True
        )

    def wait_for(self, condition: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        """Poll the pane until `condition(text)` holds (a deadline, not a sleep)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if condition(text):
                return text
            if not self.alive():
                break
        raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{text}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)

    def unlock_to_train(self, dataset: str) -> None:
        """Unlock, wait for `dataset` in the Datasets area, open Train and wait for its policy check.
        Deadlines, not durations: real key derivation, then torch loading for the Train area, on a
        loaded 2-core machine can take minutes."""
        self.wait_for(lambda text: "Passphrase" in text, "the unlock screen")
        self.send(PASSPHRASE, literal=True)
        self.send("Enter")
        self.wait_for(lambda text: "1 Datasets" in text and dataset in text, "the Datasets area", 300)
        self.send("2")
        self.wait_for(lambda text: "policy: ✓ allowed" in text, "the Train area's policy check", 300)

    def run_to_the_end(self, timeout: float) -> str:
        """Start a run (ctrl+r) and wait for its end; returns the screen then."""
        for _ in range(10):  # the area may still be settling its form when the first key arrives
            self.send("C-r")
            try:
                self.wait_for(lambda text: "No run yet" not in text, "the run to start", 3)
                break
            except AssertionError:
                continue
        # a deadline, not a duration: on a loaded 2-core machine importing torch alone can take a minute
        return self.wait_for(lambda text: "finished: model" in text or "✗" in text, "the run to end", timeout)


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    return fresh_vault(tmp_path, real_kdf=True)


def tui_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["TERM"] = "xterm-256color"
    env.setdefault("LANG", "C.UTF-8")
    return env


def test_unlock_switch_areas_help_and_quit_in_a_real_terminal(vault_dir: Path) -> None:
    pane = Pane([sys.executable, "-m", "vault.cli", "tui", "--vault", str(vault_dir)], tui_env())
    try:
        pane.wait_for(lambda text: "Passphrase" in text, "the unlock screen")
        pane.send(PASSPHRASE, literal=True)
        masked = pane.text()
        assert PASSPHRASE not in masked
        pane.send("Enter")
        pane.wait_for(lambda text: "1 Datasets" in text and "name" in text, "the Datasets area")
        pane.send("5")
        shown = pane.wait_for(lambda text: "verified" in text, "the audit verdict")
        assert "✓ verified" in shown or "✗" in shown
        pane.send("F1")
        pane.wait_for(lambda text: "Everywhere" in text, "the help screen")
        pane.send("Escape")
        pane.wait_for(lambda text: "Everywhere" not in text, "help to close")
        assert PASSPHRASE not in pane.text()
        pane.send("C-q")
        pane.wait_for(
            lambda text: not pane.alive() or "Passphrase" not in text and "Audit" not in text,
            "the app to quit",
        )
    finally:
        pane.close()


def test_auditor_mode_in_a_real_terminal(vault_dir: Path) -> None:
    pane = Pane([sys.executable, "-m", "vault.cli", "tui", "--auditor", "--vault", str(vault_dir)], tui_env())
    try:
        shown = pane.wait_for(lambda text: "verified" in text, "the audit verdict")
        assert "Passphrase" not in shown
        assert "2 Train" not in shown and "5 Audit" in shown
        pane.send("C-q")
    finally:
        pane.close()


def test_training_from_the_ui_under_real_isolation(tmp_path: Path) -> None:
    """The UI isolates itself, and its trainer process, started from inside that isolation, must
    report the same level (it cannot enter namespaces a second time) so that the default policy's
    isolation rule lets the run go."""
    probe = subprocess.run(
        [sys.executable, "-m", "vault.netguard", "report"],
        capture_output=True,
        text=True,
        cwd="/",
        env={k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")},
    )
    refused = unshare_refused()
    if refused:
        pytest.skip(
            f"this host forbids network namespaces: the UI runs at 'guard' and the policy refuses training ({refused})"
        )
    assert probe.returncode == 0, f"unshare works here, yet isolation failed: {probe.stderr[-2000:]}"
    from vault.door import Vault

    rows = "".join(
        f"spam\twin cash prize now {i}\n" if i % 2 else f"ham\tsee you at lunch {i}\n" for i in range(240)
    )
    (tmp_path / "msgs.tsv").write_text("label\ttext\n" + rows, "utf-8")
    path = fresh_vault(tmp_path, real_kdf=True)
    with Vault.open(path, user="admin", passphrase=PASSPHRASE.encode()) as vault:
        vault.import_dataset(tmp_path / "msgs.tsv", name="msgs")
    pane = Pane([sys.executable, "-m", "vault.cli", "tui", "--vault", str(tmp_path / "vault")], tui_env())
    try:
        pane.unlock_to_train("msgs")
        shown = pane.run_to_the_end(600)
        assert "✓ finished: model bow-" in shown, shown
    finally:
        pane.close()
    reopened = Vault.open(tmp_path / "vault", user="admin", passphrase=PASSPHRASE.encode())
    try:
        trained = [
            e for e in reopened.audit.entries(action="network.isolation") if e["detail"].get("inherited_from")
        ]
        assert trained and trained[-1]["detail"]["mode"] == "namespace+seccomp"
    finally:
        reopened.close()


@pytest.mark.slow
def test_two_processes_train_from_the_sandboxed_ui(tmp_path: Path) -> None:
    """`strongroom tui` runs inside namespace+seccomp, whose filter no child can loosen; a run of two
    processes needs internet sockets on loopback. The launcher the UI starts before its own sandbox
    holds the loopback level and starts the trainer, so the run goes from the real, isolated UI."""
    refused = unshare_refused()
    if refused:
        pytest.skip(f"this host forbids network namespaces, so no loopback level: {refused}")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU core: the form allows one process only")
    from tests.support import product_kdf
    from tests.tui.test_tui_nproc import vault_with_digits
    from vault.vocabulary import LOOPBACK_ISOLATION

    with product_kdf():
        path = vault_with_digits(tmp_path, LOOPBACK_ISOLATION)
    pane = Pane([sys.executable, "-m", "vault.cli", "tui", "--vault", str(path)], tui_env())
    try:
        pane.unlock_to_train("digits")
        # From the dataset field (focused first): model, DP, epsilon, delta, epochs (5), batch, lr,
        # processes (8). A focused field selects its text, so typing replaces it. One key at a time:
        # each focus change lands before the next key.
        for key in [*["Tab"] * 5, "2", *["Tab"] * 3, "2"]:
            pane.send(key, literal=key == "2")
            time.sleep(0.3)
        shown = pane.wait_for(
            lambda text: "2 processes · isolation" in text or "✗ refused" in text, "the isolation line", 60
        )
        assert "✗ refused" not in shown and "✓ allowed" in shown, shown
        shown = pane.run_to_the_end(900)
        assert "✓ finished: model" in shown, shown
    finally:
        pane.close()
    from vault.door import Vault

    with Vault.open(path, user="admin", passphrase=PASSPHRASE.encode()) as vault:
        (model,) = vault.models()
        card = vault.model_card(model["id"])
        (row,) = vault.budget("digits")
        trained = [e["detail"] for e in vault.audit.entries(action="network.isolation")]
    assert card["distributed"]["world_size"] == 2
    inherited = [d for d in trained if d.get("inherited_from")]
    assert inherited and inherited[-1]["mode"] == LOOPBACK_ISOLATION, trained[-1]
    (charge,) = row["runs"]
    assert charge["outcome"] == "ok"
