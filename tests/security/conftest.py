"""Fixtures of the security tests: a counting listener on the host, and the host's isolation level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import CountingServer, run_python


@pytest.fixture
def server() -> Any:
    srv = CountingServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def namespaces() -> dict[str, Any]:
    """The strongest isolation a fresh process reaches on this host; namespace tests skip without it."""
    proc = run_python(
        "from vault.netguard.__main__ import main; raise SystemExit(main(['report']))", cwd=Path("/")
    )
    if proc.returncode == 6:
        pytest.skip(
            f"this host forbids network namespaces, so only the 'guard' level is testable: "
            f"{proc.stderr.strip()[-400:]}"
        )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))
