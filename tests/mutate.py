"""Mutation testing of the critical modules (`make mutate`; not part of CI): mutmut, once per module,
each against only that module's tests, so a run finishes on a small machine.

    python -m tests.mutate [MODULE ...]          (default: every module in MODULES, in order)
    python -m tests.mutate --again [MODULE ...]  (only the last full run's survivors, re-tested)

Each module runs in its own copy of the tree under .cache/mutate/<module>/ (mutmut writes its
`mutants/` there and keeps its results, so a second run only re-tests what changed). The summary,
killed and surviving mutants per module, is printed and written to .cache/mutate/summary.json;
`cd .cache/mutate/<module> && mutmut show <mutant>` shows a survivor's diff. `--again` re-tests
just what survived so far (the full run's survivors, less those a later `--again` killed) against
the tests as they are now, tests added since included, and records what still survives as
`surviving_after`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".cache" / "mutate"
COPIED = ("vault", "tests", "policies", "docs", "bench", "pyproject.toml")

# module: (files mutated, tests that judge them)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "crypto": (
        ["vault/crypto/*"],
        [
            "tests/unit/test_crypto_chunked.py",
            "tests/unit/test_crypto_keys.py",
            "tests/unit/test_crypto_signing.py",
            "tests/vectors/test_crypto_vectors.py",
            "tests/unit/test_crypto_refusals.py",
        ],
    ),
    "ledger": (
        ["vault/privacy/ledger.py"],
        [
            "tests/unit/test_ledger.py",
        ],
    ),
    "policy": (  # the decision and its rules; the TOML schema and request building are not here
        ["vault/policy/engine.py", "vault/policy/constraints.py"],
        [
            "tests/unit/test_policy_decide.py",
            "tests/unit/test_policy_matrix.py",
            "tests/unit/test_policy_projection.py",
            "tests/unit/test_policy_schema.py",
        ],
    ),
    "audit-verify": (
        ["vault/audit/verify.py", "vault/audit/merkle.py", "vault/audit/checkpoint.py"],
        [
            "tests/unit/test_audit.py",
            "tests/unit/test_checkpoint.py",
            "tests/vectors/test_merkle.py",
            "tests/property/test_merkle_properties.py",
            "tests/security/test_audit_tamper.py",
        ],
    ),
    "seccomp": (["vault/netguard/_seccomp.py"], ["tests/security/test_netguard.py"]),
    "dp": (
        ["vault/train/bookkeeping.py", "vault/privacy/accounting.py", "vault/train/engine.py"],
        [
            "tests/unit/test_dp_noise.py",
            "tests/unit/test_bookkeeping.py",
            "tests/unit/test_train_privacy.py",
        ],
    ),
}


def mutmut() -> list[str]:
    """The mutmut command: the venv's, installed from the registries if it is missing."""
    probe = subprocess.run([sys.executable, "-c", "import mutmut"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "mutmut>=3.3"], check=True)
    return [str(Path(sys.executable).with_name("mutmut"))]


def prepare(name: str) -> Path:
    """A copy of the tree whose [tool.mutmut] mutates only `name`'s files against only its tests."""
    files, tests = MODULES[name]
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    for item in COPIED:
        src, dst = REPO / item, work / item
        if src.is_dir():
            shutil.copytree(
                src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(src, dst)
    text = (REPO / "pyproject.toml").read_text("utf-8")
    config = tomllib.loads(text)["tool"]["mutmut"]
    head, _, _ = text.partition("[tool.mutmut]")
    config.update(only_mutate=files, pytest_add_cli_args_test_selection=tests)
    config["pytest_add_cli_args"] = [a for a in config["pytest_add_cli_args"] if a not in ("-m", "not slow")]
    lines = [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    (work / "pyproject.toml").write_text(head + "[tool.mutmut]\n" + "\n".join(lines) + "\n", "utf-8")
    return work


def counts(work: Path) -> dict[str, int]:
    stats = work / "mutants" / "mutmut-cicd-stats.json"
    data = json.loads(stats.read_text()) if stats.exists() else {}
    return {k: v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool)}


def survivors(work: Path, command: list[str]) -> list[str]:
    out = subprocess.run([*command, "results"], cwd=work, capture_output=True, text=True).stdout
    return [line.strip().split(":")[0] for line in out.splitlines() if line.strip().endswith(": survived")]


def forget(work: Path, names: set[str]) -> None:
    """Drop mutmut's cached verdicts for `names`, so that they are tested again."""
    for meta in (work / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        verdicts = data.get("exit_code_by_key", {})
        if names & set(verdicts):
            verdicts.update(dict.fromkeys(names & set(verdicts)))
            meta.write_text(json.dumps(data))


def run(name: str, command: list[str], again: list[str] | None = None) -> dict:
    work = prepare(name)
    started = time.monotonic()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if again:
        forget(work, set(again))
    proc = subprocess.run(["nice", *command, "run", *(again or [])], cwd=work, env=env)
    seconds = round(time.monotonic() - started)
    if again is not None:
        still = sorted(set(survivors(work, command)) & set(again))
        print(
            f"mutate {name}: {len(still)} of the {len(again)} survivors survive again in {seconds} s",
            flush=True,
        )
        return {"exit_after": proc.returncode, "seconds_after": seconds, "surviving_after": still}
    subprocess.run([*command, "export-cicd-stats"], cwd=work, capture_output=True)
    result = {
        "module": name,
        "files": MODULES[name][0],
        "tests": MODULES[name][1],
        "exit": proc.returncode,
        "seconds": seconds,
        **counts(work),
        "surviving": survivors(work, command),
    }
    print(
        f"mutate {name}: {result.get('killed', 0)} killed, {result.get('survived', 0)} survived"
        f" of {result.get('total', 0)} in {result['seconds']} s",
        flush=True,
    )
    return result


def main(argv: list[str]) -> int:
    again = "--again" in argv
    names = [a for a in argv if a != "--again"] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(
            f"mutate: unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}",
            file=sys.stderr,
        )
        return 2
    command = mutmut()
    WORK.mkdir(parents=True, exist_ok=True)
    summary_path = WORK / "summary.json"

    def summary() -> dict:  # read afresh: another module may be running beside this one
        return json.loads(summary_path.read_text()) if summary_path.exists() else {}

    for name in names:
        if again:
            last = summary().get(name)
            if last is None:
                print(
                    f"mutate: {name} has no full run to repeat; run it without --again first", file=sys.stderr
                )
                return 2
            left = last.get("surviving_after", last["surviving"])  # what still survived last time
            result = {**last, **(run(name, command, again=left) if left else {})}
        else:
            result = run(name, command)
        summary_path.write_text(json.dumps({**summary(), name: result}, indent=2) + "\n")
    print(f"mutate: summary in {summary_path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
