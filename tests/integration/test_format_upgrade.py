"""A format 1 vault (every slot opened one master key) upgrades once, at an admin's unlock, audited;
until then other users open it read-only with the reason; after it, each user's slot holds only
its role's keys and adopts the signing key the upgrade sealed to it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import VECTORS
from vault.door import Vault
from vault.errors import PolicyDenied, StrongroomError

KAT = VECTORS / "vault-v1-users"


@pytest.fixture
def v1(tmp_path: Path) -> dict[str, Any]:
    expected = json.loads((KAT / "EXPECTED.json").read_text())
    path = shutil.copytree(KAT / "vault", tmp_path / "vault")
    return {"path": path, **expected}


def open_as(v1: dict[str, Any], user: str) -> Vault:
    return Vault.open(v1["path"], user=user, passphrase=v1["users"][user].encode())


def version(v1: dict[str, Any]) -> int:
    return int(json.loads((v1["path"] / "vault.json").read_text())["version"])


def test_before_the_upgrade_other_users_read_but_do_not_write(v1: dict[str, Any], tmp_path: Path) -> None:
    with open_as(v1, "olivia") as olivia:
        assert [d["name"] for d in olivia.datasets()] == ["kat"]
        with pytest.raises(StrongroomError, match="read-only for this session: it is in format 1"):
            olivia.import_dataset(tmp_path / "x.tsv", name="other")
    assert version(v1) == 1


def test_an_admin_unlock_upgrades_once_audited_and_every_user_keeps_their_passphrase(
    v1: dict[str, Any],
) -> None:
    with open_as(v1, "admin") as admin:
        upgrades = admin.audit.entries(action="vault.upgrade")
        assert len(upgrades) == 1 and upgrades[0]["detail"]["from_version"] == 1
        assert upgrades[0]["detail"]["authority"] == admin.authority_fingerprint
        data = admin._datasets.load(v1["dataset"], purpose="verify")
        assert data.x == v1["texts"]
        assert admin.verify()["ok"]
        rows = {r["user"]: r for r in admin.keys_list()}
        assert all(
            r["fingerprint"] and r["authority_fingerprint"] == admin.authority_fingerprint
            for r in rows.values()
        )
    assert version(v1) == 2
    with open_as(v1, "admin") as again:  # once: a second unlock does not upgrade again
        assert len(again.audit.entries(action="vault.upgrade")) == 1
    with open_as(v1, "olivia") as olivia:  # adopts the signing key the upgrade sealed to her slot
        assert olivia.audit.entries(action="keys.adopt")[-1]["actor"] == "olivia"
        assert [d["name"] for d in olivia.datasets()] == ["kat"]
        assert olivia._datasets.load(v1["dataset"], purpose="verify").x == v1["texts"]
    slot = next(
        s for s in json.loads((v1["path"] / "vault.json").read_text())["slots"] if s["user"] == "olivia"
    )
    assert "wrapped_secrets" in slot and "sealed_signing" not in slot and "wrapped_private" not in slot
    with open_as(v1, "aaron") as aaron:  # the auditor kept only the metadata key
        assert [d["name"] for d in aaron.datasets()] == ["kat"]
        with pytest.raises(PolicyDenied, match="holds no key that decrypts records"):
            aaron._datasets.load(v1["dataset"], purpose="verify")


def test_an_upgrade_interrupted_before_its_header_is_written_leaves_format_1(v1: dict[str, Any]) -> None:
    """The new catalog is written beside the old first; without the header (the commit point) the
    next open drops it and the vault is as it was."""
    from vault.storage.layout import CATALOG_NEXT

    catalog = (v1["path"] / "catalog.sealed").read_bytes()
    (v1["path"] / CATALOG_NEXT).write_bytes(b"a catalog sealed under keys the header does not hold")
    with open_as(v1, "olivia") as olivia:
        assert [d["name"] for d in olivia.datasets()] == ["kat"]
    assert not (v1["path"] / CATALOG_NEXT).exists()
    assert (v1["path"] / "catalog.sealed").read_bytes() == catalog and version(v1) == 1


def test_the_log_of_an_upgraded_vault_is_sealed_from_its_first_epoch_on(v1: dict[str, Any]) -> None:
    """Entries before the first epoch are the legacy ones; everything after, the upgrade and the
    adoption included (a read-only user opening first starts the epochs), is sealed."""
    legacy = len(v1["path"].joinpath("audit", "log.jsonl").read_bytes().splitlines())
    with open_as(v1, "olivia"):
        pass
    with open_as(v1, "admin"):
        pass
    with open_as(v1, "olivia") as olivia:
        assert olivia.audit.entries(action="keys.adopt")
    report = olivia.audit.verify(initial_key=olivia.audit.initial_key())
    assert report.ok, report.findings
    assert report.epochs >= 6 and not report.unsealed_seqs
    assert any(
        f"entries 0..{legacy - 1} were written before the log's first epoch" in n for n in report.notes
    )


def test_an_upgrade_killed_at_its_header_write_is_made_again_at_the_next_admin_unlock(
    v1: dict[str, Any],
) -> None:
    """Killed at its commit point, after `vault.upgrade` was logged with the authority it made: that
    authority never signed a header in force, so the next admin unlock upgrades again, with a new
    one, and opens (the log's record of an upgrade that never committed is not held against it)."""
    import subprocess
    import sys

    from tests.integration.test_vault_crash import KILLED_AT_THE_HEADER_WRITE
    from tests.support import REPO

    script = KILLED_AT_THE_HEADER_WRITE.replace(
        "passphrase=PASSPHRASE.encode()", "passphrase=sys.argv[3].encode()"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, str(v1["path"]), "none", v1["users"]["admin"]],
        cwd=REPO,
        capture_output=True,
    )
    assert killed.returncode == 137, killed.stderr.decode()[-2000:]
    assert version(v1) == 1
    with open_as(v1, "admin") as admin:
        upgrades = admin.audit.entries(action="vault.upgrade")
        assert len(upgrades) == 2 and upgrades[-1]["detail"]["authority"] == admin.authority_fingerprint
        assert upgrades[0]["detail"]["authority"] != admin.authority_fingerprint
        assert admin.verify()["ok"]
    assert version(v1) == 2
    with open_as(v1, "olivia") as olivia:
        assert [d["name"] for d in olivia.datasets()] == ["kat"]
