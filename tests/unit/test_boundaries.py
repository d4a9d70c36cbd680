"""The core never imports the screen: every module under vault/ imports without textual, rich or tui."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import REPO

PROBE = r"""
import importlib, json, pkgutil, sys
import vault
names = []
for info in pkgutil.walk_packages(vault.__path__, "vault."):
    if info.name.endswith("__main__"):
        continue
    importlib.import_module(info.name)
    names.append(info.name)
ui = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich", "tui"))
print(json.dumps({"modules": names, "ui": ui}))
"""


def test_core_never_imports_textual_rich_or_tui():
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(result["modules"]) > 20 and "vault.door" in result["modules"]
    assert result["ui"] == [], f"vault/ pulled in UI modules: {result['ui']}"


def test_command_line_starts_without_torch_or_threads():
    """Isolation needs a single-threaded process: parsing the command line must not import torch."""
    probe = (
        "import os, sys; from vault import cli; cli.build_parser(); "
        "print(len(os.listdir('/proc/self/task')), 'torch' in sys.modules, 'numpy' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "False", "False"]


def test_no_core_module_imports_the_screen_even_lazily():
    """Imports inside functions count too: the UI runs in its own process (`python -m tui`)."""
    import re

    pattern = re.compile(r"^\s*(from|import)\s+(textual|rich|tui)\b", re.M)
    offenders = [
        str(p.relative_to(REPO)) for p in (REPO / "vault").rglob("*.py") if pattern.search(p.read_text())
    ]
    assert offenders == []


# What each folder of vault/ may import from the others (docs/ARCHITECTURE.md draws the same layers).
# Function-level imports count: a lazy import is still a dependency.
BASE = {"errors", "vocabulary", "findings", "terminal"}
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "vocabulary": {"errors"},
    "findings": set(),
    "terminal": set(),
    "crypto": BASE,
    "storage": BASE | {"crypto"},
    "audit": BASE | {"crypto", "storage"},
    "policy": BASE,
    "privacy": BASE,
    "ingest": BASE,
    "train": BASE | {"privacy", "netguard"},
    "netguard": BASE,
    "door": BASE | {"crypto", "storage", "audit", "policy", "privacy", "ingest", "train", "netguard"},
    "cli": BASE
    | {"selftest", "door", "storage", "audit", "policy", "privacy", "ingest", "train", "netguard", "version"},
    "selftest": BASE | {"crypto", "audit"},
    "demo": {"cli"},
    "package": {"door", "version"},
}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


def test_each_layer_imports_only_the_layers_under_it():
    import ast

    found: dict[str, set[str]] = {}
    for path in (REPO / "vault").rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("").parts
        me = _layer(".".join(p for p in rel if p != "__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vault":
                if node.module == "vault":
                    targets = ["version" if a.name == "__version__" else a.name for a in node.names]
                else:
                    targets = [_layer(node.module)]
            elif isinstance(node, ast.Import):
                targets = [_layer(a.name) for a in node.names if a.name.split(".")[0] == "vault"]
            found.setdefault(me, set()).update(t for t in targets if t != me)
    assert set(found) <= set(LAYERS), f"folders without a layer: {sorted(set(found) - set(LAYERS))}"
    wrong = {me: sorted(got - LAYERS[me]) for me, got in found.items() if got - LAYERS[me]}
    assert wrong == {}, f"imports across the layers: {wrong}"
