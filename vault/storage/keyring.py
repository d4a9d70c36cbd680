"""Key slots and the admin-signed header: who holds which key, by role, enforced by cryptography.

The vault has three secrets, and a role holds only its share (sealed to each slot, age-style):

    metadata key  (every role)         encrypts the catalog: datasets, models, ledger, policy
    data key      (admins, operators)  wraps every dataset version's and model object's key
    authority     (admins)             Ed25519 key that signs the header, and each user's certificate

A slot holds an X25519 key pair (the recipient of its role's keys) and the user's own Ed25519
signing key (for approvals). Its private halves, with the authority's public key pinned beside
them, are wrapped (RFC 3394) under a key derived from the user's passphrase with Argon2id. The
role's keys are wrapped under a key agreed between a one-time ephemeral key and the slot's public
half, so an admin can rotate them and reseal them to every slot without anyone's passphrase.

The header lists the slots and is signed by the authority: users, roles, public keys, the policy's
hash and a generation number that grows with every change. What a slot's owner alone can change
(their passphrase's KDF parameters and wrapped secrets) is outside the signature, so any user can
change their passphrase but only an admin can add a user, change a role or the policy. Byte-level
layout: docs/FORMAT.md.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from vault.crypto import keys
from vault.crypto.signing import SigningKey, verify_signature
from vault.errors import AuthError, InputError, IntegrityError
from vault.storage.files import canonical_json
from vault.vocabulary import ROLES, check_choice

SLOT_KEYS_INFO = b"strongroom/v2 slot keys"
SIGNING_SEAL_INFO = b"strongroom/v2 slot signing key"
CATALOG_KEY_INFO = b"strongroom/v2 catalog key"
LEDGER_KEY_INFO = b"strongroom/v2 record index key"
HEADER_SIGNATURE_PREFIX = b"strongroom header v2\n"
CERTIFICATE_PREFIX = "strongroom user certificate v1\n"

# What each role's slot receives, in this order (32 bytes each).
ROLE_KEYS: dict[str, tuple[str, ...]] = {
    "auditor": ("meta",),
    "operator": ("meta", "data"),
    "admin": ("meta", "data", "authority"),
}
# The fields of a slot the header's signature covers; the rest belongs to the slot's owner.
SIGNED_SLOT_FIELDS = (
    "user",
    "role",
    "created",
    "public",
    "signing_public",
    "certificate",
    "ephemeral",
    "sealed_keys",
)

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


def fingerprint(public_raw: bytes) -> str:
    """`sha256:` and the hex SHA-256 of a raw 32-byte public key (recompute it with sha256sum)."""
    return "sha256:" + hashlib.sha256(public_raw).hexdigest()


@dataclass(frozen=True)
class VaultKeys:
    """A role's share of the vault's secrets: None where the role holds nothing."""

    meta: bytes
    data: bytes | None = None
    authority: bytes | None = None  # the authority's Ed25519 seed

    @classmethod
    def generate(cls) -> VaultKeys:
        return cls(keys.random_key(), keys.random_key(), SigningKey.generate().raw())

    def for_role(self, role: str) -> VaultKeys:
        held = ROLE_KEYS[check_role(role)]
        return VaultKeys(
            self.meta,
            self.data if "data" in held else None,
            self.authority if "authority" in held else None,
        )

    def pack(self, role: str) -> bytes:
        parts = [getattr(self, name) for name in ROLE_KEYS[role]]
        if any(part is None or len(part) != keys.KEY_LENGTH for part in parts):
            raise ValueError(f"a {role}'s slot needs {', '.join(ROLE_KEYS[role])}")
        return b"".join(parts)

    @classmethod
    def unpack(cls, role: str, blob: bytes) -> VaultKeys:
        names = ROLE_KEYS[role]
        if len(blob) != keys.KEY_LENGTH * len(names):
            raise IntegrityError(
                f"a {role}'s sealed keys have the wrong length: the slot was altered",
                "restore vault.json from a backup",
            )
        values = {name: blob[i * 32 : (i + 1) * 32] for i, name in enumerate(names)}
        return cls(**values)

    def authority_key(self) -> SigningKey:
        if self.authority is None:
            raise InputError("only an admin holds the vault's authority key", "ask an admin")
        return SigningKey.from_raw(self.authority)


@dataclass(frozen=True)
class SlotSecrets:
    """What a slot's passphrase opens: its X25519 and Ed25519 private keys, and the authority's
    public key as the user pinned it (so a header signed by another key fails for them)."""

    private: bytes
    signing: bytes
    authority: bytes

    def pack(self) -> bytes:
        return self.private + self.signing + self.authority

    @classmethod
    def unpack(cls, blob: bytes) -> SlotSecrets:
        if len(blob) != 96:
            raise IntegrityError("a slot's wrapped secrets have the wrong length", "restore vault.json")
        return cls(blob[:32], blob[32:64], blob[64:])

    def signing_key(self) -> SigningKey:
        return SigningKey.from_raw(self.signing)


# ----------------------------------------------------------------------------- sealing to slots
def _agreed_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes, info: bytes) -> bytes:
    return keys.hkdf_sha256(shared + ephemeral_public + recipient_public, info)


def seal_to(recipient_public: bytes, plaintext: bytes, info: bytes) -> tuple[bytes, bytes]:
    """(ephemeral public key, AES-KW of `plaintext`) for the holder of the recipient's private key."""
    eph_private, eph_public = keys.x25519_keypair()
    shared = keys.x25519_exchange(eph_private, recipient_public)
    return eph_public, keys.wrap_key(_agreed_key(shared, eph_public, recipient_public, info), plaintext)


