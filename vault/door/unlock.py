"""Getting a Session: create a vault, open one with a passphrase, resume one with a slot's secrets
(the TUI's trainer), and upgrade a format 1 vault at an admin's unlock.

An open checks, before anything is read: the header's signature against the authority the user's
own slot pinned; the header's generation and authority against the latest the audit log recorded
(a rolled-back or replaced vault.json is an IntegrityError, exit 4, naming both); and finishes or
drops a catalog change interrupted between its two writes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

from vault.audit import AuditLog
from vault.crypto import keys
from vault.crypto.signing import SigningKey
from vault.door.session import Session, Unlocked, policy_record
from vault.errors import AuthError, IntegrityError, StrongroomError, VaultBusy
from vault.policy import Policy
from vault.storage import catalog as catalogs
from vault.storage import keyring, legacy
from vault.storage.files import VaultLock, atomic_write, canonical_json, fsync_dir, utc_now
from vault.storage.header import read_header
from vault.storage.keyring import SlotSecrets, VaultKeys
from vault.storage.layout import (
    AUDIT_DIR,
    CATALOG_FILE,
    CATALOG_NEXT,
    FORMAT_NAME,
    FORMAT_VERSION,
    HEADER_FILE,
    OBJECTS_DIR,
)
from vault.storage.names import check_name

FORMAT1_READ_ONLY = (
    "it is in format 1, where roles were not yet held by cryptography; an admin's next unlock "
    "upgrades it (once, audited), and until then other users may read but not change it"
)


def create(
    path: Path | str, *, user: str, passphrase: bytes, policy_text: str | None, policy_source: str
) -> Session:
    root = Path(path).expanduser()
    check_name(user, "user")
    policy = Policy.load(policy_text, source=policy_source) if policy_text is not None else Policy.default()
    if root.exists() and any(root.iterdir()):
        what = "a vault" if (root / HEADER_FILE).exists() else "a non-empty directory"
        raise StrongroomError(
            f"{root} already exists and is {what}; nothing was changed",
            "choose another --vault path, or open the existing vault",
        )
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    (root / OBJECTS_DIR).mkdir(exist_ok=True)
    created = utc_now()
    vault_id = secrets.token_hex(8)
    vault_keys = VaultKeys.generate()
    authority = vault_keys.authority_key()
    slot, slot_secrets = keyring.new_slot(vault_id, user, "admin", passphrase, vault_keys, created)
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "vault_id": vault_id,
        "created": created,
        "generation": 1,
        "authority": keyring.b64(authority.public_raw()),
        "policy_sha256": policy.sha256,
        "slots": [slot],
    }
    keyring.sign_header(header, authority)
    log_key = SigningKey.generate()
    with VaultLock(root):
        catalogs.write_catalog(
            root,
            vault_id,
            keyring.catalog_key(vault_keys.meta),
            catalogs.empty_catalog(
                vault_id,
                keyring.b64(log_key.raw()),
                policy_record(policy, set_by=user, when=created),
                created,
            ),
        )
        audit = AuditLog(root / AUDIT_DIR)
        audit.init(log_key.public_pem())
        audit.attach_sealer(log_key.raw(), user, "admin")  # epoch 0 opens before vault.init
        audit.append(
            user,
            "admin",
            "vault.init",
            vault_id,
            "ok",
            {
                "policy": policy.name,
                "policy_sha256": policy.sha256,
                "format_version": FORMAT_VERSION,
                "kdf": {k: v for k, v in slot["kdf"].items() if k != "salt"},
                "authority": keyring.fingerprint(authority.public_raw()),
                "header_generation": 1,
                "catalog_generation": 0,
            },
        )
        # The header goes last: until it exists, the directory is not a vault.
        atomic_write(root / HEADER_FILE, canonical_json(header))
    unlocked = Unlocked(header, user, "admin", vault_keys, slot_secrets)
    session = Session(root, unlocked)
    session.read_catalog()
    return session


def open_with_passphrase(path: Path | str, *, user: str, passphrase: bytes) -> Session:
    root = Path(path).expanduser()
    header = read_header(root)
    try:
        if int(header["version"]) == 1:
            return _open_format1(root, header, user, passphrase)
        slot, kek = keyring.passphrase_key(header, user, passphrase)
        slot_secrets, adopted = keyring.open_secrets(slot, kek, header)
    except AuthError:
        with contextlib.suppress(OSError, StrongroomError):
            AuditLog(root / AUDIT_DIR).append(
                user,
                "unknown",
                "session.unlock_failed",
                header["vault_id"],
                "denied",
                {"reason": "unknown user or wrong passphrase", "pid": os.getpid()},
            )
        raise
    session = Session(root, _unlock(root, header, slot, slot_secrets))
    check_catalog_against_log(root, session.read_catalog(), session.header)  # before anything is written
    if adopted:
        _adopt(session, kek, slot_secrets)
    return session


def resume(path: Path | str, *, user: str, slot_secrets: SlotSecrets) -> Session:
    """A session from a slot's secrets already opened by its passphrase in a parent process (the
    TUI's trainer): no key derivation, the same checks as an open."""
    root = Path(path).expanduser()
    header = read_header(root)
    slot = keyring.find_slot(header, user) if int(header["version"]) >= 2 else None
    if slot is None:
        raise AuthError("this session cannot be resumed here", "open the vault with the passphrase")
    session = Session(root, _unlock(root, header, slot, slot_secrets))
    check_catalog_against_log(root, session.read_catalog(), session.header)
    return session


