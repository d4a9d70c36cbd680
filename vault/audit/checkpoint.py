"""Signed tree heads for the audit log: C2SP tlog-checkpoint bodies inside C2SP signed notes.

A checkpoint commits to the log's origin, size and Merkle root; its Ed25519 signature lets an
auditor holding only the public key (and a copy of an old checkpoint) prove the log was neither
edited nor cut back. Formats: c2sp.org/tlog-checkpoint and c2sp.org/signed-note.

    strongroom.local/vault/0123456789abcdef      <- origin (also the signing key's name)
    42                                           <- tree size, decimal
    qSwE+0ov7P3cWgJ0wKr8Nc3zZ1mTkGBmR0bDpOE8Kks= <- root hash, base64
                                                 <- blank line ends the signed text
    — strongroom.local/vault/0123456789abcdef Ab3x...  <- em dash, key name, base64(key id || sig)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from vault.crypto.signing import SIGNATURE_LENGTH, SigningKey, load_public_pem, verify_signature
from vault.errors import IntegrityError

SIGNATURE_PREFIX = "\u2014 "  # em dash and a space opens every signature line
ED25519_TYPE = b"\x01"  # signed-note signature type identifier for Ed25519
KEY_ID_LENGTH = 4
ROOT_LENGTH = 32
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key's name, its 4-byte key id and the 64-byte signature."""

    key_name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint. `body` is the exact signed text; `signatures` may be empty before signing."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    body: str
    signatures: tuple[NoteSignature, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "signatures": [{"key_name": s.key_name, "key_id": s.key_id.hex()} for s in self.signatures],
        }


def _bad(reason: str) -> IntegrityError:
    return IntegrityError(
        f"not a valid signed checkpoint: {reason}",
        "use the text printed by `strongroom audit checkpoint`, unchanged (origin, size, root, blank line, signature)",
    )


def check_key_name(name: str) -> None:
    """A signed-note key name is non-empty and holds no whitespace and no '+'."""
    if not name or "+" in name or any(ch.isspace() for ch in name) or _CONTROL_RE.search(name):
        raise ValueError(
            f"invalid signed-note key name {name!r}: it must be non-empty, without spaces or '+'"
        )


def key_id(key_name: str, public_raw: bytes) -> bytes:
    """Signed-note key id: the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key)."""
    return hashlib.sha256(key_name.encode("utf-8") + b"\n" + ED25519_TYPE + public_raw).digest()[
        :KEY_ID_LENGTH
    ]


def verifier_key(key_name: str, public_raw: bytes) -> str:
    """The signed-note verifier key string `<name>+<hex key id>+<base64(0x01 || public key)>`."""
    check_key_name(key_name)
    blob = base64.b64encode(ED25519_TYPE + public_raw).decode("ascii")
    return f"{key_name}+{key_id(key_name, public_raw).hex()}+{blob}"


def format_checkpoint(origin: str, size: int, root: bytes, extensions: tuple[str, ...] = ()) -> str:
    """The checkpoint body (the signed text), ending with a newline."""
    if not origin or "\n" in origin or _CONTROL_RE.search(origin):
        raise ValueError("a checkpoint origin is one non-empty line of text")
    if size < 0:
        raise ValueError("a tree size cannot be negative")
    if len(root) != ROOT_LENGTH:
        raise ValueError(f"a root hash has {ROOT_LENGTH} bytes")
    if any(not ext or "\n" in ext or _CONTROL_RE.search(ext) for ext in extensions):
        raise ValueError("checkpoint extension lines must be non-empty single lines")
    lines = [origin, str(size), base64.b64encode(root).decode("ascii"), *extensions]
    return "".join(line + "\n" for line in lines)


