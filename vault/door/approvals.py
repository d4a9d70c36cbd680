"""Approvals of an export as signatures: the requester and each approver sign the exact bytes of the
bundle's MANIFEST.sha256 with their own Ed25519 keys, whose certificates the vault's authority
signed. `approvals.json` carries all of it, so a receiving team checks it with openssl against the
authority's fingerprint (printed by `strongroom init`), without Strongroom: docs/EXPORT.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from vault.crypto.signing import SigningKey, load_public_pem, public_pem, verify_signature
from vault.storage import keyring


@dataclass(frozen=True)
class Signer:
    """A person who signs an export: the requester, or an approver who authenticated in the command."""

    user: str
    role: str
    purpose: str  # "requester" or "approver"
    key: SigningKey
    certificate_text: str
    certificate: str  # base64 Ed25519 signature of certificate_text by the authority


def signer(header: dict[str, Any], user: str, role: str, purpose: str, key: SigningKey) -> Signer:
    slot = keyring.find_slot(header, user)
    assert slot is not None
    if slot.get("signing_public") != keyring.b64(key.public_raw()):
        raise ValueError(f"the signing key of {user!r} is not the one its certificate names")
    return Signer(
        user, role, purpose, key, keyring.certificate_text(header["vault_id"], slot), slot["certificate"]
    )


def approvals_document(manifest: bytes, header: dict[str, Any], signers: list[Signer]) -> bytes:
    """approvals.json: the authority, and for each signer the name, role, public key (PEM),
    certificate and a base64 Ed25519 signature over the exact bytes of MANIFEST.sha256."""
    authority = keyring.unb64(header["authority"], "authority")
    doc = {
        "format": "strongroom-approvals-v1",
        "vault_id": header["vault_id"],
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "authority": {
            "public_key": public_pem(authority).decode("ascii"),
            "fingerprint": keyring.fingerprint(authority),
        },
        "signers": [
            {
                "name": s.user,
                "role": s.role,
                "purpose": s.purpose,
                "public_key": s.key.public_pem().decode("ascii"),
                "fingerprint": keyring.fingerprint(s.key.public_raw()),
                "signature": base64.b64encode(s.key.sign(manifest)).decode("ascii"),
                "certificate_text": s.certificate_text,
                "certificate": s.certificate,
            }
            for s in signers
        ],
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def check_approvals(document: bytes, manifest: bytes, authority_fingerprint: str) -> list[dict[str, str]]:
    """Verify approvals.json against MANIFEST.sha256 and the authority's fingerprint (as a receiver
    would); returns the signers. ValueError naming the first problem."""
    doc = json.loads(document)
    authority = load_public_pem(doc["authority"]["public_key"].encode())
    if keyring.fingerprint(authority) != authority_fingerprint:
        raise ValueError("approvals.json names another authority than the vault's")
    signers = []
    for s in doc["signers"]:
        public = load_public_pem(s["public_key"].encode())
        if f"signing-key {keyring.b64(public)}\n" not in s["certificate_text"]:
            raise ValueError(f"the certificate of {s['name']!r} names another key")
        if f"\nuser {s['name']}\nrole {s['role']}\n" not in s["certificate_text"]:
            raise ValueError(f"the certificate of {s['name']!r} names another user or role")
        if not verify_signature(
            authority, base64.b64decode(s["certificate"]), s["certificate_text"].encode()
        ):
            raise ValueError(f"the certificate of {s['name']!r} is not the authority's")
        if not verify_signature(public, base64.b64decode(s["signature"]), manifest):
            raise ValueError(f"the signature of {s['name']!r} does not cover this manifest")
        signers.append({"name": s["name"], "role": s["role"], "purpose": s["purpose"]})
    return signers
