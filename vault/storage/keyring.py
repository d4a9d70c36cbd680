"""Key slots: one per user, each opening the vault's master key with that user's passphrase.

A slot holds an X25519 key pair. Its private half is wrapped (RFC 3394) under a key derived from
the user's passphrase with Argon2id; the master key is wrapped under a key agreed between a
one-time ephemeral key and the slot's public half, as age does for its recipients. So an admin
can rotate the master key and reseal it to every slot without knowing anyone's passphrase.
The header (slots and all) is authenticated with a MAC under a key derived from the master key.
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

from vault.crypto import keys
from vault.errors import AuthError, InputError, IntegrityError
from vault.storage.files import canonical_json
from vault.vocabulary import ROLES, check_choice

MAC_INFO = b"strongroom/v1 header mac"
SLOT_WRAP_INFO = b"strongroom/v1 slot master wrap"
CATALOG_KEY_INFO = b"strongroom/v1 catalog key"

WRONG_PASSPHRASE = AuthError(
    "authentication failed: unknown user or wrong passphrase",
    "check --user / STRONGROOM_USER and the passphrase; `strongroom keys list` (any user) shows who has a slot",
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise IntegrityError(
            f"key slot field {field!r} is damaged", "restore vault.json from a backup"
        ) from None


def check_role(role: str) -> str:
    return check_choice(role, ROLES, "role")


def _slot_wrap_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return keys.hkdf_sha256(shared + ephemeral_public + recipient_public, SLOT_WRAP_INFO)


def seal_master(slot: dict[str, Any], master: bytes) -> None:
    """(Re)wrap `master` to the slot's public key with a fresh ephemeral key."""
    recipient = unb64(slot["public"], "public")
    eph_private, eph_public = keys.x25519_keypair()
    shared = keys.x25519_exchange(eph_private, recipient)
    slot["ephemeral"] = b64(eph_public)
    slot["wrapped_master"] = b64(keys.wrap_key(_slot_wrap_key(shared, eph_public, recipient), master))


def new_slot(
    user: str, role: str, passphrase: bytes, master: bytes, created: str
) -> tuple[dict[str, Any], bytes]:
    """A new slot for `user`, and the slot's private key (kept in memory by the session)."""
    check_role(role)
    private, public = keys.x25519_keypair()
    slot: dict[str, Any] = {"user": user, "role": role, "created": created, "public": b64(public)}
    set_passphrase(slot, private, passphrase)
    seal_master(slot, master)
    return slot, private


def set_passphrase(slot: dict[str, Any], private: bytes, passphrase: bytes) -> None:
    """Wrap the slot's private key under a new passphrase, with a fresh salt."""
    if len(passphrase) < 8:
        raise InputError(
            "passphrase too short (under 8 characters)", "choose a passphrase of at least 8 characters"
        )
    params = keys.kdf_for_new_slot()
    slot["kdf"] = params.to_json()
    slot["wrapped_private"] = b64(keys.wrap_key(keys.derive_kek(passphrase, params), private))


def find_slot(header: dict[str, Any], user: str) -> dict[str, Any] | None:
    for slot in header["slots"]:
        if isinstance(slot, dict) and slot.get("user") == user:
            return slot
    return None


def unlock(header: dict[str, Any], user: str, passphrase: bytes) -> tuple[bytes, bytes, dict[str, Any]]:
    """Return (master key, slot private key, slot). Unknown users cost the same as wrong passphrases."""
    slot = find_slot(header, user)
    if slot is None:
        keys.derive_kek(passphrase, keys.kdf_for_new_slot())
        raise WRONG_PASSPHRASE
    try:
        params = keys.KdfParams.from_json(slot["kdf"])
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(
            f"key slot of {user!r} has damaged KDF parameters", "restore vault.json from a backup"
        ) from None
    keys.check_kdf_params(params)
    kek = keys.derive_kek(passphrase, params)
    try:
        private = keys.unwrap_key(kek, unb64(slot["wrapped_private"], "wrapped_private"))
    except IntegrityError:
        raise WRONG_PASSPHRASE from None
    try:
        public = unb64(slot["public"], "public")
        eph = unb64(slot["ephemeral"], "ephemeral")
        shared = keys.x25519_exchange(private, eph)
        master = keys.unwrap_key(
            _slot_wrap_key(shared, eph, public), unb64(slot["wrapped_master"], "wrapped_master")
        )
    except (IntegrityError, KeyError, ValueError):
        raise IntegrityError(
            f"key slot of {user!r} is damaged: the passphrase is right but the master key cannot be unwrapped",
            "restore vault.json from a backup, or have an admin `strongroom keys rotate` and re-add this user",
        ) from None
    return master, private, slot


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
