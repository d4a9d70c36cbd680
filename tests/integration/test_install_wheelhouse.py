"""`make setup`'s check of a wheelhouse before it installs anything (docs/INSTALL.md), on small
wheelhouses built here: the real Makefile, make and sha256sum, nothing installed.

Each way the media can be wrong is refused with one line that names the file and the fix, and a
refused wheelhouse leaves no venv behind. The full install, offline, is test_install_offline.py.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

LOCK_TEXT = "example==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"
WHEELS = {
    "example-1.0-py3-none-any.whl": b"a wheel's bytes",
    "strongroom-0.1.0-py3-none-any.whl": b"strongroom's bytes",
}


def write_sums(folder: Path) -> None:
    lines = [
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
        for path in sorted(folder.iterdir())
        if path.name != "SHA256SUMS"
    ]
    (folder / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A wheelhouse as `make wheelhouse` lays it out, and the checkout's lock beside it."""
    (tmp_path / "requirements.lock").write_text(LOCK_TEXT, encoding="utf-8")
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    for name, data in WHEELS.items():
        (folder / name).write_bytes(data)
    (folder / "requirements.lock").write_text(LOCK_TEXT, encoding="utf-8")
    write_sums(folder)
    return folder


def make(target: str, folder: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None or shutil.which("sha256sum") is None:
        pytest.fail(
            "make and sha256sum (coreutils) are needed: install them (apt-get install make coreutils)"
        )
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO),
            target,
            f"WHEELHOUSE={folder}",
            f"LOCK={folder.parent / 'requirements.lock'}",
            f"VENV={folder.parent / 'venv'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("setup: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_whole_wheelhouse_passes_and_its_sums_hash_is_shown(media: Path) -> None:
    result = make("wheelhouse-check", media)
    assert result.returncode == 0, result.stderr
    sums_hash = hashlib.sha256((media / "SHA256SUMS").read_bytes()).hexdigest()
    assert f"matches its SHA256SUMS (sha256 of SHA256SUMS: {sums_hash})" in result.stdout


def test_a_wheel_with_one_byte_changed_is_named(media: Path) -> None:
    wheel = media / "example-1.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[3] ^= 0x01
    wheel.write_bytes(bytes(data))
    line = refusal(make("wheelhouse-check", media))
    assert f"{wheel} does not match {media}/SHA256SUMS" in line
    assert "build the wheelhouse again" in line


def test_a_listed_file_that_is_missing_is_named(media: Path) -> None:
    (media / "example-1.0-py3-none-any.whl").unlink()
    line = refusal(make("wheelhouse-check", media))
    assert "example-1.0-py3-none-any.whl is listed in" in line and "but missing" in line


@pytest.mark.parametrize("name", ["extra-2.0-py3-none-any.whl", ".hidden"])
def test_a_file_that_sha256sums_does_not_list_is_named(media: Path, name: str) -> None:
    (media / name).write_bytes(b"slipped in")
    line = refusal(make("wheelhouse-check", media))
    assert f"{media}/{name} is not listed in {media}/SHA256SUMS" in line


def test_a_wheelhouse_built_from_another_lock_is_refused(media: Path) -> None:
    (media.parent / "requirements.lock").write_text(LOCK_TEXT.replace("1.0", "1.1"), encoding="utf-8")
    line = refusal(make("wheelhouse-check", media))
    assert "was built from another requirements.lock" in line and "make wheelhouse" in line


def test_a_wheelhouse_without_sums_or_without_strongroom_is_refused(media: Path) -> None:
    (media / "strongroom-0.1.0-py3-none-any.whl").unlink()
    write_sums(media)
    assert "must hold exactly one strongroom-*.whl" in refusal(make("wheelhouse-check", media))
    (media / "SHA256SUMS").unlink()
    assert "SHA256SUMS is missing" in refusal(make("wheelhouse-check", media))


def test_malformed_sums_are_refused(media: Path) -> None:
    sums = media / "SHA256SUMS"
    sums.write_text(sums.read_text(encoding="utf-8") + "not a checksum line\n", encoding="utf-8")
    assert "has lines that are not" in refusal(make("wheelhouse-check", media))


def test_setup_refuses_a_damaged_wheelhouse_before_it_makes_a_venv(media: Path) -> None:
    (media / "example-1.0-py3-none-any.whl").write_bytes(b"altered")
    line = refusal(make("setup", media))
    assert "example-1.0-py3-none-any.whl does not match" in line
    assert not (media.parent / "venv").exists()
