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

`seal_into` and `open_sealed_into` run the chunk loop natively (pyca's Cobblestone-256) straight
into a caller's buffer; `open_sealed_file` reads a sealed file into a reusable per-thread
buffer before decrypting it, and `sealing` lends a sealed object from a reusable per-thread buffer, so the
object store writes it to disk without a copy; `seal` and `open_sealed` return bytes.
`seal_with_salt` spells the format out in Python, and the tests hold it to the native loop and
to Wycheproof.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vault.crypto import _primitives
from vault.errors import InputError, IntegrityError

__all__ = [
    "CHUNK_SIZE",
    "HEADER_LENGTH",
    "KEY_LENGTH",
    "open_sealed",
    "open_sealed_file",
    "open_sealed_into",
    "plaintext_length",
    "seal",
    "seal_into",
    "seal_with_salt",
    "sealed_length",
    "sealing",
]

KEY_LENGTH = 32
CHUNK_SIZE = 16 * 1024
SALT_LENGTH = 24
COMMITMENT_LENGTH = 32
HEADER_LENGTH = SALT_LENGTH + COMMITMENT_LENGTH
TAG_LENGTH = _primitives.AEAD_TAG_LENGTH
WIRE_CHUNK_SIZE = CHUNK_SIZE + TAG_LENGTH
NONCE_LENGTH = 12
# The chunk counter is 38 bits wide: the spec caps a message at 2**38 chunks (4 PiB) and tells an
# implementation to abort when the counter reaches 2**38. Sealing checks the length first and refuses
# a plaintext of MAX_CHUNKS * CHUNK_SIZE bytes or more (its short final chunk would be chunk 2**38),
# before anything is encrypted; opening refuses a ciphertext of more chunks before decrypting.
MAX_CHUNKS = 1 << 38
_INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00"

_TAMPERED_HINT = (
    "the object was altered, truncated or moved from another name, or the key is wrong; "
    "restore it from a backup"
)


def sealed_length(plaintext_len: int) -> int:
    """Bytes that `seal` produces for `plaintext_len` bytes of plaintext.

    InputError when the plaintext needs more chunks than the format allows (2**38, so at most
    2**52 - 1 bytes): every seal asks this first, so an oversized object is refused whole.
    """
    full_chunks = plaintext_len // CHUNK_SIZE
    if full_chunks + 1 > MAX_CHUNKS:
        raise InputError(
            f"an object of {plaintext_len} bytes is longer than the sealed-object format allows "
            f"({MAX_CHUNKS} chunks of {CHUNK_SIZE} bytes, the last one short)",
            "nothing was written; store it in smaller parts (datasets are sealed in shards of 32 MiB)",
            detail={"length": plaintext_len, "max_chunks": MAX_CHUNKS},
        )
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
    with sealing(key, context, plaintext) as sealed:
        return bytes(sealed)


@contextmanager
def sealing(key: bytes, context: bytes, plaintext: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    """`seal` without the copy out: a read-only view of the sealed object, valid inside the block.

    The object is sealed into this thread's reusable workspace (a fresh buffer when the
    workspace is already lent out, or the object is above WORKSPACE_LIMIT); hand the view
    straight to a write and do not keep it, or any slice of it, past the block.
    """
    source = _byte_view(plaintext)
    with _workspace(sealed_length(len(source))) as sink:
        seal_into(key, context, source, sink)
        with sink.toreadonly() as sealed:
            yield sealed


def seal_into(
    key: bytes, context: bytes, plaintext: bytes | bytearray | memoryview, out: bytearray | memoryview
) -> int:
    """`seal` into the writable buffer `out`; returns the sealed length, `sealed_length(len(plaintext))`.

    `out` must hold at least that many bytes and must not overlap `plaintext`; bytes past the
    sealed object are left alone.
    """
    _check_seal_key(key)
    source = _byte_view(plaintext)
    sink = _writable_view(out)
    length = sealed_length(len(source))
    if len(sink) < length:
        raise ValueError(f"output buffer holds {len(sink)} bytes; the sealed object needs {length}")
    encryptor = _primitives.cobblestone256_encryptor(key, context)
    written = encryptor.update_into(source, sink)
    sink[written:length] = encryptor.finalize()
    return length


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
    sealed = _byte_view(ciphertext)
    decryptor = _decryptor_past_header(key, context, sealed)
    try:
        # pyca builds the full chunks' plaintext in one fresh bytes object; appending the short
        # final chunk copies it once more, which measures cheaper than decrypting into the
        # workspace, copying out and wiping it.
        return decryptor.update(sealed[HEADER_LENGTH:]) + decryptor.finalize()
    except (_primitives.AeadAuthenticationFailed, ValueError):
        raise _chunk_failure() from None


def open_sealed_file(key: bytes, context: bytes, path: str | os.PathLike[str]) -> bytes:
    """`open_sealed` over the file at `path`, read into this thread's workspace, not fresh memory.

    Reading a large object into a fresh buffer costs a page fault per 4 KiB, more than reading
    and decrypting it; OSError (FileNotFoundError included) comes through unchanged. The
    workspace holds only ciphertext.
    """
    with open(path, "rb", buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        with _workspace(size) as sealed:
            got = 0
            while got < size:
                read = file.readinto(sealed[got:])
                if not read:
                    raise _failure("truncated or has trailing bytes", sealed_length=got)
                got += read
            return open_sealed(key, context, sealed)


def open_sealed_into(
    key: bytes, context: bytes, ciphertext: bytes | bytearray | memoryview, out: bytearray | memoryview
) -> int:
    """`open_sealed` into the writable buffer `out`; returns the plaintext length.

    `out` must hold at least `plaintext_length(len(ciphertext))` bytes and must not overlap the
    ciphertext. On IntegrityError no plaintext is left in `out`: what was written is zeroed.
    """
    sealed = _byte_view(ciphertext)
    sink = _writable_view(out)
    decryptor = _decryptor_past_header(key, context, sealed)
    length = plaintext_length(len(sealed))
    if len(sink) < length:
        raise ValueError(f"output buffer holds {len(sink)} bytes; the plaintext needs {length}")
    try:
        written = decryptor.update_into(sealed[HEADER_LENGTH:], sink)
        sink[written:length] = decryptor.finalize()
    except (_primitives.AeadAuthenticationFailed, ValueError):
        _wipe(sink[:length])
        raise _chunk_failure() from None
    return length


def _decryptor_past_header(
    key: bytes, context: bytes, sealed: memoryview
) -> _primitives.Cobblestone256Decryptor:
    """A decryptor that has checked the key size, the object's length and the key commitment."""
    if len(key) != KEY_LENGTH:
        raise _failure("key has the wrong size", key_length=len(key))
    plaintext_length(len(sealed))
    decryptor = _primitives.cobblestone256_decryptor(key, context)
    try:
        # The header alone yields no plaintext: the decryptor derives the keys from it and
        # refuses a commitment that does not match before it reads any chunk.
        decryptor.update(sealed[:HEADER_LENGTH])
    except _primitives.AeadAuthenticationFailed:
        raise _failure("key commitment does not match (wrong key or context, or altered header)") from None
    return decryptor


def _chunk_failure() -> IntegrityError:
    return _failure("a chunk failed authentication (altered, reordered or spliced)")


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
    """A per-thread buffer that seal encrypts into and open_sealed_file reads into, reused.

    A fresh multi-megabyte allocation costs more page faults than AES-GCM costs cycles, so
    objects up to WORKSPACE_LIMIT reuse one warm buffer per thread. It only ever holds
    ciphertext.
    """

    buffer = bytearray()
    lent = False


WORKSPACE_LIMIT = 128 << 20
_workspace_local = _Workspace()
# Wiping copies from this (zero pages, never written) rather than allocating zeros each time.
_ZEROS = bytes(1 << 20)


@contextmanager
def _workspace(length: int) -> Iterator[memoryview]:
    local = _workspace_local
    if length > WORKSPACE_LIMIT or local.lent:
        # Too big to keep, or already lent out further up this thread's stack.
        with memoryview(bytearray(length)) as fresh:
            yield fresh
        return
    buffer = local.buffer
    if len(buffer) < length:
        buffer = local.buffer = bytearray(length)
    local.lent = True
    try:
        with memoryview(buffer) as whole, whole[:length] as view:
            yield view
    finally:
        local.lent = False


def _wipe(view: memoryview) -> None:
    for start in range(0, len(view), len(_ZEROS)):
        stop = min(len(view), start + len(_ZEROS))
        view[start:stop] = _ZEROS[: stop - start]


def _writable_view(buffer: bytearray | memoryview) -> memoryview:
    view = _byte_view(buffer)
    if view.readonly:
        raise TypeError("output buffer is read-only")
    return view


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
