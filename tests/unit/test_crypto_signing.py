"""Ed25519 signing: RFC 8032 known answers, PEM round trips, and verification by OpenSSL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vault.crypto import SigningKey, load_public_pem, verify_signature

# RFC 8032 section 7.1, TEST 2 (one-byte message 0x72).
RFC_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)


def test_rfc8032_known_answer() -> None:
    signer = SigningKey.from_raw(RFC_SEED)
    assert signer.raw() == RFC_SEED
    assert signer.public_raw() == RFC_PUBLIC
    assert signer.sign(b"\x72") == RFC_SIGNATURE
    assert verify_signature(RFC_PUBLIC, RFC_SIGNATURE, b"\x72")


def test_sign_and_verify_with_raw_and_pem() -> None:
    signer = SigningKey.generate()
    message = b"model card: sha256 of weights"
    signature = signer.sign(message)
    assert len(signature) == 64
    pem = signer.public_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_public_pem(pem) == signer.public_raw()
    assert verify_signature(signer.public_raw(), signature, message)
    assert verify_signature(pem, signature, message)
    assert not verify_signature(pem, signature, message + b"!")
    assert not verify_signature(SigningKey.generate().public_raw(), signature, message)
    assert not verify_signature(pem, signature[:-1] + bytes([signature[-1] ^ 1]), message)
    assert not verify_signature(b"-----BEGIN PUBLIC KEY-----\nbroken\n", signature, message)
    assert not verify_signature(b"short", signature, message)


def test_from_raw_round_trip_and_bad_sizes() -> None:
    signer = SigningKey.generate()
    again = SigningKey.from_raw(signer.raw())
    assert again.public_raw() == signer.public_raw()
    assert signer.raw().hex() not in repr(signer)
    with pytest.raises(ValueError):
        SigningKey.from_raw(bytes(31))


def test_load_public_pem_refuses_other_key_types() -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command absent")
    private = subprocess.run(
        [openssl, "genpkey", "-algorithm", "X25519"], capture_output=True, check=True
    ).stdout
    public = subprocess.run(
        [openssl, "pkey", "-pubout"], input=private, capture_output=True, check=True
    ).stdout
    with pytest.raises(ValueError):
        load_public_pem(public)


def test_openssl_verifies_a_signature_with_the_pem(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command absent")
    signer = SigningKey.generate()
    message = b"strongroom export manifest\n"
    (tmp_path / "key.pem").write_bytes(signer.public_pem())
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signer.sign(message))
    (tmp_path / "bad").write_bytes(signer.sign(message + b"x"))

    def verify(sigfile: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                openssl,
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "key.pem",
                "-rawin",
                "-in",
                "msg",
                "-sigfile",
                sigfile,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )

    good = verify("sig")
    assert good.returncode == 0, good.stderr
    assert "Signature Verified Successfully" in good.stdout
    assert verify("bad").returncode != 0
