"""Witnesses: an auditor's own Ed25519 key, kept off the machine, that cosigns the vault's checkpoints.

A witness remembers the last checkpoint it cosigned *beside its key* (FILE.checkpoint), not in the
vault it watches, and cosigns a newer one only when the log is an append-only extension of it (an
RFC 9162 consistency proof over the log). Later, `audit verify --witness FILE.pub --checkpoint
FILE.checkpoint` proves the log still extends what the witness saw: a whole folder rolled back or
rewritten below that size fails. Formats: c2sp.org/tlog-cosignature (cosignature/v1, signature type
0x04) and c2sp.org/signed-note verifier keys.

Files, for a key written by `audit keygen --out FILE`:
  FILE             PRIVATE+KEY+<name>+<key id hex>+<base64(0x04 || 32-byte seed)>   (mode 0600)
  FILE.pub         <name>+<key id hex>+<base64(0x04 || 32-byte public key)>         (a C2SP vkey)
  FILE.checkpoint  the last checkpoint this witness cosigned, with every signature line
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from vault.audit import merkle
from vault.audit.checkpoint import (
    SIGNATURE_PREFIX,
    Checkpoint,
    check_key_name,
    parse_checkpoint,
    verify_checkpoint,
)
from vault.crypto.signing import SigningKey, verify_signature
from vault.errors import IntegrityError, StrongroomError, UsageError
from vault.storage.files import atomic_write

COSIGNATURE_TYPE = b"\x04"  # c2sp.org/tlog-cosignature: cosignature/v1
PRIVATE_PREFIX = "PRIVATE+KEY+"


def key_id(name: str, public_raw: bytes) -> bytes:
    """First 4 bytes of SHA-256(name || 0x0A || 0x04 || public key)."""
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_TYPE + public_raw).digest()[:4]


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: a header line, the time, then the checkpoint's text."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class WitnessKey:
    """A witness's public key: its name and raw 32 bytes."""

    name: str
    public: bytes

    @property
    def vkey(self) -> str:
        blob = base64.b64encode(COSIGNATURE_TYPE + self.public).decode()
        return f"{self.name}+{key_id(self.name, self.public).hex()}+{blob}"


@dataclass(frozen=True)
class Cosignature:
    name: str
    timestamp: int
    size: int


def _bad_key(path: Path | str, what: str) -> UsageError:
    return UsageError(
        f"{path} is not a witness {what}",
        "pass the file `strongroom audit keygen --out FILE` wrote (FILE or FILE.pub)",
    )


def parse_vkey(text: str, source: Path | str = "the witness key") -> WitnessKey:
    try:
        name, hexid, blob = text.strip().split("+", 2)
        raw = base64.b64decode(blob, validate=True)
    except (ValueError, binascii.Error):
        raise _bad_key(source, "public key") from None
    if len(raw) != 33 or raw[:1] != COSIGNATURE_TYPE or key_id(name, raw[1:]).hex() != hexid:
        raise _bad_key(source, "public key")
    return WitnessKey(name, raw[1:])


def read_private(path: Path) -> tuple[str, SigningKey]:
    try:
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise _bad_key(path, "private key") from None
    if not text.startswith(PRIVATE_PREFIX):
        raise _bad_key(path, "private key")
    try:
        name, hexid, blob = text[len(PRIVATE_PREFIX) :].split("+", 2)
        raw = base64.b64decode(blob, validate=True)
        key = SigningKey.from_raw(raw[1:])
    except (ValueError, binascii.Error):
        raise _bad_key(path, "private key") from None
    if raw[:1] != COSIGNATURE_TYPE or key_id(name, key.public_raw()).hex() != hexid:
        raise _bad_key(path, "private key")
    return name, key


def keygen(out: Path, name: str | None = None) -> WitnessKey:
    """Write a new witness key to `out` (private, 0600) and `out`.pub; refuses to overwrite. Without a
    name, `witness-<key id>`."""
    key = SigningKey.generate()
    if name is None:
        name = "witness-" + key_id("witness", key.public_raw()).hex()
    try:
        check_key_name(name)
    except ValueError as exc:
        raise UsageError(str(exc), "pick a name such as witness.example.org/alice") from None
    pub_path = Path(f"{out}.pub")
    for path in (out, pub_path):
        if path.exists():
            raise UsageError(
                f"{path} already exists; nothing was written", "choose another --out, or move it away"
            )
    key = SigningKey.generate()
    witness = WitnessKey(name, key.public_raw())
    blob = base64.b64encode(COSIGNATURE_TYPE + key.raw()).decode()
    private = f"{PRIVATE_PREFIX}{name}+{key_id(name, witness.public).hex()}+{blob}\n"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, private.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    atomic_write(pub_path, (witness.vkey + "\n").encode())
    return witness


