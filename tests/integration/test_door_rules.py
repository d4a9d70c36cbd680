"""One door: every public method of `Vault` asks the policy (a `policy.decision` entry for its action)
and writes its audit entry, or stands on `vault.door.EXEMPT` with the reason.

A new public method fails `test_every_public_method_is_decided_or_exempt` until it is added to
CALLS below (with the action it must decide) or to EXEMPT (with why it need not).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import PASSPHRASE
from vault.door import EXEMPT, Vault
from vault.netguard.sandbox import HostProcess

ROWS = [("ham", f"see you at {i} tonight") for i in range(12)] + [
    ("spam", f"WIN a prize {i}, call now") for i in range(12)
]


def _text_file(path: Path) -> Path:
    path.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in ROWS), "utf-8")
    return path


Call = Callable[[Vault, dict[str, Any]], Any]

# method -> (the action its policy decision names, how to call it on the prepared vault)
CALLS: dict[str, tuple[str, Call]] = {
    "datasets": ("dataset.read_metadata", lambda v, c: v.datasets()),
    "dataset": ("dataset.read_metadata", lambda v, c: v.dataset("t")),
    "import_dataset": (
        "dataset.import",
        lambda v, c: v.import_dataset(_text_file(c["tmp"] / "u.tsv"), name="u", sensitivity="low"),
    ),
    "sample": ("dataset.sample", lambda v, c: v.sample("t", 2)),
    "delete_dataset": ("dataset.delete", lambda v, c: v.delete_dataset("t")),
    "keys_add": ("keys.manage", lambda v, c: v.keys_add("olivia", "operator", b"olivia's passphrase")),
    "keys_remove": (
        "keys.manage",
        lambda v, c: (v.keys_add("olivia", "operator", b"olivia's passphrase"), v.keys_remove("olivia")),
    ),
    "keys_rotate": ("keys.manage", lambda v, c: v.keys_rotate()),
    "policy_show": ("policy.show", lambda v, c: v.policy_show()),
    "policy_set": ("policy.set", lambda v, c: v.policy_set(v.policy.text)),
    # a dry run: it is recorded as the decision it would be (dry_run true), after a silent policy.show check
    "policy_check": ("dataset.sample", lambda v, c: v.policy_check("dataset.sample", dataset="t")),
    "train": (
        "train",
        lambda v, c: v.train({"dataset": "t", "dp": False, "epochs": 1, "val_split": 0.25, "seed": 1}),
    ),
    "models": ("model.read_metadata", lambda v, c: v.models()),
    "model_card": ("model.read_metadata", lambda v, c: v.model_card(c["model"])),
    "evaluate": ("evaluate", lambda v, c: v.evaluate(c["model"], "t")),
    "budget": ("budget.read", lambda v, c: v.budget()),
    "export": ("model.export", lambda v, c: v.export(c["model"], c["tmp"] / "release")),
    "verify": ("verify", lambda v, c: v.verify()),
    "netcheck": ("netcheck", lambda v, c: v.netcheck(timeout=0.2)),
    # the pytest process is not isolated: the drill tries nothing and records that it failed
    "sandbox_check": ("netcheck", lambda v, c: v.sandbox_check(HostProcess.start())),
}


# What the methods that change the vault, decrypt records or run a drill record besides their
# decision; for reads of metadata the decision is the record.
OWN_ENTRY = {
    "import_dataset": "dataset.import",
    "sample": "dataset.read",
    "delete_dataset": "dataset.delete",
    "keys_add": "keys.add",
    "keys_remove": "keys.remove",
    "keys_rotate": "keys.rotate",
    "policy_set": "policy.set",
    "train": "train.start",
    "evaluate": "model.evaluate",
    "export": "model.export",
    "verify": "vault.verify",
    "netcheck": "network.netcheck",
    "sandbox_check": "network.sandbox_check",
}


def public_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(Vault)
        if not name.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member))
    }


def test_every_public_method_is_decided_or_exempt() -> None:
    methods = public_methods()
    assert methods == set(CALLS) | set(EXEMPT), (
        f"undecided: {sorted(methods - set(CALLS) - set(EXEMPT))}; "
        f"stale: {sorted((set(CALLS) | set(EXEMPT)) - methods)}"
    )
    assert not set(CALLS) & set(EXEMPT)
    assert all(reason.strip() for reason in EXEMPT.values())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A vault with a dataset and a model, made once; each test works on a copy of its directory."""
    import shutil

    root = tmp_path_factory.mktemp("door")
    with Vault.create(root / "vault", passphrase=PASSPHRASE.encode()) as v:
        v.import_dataset(_text_file(root / "t.tsv"), name="t", sensitivity="low")
        model = v.train({"dataset": "t", "dp": False, "epochs": 1, "val_split": 0.25, "seed": 1})["model"]
    return {"root": root, "model": model, "copy": shutil.copytree}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_public_method_decides_then_records(method: str, prepared: dict[str, Any], tmp_path: Path) -> None:
    action, call = CALLS[method]
    path = prepared["copy"](prepared["root"] / "vault", tmp_path / "vault")
    with Vault.open(path, user="admin", passphrase=PASSPHRASE.encode()) as v:
        before = len(v.audit.entries())
        call(v, {"tmp": tmp_path, "model": prepared["model"]})
        new = v.audit.entries()[before:]
    decisions = [e for e in new if e["action"] == "policy.decision"]
    assert any(e["detail"]["request_action"] == action for e in decisions), (
        f"{method} did not ask the policy for {action}: {[e['action'] for e in new]}"
    )
    if method in OWN_ENTRY:
        decided = new.index(next(e for e in decisions if e["detail"]["request_action"] == action))
        assert OWN_ENTRY[method] in [e["action"] for e in new[decided + 1 :]], (
            f"{method} wrote no {OWN_ENTRY[method]} entry after its decision"
        )
