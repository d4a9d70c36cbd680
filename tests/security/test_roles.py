"""Roles held by cryptography: the insider attacks of issue 13, each mounted as an insider would,
with the files and the keys their own slot gives them, and nothing else.

1. An operator forges an admin "ghost" slot (a copy of their own) and approves their own export.
2. An old vault.json brings back a removed user.
3. An auditor reads records: through every door method, through the files, with their own keys.
4. An operator, with the data key in hand, adds a slot, raises a role, changes the policy or forges
   an approval.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import PASSPHRASE, REPO
from vault.crypto import keys
from vault.crypto.signing import SigningKey
from vault.door import Vault
from vault.door.approvals import check_approvals
from vault.errors import IntegrityError, PolicyDenied
from vault.storage import catalog as catalogs
from vault.storage import keyring

STRICT = (REPO / "policies" / "strict.toml").read_text()
OLIVIA, AARON = b"olivia's passphrase", b"aaron's passphrase"
ROWS = [("ham", f"see you at {h} o'clock, ok?") for h in range(1, 13)] + [
    ("spam", f"WIN a {p} prize now, txt CLAIM to 8{p}") for p in range(100, 112)
]


def small_text(path: Path) -> Path:
    path.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in ROWS), "utf-8")
    return path


@pytest.fixture
def room(new_vault, tmp_path: Path) -> dict[str, Any]:
    """Strict policy (one approval per export), an admin, operator olivia, auditor aaron, a model."""
    v = new_vault(policy_text=STRICT)
    v.keys_add("olivia", "operator", OLIVIA)
    v.keys_add("aaron", "auditor", AARON)
    v.import_dataset(small_text(tmp_path / "msgs.tsv"), name="msgs", sensitivity="medium")
    model = v.train(
        {
            "dataset": "msgs",
            "model": "bow",
            "dp": True,
            "epsilon": 2.0,
            "epochs": 1,
            "batch_size": 8,
            "val_split": 0.25,
            "seed": 1,
        }
    )["model"]
    v.close()
    return {"path": v.path, "model": model, "tmp": tmp_path}


def header_file(room: dict[str, Any]) -> Path:
    return room["path"] / "vault.json"


def read_header(room: dict[str, Any]) -> dict[str, Any]:
    return json.loads(header_file(room).read_text())


def write_header(room: dict[str, Any], header: dict[str, Any]) -> None:
    header_file(room).write_text(json.dumps(header))


def resign(room: dict[str, Any], header: dict[str, Any], forger: SigningKey) -> None:
    """The header made the forger's: it names them as authority, certifies every slot, signs."""
    header["authority"] = keyring.b64(forger.public_raw())
    for slot in header["slots"]:
        keyring.certify(header["vault_id"], slot, forger)
    keyring.sign_header(header, forger)
    write_header(room, header)


def open_as(room: dict[str, Any], user: str, passphrase: bytes) -> Vault:
    return Vault.open(room["path"], user=user, passphrase=passphrase)


# ----------------------------------------------------------------------------- 1: the ghost approver
def test_a_ghost_admin_slot_swapped_in_after_unlock_cannot_approve(room: dict[str, Any]) -> None:
    with open_as(room, "olivia", OLIVIA) as olivia:
        header = read_header(room)
        ghost = copy.deepcopy(next(s for s in header["slots"] if s["user"] == "olivia"))
        ghost["user"], ghost["role"] = "ghost", "admin"
        header["slots"].append(ghost)
        write_header(room, header)
        with pytest.raises(IntegrityError, match="vault.json failed authentication") as caught:
            olivia.export(room["model"], room["tmp"] / "out", approver="ghost", approver_passphrase=OLIVIA)
        assert caught.value.exit_code == 4
        assert not (room["tmp"] / "out").exists()
        approvals = olivia.audit.entries(action="model.export.approval")
        assert not [e for e in approvals if e["outcome"] == "ok"]


def test_a_ghost_header_resigned_by_an_authority_of_the_operators_own_fails_too(room: dict[str, Any]) -> None:
    """With a key pair of their own, the operator signs the doctored header and certifies the ghost:
    their session checks it against the authority their slot pinned, and refuses."""
    with open_as(room, "olivia", OLIVIA) as olivia:
        forger = SigningKey.generate()
        header = read_header(room)
        ghost = copy.deepcopy(next(s for s in header["slots"] if s["user"] == "olivia"))
        ghost["user"], ghost["role"] = "ghost", "admin"
        header["slots"].append(ghost)
        resign(room, header, forger)
        with pytest.raises(IntegrityError, match="another authority"):
            olivia.export(room["model"], room["tmp"] / "out", approver="ghost", approver_passphrase=OLIVIA)
    with pytest.raises(IntegrityError):  # and nobody's next unlock takes that header
        open_as(room, "admin", PASSPHRASE.encode())


