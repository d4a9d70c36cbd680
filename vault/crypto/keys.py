"""Keys: random data keys, Argon2id passphrase keys with bounded cost, RFC 3394 key wrapping.

A vault's master key is wrapped once per key slot by a key-encryption key (KEK) derived from
that slot's passphrase. The slot's Argon2id parameters live in the vault header, so they are
checked against a floor and a ceiling before use: an edited header can neither weaken a vault
nor stall it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from vault.crypto import _primitives
from vault.errors import AuthError, IntegrityError, StrongroomError

__all__ = [
    "CEILING",
    "FLOOR",
    "KEY_LENGTH",
    "TEST_FLOOR",
    "KdfLimits",
    "KdfParams",
    "check_kdf_params",
    "derive_kek",
    "hkdf_sha256",
    "hmac_sha256",
    "kdf_for_new_slot",
    "random_key",
    "test_kdf_enabled",
    "unwrap_key",
    "use_test_kdf",
    "wrap_key",
    "x25519_exchange",
    "x25519_keypair",
    "x25519_public",
]

KEY_LENGTH = 32
SALT_LENGTH = 16
_KDF_ALGORITHM = "argon2id"
# The one explicit switch that makes key derivation cheap, for tests: set by calling
# `use_test_kdf()` in the test process (nothing the installed product reads can set it). The cheap
# parameters are recorded in each slot made under it, so such a slot is plain to see.
_test_kdf = False


@dataclass(frozen=True)
class KdfLimits:
    """Bounds on Argon2id cost parameters: memory in KiB, passes, lanes (parallelism)."""

    memory_kib: int
    iterations: int
    lanes: int


# OWASP's minimum Argon2id configuration (m = 19 MiB, t = 2, p = 1).
FLOOR = KdfLimits(memory_kib=19 * 1024, iterations=2, lanes=1)
# Applies only under `use_test_kdf()`: the cheap test parameters themselves.
TEST_FLOOR = KdfLimits(memory_kib=64, iterations=1, lanes=1)
# Beyond these a header could make opening the vault exhaust memory or time.
CEILING = KdfLimits(memory_kib=4 * 1024 * 1024, iterations=20, lanes=64)
_SALT_BOUNDS = (8, 64)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters of one key slot; `salt` is random per slot."""

    memory_kib: int
    iterations: int
    lanes: int
    salt: bytes

    @classmethod
    def default(cls) -> KdfParams:
        """RFC 9106 section 4, second recommended option: m = 64 MiB, t = 3, p = 4."""
        return cls(memory_kib=64 * 1024, iterations=3, lanes=4, salt=os.urandom(SALT_LENGTH))

    @classmethod
    def cheap(cls) -> KdfParams:
        """Parameters for tests only: fast, and refused on open unless the test switch is set."""
        return cls(
            memory_kib=TEST_FLOOR.memory_kib,
            iterations=TEST_FLOOR.iterations,
            lanes=TEST_FLOOR.lanes,
            salt=os.urandom(SALT_LENGTH),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": _KDF_ALGORITHM,
            "memory_kib": self.memory_kib,
            "iterations": self.iterations,
            "lanes": self.lanes,
            "salt": base64.b64encode(self.salt).decode("ascii"),
        }

    @classmethod
    def from_json(cls, obj: Any) -> KdfParams:
        """Parse `to_json` output; IntegrityError if malformed. Bounds: see check_kdf_params."""
        if not isinstance(obj, dict):
            raise _kdf_error("key-derivation parameters are not an object", "kdf")
        if obj.get("algorithm", _KDF_ALGORITHM) != _KDF_ALGORITHM:
            raise _kdf_error("key-derivation algorithm is not argon2id", "algorithm")
        values = {}
        for name in ("memory_kib", "iterations", "lanes"):
            value = obj.get(name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise _kdf_error(f"key-derivation parameter {name} is missing or not an integer", name)
            values[name] = value
        try:
            salt = base64.b64decode(str(obj.get("salt", "")), validate=True)
        except (binascii.Error, ValueError):
            raise _kdf_error("key-derivation salt is not valid base64", "salt") from None
        return cls(salt=salt, **values)


def use_test_kdf(enabled: bool = True) -> None:
    """Tests only: new slots get cheap parameters and the floor drops to them, in this process."""
    global _test_kdf
    _test_kdf = enabled


def test_kdf_enabled() -> bool:
    """True only in a process that called `use_test_kdf()`."""
    return _test_kdf


def kdf_for_new_slot() -> KdfParams:
    """Cheap parameters under the explicit test switch, else the RFC 9106 default."""
    return KdfParams.cheap() if test_kdf_enabled() else KdfParams.default()


def check_kdf_params(params: KdfParams) -> None:
    """Raise IntegrityError naming the first parameter below the floor or above the ceiling."""
    floor = TEST_FLOOR if test_kdf_enabled() else FLOOR
    for name in ("memory_kib", "iterations", "lanes"):
        value = getattr(params, name)
        low, high = getattr(floor, name), getattr(CEILING, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _kdf_error(f"key-derivation parameter {name} is not an integer", name)
        if value < low:
            raise _kdf_error(
                f"key-derivation parameter {name}={value} is below the floor {low}",
                name,
                value=value,
                floor=low,
            )
        if value > high:
            raise _kdf_error(
                f"key-derivation parameter {name}={value} is above the ceiling {high}",
                name,
                value=value,
                ceiling=high,
            )
    if params.memory_kib < 8 * params.lanes:
        raise _kdf_error(
            "key-derivation parameter memory_kib is below 8 KiB per lane",
            "memory_kib",
            value=params.memory_kib,
            floor=8 * params.lanes,
        )
    low, high = _SALT_BOUNDS
    if not isinstance(params.salt, bytes) or not low <= len(params.salt) <= high:
        raise _kdf_error(f"key-derivation salt must be {low} to {high} bytes", "salt")


def derive_kek(passphrase: bytes, params: KdfParams) -> bytes:
    """A 32-byte key-encryption key from a passphrase, after checking the parameters' bounds."""
    check_kdf_params(params)
    return _primitives.argon2id(
        passphrase,
        salt=params.salt,
        memory_kib=params.memory_kib,
        iterations=params.iterations,
        lanes=params.lanes,
        length=KEY_LENGTH,
    )


def random_key() -> bytes:
    """32 bytes from the operating system's CSPRNG: a master key or a data key."""
    return secrets.token_bytes(KEY_LENGTH)


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """Wrap `key` (16 bytes or more, a multiple of 8) under `kek` with RFC 3394 AES key wrap."""
    if len(kek) != KEY_LENGTH:
        raise ValueError(f"key-encryption key must be {KEY_LENGTH} bytes, got {len(kek)}")
    return _primitives.aes_kw_wrap(kek, key)


def unwrap_key(kek: bytes, wrapped: bytes, *, error: type[StrongroomError] = IntegrityError) -> bytes:
    """Unwrap an RFC 3394 wrapped key; on any failure raise `error` (IntegrityError by default).

    Callers that derived `kek` from a passphrase pass error=AuthError: a wrong passphrase and a
    corrupted slot then read the same, and neither message says which it was.
    """
    try:
        if len(kek) != KEY_LENGTH:
            raise _primitives.KeyUnwrapFailed()
        return _primitives.aes_kw_unwrap(kek, wrapped)
    except (_primitives.KeyUnwrapFailed, ValueError):
        pass
    if issubclass(error, AuthError):
        raise error("authentication failed", "check the user name and passphrase")
    raise error(
        "a wrapped key failed its integrity check",
        "the vault's key material was altered or is corrupt; restore it from a backup",
    )


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """A subkey for one named purpose (`info`), e.g. b"strongroom catalog mac", from a key."""
    return _primitives.hkdf_sha256(ikm, salt=None, info=info, length=length)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA-256 tag; compare tags with hmac.compare_digest."""
    return hmac.new(key, message, hashlib.sha256).digest()


def x25519_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as raw 32-byte (private, public), e.g. for a key slot."""
    return _primitives.x25519_generate()


def x25519_public(private: bytes) -> bytes:
    """The public half of a raw X25519 private key (to check a slot's keys belong together)."""
    try:
        return _primitives.x25519_public(private)
    except ValueError:
        raise IntegrityError("a private key in the vault is malformed", "restore it from a backup") from None


def x25519_exchange(private: bytes, peer_public: bytes) -> bytes:
    """The 32-byte X25519 shared secret; IntegrityError for a malformed or small-order peer key.

    Feed it through hkdf_sha256 together with both public keys before using it as a key.
    """
    try:
        return _primitives.x25519_exchange(private, peer_public)
    except ValueError:
        raise IntegrityError(
            "a public key in the vault is malformed",
            "the vault's key material was altered or is corrupt; restore it from a backup",
        ) from None


def _kdf_error(title: str, parameter: str, **detail: int) -> IntegrityError:
    return IntegrityError(
        title,
        "the key slot's parameters were edited or are corrupt; restore the vault header from a backup",
        detail={"parameter": parameter, **detail},
    )
