"""Mutation testing of the critical modules (`make mutate`; not part of CI): mutmut, once per module,
each against only that module's tests, so a run finishes on a small machine.

    python -m tests.mutate [MODULE ...]          (default: every module in MODULES, in order)
    python -m tests.mutate --again [MODULE ...]  (only the last full run's survivors, re-tested)

Each module runs in its own copy of the tree under .cache/mutate/<module>/ (mutmut writes its
`mutants/` there and keeps its results, so a second run only re-tests what changed). The summary,
killed and surviving mutants per module, is printed and written to .cache/mutate/summary.json;
`cd .cache/mutate/<module> && mutmut show <mutant>` shows a survivor's diff. A survivor is a
mutant no test failed for: "survived", or "no tests" (in a function none of the module's tests
calls). FOCUS narrows a module to the mutants of the functions that decide something. `--again` re-tests
just what survived so far (the full run's survivors, less those a later `--again` killed) against
the tests as they are now, tests added since included, and records what still survives as
`surviving_after`.

Speed: each mutant's tests run fastest first (tests/mutate_order.py, from mutmut's own timings), so
a mutant a quick test kills costs a second or two; DESELECT leaves out slow tests whose paths a
faster one takes (a survivor runs every test that reaches it); TIMEOUTS sizes the per-mutant limit
where mutants loop. MUTATE_CHILDREN=1 in the environment tests one mutant at a time (mutmut's
default is one per CPU). On 2 cores the DP module takes about 45 minutes: the accounting 670 s, the
clipping's decisions and the Opacus wiring 1,279 s, the rest of the clipping (conv methods and their
tuner, norm layers, embeddings, hooks) 755 s.
"""

from __future__ import annotations

import fnmatch
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
        ["vault/privacy/ledger.py", "vault/privacy/ledgerlog.py"],
        [
            "tests/unit/test_ledger.py",
            "tests/unit/test_ledger_rules.py",
            "tests/unit/test_ledgerlog.py",
        ],
    ),
    "policy": (  # the decision and its rules (not the TOML schema, request building, or the projection,
        # whose test trains a model for a minute); the 3,600-case matrix is left out too: passing its
        # node ids to pytest costs each mutant more than a minute on a small machine
        ["vault/policy/engine.py", "vault/policy/constraints.py"],
        [
            "tests/unit/test_policy_decide.py",
            "tests/unit/test_policy_schema.py",
            "tests/unit/test_policy_requests.py",
        ],
    ),
    "audit-verify": (
        ["vault/audit/verify.py", "vault/audit/scan.py", "vault/audit/sealing.py", "vault/audit/epochs.py"],
        [
            "tests/unit/test_audit.py",
            "tests/unit/test_checkpoint.py",
            "tests/property/test_epoch_properties.py",
            "tests/security/test_audit_tamper.py",
            "tests/unit/test_verify_snapshot.py",
            "tests/unit/test_audit_sealing.py",
            "tests/unit/test_audit_scan.py",
            "tests/unit/test_audit_epochs.py",
            "tests/property/test_scan_side_by_side.py",
        ],
    ),
    "seccomp": (
        ["vault/netguard/_seccomp.py"],
        ["tests/security/test_netguard.py", "tests/security/test_netguard_families.py"],
    ),
    "dp": (
        ["vault/train/bookkeeping.py", "vault/train/opacus_adapter.py", "vault/privacy/accounting.py"],
        [
            "tests/unit/test_dp_noise.py",
            "tests/unit/test_bookkeeping.py",
            "tests/unit/test_train_privacy.py",
            "tests/unit/test_every_step_sampler.py",
        ],
    ),
}


# module: mutant names (fnmatch patterns) to run, when only some functions matter: the rest of
# the module is wording (help texts, descriptions) that no decision depends on.
FOCUS: dict[str, list[str]] = {
    "policy": [
        *(f"vault.policy.engine.xǁPolicyǁ{m}__mutmut_*" for m in ("decide", "_run_test", "permits")),
        *(f"vault.policy.engine.xǁPolicyǁ{m}__mutmut_*" for m in ("dp_required", "lifetime_epsilon_cap")),
        "vault.policy.constraints.*",
    ],
    "audit-verify": [
        "vault.audit.verify.x_*",
        "vault.audit.scan.*",
        *(f"vault.audit.epochs.x_{f}__mutmut_*" for f in ("mac", "split_seal", "check_seals", "_sealed")),
        *(f"vault.audit.epochs.x_{f}__mutmut_*" for f in ("_unsealed_among", "unsealed_in", "cert_message")),
        "vault.audit.sealing.xǁSealerǁ*",
    ],
    "seccomp": [
        "vault.netguard._seccomp.x_install__mutmut_*",
        "vault.netguard._seccomp.x_selftest__mutmut_*",
    ],
    "dp": [  # the clipping (all of it: the tuner chooses among exact methods, each must be), the
        # noise's wiring and the accounting
        "vault.train.bookkeeping.*",
        "vault.train.opacus_adapter.*",
        "vault.privacy.accounting.*",
    ],
}


