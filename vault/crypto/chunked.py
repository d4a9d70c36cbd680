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
"""

from __future__ import annotations

import hmac
import os
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
    return seal_with_salt(key, context, plaintext, os.urandom(SALT_LENGTH))


def seal_with_salt(
    key: bytes, context: bytes, plaintext: bytes | bytearray | memoryview, salt: bytes
) -> bytes:
    """`seal` with a caller-chosen salt, for known-answer vectors only.

    Reusing a salt under the same key and context reuses the AES-GCM key and nonces, which
    destroys confidentiality and integrity: production code calls `seal`.
    """
    if len(key) != KEY_LENGTH:
        raise ValueError(f"chunked encryption key must be {KEY_LENGTH} bytes, got {len(key)}")
    if len(salt) != SALT_LENGTH:
        raise ValueError(f"salt must be {SALT_LENGTH} bytes, got {len(salt)}")
    source = _byte_view(plaintext)
    total = len(source)
    full_chunks = total // CHUNK_SIZE
    if full_chunks + 1 > MAX_CHUNKS:
        raise ValueError("plaintext is longer than the chunked format allows (4 PiB)")
    aead_key, base_nonce, commitment = _derive(key, salt, context)

    out_length = sealed_length(total)
    with _workspace(out_length) as sink:
        sink[:SALT_LENGTH] = salt
        sink[SALT_LENGTH:HEADER_LENGTH] = commitment
        encrypt_into = _primitives.aes_gcm(aead_key).encrypt_into
        read = 0
        write = HEADER_LENGTH
        for counter in range(full_chunks):
            encrypt_into(
                (base_nonce ^ counter).to_bytes(NONCE_LENGTH, "big"),
                source[read : read + CHUNK_SIZE],
                None,
                sink[write : write + WIRE_CHUNK_SIZE],
            )
            read += CHUNK_SIZE
            write += WIRE_CHUNK_SIZE
        encrypt_into(
            (base_nonce ^ full_chunks).to_bytes(NONCE_LENGTH, "big"),
            source[read:],
            None,
            sink[write:],
        )
        return bytes(sink)


def open_sealed(key: bytes, context: bytes, ciphertext: bytes | bytearray | memoryview) -> bytes:
    """Authenticate and decrypt a sealed object; IntegrityError on any failure, before returning.

    The error never carries plaintext; `detail["reason"]` says which check failed
    (and `detail["chunk"]` which chunk), so a verifier can report it.
    """
    if len(key) != KEY_LENGTH:
        raise _failure("key has the wrong size", key_length=len(key))
    sealed = _byte_view(ciphertext)
    out_length = plaintext_length(len(sealed))
    full_chunks = out_length // CHUNK_SIZE
    aead_key, base_nonce, commitment = _derive(key, sealed[:SALT_LENGTH], context)
    if not hmac.compare_digest(commitment, sealed[SALT_LENGTH:HEADER_LENGTH]):
        raise _failure("key commitment does not match (wrong key or context, or altered header)")

    with _workspace(out_length) as sink:
        decrypt_into = _primitives.aes_gcm(aead_key).decrypt_into
        read = HEADER_LENGTH
        write = 0
        counter = 0
        try:
            for counter in range(full_chunks):
                decrypt_into(
                    (base_nonce ^ counter).to_bytes(NONCE_LENGTH, "big"),
                    sealed[read : read + WIRE_CHUNK_SIZE],
                    None,
                    sink[write : write + CHUNK_SIZE],
                )
                read += WIRE_CHUNK_SIZE
                write += CHUNK_SIZE
            counter = full_chunks
            decrypt_into(
                (base_nonce ^ counter).to_bytes(NONCE_LENGTH, "big"),
                sealed[read:],
                None,
                sink[write:],
            )
            return bytes(sink)
        except _primitives.AeadAuthenticationFailed:
            raise _failure("chunk failed authentication", chunk=counter) from None
        finally:
            _wipe(sink)


def _derive(key: bytes, salt: bytes | memoryview, context: bytes) -> tuple[bytes, int, bytes]:
    """AEAD key, base nonce (as an integer, for XOR with the counter) and key commitment."""
    okm = _primitives.hkdf_expand_sha512(
        key, _INFO_PREFIX + bytes(salt) + bytes(context), KEY_LENGTH + NONCE_LENGTH + 32
    )
    aead_key = okm[:KEY_LENGTH]
    base_nonce = int.from_bytes(okm[KEY_LENGTH : KEY_LENGTH + NONCE_LENGTH], "big")
    return aead_key, base_nonce, okm[KEY_LENGTH + NONCE_LENGTH :]


class _Workspace(threading.local):
    """A per-thread buffer that seal and open write into before copying the result out.

    A fresh multi-megabyte allocation costs more page faults than AES-GCM costs cycles, so
    objects up to WORKSPACE_LIMIT reuse one warm buffer per thread; plaintext is wiped from it
    before open_sealed returns.
    """

    buffer = bytearray()


WORKSPACE_LIMIT = 128 << 20
_workspace_local = _Workspace()
_ZEROS = memoryview(bytes(1 << 20))


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


def _wipe(view: memoryview) -> None:
    step = len(_ZEROS)
    for start in range(0, len(view), step):
        end = min(start + step, len(view))
        view[start:end] = _ZEROS[: end - start]


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