def _parse_body(body: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    if _CONTROL_RE.search(body):
        raise _bad("control characters in the text")
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise _bad("the text must have an origin, a size and a root hash line")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin:
        raise _bad("empty origin line")
    if not _SIZE_RE.fullmatch(size_text):
        raise _bad(f"tree size {size_text[:40]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _bad("root hash is not base64") from None
    if len(root) != ROOT_LENGTH:
        raise _bad(f"root hash has {len(root)} bytes, not {ROOT_LENGTH}")
    if any(not ext for ext in extensions):
        raise _bad("empty extension line")
    return origin, int(size_text), root, tuple(extensions)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise _bad("a signature line must start with an em dash (U+2014) and a space")
    parts = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(parts) != 2 or not parts[0]:
        raise _bad("a signature line is '\u2014 <key name> <base64 signature>'")
    name, blob_text = parts
    try:
        blob = base64.b64decode(blob_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _bad("signature is not base64") from None
    if len(blob) <= KEY_ID_LENGTH:
        raise _bad("signature is too short")
    return NoteSignature(name, blob[:KEY_ID_LENGTH], blob[KEY_ID_LENGTH:])


def parse_note(text: str | bytes) -> tuple[str, tuple[NoteSignature, ...]]:
    """Split a signed note into its signed text and its signature lines (no signature check)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("the text is not UTF-8") from None
    split = text.rfind("\n\n")
    if split < 0:
        raise _bad("no blank line between the text and its signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block.endswith("\n"):
        raise _bad("the last signature line must end with a newline")
    if _CONTROL_RE.search(body):
        raise _bad("control characters in the text")
    return body, tuple(_parse_signature_line(line) for line in sig_block[:-1].split("\n"))


def parse_checkpoint(text: str | bytes) -> Checkpoint:
    """Parse a signed checkpoint note without checking its signatures (raises IntegrityError)."""
    body, signatures = parse_note(text)
    origin, size, root, extensions = _parse_body(body)
    return Checkpoint(origin, size, root, extensions, body, signatures)


def sign_note(signing_key: SigningKey, key_name: str, body: str) -> str:
    """A C2SP signed note: `body` (ending in a newline), a blank line, one Ed25519 signature line."""
    check_key_name(key_name)
    if not body.endswith("\n") or "\n\n" in body or _CONTROL_RE.search(body):
        raise ValueError("a note's text is non-empty lines, each ending in a newline")
    blob = key_id(key_name, signing_key.public_raw()) + signing_key.sign(body.encode("utf-8"))
    return f"{body}\n{SIGNATURE_PREFIX}{key_name} {base64.b64encode(blob).decode('ascii')}\n"


def sign_checkpoint(
    signing_key: SigningKey, origin: str, size: int, root: bytes, *, key_name: str | None = None
) -> str:
    """A signed checkpoint note; the key's name defaults to the origin, as is customary."""
    return sign_note(signing_key, key_name or origin, format_checkpoint(origin, size, root))


def _public_raw(public_key: bytes) -> bytes:
    if len(public_key) == 32:
        return public_key
    try:
        return load_public_pem(public_key)
    except ValueError:
        raise IntegrityError(
            "the public key is not an Ed25519 public key",
            "pass the vault's audit/pubkey.pem (a PEM 'PUBLIC KEY' block) or its raw 32 bytes",
        ) from None


def verify_note(text: str | bytes, public_key: bytes, *, key_name: str | None = None) -> str:
    """Check that `public_key` (raw or PEM) signed the note and return its signed text.

    Signatures by other keys are ignored, as the signed-note spec asks; at least one signature
    must be by this key (under `key_name`, by default any name whose key id matches).
    Raises IntegrityError.
    """
    body, signatures = parse_note(text)
    _check_signed(body, signatures, public_key, key_name)
    return body


def _check_signed(
    body: str, signatures: tuple[NoteSignature, ...], public_key: bytes, key_name: str | None
) -> None:
    public_raw = _public_raw(public_key)
    message = body.encode("utf-8")
    candidates = [
        s
        for s in signatures
        if (key_name is None or s.key_name == key_name) and s.key_id == key_id(s.key_name, public_raw)
    ]
    if not candidates:
        raise IntegrityError(
            "the checkpoint carries no signature by this public key",
            "check that the public key belongs to this vault (audit/pubkey.pem or the copy you keep)",
        )
    for sig in candidates:
        if len(sig.signature) == SIGNATURE_LENGTH and verify_signature(public_raw, sig.signature, message):
            return
    raise IntegrityError(
        "the checkpoint's signature does not verify: its text or signature was changed",
        "compare it with the copy you saved; run `strongroom audit verify` to check the log itself",
    )


def verify_checkpoint(text: str | bytes, public_key: bytes, *, key_name: str | None = None) -> Checkpoint:
    """Parse `text` and check that `public_key` (raw or PEM) signed it; raises IntegrityError."""
    cp = parse_checkpoint(text)
    _check_signed(cp.body, cp.signatures, public_key, key_name)
    return cp
