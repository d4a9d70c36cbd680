"""The one module that imports `cryptography.hazmat`: thin wrappers with every parameter pinned.

Everything else calls vault.crypto's recipes, so auditing which raw primitives Strongroom uses,
and with which nonces and parameters, is a read of this file alone.
"""

from __future__ import annotations

from cryptography.cobblestone import Cobblestone256Decryptor, Cobblestone256Encryptor
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

__all__ = [
    "AEAD_TAG_LENGTH",
    "AeadAuthenticationFailed",
    "KeyUnwrapFailed",
    "aes_gcm",
    "aes_kw_unwrap",
    "aes_kw_wrap",
    "argon2id",
    "cobblestone256_decryptor",
    "cobblestone256_encryptor",
    "ed25519_generate",
    "ed25519_private_from_raw",
    "ed25519_public_from_pem",
    "ed25519_public_pem",
    "ed25519_public_raw",
    "ed25519_raw",
    "ed25519_sign",
    "ed25519_verify",
    "hkdf_expand_sha512",
    "hkdf_sha256",
    "x25519_exchange",
    "x25519_generate",
]

# Raised by the AEAD object's decrypt/decrypt_into when a tag does not verify.
AeadAuthenticationFailed = InvalidTag
# Raised by aes_kw_unwrap when the RFC 3394 integrity check value does not match.
KeyUnwrapFailed = InvalidUnwrap

# AES-GCM always appends a full 128-bit tag; truncated tags weaken forgery bounds.
AEAD_TAG_LENGTH = 16


def aes_gcm(key: bytes) -> AESGCM:
    """AES-GCM keyed with `key` (16, 24 or 32 bytes); callers use encrypt_into/decrypt_into.

    Nonces: callers pass 96-bit nonces, GCM's native size (no GHASH over the IV). The chunked
    format never repeats one: each object gets a random 192-bit salt, hence its own derived key
    and base nonce, and each chunk XORs a distinct counter into that base nonce.
    """
    return AESGCM(key)


def cobblestone256_encryptor(key: bytes, context: bytes) -> Cobblestone256Encryptor:
    """pyca's native Cobblestone-256 (C2SP chunked encryption, AES-256-GCM) encryptor.

    It draws its own random 192-bit salt and runs the per-chunk loop without returning to
    Python between 16 KiB chunks; vault.crypto.chunked checks its output against the format
    written out in Python there and against the Wycheproof vectors.
    """
    return Cobblestone256Encryptor(key, context)


def cobblestone256_decryptor(key: bytes, context: bytes) -> Cobblestone256Decryptor:
    """pyca's native Cobblestone-256 decryptor; raises AeadAuthenticationFailed on any forgery."""
    return Cobblestone256Decryptor(key, context)


def hkdf_expand_sha512(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand with SHA-512 (RFC 5869 section 2.3), without Extract.

    C2SP chunked encryption feeds the caller's uniformly random key straight in as the PRK:
    Extract is only needed for non-uniform input, and skipping it is what the spec mandates. That
    key is 32 bytes, shorter than the HashLen (64) RFC 5869 asks of a PRK; pyca accepts it, and HMAC
    pads any key shorter than its block to the block, so it is a 256-bit PRF key (docs/FORMAT.md).
    """
    return HKDFExpand(algorithm=hashes.SHA512(), length=length, info=info).derive(prk)


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """Full HKDF (Extract then Expand) with SHA-256, for deriving named subkeys from a key."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def argon2id(
    passphrase: bytes, *, salt: bytes, memory_kib: int, iterations: int, lanes: int, length: int
) -> bytes:
    """Argon2id (RFC 9106) over a passphrase.

    Argon2id rather than Argon2i/d: RFC 9106 section 4 recommends it as the default, resisting
    both side-channel and GPU/ASIC attacks. The caller validates the cost parameters first.
    """
    kdf = Argon2id(salt=salt, length=length, iterations=iterations, lanes=lanes, memory_cost=memory_kib)
    return kdf.derive(passphrase)


def aes_kw_wrap(kek: bytes, key: bytes) -> bytes:
    """RFC 3394 AES key wrap; deterministic by design (the key being wrapped is the randomness)."""
    return aes_key_wrap(kek, key)


def aes_kw_unwrap(kek: bytes, wrapped: bytes) -> bytes:
    """RFC 3394 AES key unwrap; raises KeyUnwrapFailed when the integrity check fails."""
    return aes_key_unwrap(kek, wrapped)


def ed25519_generate() -> bytes:
    """A fresh Ed25519 private key as its 32-byte seed (RFC 8032)."""
    return ed25519_raw(Ed25519PrivateKey.generate())


def ed25519_private_from_raw(seed: bytes) -> Ed25519PrivateKey:
    """The private key object for a 32-byte seed; raises ValueError for another length."""
    return Ed25519PrivateKey.from_private_bytes(seed)


def ed25519_raw(private: Ed25519PrivateKey) -> bytes:
    """The 32-byte seed of a private key object."""
    return private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def ed25519_public_raw(private: Ed25519PrivateKey) -> bytes:
    """The 32-byte public key of a private key object."""
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_sign(private: Ed25519PrivateKey, message: bytes) -> bytes:
    """A 64-byte pure Ed25519 signature (no pre-hash, no context), as openssl -rawin expects."""
    return private.sign(message)


def ed25519_public_pem(public_raw: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM for a raw public key, readable by `openssl pkeyutl`."""
    public = Ed25519PublicKey.from_public_bytes(public_raw)
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def ed25519_public_from_pem(pem: bytes) -> bytes:
    """The raw 32-byte key inside an Ed25519 SubjectPublicKeyInfo PEM; ValueError otherwise."""
    try:
        public = serialization.load_pem_public_key(pem)
    except (UnsupportedAlgorithm, TypeError) as exc:
        raise ValueError("PEM does not hold a supported public key") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("PEM does not hold an Ed25519 public key")
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def ed25519_verify(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` under `public_raw`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def x25519_generate() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair (RFC 7748) as raw 32-byte (private, public)."""
    private = X25519PrivateKey.generate()
    private_raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private_raw, public_raw


def x25519_public(private_raw: bytes) -> bytes:
    """The raw public key of a raw X25519 private key."""
    private = X25519PrivateKey.from_private_bytes(private_raw)
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519_exchange(private_raw: bytes, peer_public_raw: bytes) -> bytes:
    """The 32-byte X25519 shared secret; ValueError for a malformed or small-order peer key.

    OpenSSL refuses an all-zero result (RFC 7748 section 6.1), which is what small-order peer
    points produce, so a forged ephemeral key cannot force a predictable shared secret.
    """
    private = X25519PrivateKey.from_private_bytes(private_raw)
    return private.exchange(X25519PublicKey.from_public_bytes(peer_public_raw))
