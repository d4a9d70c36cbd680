"""Format 1 vaults: read them, and upgrade them to format 2 at an admin's unlock.

In format 1 every slot opened one master key, which wrapped every data key and keyed both the
catalog and a MAC over the header: roles held only as long as nobody edited files. Until an admin
unlocks such a vault (and so upgrades it), other users open it read-only.

The upgrade keeps every user and role. The admin's slot is rewrapped with the admin's passphrase;
each other slot keeps its passphrase-wrapped X25519 key, gets its role's keys sealed to it and a
new signing key sealed to it too, which that user's next unlock adopts (checked against the
certified public key) and rewraps under their passphrase.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from vault.crypto import keys
from vault.crypto.signing import SigningKey
from vault.errors import IntegrityError
from vault.storage import keyring
from vault.storage.files import canonical_json
from vault.storage.keyring import WRONG_PASSPHRASE, SlotSecrets, VaultKeys, b64, unb64

MAC_INFO = b"strongroom/v1 header mac"
SLOT_WRAP_INFO = b"strongroom/v1 slot master wrap"
CATALOG_KEY_INFO = b"strongroom/v1 catalog key"


def unlock(
    header: dict[str, Any], user: str, passphrase: bytes
) -> tuple[bytes, bytes, dict[str, Any], bytes]:
    """(master key, slot X25519 private key, slot, passphrase key) of a format 1 vault; the header's
    MAC is checked. AuthError for an unknown user or a wrong passphrase."""
    slot, kek = keyring.passphrase_key(header, user, passphrase)
    try:
        private = keys.unwrap_key(kek, unb64(slot["wrapped_private"], "wrapped_private"))
    except (IntegrityError, KeyError):
        raise WRONG_PASSPHRASE from None
    try:
        public = unb64(slot["public"], "public")
        eph = unb64(slot["ephemeral"], "ephemeral")
        shared = keys.x25519_exchange(private, eph)
        wrap = keys.hkdf_sha256(shared + eph + public, SLOT_WRAP_INFO)
        master = keys.unwrap_key(wrap, unb64(slot["wrapped_master"], "wrapped_master"))
    except (IntegrityError, KeyError, ValueError):
        raise IntegrityError(
            f"key slot of {user!r} is damaged: the passphrase is right but the master key cannot be unwrapped",
            "restore vault.json from a backup",
        ) from None
    check_header_mac(master, header)
    return master, private, slot, kek


def header_mac(master: bytes, header: dict[str, Any]) -> str:
    body = {k: v for k, v in header.items() if k != "mac"}
    return hmac.new(keys.hkdf_sha256(master, MAC_INFO), canonical_json(body), "sha256").hexdigest()


def check_header_mac(master: bytes, header: dict[str, Any]) -> None:
    if not hmac.compare_digest(header_mac(master, header), str(header.get("mac", ""))):
        raise IntegrityError(
            "vault.json failed authentication: its key slots or settings were edited outside strongroom",
            "restore vault.json from a backup; `strongroom audit show --action keys` lists legitimate key changes",
            detail={"object": "vault.json"},
        )


def catalog_key(master: bytes) -> bytes:
    return keys.hkdf_sha256(master, CATALOG_KEY_INFO)


@dataclass(frozen=True)
class Upgrade:
    header: dict[str, Any]  # format 2, signed
    keys: VaultKeys  # the admin's: every key
    secrets: SlotSecrets  # the upgrading admin's slot secrets


def upgrade(header: dict[str, Any], user: str, private: bytes, kek: bytes, policy_sha256: str) -> Upgrade:
    """The format 2 header for a format 1 one, unlocked by admin `user`; fresh metadata, data and
    authority keys (the caller rewraps the data keys and reseals the catalog under them)."""
    vault_keys = VaultKeys.generate()
    authority = vault_keys.authority_key()
    vault_id = header["vault_id"]
    slots: list[dict[str, Any]] = []
    admin_secrets = None
    for old in header["slots"]:
        slot = {k: old[k] for k in ("user", "role", "created", "public", "kdf")}
        signing = SigningKey.generate()
        if old["user"] == user:
            admin_secrets = SlotSecrets(private, signing.raw(), authority.public_raw())
            slot["signing_public"] = b64(signing.public_raw())
            keyring.rewrap_secrets(slot, kek, admin_secrets)
        else:
            slot["wrapped_private"] = old["wrapped_private"]
            keyring.seal_signing_key(slot, signing)
        keyring.certify(vault_id, slot, authority)
        keyring.seal_keys(slot, vault_keys)
        slots.append(slot)
    assert admin_secrets is not None
    new = {
        "format": header["format"],
        "version": 2,
        "vault_id": vault_id,
        "created": header["created"],
        "generation": 1,
        "authority": b64(authority.public_raw()),
        "policy_sha256": policy_sha256,
        "slots": slots,
    }
    keyring.sign_header(new, authority)
    return Upgrade(new, vault_keys, admin_secrets)