def open_sealed_to(private: bytes, public: bytes, ephemeral: bytes, sealed: bytes, info: bytes) -> bytes:
    shared = keys.x25519_exchange(private, ephemeral)
    return keys.unwrap_key(_agreed_key(shared, ephemeral, public, info), sealed)


def seal_keys(slot: dict[str, Any], vault_keys: VaultKeys) -> None:
    """(Re)seal the role's share of `vault_keys` to the slot's public key, with a fresh ephemeral key."""
    eph, sealed = seal_to(unb64(slot["public"], "public"), vault_keys.pack(slot["role"]), SLOT_KEYS_INFO)
    slot["ephemeral"], slot["sealed_keys"] = b64(eph), b64(sealed)


def open_keys(slot: dict[str, Any], private: bytes) -> VaultKeys:
    try:
        blob = open_sealed_to(
            private,
            unb64(slot["public"], "public"),
            unb64(slot["ephemeral"], "ephemeral"),
            unb64(slot["sealed_keys"], "sealed_keys"),
            SLOT_KEYS_INFO,
        )
    except (IntegrityError, KeyError):
        raise IntegrityError(
            f"key slot of {slot.get('user')!r} is damaged: its role's keys cannot be unsealed",
            "restore vault.json from a backup, or have an admin remove and re-add this user",
        ) from None
    return VaultKeys.unpack(slot["role"], blob)


# ----------------------------------------------------------------------------- slots
def certificate_text(vault_id: str, slot: dict[str, Any]) -> str:
    """The exact text the authority signs for a user: vault, user, role and both public keys."""
    return (
        f"{CERTIFICATE_PREFIX}vault {vault_id}\nuser {slot['user']}\nrole {slot['role']}\n"
        f"signing-key {slot['signing_public']}\nslot-key {slot['public']}\n"
    )


def certify(vault_id: str, slot: dict[str, Any], authority: SigningKey) -> None:
    slot["certificate"] = b64(authority.sign(certificate_text(vault_id, slot).encode("utf-8")))


def new_slot(
    vault_id: str,
    user: str,
    role: str,
    passphrase: bytes,
    vault_keys: VaultKeys,
    created: str,
) -> tuple[dict[str, Any], SlotSecrets]:
    """A new slot for `user` (certified by the authority in `vault_keys`), and its secrets."""
    check_role(role)
    authority = vault_keys.authority_key()
    private, public = keys.x25519_keypair()
    signing = SigningKey.generate()
    slot: dict[str, Any] = {
        "user": user,
        "role": role,
        "created": created,
        "public": b64(public),
        "signing_public": b64(signing.public_raw()),
    }
    certify(vault_id, slot, authority)
    seal_keys(slot, vault_keys)
    secrets = SlotSecrets(private, signing.raw(), authority.public_raw())
    set_passphrase(slot, secrets, passphrase)
    return slot, secrets


def set_passphrase(slot: dict[str, Any], secrets: SlotSecrets, passphrase: bytes) -> None:
    """Wrap the slot's secrets under a new passphrase, with a fresh salt."""
    if len(passphrase) < 8:
        raise InputError(
            "passphrase too short (under 8 characters)", "choose a passphrase of at least 8 characters"
        )
    params = keys.kdf_for_new_slot()
    slot["kdf"] = params.to_json()
    slot["wrapped_secrets"] = b64(keys.wrap_key(keys.derive_kek(passphrase, params), secrets.pack()))
    slot.pop("wrapped_private", None)
    slot.pop("sealed_signing", None)


def find_slot(header: dict[str, Any], user: str) -> dict[str, Any] | None:
    for slot in header["slots"]:
        if isinstance(slot, dict) and slot.get("user") == user:
            return slot
    return None


def passphrase_key(header: dict[str, Any], user: str, passphrase: bytes) -> tuple[dict[str, Any], bytes]:
    """(slot, key-encryption key) for `user`; unknown users cost the same as wrong passphrases."""
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
    return slot, keys.derive_kek(passphrase, params)


