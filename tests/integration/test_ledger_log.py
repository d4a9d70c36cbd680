"""The ledger in the sealed log: every commit that changes a ledger records it, and `verify`
rebuilds every ledger from the log and reports a catalog whose ledger differs (an edit by anyone
holding the catalog key), exit 4; a copy put back is refused at open by its generation. Vaults from before the record index are indexed at the
next operator/admin open, and the overlaps they hid then carry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.test_ledger_lineage import import_idx, mnist, spent_vault  # noqa: F401
from tests.support import PASSPHRASE
from vault.door import Vault
from vault.errors import IntegrityError
from vault.storage import catalog as catalogs


def opened(path: Path) -> Vault:
    return Vault.open(path, user="admin", passphrase=PASSPHRASE.encode())


def ledger_findings(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["kind"] == "ledger" and f["severity"] == "error"]


@pytest.fixture
def vault_copy(spent_vault: Path, tmp_path: Path) -> Path:  # noqa: F811
    shutil.copytree(spent_vault, tmp_path / "vault")
    shutil.copy(spent_vault.parent / "catalog-before-training.sealed", tmp_path / "old-catalog.sealed")
    return tmp_path / "vault"


def test_the_log_records_the_ledger_at_every_change_and_verify_agrees(vault_copy: Path) -> None:
    log = [json.loads(line) for line in (vault_copy / "audit" / "log.jsonl").read_text().splitlines()]
    states = [e for e in log if e["action"] == "ledger.state"]
    assert states[0]["detail"]["ledger_baseline"]
    outcomes = [c["outcome"] for e in states for s in e["detail"]["lineages"].values() for c in s["charges"]]
    assert outcomes == ["running", "ok"]  # the reservation, then the settled run
    with opened(vault_copy) as v:
        report = v.verify()
    assert report["ok"] and not ledger_findings(report)


def test_a_catalog_copied_back_over_the_spent_one_is_refused(vault_copy: Path, cli, tmp_path) -> None:
    """The older catalog (ε spent 0) is refused at open, before its ledger can be used: the log
    recorded a later catalog generation. (A ledger changed without a rollback is the next test.)"""
    with opened(vault_copy) as v:
        spent = v.budget("clinic")[0]["epsilon_spent"]
    assert spent > 2.0
    shutil.copy(tmp_path / "old-catalog.sealed", vault_copy / "catalog.sealed")
    with pytest.raises(IntegrityError, match="older than the generation .* the audit log recorded"):
        opened(vault_copy)
    result = cli("verify", env={"STRONGROOM_VAULT": str(vault_copy)})
    assert result.code == 4, result.out + result.err
    assert "rolled back" in result.err


def forget_every_run(v: Vault) -> dict[str, Any]:
    """The insider's edit with the catalog key: every ledger emptied. The edited ledgers."""
    session = v._session
    catalog = session.read_catalog()
    for entry in catalog["ledger"].values():
        entry["charges"] = []  # every run forgotten
    catalogs.write_catalog(v.path, session.vault_id, session.catalog_key, catalog)
    return catalog["ledger"]


def test_a_ledger_edited_with_the_catalog_key_is_reported(vault_copy: Path) -> None:
    with opened(vault_copy) as v:
        forget_every_run(v)
        report = v.verify()
    assert not report["ok"] and len(ledger_findings(report)) == 1


