"""Properties of sealed objects: round trips, context binding, and every kind of tampering fails."""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.crypto import (
    _primitives,
    chunked,
    open_sealed,
    plaintext_length,
    random_key,
    seal,
    seal_with_salt,
    sealed_length,
)
from vault.crypto.chunked import CHUNK_SIZE, HEADER_LENGTH, WIRE_CHUNK_SIZE
from vault.errors import InputError, IntegrityError

KEY = bytes(range(32))
CONTEXT = b"strongroom/v1\0vault-a\0shard\0mnist\x003"
BOUNDARY_SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE]


def _reason(sealed: bytes | bytearray, *, key: bytes = KEY, context: bytes = CONTEXT) -> str:
    with pytest.raises(IntegrityError) as caught:
        open_sealed(key, context, sealed)
    assert caught.value.exit_code == 4
    return str(caught.value.detail["reason"])


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_round_trip_at_chunk_boundaries(size: int) -> None:
    plaintext = os.urandom(size)
    sealed = seal(KEY, CONTEXT, plaintext)
    assert isinstance(sealed, bytes)
    assert len(sealed) == sealed_length(size)
    assert plaintext_length(len(sealed)) == size
    assert open_sealed(KEY, CONTEXT, sealed) == plaintext


@settings(max_examples=40, deadline=None)
@given(
    size=st.one_of(
        st.sampled_from(BOUNDARY_SIZES),
        st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 17),
    ),
    context=st.binary(max_size=64),
)
def test_round_trip_property(size: int, context: bytes) -> None:
    plaintext = os.urandom(size)
    key = random_key()
    assert open_sealed(key, context, seal(key, context, plaintext)) == plaintext


def test_accepts_bytearray_and_non_byte_memoryview() -> None:
    words = memoryview(bytearray(range(256)) * 300).cast("I")
    sealed = seal(KEY, CONTEXT, words)
    assert open_sealed(KEY, CONTEXT, memoryview(bytearray(sealed))) == words.tobytes()


def test_every_seal_uses_a_fresh_salt() -> None:
    first, second = seal(KEY, CONTEXT, b"same"), seal(KEY, CONTEXT, b"same")
    assert first[:24] != second[:24]
    assert first != second


def test_seal_with_salt_is_deterministic_and_rejects_bad_sizes() -> None:
    salt = bytes(24)
    assert seal_with_salt(KEY, CONTEXT, b"x", salt) == seal_with_salt(KEY, CONTEXT, b"x", salt)
    with pytest.raises(ValueError):
        seal_with_salt(KEY, CONTEXT, b"x", bytes(23))
    with pytest.raises(ValueError):
        seal(KEY[:16], CONTEXT, b"x")


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_python_format_matches_the_native_loop(size: int) -> None:
    """seal_with_salt writes the format out in Python; the native loop must read it, and agree."""
    plaintext = os.urandom(size)
    salt = os.urandom(24)
    reference = seal_with_salt(KEY, CONTEXT, plaintext, salt)
    assert open_sealed(KEY, CONTEXT, reference) == plaintext
    native = seal(KEY, CONTEXT, plaintext)
    # Same key, context and plaintext: the two differ only through their salts.
    assert seal_with_salt(KEY, CONTEXT, plaintext, native[:24]) == native


def test_other_context_or_key_fails_before_any_chunk() -> None:
    sealed = seal(KEY, CONTEXT, b"record")
    moved = CONTEXT.replace(b"mnist", b"cifar")
    assert "commitment" in _reason(sealed, context=moved)
    assert "commitment" in _reason(sealed, context=CONTEXT + b"\0")
    assert "commitment" in _reason(sealed, key=bytes(32))
    assert _reason(sealed, key=KEY[:31]) == "key has the wrong size"


