"""Fixtures of the security tests: a counting listener on the host, and the host's isolation level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import CountingServer, run_python, unshare_refused


@pytest.fixture
def server() -> Any:
    srv = CountingServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def namespaces() -> dict[str, Any]:
    """The isolation a fresh process reaches on this host. Namespace tests skip only when the host
    refuses unshare(2) itself (checked directly, in a child); when unshare works, anything short of
    'namespace+seccomp' (a broken seccomp filter, a failed mount, a self-test that fails) is a failure."""
    refused = unshare_refused()
    if refused:
        pytest.skip(f"this host forbids network namespaces, so only the 'guard' level is testable: {refused}")
    proc = run_python(
        "from vault.netguard.__main__ import main; raise SystemExit(main(['report']))", cwd=Path("/")
    )
    assert proc.returncode == 0, (
        f"unshare works here, yet isolation failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    )
    report = dict(json.loads(proc.stdout))
    assert report["mode"] == "namespace+seccomp", report
    return report