def test_a_vault_from_before_the_record_index_is_indexed_at_the_next_open(tmp_path: Path) -> None:
    """Two imports of the same records that an older version kept on separate ledgers."""
    path = tmp_path / "vault"
    x, y = mnist(150)
    order = np.random.default_rng(1).permutation(150)
    with Vault.create(path, passphrase=PASSPHRASE.encode()) as v:
        import_idx(v, tmp_path, "clinic", x, y)
        import_idx(v, tmp_path, "clinic-shuffled", x[order], y[order])
        session = v._session
        with session.lock:  # what an older version left: no record index, one ledger per digest
            catalog = session.read_catalog()
            catalog["lineage"] = {}
            entry = catalog["datasets"]["clinic-shuffled"]
            entry["ledger_id"] = entry["versions"][0]["digest"]
            catalogs.write_catalog(path, session.vault_id, session.catalog_key, catalog)
        assert v.budget("clinic-shuffled")[0]["overlaps"] == []
    with opened(path) as v:
        row = v.budget("clinic-shuffled")[0]
        assert [(o["dataset"], o["records"]) for o in row["overlaps"]] == [("clinic", 150)]
        log = v.audit.entries(action="ledger.lineage")
    assert [d["dataset"] for d in log[-1]["detail"]["indexed"]] == ["clinic", "clinic-shuffled"]


def test_a_ledger_edit_hidden_by_a_hand_written_ledger_line_is_still_reported(vault_copy: Path) -> None:
    """The insider with the catalog key edits the ledger, then appends a `ledger.state` line saying
    the log recorded the edited ledger, so the two agree. Verification rebuilds each ledger from the
    lines the vault wrote (sealed) only; the hand-written line is not one."""
    from tests.security.test_history import hand_written

    with opened(vault_copy) as v:
        edited = forget_every_run(v)
    forged = {
        lineage: {"charges": [], "delta": e.get("delta"), "accountant": e.get("accountant")}
        for lineage, e in edited.items()
    }
    hand_written(vault_copy, action="ledger.state", subject="ledger", detail={"lineages": forged})
    with opened(vault_copy) as v:
        report = v.verify()
    found = ledger_findings(report)
    assert not report["ok"] and [f["found"] for f in found][0] == "a ledger.state line with no valid seal"
    assert [f["object"] for f in found][1:] == [f"catalog:ledger/{lineage}" for lineage in sorted(forged)]
    with opened(vault_copy) as v:
        assert v.budget("clinic")[0]["epsilon_spent"] == 0.0  # the edit itself: what verify must catch


def test_a_catalog_copied_back_with_a_hand_written_generation_line_is_still_refused(
    vault_copy: Path, tmp_path: Path
) -> None:
    """The open compares the catalog's generation with the newest one the log recorded. An insider
    who copies the old catalog back and appends a line recording the old generation is not
    believed: only lines whose seals this vault's keys vouch for count."""
    from tests.security.test_history import hand_written

    shutil.copy(tmp_path / "old-catalog.sealed", vault_copy / "catalog.sealed")
    with pytest.raises(IntegrityError, match="older than the generation"):
        opened(vault_copy)
    lines = (vault_copy / "audit" / "log.jsonl").read_bytes().splitlines()
    old = min(json.loads(x)["detail"]["catalog_generation"] for x in lines if b'"catalog_generation"' in x)
    hand_written(vault_copy, action="catalog.commit", subject="catalog", detail={"catalog_generation": old})
    with pytest.raises(IntegrityError, match="older than the generation"):
        opened(vault_copy)
    hand_written(vault_copy, action="catalog.commit", subject="catalog", detail={"catalog_generation": "x"})
    with pytest.raises(IntegrityError, match="older than the generation"):  # not a traceback either
        opened(vault_copy)
    # With epoch.sealed removed as well, no seal can be checked: the highest generation recorded
    # anywhere counts, which no line written by hand can lower.
    (vault_copy / "audit" / "epoch.sealed").unlink()
    with pytest.raises(IntegrityError, match="older than the generation"):
        opened(vault_copy)


def test_a_catalog_copied_back_with_a_generation_line_sealed_by_the_insider_is_still_refused(
    vault_copy: Path, tmp_path: Path
) -> None:
    """Between commands the running epoch is an idle one, whose MAC key every role can read from
    epoch.sealed: the insider seals the line recording the old generation with it. Nothing the
    vault writes follows an idle epoch's opening but the next opening, so the line is not the vault's."""
    from tests.security.test_history import sealed_by_hand

    lines = (vault_copy / "audit" / "log.jsonl").read_bytes().splitlines()
    assert b'"idle":true' in [x for x in lines if x.startswith(b'{"action":"audit.epoch"')][-1]
    old = min(json.loads(x)["detail"]["catalog_generation"] for x in lines if b'"catalog_generation"' in x)
    sealed_by_hand(vault_copy, action="catalog.commit", subject="catalog", detail={"catalog_generation": old})
    shutil.copy(tmp_path / "old-catalog.sealed", vault_copy / "catalog.sealed")
    with pytest.raises(IntegrityError, match="older than the generation"):
        opened(vault_copy)


