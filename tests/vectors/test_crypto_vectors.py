"""Known-answer vectors: Wycheproof's C2SP chunked encryption (all 35), AES-GCM and AES key wrap.

The vectors are vendored in tests/vectors/c2sp-chunked-encryption (sources in tests/vectors/SOURCE.md),
so a clean clone runs every one of them; a missing file is a failure, never a skip.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

import pytest

from tests.support import VECTORS as VECTOR_ROOT
from vault.crypto import _primitives, open_sealed, seal, seal_with_salt, unwrap_key, wrap_key
from vault.errors import IntegrityError

VECTORS = VECTOR_ROOT / "c2sp-chunked-encryption"
CHUNKED_FILE = "c2sp_chunked_encryption_aes_256_gcm_test.json"


def _cases(filename: str) -> list[Any]:
    """(group, test) pairs of a vendored Wycheproof file."""
    data = json.loads((VECTORS / filename).read_text())
    return [
        pytest.param(group, test, id=f"tc{test['tcId']}")
        for group in data["testGroups"]
        for test in group["tests"]
    ]


def test_chunked_file_has_all_35_vectors() -> None:
    data = json.loads((VECTORS / CHUNKED_FILE).read_text())
    assert data["algorithm"] == "Cobblestone-256"
    assert sum(len(group["tests"]) for group in data["testGroups"]) == data["numberOfTests"] == 35


@pytest.mark.parametrize(("group", "test"), _cases(CHUNKED_FILE))
def test_c2sp_chunked_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    key = bytes.fromhex(test["key"])
    context = bytes.fromhex(test["ctx"])
    ciphertext = zlib.decompress(bytes.fromhex(test["ct"]))
    if test["result"] == "valid":
        plaintext = open_sealed(key, context, ciphertext)
        assert len(plaintext) == test["msgLength"]
        assert hashlib.sha512(plaintext).hexdigest() == test["msgSha512"]
        # The Python spelling of the format reproduces the vector byte for byte from its salt.
        assert seal_with_salt(key, context, plaintext, ciphertext[:24]) == ciphertext
        assert open_sealed(key, context, seal(key, context, plaintext)) == plaintext
        return
    with pytest.raises(IntegrityError) as caught:
        open_sealed(key, context, ciphertext)
    assert caught.value.exit_code == 4
    if "HeaderFailure" in test["flags"]:
        # Rejected while processing the header, before any chunk was decrypted.
        assert "chunk failed" not in caught.value.detail["reason"]


@pytest.mark.parametrize(("group", "test"), _cases("aes_gcm_test.json"))
def test_wycheproof_aes_gcm(group: dict[str, Any], test: dict[str, Any]) -> None:
    key, iv, aad, msg, ct, tag = (
        bytes.fromhex(test[name]) for name in ("key", "iv", "aad", "msg", "ct", "tag")
    )
    aead = _primitives.aes_gcm(key)
    if not 8 <= len(iv) <= 128:
        # The wrapper serves 96-bit nonces; nonce lengths OpenSSL's API refuses are refused here too.
        with pytest.raises(ValueError):
            aead.encrypt(iv, msg, aad or None)
        return
    if test["result"] == "valid":
        assert aead.encrypt(iv, msg, aad or None) == ct + tag
        buffer = bytearray(len(msg))
        aead.decrypt_into(iv, ct + tag, aad or None, buffer)
        assert bytes(buffer) == msg
    else:
        with pytest.raises(_primitives.AeadAuthenticationFailed):
            aead.decrypt(iv, ct + tag, aad or None)


@pytest.mark.parametrize(("group", "test"), _cases("aes_wrap_test.json"))
def test_wycheproof_aes_key_wrap(group: dict[str, Any], test: dict[str, Any]) -> None:
    kek, msg, ct = (bytes.fromhex(test[name]) for name in ("key", "msg", "ct"))
    # keys.wrap_key/unwrap_key take 256-bit KEKs only; other sizes go through the primitive.
    wrap = wrap_key if len(kek) == 32 else _primitives.aes_kw_wrap
    if test["result"] == "valid":
        assert wrap(kek, msg) == ct
        assert _primitives.aes_kw_unwrap(kek, ct) == msg
        if len(kek) == 32:
            assert unwrap_key(kek, ct) == msg
        return
    if test["result"] == "acceptable":
        return  # 8-byte keys: RFC 3394 allows them, SP 800-38F does not; Strongroom never wraps one.
    if ct:
        with pytest.raises((_primitives.KeyUnwrapFailed, ValueError)):
            _primitives.aes_kw_unwrap(kek, ct)
        if len(kek) == 32:
            with pytest.raises(IntegrityError):
                unwrap_key(kek, ct)
    if len(msg) % 8 or len(msg) < 16:
        # Empty keys and sizes that are not a multiple of 8 bytes cannot be wrapped.
        with pytest.raises(ValueError):
            wrap(kek, msg)
