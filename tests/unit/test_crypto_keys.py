"""Key derivation bounds, key wrapping, subkeys and X25519 agreement."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO
from vault.crypto import keys
from vault.crypto.keys import CEILING, FLOOR, TEST_FLOOR, KdfParams
from vault.errors import AuthError, IntegrityError


@pytest.fixture
def production_kdf() -> Iterator[None]:
    keys.use_test_kdf(False)
    yield
    keys.use_test_kdf(True)


@pytest.fixture
def cheap_kdf() -> None:
    keys.use_test_kdf(True)


def test_random_key_is_32_fresh_bytes() -> None:
    assert len(keys.random_key()) == 32
    assert keys.random_key() != keys.random_key()


def test_default_is_rfc9106_second_recommended_option() -> None:
    params = KdfParams.default()
    assert (params.memory_kib, params.iterations, params.lanes) == (64 * 1024, 3, 4)
    assert len(params.salt) == 16
    assert KdfParams.default().salt != params.salt


def test_new_slot_is_cheap_only_under_the_explicit_switch(production_kdf: None) -> None:
    assert keys.kdf_for_new_slot().memory_kib == 64 * 1024
    keys.use_test_kdf()
    assert keys.kdf_for_new_slot().memory_kib == TEST_FLOOR.memory_kib


def test_no_environment_variable_makes_key_derivation_cheap(tmp_path: Path) -> None:
    """The installed product reads no test switch: a process given every STRONGROOM_TEST_* variable
    (old and new spellings) still makes slots with the product's parameters and refuses cheap ones."""
    probe = (
        "from vault.crypto import keys; from vault.errors import IntegrityError\n"
        "p = keys.kdf_for_new_slot(); print(p.memory_kib)\n"
        "try:\n    keys.check_kdf_params(keys.KdfParams.cheap()); print('accepted')\n"
        "except IntegrityError:\n    print('refused')\n"
    )
    env = dict(
        os.environ,
        STRONGROOM_TEST_KDF="cheap",
        STRONGROOM_TEST_ISOLATION="waive",
        STRONGROOM_TEST="1",
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [str(64 * 1024), "refused"]


def test_json_round_trip() -> None:
    params = KdfParams.cheap()
    encoded = params.to_json()
    assert encoded["algorithm"] == "argon2id"
    assert KdfParams.from_json(encoded) == params


@pytest.mark.parametrize(
    "edit",
    [
        {"memory_kib": "65536"},
        {"iterations": True},
        {"lanes": None},
        {"salt": "not base64!"},
        {"algorithm": "pbkdf2"},
    ],
)
def test_malformed_json_is_an_integrity_error(edit: dict[str, object]) -> None:
    with pytest.raises(IntegrityError):
        KdfParams.from_json({**KdfParams.cheap().to_json(), **edit})
    with pytest.raises(IntegrityError):
        KdfParams.from_json(["not", "an", "object"])


@pytest.mark.usefixtures("production_kdf")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("memory_kib", FLOOR.memory_kib - 1),
        ("iterations", FLOOR.iterations - 1),
        ("lanes", 0),
        ("memory_kib", CEILING.memory_kib + 1),
        ("iterations", CEILING.iterations + 1),
        ("lanes", CEILING.lanes + 1),
    ],
)
def test_parameters_outside_floor_or_ceiling_are_refused(name: str, value: int) -> None:
    params = dataclasses.replace(KdfParams.default(), **{name: value})
    with pytest.raises(IntegrityError) as caught:
        keys.derive_kek(b"passphrase", params)
    assert caught.value.detail["parameter"] == name
    assert name in caught.value.title
    assert caught.value.exit_code == 4


@pytest.mark.usefixtures("production_kdf")
def test_cheap_parameters_are_refused_without_the_switch() -> None:
    with pytest.raises(IntegrityError) as caught:
        keys.check_kdf_params(KdfParams.cheap())
    assert caught.value.detail["parameter"] == "memory_kib"


@pytest.mark.usefixtures("production_kdf")
def test_owasp_floor_and_ceiling_values_themselves_pass() -> None:
    salt = bytes(16)
    keys.check_kdf_params(KdfParams(FLOOR.memory_kib, FLOOR.iterations, FLOOR.lanes, salt))
    keys.check_kdf_params(KdfParams(CEILING.memory_kib, CEILING.iterations, CEILING.lanes, salt))
    keys.check_kdf_params(KdfParams.default())