def test_a_ledger_reset_through_the_vaults_own_code_is_found(vault_copy: Path) -> None:
    """The insider needs no forgery: with their passphrase, the vault's own code (driven from Python)
    commits a catalog whose ledger they emptied, and records the emptied ledger as it commits, sealed.
    The catalog and the log's last state agree; the step that dropped the charges is the finding."""
    with opened(vault_copy) as v:
        with v._session.writing() as catalog:
            for state in catalog["ledger"].values():
                state["charges"] = []
        assert v.budget("clinic")[0]["epsilon_spent"] == 0.0
        report = v.verify()
    (found,) = ledger_findings(report)
    assert not report["ok"]
    assert found["object"].startswith("audit:") and "drops or lowers the charge" in found["found"]


def test_a_catalog_copied_back_with_a_generation_line_the_vault_itself_sealed_is_still_refused(
    vault_copy: Path, tmp_path: Path
) -> None:
    """The same insider has the vault's own code seal a line recording the old catalog's generation
    (one open, one record), then copies the old catalog back. A generation only grows: a line the
    vault sealed that records a later one than the catalog's refuses it, however many follow."""
    lines = (vault_copy / "audit" / "log.jsonl").read_bytes().splitlines()
    old = min(json.loads(x)["detail"]["catalog_generation"] for x in lines if b'"catalog_generation"' in x)
    with opened(vault_copy) as v:
        v._session.record("catalog.commit", "catalog", catalog_generation=old, header_generation=1)
    shutil.copy(tmp_path / "old-catalog.sealed", vault_copy / "catalog.sealed")
    with pytest.raises(IntegrityError, match="older than the generation"):
        opened(vault_copy)


def test_links_dropped_through_the_vaults_own_code_are_found(vault_copy: Path, tmp_path: Path) -> None:
    """A subset re-import carries the spent dataset's spend through a link between their lineages.
    The insider drops the links with the vault's own commit, which records them as it commits; the
    subset then trains on a fresh budget, and verify reports the state that lost the link."""
    from tests.integration.test_ledger_lineage import COUNT

    with opened(vault_copy) as v:
        x, y = mnist(COUNT)
        import_idx(v, tmp_path, "part", x[:120], y[:120])
        carried = v.budget("part")[0]["epsilon_carried"]
        assert carried > 2.0
        assert not ledger_findings(v.verify())
        with v._session.writing() as catalog:
            catalog["lineage"]["links"] = []
        assert v.budget("part")[0]["epsilon_carried"] == 0.0  # the edit itself
        report = v.verify()
    (found,) = ledger_findings(report)
    assert found["object"].startswith("audit:") and "link" in found["found"]


def test_a_catalog_copied_back_over_lines_whose_seals_were_broken_is_found_by_verify(
    vault_copy: Path, tmp_path: Path
) -> None:
    """A shell is enough to break a seal: the insider flips one digit of the seal of every line
    that records a later generation than the old catalog's, so none of them counts at open, and
    copies the old catalog back. That edits the log's history, which the open does not check (it
    would cost a full verification, docs/THREAT_MODEL.md); verify reports every edited line."""
    log = vault_copy / "audit" / "log.jsonl"
    lines = log.read_bytes().splitlines()
    old = min(json.loads(x)["detail"]["catalog_generation"] for x in lines if b'"catalog_generation"' in x)
    edited = []

    def broken(line: bytes) -> bytes:
        entry = json.loads(line)
        if entry.get("detail", {}).get("catalog_generation", -1) <= old or "seal" not in entry:
            return line
        edited.append(entry["seq"])
        at = line.rindex(b'"seal":"') + 8
        return line[:at] + (b"0" if line[at : at + 1] != b"0" else b"1") + line[at + 1 :]

    log.write_bytes(b"".join(broken(x) + b"\n" for x in lines))
    shutil.copy(tmp_path / "old-catalog.sealed", vault_copy / "catalog.sealed")
    with opened(vault_copy) as v:
        report = v.verify()
    assert edited and not report["ok"]
    assert edited and not report["ok"]
    states = [seq for seq in edited if json.loads(lines[seq])["action"] == "ledger.state"]
    assert states and {f"audit:{seq}" for seq in states} <= {f["object"] for f in ledger_findings(report)}


