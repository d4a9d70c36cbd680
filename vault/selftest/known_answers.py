"""Published known-answer vectors, run against this install's cryptography.

Shipped inside the package (vault/selftest/vectors/, the same files as tests/vectors/, sources in
tests/vectors/SOURCE.md): Project Wycheproof's C2SP chunked encryption (all 35), AES-GCM and AES key
wrap vectors, and transparency-dev's RFC 6962 inclusion and consistency proofs. Each check returns
how many vectors it ran and which ones disagreed, so that `strongroom selftest` can say exactly what
failed on this host.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.audit import merkle
from vault.crypto import _primitives, open_sealed, seal, seal_with_salt, unwrap_key, wrap_key
from vault.errors import IntegrityError

VECTORS = Path(__file__).resolve().parent / "vectors"
CHUNKED = "c2sp-chunked-encryption"
MERKLE = "rfc6962-merkle"


@dataclass
class Outcome:
    """What one family of vectors gave: how many ran, and the names of those that disagreed."""

    ran: int = 0
    failed: list[str] = field(default_factory=list)

    def check(self, name: str, agrees: Callable[[], bool]) -> None:
        self.ran += 1
        try:
            ok = agrees()
        except Exception as exc:  # a vector that crashes the code under test is a failed vector
            ok = False
            name = f"{name} ({type(exc).__name__}: {exc})"
        if not ok:
            self.failed.append(name)


def _wycheproof(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    data = json.loads(path.read_text())
    count = 0
    for group in data["testGroups"]:
        for test in group["tests"]:
            count += 1
            yield f"{path.name} tc{test['tcId']}", test
    if count != data["numberOfTests"]:
        raise IntegrityError(
            f"{path} holds {count} vectors, not the {data['numberOfTests']} it declares",
            hint="reinstall Strongroom from a wheelhouse whose SHA256SUMS checks",
        )


def _raises(error: type[BaseException] | tuple[type[BaseException], ...], call: Callable[[], object]) -> bool:
    try:
        call()
    except error:
        return True
    return False


def chunked(root: Path = VECTORS) -> Outcome:
    """Every C2SP chunked-encryption vector: valid ones open to the stated message and are
    reproduced byte for byte from their salt; invalid ones are refused as integrity failures."""
    out = Outcome()
    for name, t in _wycheproof(root / CHUNKED / "c2sp_chunked_encryption_aes_256_gcm_test.json"):
        key, context = bytes.fromhex(t["key"]), bytes.fromhex(t["ctx"])
        ciphertext = zlib.decompress(bytes.fromhex(t["ct"]))
        if t["result"] == "valid":

            def agrees(
                key: bytes = key, context: bytes = context, ct: bytes = ciphertext, t: Any = t
            ) -> bool:
                plain = open_sealed(key, context, ct)
                return (
                    hashlib.sha512(plain).hexdigest() == t["msgSha512"]
                    and seal_with_salt(key, context, plain, ct[:24]) == ct
                    and open_sealed(key, context, seal(key, context, plain)) == plain
                )

            out.check(name, agrees)
        else:
            out.check(
                name,
                lambda k=key, c=context, ct=ciphertext: _raises(
                    IntegrityError, lambda: open_sealed(k, c, ct)
                ),
            )
    return out


def aes_gcm(root: Path = VECTORS) -> Outcome:
    """Wycheproof AES-GCM with the 96-bit-and-longer nonces the wrapper serves."""
    out = Outcome()
    for name, t in _wycheproof(root / CHUNKED / "aes_gcm_test.json"):
        key, iv, aad, msg, ct, tag = (bytes.fromhex(t[k]) for k in ("key", "iv", "aad", "msg", "ct", "tag"))
        if not 8 <= len(iv) <= 128:
            continue  # nonce lengths OpenSSL's API refuses; Strongroom only ever uses 96 bits
        aead = _primitives.aes_gcm(key)
        if t["result"] == "valid":
            out.check(
                name,
                lambda a=aead, iv=iv, aad=aad, msg=msg, ct=ct, tag=tag: (
                    a.encrypt(iv, msg, aad or None) == ct + tag
                    and a.decrypt(iv, ct + tag, aad or None) == msg
                ),
            )
        else:
            out.check(
                name,
                lambda a=aead, iv=iv, aad=aad, ct=ct, tag=tag: _raises(
                    _primitives.AeadAuthenticationFailed, lambda: a.decrypt(iv, ct + tag, aad or None)
                ),
            )
    return out


REFUSED_UNWRAP = (IntegrityError, _primitives.KeyUnwrapFailed, ValueError)


def aes_key_wrap(root: Path = VECTORS) -> Outcome:
    """Wycheproof AES key wrap (RFC 3394): valid vectors wrap and unwrap exactly, invalid ones are
    refused; 256-bit KEKs go through the functions Strongroom's key slots use."""
    out = Outcome()
    for name, t in _wycheproof(root / CHUNKED / "aes_wrap_test.json"):
        kek, msg, ct = (bytes.fromhex(t[k]) for k in ("key", "msg", "ct"))
        if t["result"] == "acceptable" or not ct:
            continue  # 8-byte keys (RFC 3394 allows, SP 800-38F does not) and empty ciphertexts
        wrap = wrap_key if len(kek) == 32 else _primitives.aes_kw_wrap
        unwrap = unwrap_key if len(kek) == 32 else _primitives.aes_kw_unwrap
        if t["result"] == "valid":
            out.check(name, lambda w=wrap, u=unwrap, k=kek, m=msg, c=ct: w(k, m) == c and u(k, c) == m)
        else:
            out.check(name, lambda u=unwrap, k=kek, c=ct: _raises(REFUSED_UNWRAP, lambda: u(k, c)))
    return out


def merkle_proofs(root: Path = VECTORS) -> Outcome:
    """transparency-dev's RFC 6962 inclusion and consistency proofs, valid and malformed."""
    out = Outcome()
    data = root / MERKLE / "testdata"

    def b64(value: str | None) -> bytes:
        return base64.b64decode(value or "")

    for kind in ("inclusion", "consistency"):
        files = sorted((data / kind).rglob("*.json"))
        if not files:
            raise IntegrityError(
                f"no {kind} vectors under {data}", hint="reinstall Strongroom from a checked wheelhouse"
            )
        for path in files:
            v = json.loads(path.read_text())
            proof = [b64(p) for p in v["proof"] or []]
            if kind == "inclusion":
                args: tuple[Any, ...] = (
                    b64(v["leafHash"]),
                    v["leafIdx"],
                    v["treeSize"],
                    proof,
                    b64(v["root"]),
                )
                verify: Callable[..., None] = merkle.verify_inclusion
            else:
                args = (v["size1"], v["size2"], proof, b64(v["root1"]), b64(v["root2"]))
                verify = merkle.verify_consistency
            name = str(path.relative_to(data))
            if v["wantErr"]:
                out.check(name, lambda f=verify, a=args: _raises(merkle.ProofError, lambda: f(*a)))
            else:
                out.check(name, lambda f=verify, a=args: f(*a) is None)
    return out


FAMILIES: dict[str, Callable[[Path], Outcome]] = {
    "C2SP chunked encryption": chunked,
    "AES-GCM (Wycheproof)": aes_gcm,
    "AES key wrap (Wycheproof)": aes_key_wrap,
    "RFC 6962 Merkle proofs": merkle_proofs,
}
