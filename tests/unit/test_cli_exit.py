"""The `strongroom` executable leaves through `vault.cli.run`: main's exit code, its output
flushed and the atexit handlers run, without the interpreter's teardown (most of a second after a
run that loaded torch)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO

PROBE = r"""
import atexit, sys
from vault.cli import run

class Finalized:
    def __del__(self):
        sys.stdout.write("torn down\n")

kept = Finalized()  # a module global: the interpreter's teardown would collect it
atexit.register(lambda: sys.stdout.write("atexit ran\n"))
sys.stdout.write("buffered, not flushed\n")
run(["audit", "verify", "--vault", sys.argv[1]])
sys.stdout.write("not reached\n")
"""


def test_run_leaves_with_mains_code_after_the_atexit_handlers_without_teardown(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "absent")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "no audit log at" in proc.stderr and "hint:" in proc.stderr
    assert proc.stdout.splitlines() == ["buffered, not flushed", "atexit ran"]


def test_python_dash_m_and_the_console_script_both_leave_through_run() -> None:
    main_module = (REPO / "vault" / "cli" / "__main__.py").read_text()
    assert "run()" in main_module
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'strongroom = "vault.cli:run"' in pyproject
