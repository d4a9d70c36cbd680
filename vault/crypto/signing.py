"""Ed25519 signatures (RFC 8032) for vault artefacts: model cards, exports, audit checkpoints.

Public keys travel as raw 32 bytes or as SubjectPublicKeyInfo PEM, so a third party can check a
signature with `openssl pkeyutl -verify -pubin -inkey key.pem -rawin -in msg -sigfile sig`.
"""

from __future__ import annotations

from vault.crypto import _primitives

__all__ = [
    "PUBLIC_KEY_LENGTH",
    "SIGNATURE_LENGTH",
    "SigningKey",
    "load_public_pem",
    "public_pem",
    "verify_signature",
]

PUBLIC_KEY_LENGTH = 32
SIGNATURE_LENGTH = 64


class SigningKey:
    """An Ed25519 private key; `raw()` is its 32-byte seed, to be stored only encrypted."""

    __slots__ = ("_private", "_public_raw")

    def __init__(self, seed: bytes) -> None:
        self._private = _primitives.ed25519_private_from_raw(bytes(seed))
        self._public_raw = _primitives.ed25519_public_raw(self._private)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(_primitives.ed25519_generate())

    @classmethod
    def from_raw(cls, seed: bytes) -> SigningKey:
        """The key for a 32-byte seed; ValueError for any other length."""
        if len(seed) != 32:
            raise ValueError(f"Ed25519 private key must be 32 bytes, got {len(seed)}")
        return cls(seed)

    def raw(self) -> bytes:
        return _primitives.ed25519_raw(self._private)

    def public_raw(self) -> bytes:
        return self._public_raw

    def public_pem(self) -> bytes:
        return _primitives.ed25519_public_pem(self._public_raw)

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature over `message` itself (no pre-hash)."""
        return _primitives.ed25519_sign(self._private, message)

    def __repr__(self) -> str:
        return f"SigningKey(public={self._public_raw.hex()})"


def public_pem(public_raw: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a raw 32-byte Ed25519 public key (for openssl)."""
    return _primitives.ed25519_public_pem(public_raw)


def load_public_pem(pem: bytes) -> bytes:
    """The raw 32-byte public key in an Ed25519 PEM; ValueError if the PEM holds anything else."""
    return _primitives.ed25519_public_from_pem(pem)


def verify_signature(public: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is valid for `message` under `public` (raw 32 bytes or PEM)."""
    if len(public) != PUBLIC_KEY_LENGTH:
        try:
            public = load_public_pem(public)
        except ValueError:
            return False
    return _primitives.ed25519_verify(public, signature, message)