def test_a_header_of_the_operators_own_authority_with_a_hand_written_authority_line_is_refused(
    room: dict[str, Any],
) -> None:
    """The operator goes further: with the vault keys their slot opens and an authority of their own,
    they write a header with an admin slot for themselves, and append a line recording the new
    authority so the newest record agrees with it. The authority never changes: the header's is
    matched with the first line that recorded one, at init."""
    from tests.security.test_history import hand_written

    header = read_header(room)
    slot = keyring.find_slot(header, "olivia")
    kek = keys.derive_kek(OLIVIA, keys.KdfParams.from_json(slot["kdf"]))
    secrets, _ = keyring.open_secrets(slot, kek, header)
    held = keyring.open_keys(slot, secrets.private)
    forger = SigningKey.generate()
    forged = keyring.VaultKeys(held.meta, held.data, forger.raw())
    mallory, _ = keyring.new_slot(
        header["vault_id"], "mallory", "admin", b"mallory's passphrase", forged, "now"
    )
    header["slots"].append(mallory)
    resign(room, header, forger)
    hand_written(
        room["path"],
        actor="olivia",
        role="operator",
        action="keys.add",
        subject="mallory",
        detail={"authority": keyring.fingerprint(forger.public_raw())},
    )
    with pytest.raises(IntegrityError, match="another authority|replaced") as caught:
        open_as(room, "mallory", b"mallory's passphrase")
    assert caught.value.exit_code == 4


# ----------------------------------------------------------------------------- 2: rollback of the header
def test_an_old_header_copied_back_does_not_bring_a_removed_user_back(room: dict[str, Any]) -> None:
    old = header_file(room).read_bytes()
    with open_as(room, "admin", PASSPHRASE.encode()) as admin:
        admin.keys_remove("olivia")
    header_file(room).write_bytes(old)
    with pytest.raises(IntegrityError, match="older than the generation") as caught:
        open_as(room, "olivia", OLIVIA)
    assert caught.value.exit_code == 4
    assert "rolled back" in caught.value.title
    # And below the log check: her old slot's keys no longer open the catalog (removal rotated them).
    header = json.loads(old)
    slot = keyring.find_slot(header, "olivia")
    kek = keys.derive_kek(OLIVIA, keys.KdfParams.from_json(slot["kdf"]))
    secrets, _ = keyring.open_secrets(slot, kek, header)
    old_keys = keyring.open_keys(slot, secrets.private)
    with pytest.raises(IntegrityError):
        catalogs.read_catalog(room["path"], header["vault_id"], keyring.catalog_key(old_keys.meta))


def test_a_rolled_back_header_is_refused_through_the_cli(room: dict[str, Any], cli) -> None:
    old = header_file(room).read_bytes()
    with open_as(room, "admin", PASSPHRASE.encode()) as admin:
        admin.keys_add("peter", "operator", b"peter's passphrase")
    header_file(room).write_bytes(old)
    result = cli("datasets", env={"STRONGROOM_VAULT": str(room["path"])})
    assert result.code == 4 and "rolled back" in result.err


def test_a_rolled_back_header_with_a_hand_written_generation_line_is_still_refused(
    room: dict[str, Any],
) -> None:
    """The insider also appends a line recording the old header's generation, so the newest record
    agrees with the copy. Only lines the vault sealed count, once the catalog's key can check them."""
    from tests.security.test_history import hand_written

    old = header_file(room).read_bytes()
    with open_as(room, "admin", PASSPHRASE.encode()) as admin:
        admin.keys_add("peter", "operator", b"peter's passphrase")
    header_file(room).write_bytes(old)
    generation = json.loads(old)["generation"]
    hand_written(
        room["path"], action="policy.set", subject="policy", detail={"header_generation": generation}
    )
    with pytest.raises(IntegrityError, match="older than the generation") as caught:
        open_as(room, "admin", PASSPHRASE.encode())
    assert caught.value.exit_code == 4 and "rolled back" in caught.value.title


