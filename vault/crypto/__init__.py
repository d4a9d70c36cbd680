"""Strongroom's cryptography: a few safe recipes; raw primitives stay in `_primitives`.

Encrypt an object (C2SP chunked encryption, Cobblestone-256), binding it to what it is:

    from vault.crypto import open_sealed, random_key, seal
    key = random_key()                                   # 32 bytes, one per object or version
    context = b"strongroom/v1|vault=<id>|kind=shard|..."  # what the object is (docs/FORMAT.md)
    sealed = seal(key, context, plaintext)               # fresh random salt every call
    plaintext = open_sealed(key, context, sealed)        # IntegrityError if anything is off

Opening under another key or context, or after any bit flip, truncation, extension or chunk
reordering, raises vault.errors.IntegrityError (exit 4) with a `detail["reason"]`.

Protect a key with a passphrase (Argon2id KEK, RFC 3394 key wrap):

    from vault.crypto import derive_kek, kdf_for_new_slot, unwrap_key, wrap_key
    params = kdf_for_new_slot()                 # RFC 9106 default; cheap only in a test
                                                # process that called use_test_kdf()
    slot = {"kdf": params.to_json(), "wrapped": wrap_key(derive_kek(pw, params), master_key)}
    params = KdfParams.from_json(slot["kdf"])   # on open; derive_kek checks floor and ceiling
    master_key = unwrap_key(derive_kek(pw, params), slot["wrapped"], error=AuthError)

Derive named subkeys with `hkdf_sha256(key, b"purpose")`; MAC with `hmac_sha256`. Agree a
key with `x25519_keypair()` and `x25519_exchange(private, peer_public)` (hash the result with
both public keys through hkdf_sha256 before use).

Sign and verify (Ed25519):

    from vault.crypto import SigningKey, verify_signature
    signer = SigningKey.generate()              # store signer.raw() only sealed
    signature = signer.sign(message)
    verify_signature(signer.public_pem(), signature, message)   # raw 32 bytes or PEM
"""

from vault.crypto.chunked import (
    CHUNK_SIZE,
    open_sealed,
    plaintext_length,
    seal,
    seal_with_salt,
    sealed_length,
)
from vault.crypto.keys import (
    KdfParams,
    check_kdf_params,
    derive_kek,
    hkdf_sha256,
    hmac_sha256,
    kdf_for_new_slot,
    random_key,
    test_kdf_enabled,
    unwrap_key,
    wrap_key,
    x25519_exchange,
    x25519_keypair,
)
from vault.crypto.signing import SigningKey, load_public_pem, verify_signature

__all__ = [
    "CHUNK_SIZE",
    "KdfParams",
    "SigningKey",
    "check_kdf_params",
    "derive_kek",
    "hkdf_sha256",
    "hmac_sha256",
    "kdf_for_new_slot",
    "load_public_pem",
    "open_sealed",
    "plaintext_length",
    "random_key",
    "seal",
    "seal_with_salt",
    "sealed_length",
    "test_kdf_enabled",
    "unwrap_key",
    "verify_signature",
    "wrap_key",
    "x25519_exchange",
    "x25519_keypair",
]