def check_catalog_against_log(
    root: Path, catalog: dict[str, Any], header: dict[str, Any] | None = None
) -> None:
    """A catalog older than a commit the log recorded was copied back: IntegrityError naming both.
    With the header the session unlocked, its generation is checked again the same way: the check
    at unlock reads the newest line that records one, which a line written by hand can be, and
    only now can the catalog's key tell the vault's own lines from others."""
    generation = int(catalog.get("generation", 0))
    log = AuditLog(root / AUDIT_DIR)
    secret = keyring.unb64(catalog["signing_key"], "signing_key") if catalog.get("signing_key") else None
    # A generation only grows: any line the vault sealed recording a later one refuses the copy, and
    # lines appended after it (by hand, or through the vault's own code) cannot hide it.
    bounds = {"catalog_generation": generation}
    if header is not None and int(header.get("version", 1)) >= 2:
        bounds["header_generation"] = int(header["generation"])
    above = log.above_vouched(bounds, secret)
    latest = above.get("catalog_generation")
    if latest is not None:
        raise IntegrityError(
            f"catalog.sealed is generation {generation}, older than the generation {latest[1]} the audit log "
            f"recorded at entry {latest[0]}: it was rolled back",
            "restore the current catalog.sealed from a backup; `strongroom audit show --action catalog` lists "
            "the commits",
            detail={"object": CATALOG_FILE, "catalog_generation": generation, "logged_generation": latest[1]},
        )
    if header is not None and "header_generation" in bounds:
        _check_header_generation(header, above.get("header_generation"))


def _check_header_generation(header: dict[str, Any], latest: tuple[int, Any] | None) -> None:
    generation = int(header["generation"])
    if latest is not None and (type(latest[1]) is not int or generation < latest[1]):
        raise IntegrityError(
            f"vault.json is generation {generation}, older than the generation {latest[1]} the audit log "
            f"recorded at entry {latest[0]}: it was rolled back",
            "restore the current vault.json from a backup; `strongroom audit show --action keys` lists the changes",
            detail={"object": HEADER_FILE, "header_generation": generation, "logged_generation": latest[1]},
        )


def _unlock(root: Path, header: dict[str, Any], slot: dict[str, Any], slot_secrets: SlotSecrets) -> Unlocked:
    keyring.verify_header(header, slot_secrets.authority)
    if keys.x25519_public(slot_secrets.private) != keyring.unb64(slot["public"], "public"):
        raise IntegrityError(f"key slot of {slot['user']!r} does not match its secrets", "restore vault.json")
    check_against_log(root, header)
    vault_keys = keyring.open_keys(slot, slot_secrets.private)
    if vault_keys.authority is not None and vault_keys.authority_key().public_raw() != slot_secrets.authority:
        raise IntegrityError("the authority key sealed to this slot is not the vault's", "restore vault.json")
    unlocked = Unlocked(header, slot["user"], slot["role"], vault_keys, slot_secrets)
    _recover_pending_catalog(root, header, unlocked.catalog_key)
    return unlocked


def check_against_log(root: Path, header: dict[str, Any]) -> None:
    """A header older than the log says, or signed by another authority than the log recorded, was
    rolled back or replaced: IntegrityError naming both."""
    log = AuditLog(root / AUDIT_DIR)
    _check_header_generation(header, log.latest("header_generation"))
    authority = keyring.fingerprint(keyring.unb64(header["authority"], "authority"))
    # The authority is fixed when the vault is made: the first line recording it is the one to
    # match. A newer line, written by hand or sealed by an insider with the running epoch's keys
    # (which every role's catalog key opens), would otherwise vouch for a header of their own.
    logged = log.latest("authority", earliest=True)
    if logged is not None and logged[1] != authority:
        raise IntegrityError(
            f"vault.json is signed by authority {authority[:23]}..., but the audit log recorded "
            f"{str(logged[1])[:23]}... at entry {logged[0]}, when the vault was made: it was replaced",
            "restore vault.json from a backup; compare the fingerprint `strongroom init` printed",
            detail={"object": HEADER_FILE, "authority": authority, "logged_authority": logged[1]},
        )