# module: tests of its files left out of the mutation run, because a faster test in the selection
# judges the same code (each survivor is re-run against every test that reaches it, so one slow
# test multiplies into minutes): whole trainings, and the largest model where a small one takes
# the same path.
DESELECT: dict[str, list[str]] = {
    "dp": [
        *(
            f"tests/unit/test_dp_noise.py::{t}"
            for t in (
                *(
                    f"test_the_noise_added_has_the_standard_deviation_the_accountant_assumes[resnet18-{m}]"
                    for m in ("bookkeeping", "ghost", "hooks")
                ),
                "test_the_noise_added_has_the_standard_deviation_the_accountant_assumes[bow-bookkeeping]",
            )
        ),
        *(
            f"tests/unit/test_bookkeeping.py::{t}"
            for t in (
                "test_every_model_trains_under_book_keeping_through_the_engine[resnet18]",
                "test_every_model_trains_under_book_keeping_through_the_engine[cnn]",
                "test_every_registry_model_matches_clipping_one_record_at_a_time[resnet18]",
                "test_a_reproducible_run_is_bitwise_reproducible_with_book_keeping",
                "test_training_uses_book_keeping_with_room_for_poisson_batches",
            )
        ),
        *(
            f"tests/unit/test_train_privacy.py::{t}"
            for t in (
                "test_a_real_runs_reported_epsilon_agrees_with_dp_accounting",
                "test_card_epsilon_after_fast_calibration_is_the_prv_accountants",
                "test_fast_calibration_is_exact_by_the_named_accountant[8.0-1e-06-0.01-30-prv]",
            )
        ),
    ],
}


# module: (timeout_multiplier, timeout_constant) where [tool.mutmut]'s do not fit: the noise search
# loops until its window is reached, so many of its mutants never end and each held a worker for
# (tests' time + 10 s) x 3; (1.5, 5) was too short on a loaded machine (mutants whose only change
# was an error's wording timed out instead of surviving), (2.5, 10) is not.
TIMEOUTS: dict[str, tuple[float, float]] = {"dp": (2.5, 10.0)}


# module: what its tests import on first use that takes seconds (opacus brings torch); loaded as a
# pytest plugin, so the fork server has it and no mutant pays for it.
PRELOAD: dict[str, list[str]] = {
    "ledger": ["opacus.accountants"],
    "dp": ["opacus.accountants"],
}


# module: the tests that judge it when its code runs only in child processes (the seccomp filter is
# installed by an isolated child), where mutmut cannot see which test calls what: each mutant is
# switched on by name (MUTANT_UNDER_TEST, which the children inherit) and these tests are run.
IN_CHILDREN: dict[str, list[str]] = {
    "seccomp": [
        "tests/security/test_netguard_families.py",
        "tests/security/test_netguard.py::test_isolated_process_reaches_nothing",
        "tests/security/test_netguard.py::test_report_is_evidence",
        "tests/security/test_netguard.py::test_a_child_of_an_isolated_process_inherits_its_isolation",
        "tests/security/test_netguard.py::test_an_isolated_process_still_starts_threads_and_children",
        "tests/security/test_netguard.py::test_the_filter_refuses_namespace_clones_clone3_and_setid_modes_only",
    ],
}
CHILD_VERDICTS = "child-verdicts.json"