@pytest.mark.usefixtures("cheap_kdf")
def test_test_floor_and_salt_bounds() -> None:
    keys.check_kdf_params(KdfParams.cheap())
    with pytest.raises(IntegrityError):
        keys.check_kdf_params(dataclasses.replace(KdfParams.cheap(), memory_kib=TEST_FLOOR.memory_kib - 1))
    with pytest.raises(IntegrityError) as caught:
        keys.check_kdf_params(dataclasses.replace(KdfParams.cheap(), salt=b"short"))
    assert caught.value.detail["parameter"] == "salt"
    with pytest.raises(IntegrityError) as caught:
        keys.check_kdf_params(dataclasses.replace(KdfParams.cheap(), memory_kib=64, lanes=16))
    assert caught.value.detail["parameter"] == "memory_kib"


@pytest.mark.usefixtures("cheap_kdf")
def test_derive_kek_depends_on_passphrase_and_salt() -> None:
    params = KdfParams.cheap()
    kek = keys.derive_kek(b"correct horse", params)
    assert len(kek) == 32
    assert keys.derive_kek(b"correct horse", params) == kek
    assert keys.derive_kek(b"correct horsf", params) != kek
    assert keys.derive_kek(b"correct horse", dataclasses.replace(params, salt=bytes(16))) != kek


def test_key_wrap_round_trip_and_failures() -> None:
    kek, key = keys.random_key(), keys.random_key()
    wrapped = keys.wrap_key(kek, key)
    assert len(wrapped) == 40
    assert keys.unwrap_key(kek, wrapped) == key
    with pytest.raises(IntegrityError):
        keys.unwrap_key(keys.random_key(), wrapped)
    with pytest.raises(IntegrityError):
        keys.unwrap_key(kek, wrapped[:-8])
    with pytest.raises(IntegrityError):
        keys.unwrap_key(kek[:16], wrapped)
    tampered = bytearray(wrapped)
    tampered[5] ^= 1
    with pytest.raises(AuthError) as caught:
        keys.unwrap_key(kek, bytes(tampered), error=AuthError)
    assert caught.value.exit_code == 5
    assert "passphrase" in caught.value.hint
    with pytest.raises(ValueError):
        keys.wrap_key(kek[:16], key)


def test_argon2id_is_rfc9106_version_0x13() -> None:
    """RFC 9106 section 5.3 (Argon2id, version 0x13) through the class vault.crypto calls, which the
    product calls without a secret (K) or associated data (X): both empty (docs/FORMAT.md)."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    kdf = Argon2id(
        salt=b"\x02" * 16,
        length=32,
        iterations=3,
        lanes=4,
        memory_cost=32,
        ad=b"\x04" * 12,
        secret=b"\x03" * 8,
    )
    assert (
        kdf.derive(b"\x01" * 32).hex() == "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
    )


def test_hkdf_sha256_matches_rfc5869_case_3() -> None:
    # RFC 5869 A.3: SHA-256, IKM = 22 x 0x0b, empty salt and info, L = 42.
    okm = keys.hkdf_sha256(b"\x0b" * 22, b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )
    assert keys.hkdf_sha256(b"k" * 32, b"a") != keys.hkdf_sha256(b"k" * 32, b"b")


def test_hmac_sha256_matches_rfc4231_case_2() -> None:
    tag = keys.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert tag.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_x25519_matches_rfc7748_and_refuses_small_order_points() -> None:
    # RFC 7748 section 6.1.
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    expected = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert keys.x25519_exchange(alice, bob_public).hex() == expected
    private, public = keys.x25519_keypair()
    other_private, other_public = keys.x25519_keypair()
    assert keys.x25519_exchange(private, other_public) == keys.x25519_exchange(other_private, public)
    with pytest.raises(IntegrityError):
        keys.x25519_exchange(private, bytes(32))
    with pytest.raises(IntegrityError):
        keys.x25519_exchange(private, public[:31])


def test_only_the_primitives_module_imports_hazmat() -> None:
    """Every vault module reaches raw primitives through vault.crypto._primitives only."""
    importing = re.compile(r"^\s*(from|import)\s+cryptography(\.hazmat|\s+import\s+.*hazmat)", re.M)
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "vault").rglob("*.py")
        if path.name != "_primitives.py" and importing.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    probe = (
        "import sys, vault.crypto as c\n"
        "assert c.seal and 'cryptography.hazmat.primitives.ciphers.aead' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m.startswith('vault.crypto')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert "vault.crypto._primitives" in out.stdout
