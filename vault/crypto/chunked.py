"""Whole-object authenticated encryption in the C2SP chunked-encryption format, Cobblestone-256.

Format (c2sp.org/chunked-encryption, instantiated with HKDF-SHA-512 and AES-256-GCM):

    salt        = 24 random bytes, fresh per object
    okm         = HKDF-Expand-SHA-512(prk = key,
                      info = "c2sp.org/chunked-encryption@v1+" || "AEAD_AES_256_GCM" || 0x00
                             || salt || context,
                      length = 32 + 12 + 32)
    aead_key, base_nonce, commitment = okm[0:32], okm[32:44], okm[44:76]
    sealed      = salt || commitment || chunk_0 || ... || chunk_n
    chunk_i     = AES-256-GCM(aead_key, nonce_i, plaintext_i, aad = "")   (plaintext_i + 16-byte tag)
    nonce_i     = base_nonce XOR (i as a 96-bit big-endian integer), i < 2**38

Every plaintext chunk is 16 KiB except the last, which is always shorter (0 to 16383 bytes, so a
message that is a multiple of 16 KiB ends with an empty chunk). A reader therefore knows the
final chunk by its length, and truncation at a chunk boundary leaves no short chunk and fails.
The commitment binds the ciphertext to one key and context: a wrong key or context is refused
before any chunk is decrypted. The per-chunk counter in the nonce refuses reordered chunks.

`seal` and `open_sealed` run the chunk loop natively (pyca's Cobblestone-256); `seal_with_salt`
spells the format out in Python, and the tests hold the two to each other and to Wycheproof.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vault.crypto import _primitives
from vault.errors import IntegrityError

__all__ = [
    "CHUNK_SIZE",
    "HEADER_LENGTH",
    "KEY_LENGTH",
    "open_sealed",
    "plaintext_length",
    "seal",
    "seal_with_salt",
    "sealed_length",
]

KEY_LENGTH = 32
CHUNK_SIZE = 16 * 1024
SALT_LENGTH = 24
COMMITMENT_LENGTH = 32
HEADER_LENGTH = SALT_LENGTH + COMMITMENT_LENGTH
TAG_LENGTH = _primitives.AEAD_TAG_LENGTH
WIRE_CHUNK_SIZE = CHUNK_SIZE + TAG_LENGTH
NONCE_LENGTH = 12
# The chunk counter is 38 bits wide, capping a message at 2**38 chunks (4 PiB).
MAX_CHUNKS = 1 << 38
_INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00"

_TAMPERED_HINT = (
    "the object was altered, truncated or moved from another name, or the key is wrong; "
    "restore it from a backup"
)


def sealed_length(plaintext_len: int) -> int:
    """Bytes that `seal` produces for `plaintext_len` bytes of plaintext."""
    full_chunks = plaintext_len // CHUNK_SIZE
    return HEADER_LENGTH + plaintext_len + (full_chunks + 1) * TAG_LENGTH


def plaintext_length(sealed_len: int) -> int:
    """Plaintext bytes inside a sealed object of `sealed_len` bytes; IntegrityError if none fits."""
    full_chunks, final_wire = divmod(sealed_len - HEADER_LENGTH, WIRE_CHUNK_SIZE)
    if sealed_len < HEADER_LENGTH + TAG_LENGTH or final_wire < TAG_LENGTH:
        raise _failure("truncated or has trailing bytes", sealed_length=sealed_len)
    if full_chunks + 1 > MAX_CHUNKS:
        raise _failure("longer than the format allows", sealed_length=sealed_len)
    return full_chunks * CHUNK_SIZE + final_wire - TAG_LENGTH


def seal(key: bytes, context: bytes, plaintext: bytes | bytearray | memoryview) -> bytes:
    """Encrypt and authenticate `plaintext` under a 32-byte `key`, bound to `context`.

    The context must name what the object is (vault, kind, dataset, version): opening it under
    any other context fails. A fresh random salt makes every call produce a new ciphertext.
    """
    _check_seal_key(key)
    source = _byte_view(plaintext)
    length = sealed_length(len(source))
    encryptor = _primitives.cobblestone256_encryptor(key, context)
    with _workspace(length) as sink:
        written = encryptor.update_into(source, sink)
        sink[written:] = encryptor.finalize()
        return bytes(sink)


def seal_with_salt(
    key: bytes, context: bytes, plaintext: bytes | bytearray | memoryview, salt: bytes
) -> bytes:
    """`seal` with a caller-chosen salt, for known-answer vectors only; the format in Python.

    Reusing a salt under the same key and context reuses the AES-GCM key and nonces, which
    destroys confidentiality and integrity: production code calls `seal`.
    """
    _check_seal_key(key)
    if len(salt) != SALT_LENGTH:
        raise ValueError(f"salt must be {SALT_LENGTH} bytes, got {len(salt)}")
    source = _byte_view(plaintext)
    full_chunks = len(source) // CHUNK_SIZE
    aead_key, base_nonce, commitment = _derive(key, salt, context)
    out = bytearray(sealed_length(len(source)))
    out[:SALT_LENGTH] = salt
    out[SALT_LENGTH:HEADER_LENGTH] = commitment
    with memoryview(out) as sink:
        encrypt_into = _primitives.aes_gcm(aead_key).encrypt_into
        read, write = 0, HEADER_LENGTH
        for counter in range(full_chunks + 1):
            # Full chunks first; the last pass takes the short (possibly empty) final chunk.
            take = CHUNK_SIZE if counter < full_chunks else len(source) - read
            encrypt_into(
                (base_nonce ^ counter).to_bytes(NONCE_LENGTH, "big"),
                source[read : read + take],
                None,
                sink[write : write + take + TAG_LENGTH],
            )
            read += take
            write += take + TAG_LENGTH
    return bytes(out)


def open_sealed(key: bytes, context: bytes, ciphertext: bytes | bytearray | memoryview) -> bytes:
    """Authenticate and decrypt a sealed object; IntegrityError on any failure, before returning.

    The error never carries plaintext; `detail["reason"]` says which check failed, so a
    verifier can report it. Length and commitment are checked before any chunk is decrypted.
    """
    if len(key) != KEY_LENGTH:
        raise _failure("key has the wrong size", key_length=len(key))
    sealed = _byte_view(ciphertext)
    plaintext_length(len(sealed))
    _, _, commitment = _derive(key, sealed[:SALT_LENGTH], context)
    if not hmac.compare_digest(commitment, sealed[SALT_LENGTH:HEADER_LENGTH]):
        raise _failure("key commitment does not match (wrong key or context, or altered header)")
    decryptor = _primitives.cobblestone256_decryptor(key, context)
    try:
        # The full chunks come back as one bytes object built in place; the final chunk is
        # short, so joining it costs one copy at most (none when it is empty).
        return decryptor.update(sealed) + decryptor.finalize()
    except (_primitives.AeadAuthenticationFailed, ValueError):
        raise _failure("a chunk failed authentication (altered, reordered or spliced)") from None


def _check_seal_key(key: bytes) -> None:
    if len(key) != KEY_LENGTH:
        raise ValueError(f"chunked encryption key must be {KEY_LENGTH} bytes, got {len(key)}")


def _derive(key: bytes, salt: bytes | memoryview, context: bytes) -> tuple[bytes, int, bytes]:
    """AEAD key, base nonce (as an integer, for XOR with the counter) and key commitment."""
    okm = _primitives.hkdf_expand_sha512(
        key, _INFO_PREFIX + bytes(salt) + bytes(context), KEY_LENGTH + NONCE_LENGTH + 32
    )
    aead_key = okm[:KEY_LENGTH]
    base_nonce = int.from_bytes(okm[KEY_LENGTH : KEY_LENGTH + NONCE_LENGTH], "big")
    return aead_key, base_nonce, okm[KEY_LENGTH + NONCE_LENGTH :]


class _Workspace(threading.local):
    """A per-thread buffer that seal encrypts into before copying the sealed object out.

    A fresh multi-megabyte allocation costs more page faults than AES-GCM costs cycles, so
    objects up to WORKSPACE_LIMIT reuse one warm buffer per thread. It only ever holds
    ciphertext.
    """

    buffer = bytearray()


WORKSPACE_LIMIT = 128 << 20
_workspace_local = _Workspace()


@contextmanager
def _workspace(length: int) -> Iterator[memoryview]:
    if length > WORKSPACE_LIMIT:
        buffer = bytearray(length)
    else:
        buffer = _workspace_local.buffer
        if len(buffer) < length:
            buffer = _workspace_local.buffer = bytearray(length)
    with memoryview(buffer) as whole, whole[:length] as view:
        yield view


def _byte_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _failure(reason: str, **detail: int) -> IntegrityError:
    return IntegrityError(
        "encrypted object failed authentication",
        _TAMPERED_HINT,
        detail={"reason": reason, **detail},
    )