@pytest.mark.parametrize("size", [0, 5, CHUNK_SIZE, 2 * CHUNK_SIZE + 100])
def test_any_flipped_bit_fails(size: int) -> None:
    sealed = seal(KEY, CONTEXT, os.urandom(size))
    for position in {0, 23, 24, 55, HEADER_LENGTH, len(sealed) // 2, len(sealed) - 17, len(sealed) - 1}:
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        _reason(tampered)


@pytest.mark.parametrize("size", [0, 100, CHUNK_SIZE, 2 * CHUNK_SIZE + 5])
def test_truncation_and_extension_fail(size: int) -> None:
    sealed = seal(KEY, CONTEXT, os.urandom(size))
    for cut in {1, 16, 17, WIRE_CHUNK_SIZE, len(sealed) - HEADER_LENGTH, len(sealed)}:
        if 0 < cut <= len(sealed):
            _reason(sealed[:-cut])
    _reason(sealed + b"\0")
    _reason(sealed + bytes(16))
    _reason(sealed + sealed[HEADER_LENGTH:])


def test_dropping_the_final_chunk_fails() -> None:
    sealed = seal(KEY, CONTEXT, os.urandom(2 * CHUNK_SIZE))  # two full chunks, then an empty one
    assert len(sealed) == HEADER_LENGTH + 2 * WIRE_CHUNK_SIZE + 16
    assert _reason(sealed[:-16]) == "truncated or has trailing bytes"


def test_reordered_or_duplicated_chunks_fail() -> None:
    sealed = seal(KEY, CONTEXT, os.urandom(3 * CHUNK_SIZE + 9))
    header, body = sealed[:HEADER_LENGTH], sealed[HEADER_LENGTH:]
    chunks = [body[i : i + WIRE_CHUNK_SIZE] for i in range(0, len(body), WIRE_CHUNK_SIZE)]
    assert len(chunks) == 4
    swapped = header + chunks[1] + chunks[0] + b"".join(chunks[2:])
    duplicated = header + chunks[0] + chunks[0] + b"".join(chunks[2:])
    assert "chunk failed" in _reason(swapped)
    assert "chunk failed" in _reason(duplicated)
    # A chunk spliced from another object under the same key and context fails too.
    other = seal(KEY, CONTEXT, os.urandom(3 * CHUNK_SIZE + 9))
    spliced = header + other[HEADER_LENGTH : HEADER_LENGTH + WIRE_CHUNK_SIZE] + b"".join(chunks[1:])
    assert "chunk failed" in _reason(spliced)


def test_failure_reports_the_chunk_and_carries_no_plaintext() -> None:
    plaintext = b"CANARY-PLAINTEXT " * 3000
    sealed = bytearray(seal(KEY, CONTEXT, plaintext))
    sealed[HEADER_LENGTH + WIRE_CHUNK_SIZE + 3] ^= 0xFF
    with pytest.raises(IntegrityError) as caught:
        open_sealed(KEY, CONTEXT, sealed)
    assert "chunk failed authentication" in caught.value.detail["reason"]
    assert b"CANARY" not in repr(caught.value.to_json()).encode()
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_workspace_holds_no_plaintext_after_open() -> None:
    plaintext = b"CANARY-PLAINTEXT " * 5000
    sealed = seal(KEY, CONTEXT, plaintext)
    assert open_sealed(KEY, CONTEXT, sealed) == plaintext
    assert b"CANARY" not in chunked._workspace_local.buffer
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    _reason(tampered)
    assert b"CANARY" not in chunked._workspace_local.buffer


def test_threads_seal_and_open_concurrently() -> None:
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for size in (seed, CHUNK_SIZE * 3 + seed):
                data = bytes([seed]) * size
                assert open_sealed(KEY, CONTEXT, seal(KEY, CONTEXT, data)) == data
        except BaseException as exc:  # surfaced below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_objects_above_the_workspace_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunked, "WORKSPACE_LIMIT", CHUNK_SIZE)
    plaintext = os.urandom(2 * CHUNK_SIZE + 1)
    assert open_sealed(KEY, CONTEXT, seal(KEY, CONTEXT, plaintext)) == plaintext


def test_interoperates_with_cryptography_cobblestone() -> None:
    """pyca/cryptography's own Cobblestone-256 is an independent implementation of the format."""
    cobblestone = pytest.importorskip("cryptography.cobblestone")
    plaintext = os.urandom(2 * CHUNK_SIZE + 77)
    decryptor = cobblestone.Cobblestone256Decryptor(KEY, CONTEXT)
    assert decryptor.update(seal(KEY, CONTEXT, plaintext)) + decryptor.finalize() == plaintext
    encryptor = cobblestone.Cobblestone256Encryptor(KEY, CONTEXT)
    theirs = encryptor.update(plaintext) + encryptor.finalize()
    assert open_sealed(KEY, CONTEXT, theirs) == plaintext


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_into_buffers_round_trip_and_leave_the_rest_alone(size: int) -> None:
    plaintext = os.urandom(size)
    sealed_buffer = bytearray(b"\xee" * (sealed_length(size) + 5))
    assert chunked.seal_into(KEY, CONTEXT, plaintext, sealed_buffer) == sealed_length(size)
    assert sealed_buffer[-5:] == b"\xee" * 5
    sealed = bytes(sealed_buffer[:-5])
    assert open_sealed(KEY, CONTEXT, sealed) == plaintext
    plain_buffer = bytearray(b"\xee" * (size + 3))
    assert chunked.open_sealed_into(KEY, CONTEXT, sealed, memoryview(plain_buffer)) == size
    assert plain_buffer[:size] == plaintext and plain_buffer[size:] == b"\xee" * 3


def test_into_buffers_refuse_short_or_read_only_output() -> None:
    sealed = seal(KEY, CONTEXT, bytes(CHUNK_SIZE + 1))
    with pytest.raises(ValueError, match="needs"):
        chunked.seal_into(KEY, CONTEXT, bytes(CHUNK_SIZE + 1), bytearray(len(sealed) - 1))
    with pytest.raises(ValueError, match="needs"):
        chunked.open_sealed_into(KEY, CONTEXT, sealed, bytearray(CHUNK_SIZE))
    with pytest.raises(TypeError):
        chunked.open_sealed_into(KEY, CONTEXT, sealed, memoryview(bytearray(CHUNK_SIZE + 1)).toreadonly())


def test_open_into_checks_the_commitment_and_wipes_what_a_failed_open_wrote() -> None:
    plaintext = b"CANARY-PLAINTEXT " * 3000  # three chunks and a short final one
    sealed = seal(KEY, CONTEXT, plaintext)
    out = bytearray(len(plaintext))
    with pytest.raises(IntegrityError, match="authentication") as caught:
        chunked.open_sealed_into(KEY, CONTEXT + b"!", sealed, out)
    assert "commitment" in caught.value.detail["reason"]
    tampered = bytearray(sealed)
    tampered[-1] ^= 1  # the first chunks authenticate and decrypt; the final one does not
    with pytest.raises(IntegrityError) as caught:
        chunked.open_sealed_into(KEY, CONTEXT, tampered, out)
    assert "chunk failed" in caught.value.detail["reason"]
    assert out == bytes(len(plaintext))


def test_sealing_lends_a_read_only_view_only_inside_the_block() -> None:
    plaintext = os.urandom(2 * CHUNK_SIZE + 3)
    with chunked.sealing(KEY, CONTEXT, plaintext) as sealed:
        assert sealed.readonly and len(sealed) == sealed_length(len(plaintext))
        # Sealing again on this thread while the workspace is lent must not overwrite the view.
        nested = seal(KEY, CONTEXT, b"other")
        with chunked.sealing(KEY, CONTEXT, b"more") as inner:
            assert open_sealed(KEY, CONTEXT, inner) == b"more"
        assert open_sealed(KEY, CONTEXT, sealed) == plaintext
    assert open_sealed(KEY, CONTEXT, nested) == b"other"
    with pytest.raises(ValueError):
        len(sealed)  # released on leaving the block


def test_open_sealed_file_reads_into_the_workspace_and_wipes_it(tmp_path) -> None:
    plaintext = b"CANARY-PLAINTEXT " * 5000
    path = tmp_path / "object"
    path.write_bytes(seal(KEY, CONTEXT, plaintext))
    assert chunked.open_sealed_file(KEY, CONTEXT, path) == plaintext
    assert b"CANARY" not in chunked._workspace_local.buffer
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(IntegrityError):
        chunked.open_sealed_file(KEY, CONTEXT, path)
    with pytest.raises(FileNotFoundError):
        chunked.open_sealed_file(KEY, CONTEXT, tmp_path / "missing")


def test_the_chunk_limit_is_the_specs_2_to_the_38() -> None:
    """c2sp.org/chunked-encryption: at most 2**38 chunks, the last one short, so 2**52 - 1 bytes."""
    largest = 2**52 - 1
    assert chunked.MAX_CHUNKS == 2**38
    assert sealed_length(largest) == HEADER_LENGTH + largest + 2**38 * 16
    assert plaintext_length(sealed_length(largest)) == largest
    with pytest.raises(InputError) as refused:
        sealed_length(largest + 1)
    assert refused.value.detail == {"length": 2**52, "max_chunks": 2**38}
    assert "longer than the sealed-object format allows" in refused.value.title
    with pytest.raises(IntegrityError) as too_many:
        plaintext_length(sealed_length(largest) + WIRE_CHUNK_SIZE)
    assert too_many.value.detail["reason"] == "longer than the format allows"


def test_sealing_past_the_chunk_limit_is_refused_before_anything_is_written(monkeypatch, tmp_path) -> None:
    """Every way of sealing, and the object store, refuse up front; opening refuses the same count."""
    from vault.storage.objects import ObjectStore

    monkeypatch.setattr(chunked, "MAX_CHUNKS", 3)
    fits, too_long = os.urandom(3 * CHUNK_SIZE - 1), os.urandom(3 * CHUNK_SIZE)
    sealed = seal(KEY, CONTEXT, fits)
    assert open_sealed(KEY, CONTEXT, sealed) == fits
    attempts = [
        lambda: seal(KEY, CONTEXT, too_long),
        lambda: seal_with_salt(KEY, CONTEXT, too_long, bytes(24)),
        lambda: chunked.seal_into(KEY, CONTEXT, too_long, bytearray(4 * WIRE_CHUNK_SIZE)),
        lambda: ObjectStore(tmp_path, "0123456789abcdef").put(
            "shard", "dataset=d/version=1/shard=0", too_long, KEY
        ),
    ]
    for attempt in attempts:
        with pytest.raises(InputError):
            attempt()
    assert list(tmp_path.iterdir()) == []
    four_chunks = bytes(HEADER_LENGTH + 3 * WIRE_CHUNK_SIZE + 16)
    assert _reason(four_chunks) == "longer than the format allows"


def test_hkdf_expand_takes_the_32_byte_key_as_its_prk() -> None:
    """RFC 5869 asks for a PRK of HashLen (64) bytes; C2SP feeds the 32-byte key, and pyca takes it:
    the output is HMAC-SHA-512 keyed with the key itself, T(1) || T(2) cut at 76 bytes."""
    import hashlib
    import hmac

    info = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\0" + bytes(24) + CONTEXT
    t1 = hmac.new(KEY, info + b"\x01", hashlib.sha512).digest()
    t2 = hmac.new(KEY, t1 + info + b"\x02", hashlib.sha512).digest()
    assert len(KEY) == 32
    assert _primitives.hkdf_expand_sha512(KEY, info, 76) == (t1 + t2)[:76]
