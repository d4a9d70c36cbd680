"""requirements.lock agrees with pyproject.toml: pyproject says what Strongroom needs, the lock says
exactly what gets installed (docs/INSTALL.md), and `make lock` is the only way from one to the other.

Every requirement in pyproject (dependencies, the dev extra, the build system's) must be met by one
pinned, hashed entry of the lock, and nothing the lock pins may contradict pyproject.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

# The lock's platform (docs/INSTALL.md): markers in pyproject are judged as they are there.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?P<options>(?:\s+--hash=\S+)*)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    hashes: tuple[str, ...]
    line: int


def parse_lock(text: str) -> tuple[dict[str, Pin], list[str]]:
    """Pins by canonical name, and the problems found: anything but `name==version --hash=...` lines."""
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        pending = []
        if joined:
            logical.append((start, joined))
    for number, entry in logical:
        match = PIN.match(entry)
        if not match:
            problems.append(f"line {number}: {entry[:80]!r} is not a pinned requirement with hashes")
            continue
        name = canonicalize_name(match["name"])
        hashes = tuple(match["options"].split())
        bad = [h for h in hashes if not HASH.match(h)]
        if not hashes or bad:
            problems.append(
                f"line {number}: {name} has no sha256 hash" if not hashes else f"line {number}: {bad[0]}"
            )
        if name in pins:
            problems.append(f"line {number}: {name} is pinned twice (first on line {pins[name].line})")
        pins[name] = Pin(name, Version(match["version"]), hashes, number)
    return pins, problems


def disagreements(pyproject: dict, pins: dict[str, Pin]) -> list[str]:
    """Every pyproject requirement that the lock does not meet, as one line each."""
    project = pyproject["project"]
    wanted = [("dependencies", text) for text in project.get("dependencies", [])]
    for extra, texts in project.get("optional-dependencies", {}).items():
        wanted += [(f"optional-dependencies.{extra}", text) for text in texts]
    wanted += [
        ("build-system.requires", text) for text in pyproject.get("build-system", {}).get("requires", [])
    ]
    problems = []
    for where, text in wanted:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({**TARGET, "extra": ""}):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{where}: {text!r} has no pinned entry in requirements.lock; run `make lock`")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{where}: {text!r} is contradicted by requirements.lock's {pin.name}=={pin.version}; run `make lock`"
            )
    if canonicalize_name(project["name"]) in pins:
        problems.append(
            f"requirements.lock pins {project['name']} itself; it is installed from this checkout"
        )
    return problems


def load() -> tuple[dict, str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject, (REPO / "requirements.lock").read_text(encoding="utf-8")


def test_every_entry_of_the_lock_is_pinned_once_with_sha256_hashes() -> None:
    _, lock = load()
    pins, problems = parse_lock(lock)
    assert problems == []
    assert len(pins) > 50  # torch alone brings its CUDA libraries


def test_the_lock_meets_every_requirement_of_pyproject_and_contradicts_none() -> None:
    pyproject, lock = load()
    pins, _ = parse_lock(lock)
    assert disagreements(pyproject, pins) == []


def test_the_lock_names_make_lock_and_python_3_11_and_no_package_source() -> None:
    _, lock = load()
    assert "autogenerated by pip-compile with Python 3.11" in lock
    assert "\n#    make lock\n" in lock
    # Where packages come from is pip's configuration (or the wheelhouse), never the lock.
    assert not re.search(
        r"^\s*(--index-url|--extra-index-url|--find-links|-f |-i |-e |--trusted-host)", lock, re.M
    )


def test_a_missing_a_contradicted_or_an_unhashed_entry_is_reported() -> None:
    pyproject, lock = load()
    pins, _ = parse_lock(lock)
    changed = {
        **pyproject,
        "project": {
            **pyproject["project"],
            "dependencies": [*pyproject["project"]["dependencies"], "numpy<1", "no-such-package>=1"],
        },
    }
    found = disagreements(changed, pins)
    assert len(found) == 2
    assert "'numpy<1' is contradicted by requirements.lock's numpy==" in found[0]
    assert "'no-such-package>=1' has no pinned entry" in found[1]

    unhashed = "absl-py==2.5.1\nrich>=13 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    _, problems = parse_lock(unhashed)
    assert len(problems) == 2
    assert problems[0] == "line 1: absl-py has no sha256 hash"
    assert problems[1].startswith("line 2: 'rich>=13 --hash=sha256:000")
    assert problems[1].endswith("' is not a pinned requirement with hashes")


def test_a_marker_for_another_platform_is_not_asked_of_the_lock() -> None:
    pyproject, lock = load()
    pins, _ = parse_lock(lock)
    other = {"project": {"name": "x", "dependencies": ["pywin32>=300; sys_platform == 'win32'"]}}
    assert disagreements(other, pins) == []