def test_a_rolled_back_header_with_a_generation_line_the_vault_itself_sealed_is_still_refused(
    room: dict[str, Any],
) -> None:
    """The operator has the vault's own code seal the line recording the old generation (their
    passphrase opens it), then copies the old header back: the later generations the vault sealed
    before that line still refuse it."""
    old = header_file(room).read_bytes()
    with open_as(room, "admin", PASSPHRASE.encode()) as admin:
        admin.keys_add("peter", "operator", b"peter's passphrase")
    with open_as(room, "olivia", OLIVIA) as olivia:
        olivia._session.record("keys.remove", "peter", header_generation=json.loads(old)["generation"])
    header_file(room).write_bytes(old)
    with pytest.raises(IntegrityError, match="older than the generation") as caught:
        open_as(room, "admin", PASSPHRASE.encode())
    assert caught.value.exit_code == 4 and "rolled back" in caught.value.title


# ----------------------------------------------------------------------------- 3: an auditor and the records
def test_an_auditor_slot_holds_nothing_that_decrypts_records(room: dict[str, Any]) -> None:
    """From the auditor's passphrase to every key their slot holds: none unwraps a data key."""
    header = read_header(room)
    slot = keyring.find_slot(header, "aaron")
    kek = keys.derive_kek(AARON, keys.KdfParams.from_json(slot["kdf"]))
    secrets, _ = keyring.open_secrets(slot, kek, header)
    held = keyring.open_keys(slot, secrets.private)
    assert held.data is None and held.authority is None
    sealed = keyring.open_sealed_to(
        secrets.private,
        keyring.unb64(slot["public"], "public"),
        keyring.unb64(slot["ephemeral"], "ephemeral"),
        keyring.unb64(slot["sealed_keys"], "sealed_keys"),
        keyring.SLOT_KEYS_INFO,
    )
    assert len(sealed) == 32  # the metadata key, and nothing else
    catalog = catalogs.read_catalog(room["path"], header["vault_id"], keyring.catalog_key(held.meta))
    wrapped = [v["wrapped_key"] for e in catalog["datasets"].values() for v in e["versions"]]
    wrapped += [r["wrapped_key"] for m in catalog["models"].values() for r in m["objects"].values()]
    candidates = [held.meta, secrets.private, secrets.signing, keyring.catalog_key(held.meta)]
    candidates += [keys.hkdf_sha256(held.meta, info) for info in (b"strongroom/v2 data key", b"data")]
    for blob in wrapped:
        for candidate in candidates:
            with pytest.raises(IntegrityError):
                keys.unwrap_key(candidate, base64.b64decode(blob))


def test_an_auditor_reads_no_record_through_any_door(room: dict[str, Any]) -> None:
    with open_as(room, "aaron", AARON) as aaron:
        assert [d["name"] for d in aaron.datasets()] == ["msgs"]  # metadata: yes
        for attempt in (
            lambda: aaron.sample("msgs", 3),
            lambda: aaron.train({"dataset": "msgs", "dp": True, "epsilon": 1.0}),
            lambda: aaron.evaluate(room["model"], "msgs"),
            lambda: aaron.export(room["model"], room["tmp"] / "x"),
        ):
            with pytest.raises(PolicyDenied):
                attempt()
        # below the policy: the door's own decrypting read, called directly, has no key to use
        with pytest.raises(PolicyDenied, match="holds no key that decrypts records"):
            aaron._datasets.load("msgs", purpose="verify")
        report = aaron.verify()
        assert report["ok"] and report["scope"] == "presence"


def test_no_environment_variable_waives_isolation_for_the_installed_command(
    room: dict[str, Any], cli
) -> None:
    """The switch that let an auditor's process run unisolated is gone: its evidence carries no waiver."""
    result = cli(
        "datasets",
        "--json",
        isolation=None,
        env={
            "STRONGROOM_VAULT": str(room["path"]),
            "STRONGROOM_TEST_ISOLATION": "waive",
            "STRONGROOM_USER": "aaron",
            "STRONGROOM_PASSPHRASE": AARON.decode(),
        },
    )
    with open_as(room, "admin", PASSPHRASE.encode()) as admin:
        evidence = [e for e in admin.audit.entries(action="network.isolation") if e["actor"] == "aaron"]
    assert evidence, result.err
    assert not evidence[-1]["detail"].get("waived_by_test_switch")