def run_in_children(work: Path, names: list[str], tests: list[str], again: bool) -> None:
    """Each mutant in `names` against `tests`, two at a time; verdicts kept in CHILD_VERDICTS."""
    from concurrent.futures import ThreadPoolExecutor

    path = work / CHILD_VERDICTS
    known = json.loads(path.read_text()) if path.exists() else {}
    todo = [n for n in names if again or n not in known]

    def one(name: str) -> tuple[str, str]:
        # PYTHONPATH: a child started elsewhere (cwd=/) imports the mutated tree too, not the checkout
        mutated = str(work / "mutants")
        env = dict(os.environ, MUTANT_UNDER_TEST=name, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=mutated)
        args = ["nice", sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        try:
            proc = subprocess.run(args, cwd=work / "mutants", env=env, capture_output=True, timeout=300)
        except subprocess.TimeoutExpired:
            return name, "timeout"
        return name, "survived" if proc.returncode == 0 else "killed"

    if one("fail")[1] != "killed":
        raise SystemExit(f"mutate: the tests of {work.name} pass with every mutated function failing")
    with ThreadPoolExecutor(2) as pool:
        for done, (name, verdict) in enumerate(pool.map(one, todo), 1):
            known[name] = verdict
            path.write_text(json.dumps(known, indent=1))
            print(f"    {done}/{len(todo)} {name}: {verdict}", flush=True)


MUTMUT = "3.8.1"  # the release the FOCUS patterns and the harness were written for


def mutmut() -> list[str]:
    """The venv's mutmut command; a clear refusal when it is not installed (nothing is downloaded)."""
    probe = subprocess.run([sys.executable, "-c", "import mutmut"], capture_output=True)
    if probe.returncode != 0:
        raise SystemExit(
            f"mutate: mutmut is not installed in this venv; install it with `{sys.executable} -m pip install "
            f"mutmut=={MUTMUT}` (a developer tool, not in requirements.lock), then run `make mutate` again"
        )
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
    deselect = [arg for test in DESELECT.get(name, []) for arg in ("--deselect", test)]
    config.update(only_mutate=files, pytest_add_cli_args_test_selection=[*tests, *deselect])
    config["pytest_add_cli_args"] = [a for a in config["pytest_add_cli_args"] if a not in ("-m", "not slow")]
    if name in TIMEOUTS:
        config["timeout_multiplier"], config["timeout_constant"] = TIMEOUTS[name]
    for module in [*PRELOAD.get(name, []), "tests.mutate_order"]:
        config["pytest_add_cli_args"] += ["-p", module]
    lines = [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    (work / "pyproject.toml").write_text(head + "[tool.mutmut]\n" + "\n".join(lines) + "\n", "utf-8")
    return work


def verdicts(work: Path, command: list[str], focus: list[str]) -> dict[str, str]:
    """Each mutant's status ("killed", "survived", "no tests", "timeout", ...), only those that
    `focus` names when it names any."""
    out = subprocess.run([*command, "results", "--all", "true"], cwd=work, capture_output=True, text=True)
    found = {}
    for line in out.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and (not focus or any(fnmatch.fnmatch(name, pattern) for pattern in focus)):
            found[name] = status
    children = work / CHILD_VERDICTS
    if children.exists():
        found.update({k: v for k, v in json.loads(children.read_text()).items() if k in found})
    return found


def counts(found: dict[str, str]) -> dict[str, int]:
    tally = {"total": len(found)}
    for status in found.values():
        tally[status] = tally.get(status, 0) + 1
    return tally


def survivors(found: dict[str, str]) -> list[str]:
    """Mutants no test failed for: survived, or in code none of the module's tests runs."""
    return sorted(name for name, status in found.items() if status in ("survived", "no tests"))


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
    focus = FOCUS.get(name, [])
    started = time.monotonic()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if again:
        forget(work, set(again))
    chosen = again if again is not None else focus
    # MUTATE_CHILDREN: how many mutants mutmut tests at once (default: one per CPU, mutmut's own)
    children = ["--max-children", os.environ["MUTATE_CHILDREN"]] if os.environ.get("MUTATE_CHILDREN") else []
    proc = subprocess.run(["nice", *command, "run", *children, *chosen], cwd=work, env=env)
    if name in IN_CHILDREN:
        names = again if again is not None else sorted(verdicts(work, command, focus))
        run_in_children(work, names, IN_CHILDREN[name], again is not None)
    seconds = round(time.monotonic() - started)
    found = verdicts(work, command, focus)
    if again is not None:
        still = sorted(set(survivors(found)) & set(again))
        print(
            f"mutate {name}: {len(still)} of the {len(again)} survivors survive again in {seconds} s",
            flush=True,
        )
        return {"exit_after": proc.returncode, "seconds_after": seconds, "surviving_after": still}
    result = {
        "module": name,
        "files": MODULES[name][0],
        "tests": MODULES[name][1],
        "focus": focus,
        "exit": proc.returncode,
        "seconds": seconds,
        **counts(found),
        "surviving": survivors(found),
    }
    print(
        f"mutate {name}: {result.get('killed', 0)} killed, {len(result['surviving'])} survived"
        f" of {result['total']} in {result['seconds']} s",
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
