"""What the crypto layer says when it refuses, exactly (a title, a hint, the parameter named: the UI
lists them and the format document promises them), its subkey derivation against RFC 5869, and the
wipe that leaves no plaintext behind. Each test here was written against a mutant that survived
the rest of the suite (`make mutate MODULES=crypto`)."""

from __future__ import annotations

import base64

import pytest

from vault.crypto import chunked, keys, signing
from vault.crypto.keys import CEILING, TEST_FLOOR, KdfParams
from vault.crypto.signing import SigningKey
from vault.errors import AuthError, IntegrityError

SLOT_HINT = "the key slot's parameters were edited or are corrupt; restore the vault header from a backup"
GOOD = {
    "algorithm": "argon2id",
    "memory_kib": 64,
    "iterations": 1,
    "lanes": 1,
    "salt": "AAAAAAAAAAAAAAAAAAAAAA==",
}


@pytest.mark.parametrize(
    ("obj", "title", "parameter"),
    [
        ([1, 2], "key-derivation parameters are not an object", "kdf"),
        ({**GOOD, "algorithm": "scrypt"}, "key-derivation algorithm is not argon2id", "algorithm"),
        ({**GOOD, "lanes": True}, "key-derivation parameter lanes is missing or not an integer", "lanes"),
        (
            {**GOOD, "iterations": "3"},
            "key-derivation parameter iterations is missing or not an integer",
            "iterations",
        ),
        (
            {k: v for k, v in GOOD.items() if k != "memory_kib"},
            "key-derivation parameter memory_kib is missing or not an integer",
            "memory_kib",
        ),
        ({**GOOD, "salt": "!" + "A" * 24}, "key-derivation salt is not valid base64", "salt"),
    ],
)
def test_malformed_kdf_parameters_name_the_parameter(obj: object, title: str, parameter: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        KdfParams.from_json(obj)
    assert (caught.value.title, caught.value.hint) == (title, SLOT_HINT)
    assert caught.value.detail == {"parameter": parameter}


def test_kdf_parameters_read_as_the_format_says() -> None:
    """An absent algorithm reads as argon2id (docs/FORMAT.md); an absent salt is empty, and the
    bounds check then refuses it by name."""
    params = KdfParams.from_json({k: v for k, v in GOOD.items() if k != "algorithm"})
    assert params == KdfParams(memory_kib=64, iterations=1, lanes=1, salt=bytes(16))
    assert KdfParams.from_json(params.to_json()) == params
    assert params.to_json()["salt"] == base64.b64encode(bytes(16)).decode()
    unsalted = KdfParams.from_json({k: v for k, v in GOOD.items() if k != "salt"})
    assert unsalted.salt == b""
    with pytest.raises(IntegrityError, match="salt must be 8 to 64 bytes"):
        keys.check_kdf_params(unsalted)


@pytest.mark.parametrize(
    ("change", "title", "detail"),
    [
        ({"lanes": True}, "key-derivation parameter lanes is not an integer", {"parameter": "lanes"}),
        (
            {"iterations": 0},
            f"key-derivation parameter iterations=0 is below the floor {TEST_FLOOR.iterations}",
            {"parameter": "iterations", "value": 0, "floor": TEST_FLOOR.iterations},
        ),
        (
            {"lanes": CEILING.lanes + 1},
            f"key-derivation parameter lanes={CEILING.lanes + 1} is above the ceiling {CEILING.lanes}",
            {"parameter": "lanes", "value": CEILING.lanes + 1, "ceiling": CEILING.lanes},
        ),
        (
            {"memory_kib": 64, "lanes": 9},
            "key-derivation parameter memory_kib is below 8 KiB per lane",
            {"parameter": "memory_kib", "value": 64, "floor": 72},
        ),
    ],
)
def test_kdf_bounds_name_the_parameter_its_value_and_the_bound(
    change: dict, title: str, detail: dict
) -> None:
    params = KdfParams(**{**KdfParams.cheap().__dict__, **change})
    with pytest.raises(IntegrityError) as caught:
        keys.check_kdf_params(params)
    assert (caught.value.title, caught.value.hint, caught.value.detail) == (title, SLOT_HINT, detail)


def test_an_unwrap_that_fails_says_only_what_is_safe() -> None:
    kek, other = keys.random_key(), keys.random_key()
    wrapped = keys.wrap_key(kek, keys.random_key())
    with pytest.raises(AuthError) as auth:
        keys.unwrap_key(other, wrapped, error=AuthError)
    assert (auth.value.title, auth.value.hint) == (
        "authentication failed",
        "check the user name and passphrase",
    )
    with pytest.raises(IntegrityError) as integrity:
        keys.unwrap_key(other, wrapped)
    assert (integrity.value.title, integrity.value.hint) == (
        "a wrapped key failed its integrity check",
        "the vault's key material was altered or is corrupt; restore it from a backup",
    )
    with pytest.raises(ValueError, match="key-encryption key must be 32 bytes, got 31"):
        keys.wrap_key(kek[:31], keys.random_key())


def test_a_malformed_peer_key_is_an_integrity_error_with_its_hint() -> None:
    private, _ = keys.x25519_keypair()
    with pytest.raises(IntegrityError) as caught:
        keys.x25519_exchange(private, bytes(32))  # the all-zero point: small order
    assert (caught.value.title, caught.value.hint) == (
        "a public key in the vault is malformed",
        "the vault's key material was altered or is corrupt; restore it from a backup",
    )


def test_a_short_signing_seed_says_how_long_it_must_be() -> None:
    with pytest.raises(ValueError, match="Ed25519 private key must be 32 bytes, got 31"):
        SigningKey.from_raw(bytes(31))


def test_subkeys_are_rfc5869_hkdf_sha256_with_an_empty_salt() -> None:
    """RFC 5869 A.3 (no salt, no info): the first 32 bytes of its OKM, 32 bytes by default."""
    okm = keys.hkdf_sha256(bytes([0x0B]) * 22, b"")
    assert okm == bytes.fromhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d")
    assert keys.hkdf_sha256(bytes([0x0B]) * 22, b"", length=42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_the_wipe_zeroes_every_byte_of_a_buffer_longer_than_its_zero_block() -> None:
    buffer = bytearray(b"\xa5") * (2 * len(chunked._ZEROS) + 12345)
    chunked._wipe(memoryview(buffer))
    assert buffer.count(0) == len(buffer)


TAMPERED = "the object was altered, truncated or moved from another name, or the key is wrong; restore it from a backup"


def test_a_sealed_object_that_fails_says_why_with_its_numbers() -> None:
    key = keys.random_key()
    sealed = chunked.seal(key, b"ctx", b"records")
    cases = [
        (key, sealed[:40], {"reason": "truncated or has trailing bytes", "sealed_length": 40}),
        (key[:16], sealed, {"reason": "key has the wrong size", "key_length": 16}),
        (
            keys.random_key(),
            sealed,
            {"reason": "key commitment does not match (wrong key or context, or altered header)"},
        ),
    ]
    for k, data, detail in cases:
        with pytest.raises(IntegrityError) as caught:
            chunked.open_sealed(k, b"ctx", data)
        assert (caught.value.title, caught.value.hint, caught.value.detail) == (
            "encrypted object failed authentication",
            TAMPERED,
            detail,
        )
    too_long = chunked.HEADER_LENGTH + chunked.MAX_CHUNKS * chunked.WIRE_CHUNK_SIZE + chunked.TAG_LENGTH
    with pytest.raises(IntegrityError) as caught:
        chunked.plaintext_length(too_long)
    assert caught.value.detail == {"reason": "longer than the format allows", "sealed_length": too_long}


def test_sealing_refuses_bad_inputs_by_name() -> None:
    with pytest.raises(ValueError, match="chunked encryption key must be 32 bytes, got 31"):
        chunked.seal(bytes(31), b"ctx", b"x")
    with pytest.raises(ValueError, match=f"salt must be {chunked.SALT_LENGTH} bytes, got 3"):
        chunked.seal_with_salt(keys.random_key(), b"ctx", b"x", bytes(3))
    sealed = chunked.seal(keys.random_key(), b"ctx", b"x")
    with pytest.raises(TypeError) as read_only:
        chunked.open_sealed_into(keys.random_key(), b"ctx", sealed, bytes(10))
    assert str(read_only.value) == "output buffer is read-only"
    with pytest.raises(Exception) as caught:
        chunked.sealed_length(chunked.MAX_CHUNKS * chunked.CHUNK_SIZE)
    assert caught.value.hint.startswith("nothing was written; store it in smaller parts")


def test_a_pem_of_another_key_type_is_refused_by_name() -> None:
    x25519 = b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEA" + base64.b64encode(bytes(range(1, 33)))
    with pytest.raises(ValueError) as caught:
        signing.load_public_pem(x25519 + b"\n-----END PUBLIC KEY-----\n")
    assert str(caught.value) == "PEM does not hold an Ed25519 public key"
    ed25519 = b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA" + base64.b64encode(bytes(range(1, 33)))
    assert signing.load_public_pem(ed25519 + b"\n-----END PUBLIC KEY-----\n") == bytes(range(1, 33))


def test_the_kdf_bounds_are_inclusive() -> None:
    """8 KiB per lane exactly, and salts of exactly 8 and 64 bytes, are within bounds."""
    keys.check_kdf_params(KdfParams(memory_kib=72, iterations=1, lanes=9, salt=bytes(16)))
    for length in (8, 64):
        keys.check_kdf_params(KdfParams(memory_kib=64, iterations=1, lanes=1, salt=bytes(length)))
    for length in (7, 65):
        with pytest.raises(IntegrityError, match="salt must be 8 to 64 bytes"):
            keys.check_kdf_params(KdfParams(memory_kib=64, iterations=1, lanes=1, salt=bytes(length)))


def test_a_chunk_altered_after_the_header_names_the_chunk_failure() -> None:
    key = keys.random_key()
    sealed = bytearray(chunked.seal(key, b"ctx", bytes(1000)))
    sealed[chunked.HEADER_LENGTH + 10] ^= 1
    with pytest.raises(IntegrityError) as caught:
        chunked.open_sealed(key, b"ctx", bytes(sealed))
    assert caught.value.detail == {"reason": "a chunk failed authentication (altered, reordered or spliced)"}