# ----------------------------------------------------------------------------- 4: an operator with the data key
def test_an_operator_cannot_add_a_slot_even_below_the_policy(room: dict[str, Any]) -> None:
    with open_as(room, "olivia", OLIVIA) as olivia:
        with pytest.raises(PolicyDenied):
            olivia.keys_add("mallory", "admin", b"mallory's passphrase")
        session = olivia._session
        header = session.fresh_header()
        slot, _ = keyring.new_slot(
            session.vault_id,
            "mallory",
            "admin",
            b"mallory's passphrase",
            keyring.VaultKeys(session.vault_keys.meta, session.vault_keys.data, SigningKey.generate().raw()),
            "2026-01-01T00:00:00Z",
        )
        header["slots"].append(slot)
        with session.lock, pytest.raises(PolicyDenied, match="only an admin"):
            session.commit_header(header)  # there is no authority key in an operator's session
        write_header(room, header)  # the raw file edit instead
    with pytest.raises(IntegrityError):
        open_as(room, "olivia", OLIVIA)


def test_an_operator_cannot_raise_their_own_role(room: dict[str, Any]) -> None:
    header = read_header(room)
    next(s for s in header["slots"] if s["user"] == "olivia")["role"] = "admin"
    write_header(room, header)
    with pytest.raises(IntegrityError, match="failed authentication"):
        open_as(room, "olivia", OLIVIA)


def test_an_operator_cannot_change_the_policy_by_resealing_the_catalog(room: dict[str, Any]) -> None:
    """The operator holds the metadata key, so they can reseal a catalog with a laxer policy; the
    admin-signed header names the policy's hash, so nobody's next open takes it."""
    with open_as(room, "olivia", OLIVIA) as olivia:
        session = olivia._session
        catalog = session.read_catalog()
        lax = STRICT.replace("approvals_required = 1", "approvals_required = 0")
        assert lax != STRICT
        from vault.policy import Policy

        catalog["policy"]["text"] = lax
        catalog["policy"]["sha256"] = Policy.load(lax).sha256
        catalogs.write_catalog(room["path"], session.vault_id, session.catalog_key, catalog)
    for user, passphrase in (("olivia", OLIVIA), ("admin", PASSPHRASE.encode())):
        with pytest.raises(IntegrityError, match="policy is not the one the admin-signed header vouches for"):
            open_as(room, user, passphrase)


def test_a_forged_approval_does_not_verify(room: dict[str, Any]) -> None:
    """An operator signs the manifest with a key of their own and names the admin as approver."""
    with open_as(room, "admin", PASSPHRASE.encode()) as admin:
        authority = admin.authority_fingerprint
    with open_as(room, "olivia", OLIVIA) as olivia:
        with pytest.raises(PolicyDenied):  # alone, the policy refuses
            olivia.export(room["model"], room["tmp"] / "alone")
    with open_as(room, "olivia", OLIVIA) as olivia:
        olivia.export(
            room["model"], room["tmp"] / "ok", approver="admin", approver_passphrase=PASSPHRASE.encode()
        )
    out = room["tmp"] / "ok"
    manifest = (out / "MANIFEST.sha256").read_bytes()
    signers = check_approvals((out / "approvals.json").read_bytes(), manifest, authority)
    assert [(s["name"], s["purpose"]) for s in signers] == [("olivia", "requester"), ("admin", "approver")]
    doc = json.loads((out / "approvals.json").read_text())
    forged = SigningKey.generate()
    approver = next(s for s in doc["signers"] if s["name"] == "admin")
    approver["public_key"] = forged.public_pem().decode()
    approver["signature"] = base64.b64encode(forged.sign(manifest)).decode()
    with pytest.raises(ValueError, match="certificate of 'admin' names another key"):
        check_approvals(json.dumps(doc).encode(), manifest, authority)
    approver["certificate_text"] = approver["certificate_text"].replace(
        approver["certificate_text"].split("signing-key ")[1].split("\n")[0], keyring.b64(forged.public_raw())
    )
    with pytest.raises(ValueError, match="is not the authority's"):
        check_approvals(json.dumps(doc).encode(), manifest, authority)
    changed = manifest.replace(b"card.md", b"card.mD")
    with pytest.raises(ValueError, match="does not cover this manifest"):
        check_approvals((out / "approvals.json").read_bytes(), changed, authority)


def test_nothing_in_the_product_reads_a_test_switch_from_the_environment() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("vault", "tui")
        for p in (REPO / folder).rglob("*.py")
        if "STRONGROOM_TEST" in p.read_text()
    ]
    assert offenders == []
