"""`strongroom train` refuses malformed numbers before anything heavy (torch, Opacus) is imported:
a typo costs milliseconds, not the seconds torch takes to load."""

from __future__ import annotations

import json

import pytest

from tests.support import run_python

PROBE = """
import json, sys
from vault.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "opacus", "numpy") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--epsilon", "nan"),
        ("--epsilon", "-1"),
        ("--epsilon", "inf"),
        ("--delta", "0"),
        ("--delta", "1.5"),
        ("--lr", "0"),
        ("--max-grad-norm", "nan"),
        ("--epochs", "0"),
        ("--batch-size", "-4"),
        ("--physical-batch-size", "0"),
        ("--val-split", "0.9"),
        ("--tune", "1"),
        ("--tune", "2.5"),
        ("--tune", "65"),
    ],
)
def test_bad_number_is_refused_before_torch_loads(tmp_path, option: str, value: str) -> None:
    proc = run_python(PROBE, "train", "digits", "--vault", str(tmp_path / "v"), option, value)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 2, "heavy": []}, (result, proc.stderr)
    assert option in proc.stderr and "use e.g." in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--nproc", "0"], "--nproc must be a whole number from 1 to 64"),
        (["--nproc", "two"], "--nproc must be a whole number from 1 to 64 or 'auto'"),
        (["--nproc", "65"], "--nproc must be a whole number from 1 to 64"),
        (["--nproc", "2", "--no-dp"], "--nproc 2 trains with DP only"),
    ],
)
def test_bad_nproc_is_refused_before_torch_loads(tmp_path, given: list[str], said: str) -> None:
    proc = run_python(PROBE, "train", "digits", "--vault", str(tmp_path / "v"), *given)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 2, "heavy": []}, (result, proc.stderr)
    assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
