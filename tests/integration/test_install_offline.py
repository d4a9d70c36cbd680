"""The room's install, end to end: a wheelhouse goes into a fresh venv through `make setup`, inside
a network namespace with no way out (`unshare -n`), exactly as docs/INSTALL.md tells the room; the
installed `strongroom` then runs there. A wheelhouse with one byte changed in one wheel is refused
naming that wheel: by SHA256SUMS, and by the lock's hashes when SHA256SUMS was rewritten to match.

The wheelhouse comes from `make wheelhouse` (`make test` builds or refreshes one in .cache/ and
names it in STRONGROOM_TEST_WHEELHOUSE); this test downloads nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.support import REPO, parse_lock

pytestmark = pytest.mark.slow

INSTALL_SECONDS = 1800  # about 5.8 GB unpacked, torch and its CUDA libraries; minutes on two cores
ROOM_PASSPHRASE = "commissioning passphrase for the test room"


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    named = os.environ.get("STRONGROOM_TEST_WHEELHOUSE")
    folder = Path(named) if named else REPO / "wheelhouse"
    if not (folder / "SHA256SUMS").is_file():
        pytest.fail(
            f"no wheelhouse at {folder}: `make test` builds one in .cache/wheelhouse, or run `make wheelhouse` "
            "(on a connected machine) and set STRONGROOM_TEST_WHEELHOUSE"
        )
    return folder


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a command in a new network namespace (no interface up), with a room's bare environment."""
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("make") is None:
        pytest.fail("unshare and make are needed (apt-get install util-linux make)")
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this host refuses a network namespace (`unshare -n true`: {probe.stderr.strip()})")
    home = tmp_path_factory.mktemp("room-home")

    def run(*command: str, cwd: Path = home, env: dict[str, str] | None = None, timeout: int = 300):
        room_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            **(env or {}),
        }
        return subprocess.run(
            [unshare, "-n", *command], cwd=cwd, env=room_env, capture_output=True, text=True, timeout=timeout
        )

    return run


def base_python() -> str:
    """The interpreter under this test's venv: the room has a plain CPython 3.11, not a venv."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")


def setup(offline: Callable[..., subprocess.CompletedProcess[str]], venv: Path, wheelhouse: Path):
    return offline(
        "make",
        "--no-print-directory",
        "-C",
        str(REPO),
        "setup",
        f"VENV={venv}",
        f"WHEELHOUSE={wheelhouse}",
        f"PYTHON={base_python()}",
        timeout=INSTALL_SECONDS,
    )


def altered_copy(wheelhouse: Path, into: Path) -> Path:
    """The wheelhouse again (links, not copies), with one byte changed in its smallest wheel."""
    into.mkdir()
    wheels = sorted(
        (p for p in wheelhouse.glob("*.whl") if not p.name.startswith("strongroom-")),
        key=lambda p: (p.stat().st_size, p.name),
    )
    victim = wheels[0]
    for path in wheelhouse.iterdir():
        if path == victim:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            (into / path.name).write_bytes(bytes(data))
            continue
        try:
            os.link(path, into / path.name)
        except OSError:
            os.symlink(path, into / path.name)
    return into / victim.name


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A folder for an altered wheelhouse and its venv, emptied afterwards: a wheelhouse of links
    still looks like 3 GB to anything that walks the temporary directory."""
    yield tmp_path
    for path in tmp_path.iterdir():
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path, offline) -> Iterator[Path]:
    """A venv installed by `make setup` from the wheelhouse alone, with no network."""
    venv = tmp_path_factory.mktemp("room") / "venv"
    try:
        result = setup(offline, venv, wheelhouse)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert f"setup: installing from {wheelhouse}/ only (no index, no network)" in result.stdout
        yield venv
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 5.8 GB; pytest keeps its last three runs' folders