def cosignatures(text: str | bytes, witness: WitnessKey) -> list[Cosignature]:
    """The valid cosignatures by `witness` on a checkpoint note."""
    cp = parse_checkpoint(text)
    found = []
    wanted = key_id(witness.name, witness.public)
    for sig in cp.signatures:
        if sig.key_name != witness.name or sig.key_id != wanted or len(sig.signature) != 72:
            continue
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        if verify_signature(witness.public, sig.signature[8:], cosigned_message(cp.body, timestamp)):
            found.append(Cosignature(witness.name, timestamp, cp.size))
    return found


def cosign_line(name: str, key: SigningKey, body: str, timestamp: int) -> str:
    sig = key.sign(cosigned_message(body, timestamp))
    blob = key_id(name, key.public_raw()) + struct.pack(">Q", timestamp) + sig
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


def check_extends(leaves: list[bytes], old: Checkpoint, new: Checkpoint) -> None:
    """IntegrityError unless the log (its leaf hashes) holds both trees and the newer extends the older."""
    if new.size < old.size:
        raise IntegrityError(
            f"the vault's checkpoint covers {new.size} entries, fewer than the {old.size} this witness cosigned: "
            "the log was rolled back",
            "do not cosign; report it to the vault's administrator and keep FILE.checkpoint as evidence",
        )
    if len(leaves) < new.size:
        raise IntegrityError(
            f"the log holds {len(leaves)} entries, fewer than its checkpoint's {new.size}: it was cut back",
            "run `strongroom audit verify` and report the findings",
        )
    tree = merkle.MerkleTree()
    roots = {}
    for i, leaf in enumerate(leaves[: new.size]):
        if i == old.size:
            roots[old.size] = tree.root()
        tree.append(leaf)
    roots[new.size] = tree.root()
    if roots[new.size] != new.root:
        raise IntegrityError(
            "the log's root differs from its signed checkpoint",
            "run `strongroom audit verify` and report the findings",
        )
    if old.size and roots.get(old.size) != old.root:
        raise IntegrityError(
            f"the log's first {old.size} entries differ from what this witness cosigned: history was rewritten",
            "do not cosign; report it to the vault's administrator and keep FILE.checkpoint as evidence",
        )
    if old.size and old.size < new.size:
        proof = merkle.consistency_proof(leaves[: new.size], old.size, new.size)
        merkle.verify_consistency(old.size, new.size, proof, old.root, new.root)


def cosign(
    audit_dir: Path, checkpoint_text: bytes, vault_pubkey: bytes, log_lines: list[bytes], key_file: Path
) -> tuple[str, int | None]:
    """The cosigned checkpoint text and the size this witness had cosigned before (None the first time).

    Checks the vault's signature, the origin and key it had before, and the log's consistency from
    the remembered checkpoint; IntegrityError (exit 4) when any fails. Writes nothing itself.
    """
    name, key = read_private(key_file)
    new = verify_checkpoint(checkpoint_text, vault_pubkey)
    memory_path = Path(f"{key_file}.checkpoint")
    previous = None
    if memory_path.exists():
        old_text = memory_path.read_bytes()
        try:
            old = parse_checkpoint(old_text)
        except StrongroomError:
            raise IntegrityError(
                f"{memory_path} is not a checkpoint", "restore it from your own copy; never edit it"
            ) from None
        if old.origin != new.origin:
            raise IntegrityError(
                f"this witness watches {old.origin}, not {new.origin}",
                "use another witness key for another vault (each key remembers one log)",
            )
        try:
            verify_checkpoint(old_text, vault_pubkey)
        except StrongroomError:
            raise IntegrityError(
                "the vault's checkpoint key is not the one that signed what this witness cosigned before",
                "the vault's audit/pubkey.pem was replaced: do not cosign, report it",
            ) from None
        check_extends([merkle.leaf_hash(line) for line in log_lines], old, new)
        previous = old.size
    else:
        check_extends([merkle.leaf_hash(line) for line in log_lines], new, new)
    text = checkpoint_text.decode()
    mine = [s for s in new.signatures if s.key_name == name]
    if mine:
        text = "".join(
            line + "\n" for line in text[:-1].split("\n") if not line.startswith(f"{SIGNATURE_PREFIX}{name} ")
        )
    return text + cosign_line(name, key, new.body, int(time.time())), previous