KILLED_AT_THE_CATALOG_WRITE = """
import os, sys
from vault import netguard

netguard.isolate(keep=[sys.argv[1]])  # first, as the command does

from vault.crypto import keys
from vault.door import Vault
from vault.storage import catalog
from tests.support import PASSPHRASE

keys.use_test_kdf()  # the vault was made with the tests' cheap key derivation

def killed(*args, **kwargs):
    os._exit(137)  # dies there, as if killed (PID 1 of its namespace cannot SIGKILL itself)

catalog.write_catalog = killed  # the process dies at its next commit point, after what it logged first
with Vault.open(sys.argv[1], user="admin", passphrase=PASSPHRASE.encode()) as v:
    v.train({"dataset": "fresh", "epsilon": 1.0, "seed": 2, "epochs": 1, "model": "cnn"})
"""


def test_a_run_killed_at_its_reservations_commit_leaves_a_vault_that_opens_verifies_and_charges(
    vault_copy: Path,
) -> None:
    """A crash at any instant leaves the vault as it was before or after: killed at the moment its
    reservation commits, a run leaves the catalog as it was, and the log must not say otherwise (a
    line recording the generation that never committed read as a rollback; a ledger state that never
    committed read as a charge dropped)."""
    import subprocess
    import sys

    from tests.support import REPO

    with opened(vault_copy) as v:
        x, y = mnist(200, offset=5000)
        import_idx(v, vault_copy.parent, "fresh", x, y)
        assert v.budget("fresh")[0]["epsilon_spent"] == 0.0
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_THE_CATALOG_WRITE, str(vault_copy)], cwd=REPO, capture_output=True
    )
    assert killed.returncode == 137, killed.stderr.decode()[-2000:]
    with opened(vault_copy) as v:
        assert v.budget("fresh")[0]["epsilon_spent"] == 0.0  # as before the run: it never started
        assert not ledger_findings(v.verify())
        v.train({"dataset": "fresh", "epsilon": 1.0, "seed": 3, "epochs": 1, "model": "cnn"})
        report = v.verify()
        assert v.budget("fresh")[0]["epsilon_spent"] > 0.9
    assert not ledger_findings(report), report["findings"]


def test_a_vault_left_by_a_crash_under_the_earlier_order_opens_again(
    vault_copy: Path, tmp_path: Path
) -> None:
    """Before, `ledger.state` was written ahead of the catalog, so a run killed at its commit point
    left a state recording a generation the catalog never reached, and the vault no longer opened.
    A generation is read from the entries written once a commit is made (`catalog.commit`, after
    every commit then as now), so such a vault opens again; a copy put back is still refused."""
    with opened(vault_copy) as v:
        catalog = v._session.read_catalog()
        v._session.record(  # what the earlier order left: the state of a commit that never came
            "ledger.state",
            v._session.vault_id,
            "ok",
            catalog_generation=catalog["generation"] + 1,
            lineages={},
        )
    with opened(vault_copy) as v:
        assert v.budget("clinic")[0]["epsilon_spent"] > 2.0
    shutil.copy(tmp_path / "old-catalog.sealed", vault_copy / "catalog.sealed")
    with pytest.raises(IntegrityError, match="older than the generation"):
        opened(vault_copy)