def test_the_installed_venv_holds_exactly_what_the_lock_pins_and_strongroom(
    room: Path, wheelhouse: Path
) -> None:
    pins, _ = parse_lock((REPO / "requirements.lock").read_text(encoding="utf-8"))
    listed = subprocess.run(
        [str(room / "bin" / "python"), "-m", "pip", "--isolated", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": os.devnull},
    )
    installed = {canonicalize_name(item["name"]): item["version"] for item in json.loads(listed.stdout)}
    expected = {name: str(pin.version) for name, pin in pins.items()}
    assert installed.pop("strongroom") == "0.1.0"
    assert installed == expected


def test_strongroom_runs_in_the_room(room: Path, offline) -> None:
    version = offline(str(room / "bin" / "strongroom"), "--version")
    assert (version.returncode, version.stdout.strip()) == (0, "strongroom 0.1.0"), version.stderr
    where = offline(str(room / "bin" / "python"), "-c", "import vault; print(vault.__file__)")
    assert where.stdout.strip().startswith(str(room)), (
        "the room must run the installed package, not a checkout"
    )


def test_netcheck_passes_in_the_room(room: Path, offline) -> None:
    drill = offline(str(room / "bin" / "strongroom"), "netcheck", "--json")
    assert drill.returncode == 0, drill.stdout[-2000:] + drill.stderr[-2000:]
    report = json.loads(drill.stdout)
    assert report["isolated"] is True
    assert report["probe"]["attempts"] and all(attempt["blocked"] for attempt in report["probe"]["attempts"])


def test_selftest_passes_in_the_room(room: Path, offline) -> None:
    """Commissioning as docs/INSTALL.md says, with no network: every step passes, vectors from the wheel."""
    done = offline(str(room / "bin" / "strongroom"), "selftest", "--json", timeout=1200)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["passed"], [s for s in report["steps"] if not s["passed"]]
    assert len(report["steps"]) == 10


def test_the_room_creates_and_verifies_a_vault_from_the_installed_package(
    room: Path, offline, tmp_path: Path
) -> None:
    """The shipped policies travel inside the wheel: `init` without --policy needs them."""
    vault = tmp_path / "vault"
    env = {"STRONGROOM_PASSPHRASE": ROOM_PASSPHRASE}
    created = offline(str(room / "bin" / "strongroom"), "init", "--vault", str(vault), env=env)
    assert created.returncode == 0, created.stderr
    assert "policy default" in created.stdout
    verified = offline(str(room / "bin" / "strongroom"), "verify", "--vault", str(vault), env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_wheel_with_one_byte_changed_is_refused_by_sha256sums(
    wheelhouse: Path, offline, scratch: Path
) -> None:
    victim = altered_copy(wheelhouse, scratch / "wheelhouse")
    result = setup(offline, scratch / "venv", victim.parent)
    assert result.returncode != 0
    assert f"setup: {victim} does not match {victim.parent}/SHA256SUMS" in result.stderr
    assert not (scratch / "venv").exists()


def test_when_sha256sums_was_rewritten_to_match_pip_refuses_the_wheel_by_the_lock(
    wheelhouse: Path, offline, scratch: Path
) -> None:
    victim = altered_copy(wheelhouse, scratch / "wheelhouse")
    sums = victim.parent / "SHA256SUMS"
    lines = sums.read_text(encoding="utf-8").splitlines()
    rewritten = [
        subprocess.run(
            ["sha256sum", victim.name], cwd=victim.parent, capture_output=True, text=True
        ).stdout.strip()
        if line.endswith("  " + victim.name)
        else line
        for line in lines
    ]
    sums.unlink()  # a link to the real SHA256SUMS: replace it, never write through it
    sums.write_text("\n".join(rewritten) + "\n", encoding="utf-8")
    result = setup(offline, scratch / "venv", victim.parent)
    assert result.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE" in result.stderr
    assert f"file://{victim}" in result.stderr
    assert "setup: pip refused to install from" in result.stderr
    site = next((scratch / "venv" / "lib").glob("python3.*/site-packages"))
    installed = sorted(
        p.name for p in site.glob("*.dist-info") if not p.name.startswith(("pip-", "setuptools-"))
    )
    assert installed == [], "pip checks every hash before it installs anything"