def open_secrets(slot: dict[str, Any], kek: bytes, header: dict[str, Any]) -> tuple[SlotSecrets, bool]:
    """The slot's secrets under its passphrase key; AuthError for a wrong passphrase.

    Returns (secrets, adopted): a slot carried over from format 1 holds only its X25519 key under
    the passphrase and a signing key the upgrading admin sealed to it; it is adopted here (the
    signing key checked against the certified public key, the header's authority pinned) and the
    caller rewraps it."""
    if "wrapped_secrets" in slot:
        try:
            return SlotSecrets.unpack(
                keys.unwrap_key(kek, unb64(slot["wrapped_secrets"], "wrapped_secrets"))
            ), False
        except IntegrityError:
            raise WRONG_PASSPHRASE from None
    try:
        private = keys.unwrap_key(kek, unb64(slot["wrapped_private"], "wrapped_private"))
    except (IntegrityError, KeyError):
        raise WRONG_PASSPHRASE from None
    try:
        seed = open_sealed_to(
            private,
            unb64(slot["public"], "public"),
            unb64(slot["signing_ephemeral"], "signing_ephemeral"),
            unb64(slot["sealed_signing"], "sealed_signing"),
            SIGNING_SEAL_INFO,
        )
    except (IntegrityError, KeyError):
        raise IntegrityError(
            f"key slot of {slot['user']!r} carries no signing key it can open",
            "have an admin remove and re-add this user",
        ) from None
    if b64(SigningKey.from_raw(seed).public_raw()) != slot.get("signing_public"):
        raise IntegrityError(
            f"the signing key sealed to {slot['user']!r} is not the one the header certifies: it was replaced",
            "restore vault.json from a backup, or have an admin remove and re-add this user",
        )
    return SlotSecrets(private, seed, unb64(header["authority"], "authority")), True


def seal_signing_key(slot: dict[str, Any], signing: SigningKey) -> None:
    """For a slot carried over from format 1: its new signing key, sealed to its public key."""
    eph, sealed = seal_to(unb64(slot["public"], "public"), signing.raw(), SIGNING_SEAL_INFO)
    slot["signing_ephemeral"], slot["sealed_signing"] = b64(eph), b64(sealed)
    slot["signing_public"] = b64(signing.public_raw())


def rewrap_secrets(slot: dict[str, Any], kek: bytes, secrets: SlotSecrets) -> None:
    """Wrap adopted secrets under the passphrase key the slot already has (same KDF parameters)."""
    slot["wrapped_secrets"] = b64(keys.wrap_key(kek, secrets.pack()))
    for field in ("wrapped_private", "sealed_signing", "signing_ephemeral"):
        slot.pop(field, None)


# ----------------------------------------------------------------------------- the signed header
def signed_view(header: dict[str, Any]) -> dict[str, Any]:
    """What the authority signs: the header without its signature and without the owners' fields."""
    view = {k: v for k, v in header.items() if k != "signature"}
    view["slots"] = [{k: slot[k] for k in SIGNED_SLOT_FIELDS if k in slot} for slot in header["slots"]]
    return view


def signed_bytes(header: dict[str, Any]) -> bytes:
    return HEADER_SIGNATURE_PREFIX + canonical_json(signed_view(header))


def sign_header(header: dict[str, Any], authority: SigningKey) -> None:
    header["signature"] = b64(authority.sign(signed_bytes(header)))


def verify_header(header: dict[str, Any], pinned_authority: bytes) -> None:
    """IntegrityError unless `header` names the pinned authority and carries its valid signature,
    and every slot's certificate is the authority's."""
    problem = None
    if unb64(header.get("authority", ""), "authority") != pinned_authority:
        problem = "it names another authority than the one this user's slot pinned"
    elif not verify_signature(
        pinned_authority, unb64(header.get("signature", ""), "signature"), signed_bytes(header)
    ):
        problem = (
            "its signature is not the authority's: its slots, roles or policy were edited outside strongroom"
        )
    else:
        for slot in header["slots"]:
            certificate = unb64(slot.get("certificate", ""), "certificate")
            text = certificate_text(header["vault_id"], slot).encode("utf-8")
            if not verify_signature(pinned_authority, certificate, text):
                problem = f"the certificate of {slot.get('user')!r} is not the authority's"
                break
    if problem:
        raise IntegrityError(
            f"vault.json failed authentication: {problem}",
            "restore vault.json from a backup; `strongroom audit show --action keys` lists legitimate key changes",
            detail={"object": "vault.json"},
        )


def catalog_key(meta: bytes) -> bytes:
    return keys.hkdf_sha256(meta, CATALOG_KEY_INFO)


def record_index_key(data: bytes) -> bytes:
    """The key of the keyed per-record hashes the ledger follows (only data-key holders import)."""
    return keys.hkdf_sha256(data, LEDGER_KEY_INFO)