def _adopt(session: Session, kek: bytes, slot_secrets: SlotSecrets) -> None:
    """A slot carried over from format 1: its signing key and the pinned authority, rewrapped under
    its passphrase (the signed part of the header does not change)."""
    with session.lock:
        header = session.fresh_header()
        slot = keyring.find_slot(header, session.user)
        assert slot is not None
        keyring.rewrap_secrets(slot, kek, slot_secrets)
        session.record(
            "keys.adopt",
            session.user,
            "ok",
            signing_key=keyring.fingerprint(slot_secrets.signing_key().public_raw()),
            authority=keyring.fingerprint(slot_secrets.authority),
        )
        session.write_owner_fields(header)


def _recover_pending_catalog(root: Path, header: dict[str, Any], catalog_key: bytes) -> None:
    """Finish a key or policy change interrupted between its header and catalog writes: the pending
    catalog is taken when it matches the header and the current one does not; else dropped."""
    nxt = root / CATALOG_NEXT
    if not nxt.exists():
        return
    try:
        lock = VaultLock(root)
        lock.acquire()
    except VaultBusy:
        return  # a writer is in the middle of that change: it is not interrupted
    try:
        if not nxt.exists():
            return
        if _matches(root, header, catalog_key, CATALOG_NEXT) and not _matches(
            root, header, catalog_key, CATALOG_FILE
        ):
            os.replace(nxt, root / CATALOG_FILE)
            fsync_dir(root)
        else:
            nxt.unlink()
    finally:
        lock.release()


def _matches(root: Path, header: dict[str, Any], catalog_key: bytes, filename: str) -> bool:
    try:
        catalog = catalogs.read_catalog(root, header["vault_id"], catalog_key, filename)
    except IntegrityError:
        return False
    return int(header["version"]) < 2 or catalog["policy"]["sha256"] == header["policy_sha256"]


# ----------------------------------------------------------------------------- format 1
def _open_format1(root: Path, header: dict[str, Any], user: str, passphrase: bytes) -> Session:
    master, private, slot, kek = legacy.unlock(header, user, passphrase)
    catalog_key = legacy.catalog_key(master)
    _recover_pending_catalog(root, header, catalog_key)
    if slot["role"] != "admin":
        unlocked = Unlocked(header, user, slot["role"], VaultKeys(master, master), None, FORMAT1_READ_ONLY)
        session = Session(root, unlocked)
        check_catalog_against_log(root, session.read_catalog())
        return session
    return _upgrade(root, header, user, master, private, kek)


def _upgrade(
    root: Path, header: dict[str, Any], user: str, master: bytes, private: bytes, kek: bytes
) -> Session:
    """Format 1 -> 2 at an admin's unlock: new metadata, data and authority keys; every data key
    rewrapped; the catalog resealed; every slot given its role's keys; audited, then committed."""
    with VaultLock(root):
        catalog = catalogs.read_catalog(root, header["vault_id"], legacy.catalog_key(master))
        up = legacy.upgrade(header, user, private, kek, catalog["policy"]["sha256"])
        assert up.keys.data is not None
        rewrapped = catalogs.rewrap_data_keys(catalog, master, up.keys.data)
        catalog["generation"] = int(catalog.get("generation", 0)) + 1
        unlocked = Unlocked(up.header, user, "admin", up.keys, up.secrets)
        session = Session(root, unlocked)
        # Sealed like every entry: a non-admin's read-only session may already have begun epochs.
        session.audit.attach_sealer(keyring.unb64(catalog["signing_key"], "signing_key"), user, "admin")
        session.record(
            "vault.upgrade",
            session.vault_id,
            "ok",
            from_version=1,
            to_version=2,
            authority=keyring.fingerprint(up.secrets.authority),
            header_generation=up.header["generation"],
            users=len(up.header["slots"]),
            data_keys_rewrapped=rewrapped,
        )
        session.commit_catalog_and_header(up.header, catalog)
    return session


__all__ = ["FORMAT1_READ_ONLY", "check_against_log", "create", "open_with_passphrase", "resume"]
