"""Forward-secure sealing of the audit log: every entry sealed as it is written, keys that only move on.

The log is cut into *epochs*. Epoch i has an Ed25519 key pair (sk_i, pk_i) and a 32-byte MAC key m_i.
Every entry written in epoch i carries `seal` = keyed BLAKE2b-256 under m_i of the entry's line with
the seal's value left empty (`"seal":""`). An `audit.epoch` entry opens epoch i+1: it publishes
pk_{i+1} and SHA-256(m_{i+1}), reveals m_i, and carries a certificate: sk_i's signature over the
epoch number, the entry's seq, `prev` (the Merkle root of everything before it) and those keys. sk_i
and m_i are then overwritten; only the running epoch's keys are kept, sealed in `epoch.sealed`.

So an insider holding every key the vault holds today holds only sk and m of the current epoch: to
change anything before it they would have to sign another `prev` with a key that no longer exists,
and a verifier holding nothing but pk_0 (printed at `init`, written by `audit key --out`) follows the
certificates from there. A line written by anyone without m_i has no valid seal: a later rotation
records it (`audit.unsealed`) and verification names it, for ever. An epoch closed at the end of a
command is *idle*: the next entry must open a new epoch, so a line appended between commands is
caught at once. Design anchors: journald's Forward Secure Sealing (Marson and Poettering 2013),
Bellare-Yee forward-secure MACs, Schneier-Kelsey; the delayed reveal of MAC keys as in TESLA.

Why a MAC per entry and a signature per epoch: Ed25519 verifies some 20-40k signatures a second
here, a keyed BLAKE2b over one line well over a million; the log must verify at 100k entries/s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.audit.reader import counts, lines_backwards
from vault.crypto import chunked, keys
from vault.crypto.signing import SigningKey, load_public_pem, public_pem, verify_signature
from vault.errors import IntegrityError
from vault.findings import Finding
from vault.storage.files import atomic_write, canonical_json

STATE_FILE = "epoch.sealed"
EPOCH_ACTION = "audit.epoch"
UNSEALED_ACTION = "audit.unsealed"
KEYLESS_ACTIONS = frozenset({"session.unlock_failed"})  # written before any key is open
SEAL_KEY = b'"seal":"'
SPECIAL = (b"audit.", b"session.unlock_failed")  # actions the seal walk reads in full
EMPTY_SEAL = b'"seal":""'
SEAL_HEX = 64
STATE_INFO = b"strongroom audit epoch state v1"
STATE_CONTEXT = b"strongroom audit epoch.sealed"
CERT_HEADER = "strongroom-audit-epoch/v1"


def mac(key: bytes, unsealed_line: bytes) -> str:
    """The seal: keyed BLAKE2b-256 (RFC 7693 keyed mode) of the line with `"seal":""`, in hex."""
    return hashlib.blake2b(unsealed_line, key=key, digest_size=32).hexdigest()


def seal_line(key: bytes, unsealed_line: bytes) -> bytes:
    """The line with its seal filled in (the top-level `seal` is the last one in canonical JSON)."""
    at = unsealed_line.rfind(EMPTY_SEAL)
    if at < 0:
        raise ValueError('an entry to seal needs its "seal":"" field')
    value = mac(key, unsealed_line).encode()
    return unsealed_line[: at + 8] + value + unsealed_line[at + 8 :]


def split_seal(line: bytes) -> tuple[bytes, bytes] | None:
    """(the line with its seal emptied, the seal's hex bytes), or None when it has no seal."""
    at = line.rfind(SEAL_KEY)
    if at < 0:
        return None
    end = at + 8 + SEAL_HEX
    if line[end : end + 1] != b'"':
        return None
    return line[: at + 8] + line[end:], line[at + 8 : end]


def cert_message(epoch: int, seq: int, prev: str, key: str, mac_commit: str, reveal: str) -> bytes:
    """The text epoch i's key signs to open epoch i+1 (one `name value` per line, each ending in \\n)."""
    return (
        f"{CERT_HEADER}\nepoch {epoch}\nseq {seq}\nprev {prev}\nkey {key}\n"
        f"mac_commit {mac_commit}\nreveal {reveal}\n"
    ).encode()


def key_pem(public_raw: bytes) -> bytes:
    """The initial key as the auditor keeps it: an Ed25519 PEM `PUBLIC KEY`, usable by openssl."""
    return public_pem(public_raw)


def load_key_pem(pem: bytes) -> bytes:
    """The raw key in a PEM written by `key_pem`; ValueError for anything else."""
    return load_public_pem(pem)


def fingerprint(public_raw: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(public_raw).digest()).decode().rstrip("=")


# ----------------------------------------------------------------------------- the live state
@dataclass
class LiveEpoch:
    """The running epoch's secrets (kept only sealed in epoch.sealed) and where it starts."""

    epoch: int
    signing: SigningKey
    mac_key: bytes
    start_seq: int
    start_offset: int
    idle: bool = False
    opening: dict[str, Any] | None = None  # the signed opening entry, until it is in the log

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "epoch": self.epoch,
                "sk": base64.b64encode(self.signing.raw()).decode(),
                "mac": self.mac_key.hex(),
                "start_seq": self.start_seq,
                "start_offset": self.start_offset,
                "idle": self.idle,
                "opening": self.opening,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LiveEpoch:
        obj = json.loads(data)
        return cls(
            int(obj["epoch"]),
            SigningKey.from_raw(base64.b64decode(obj["sk"])),
            bytes.fromhex(obj["mac"]),
            int(obj["start_seq"]),
            int(obj["start_offset"]),
            bool(obj["idle"]),
            obj.get("opening"),
        )


def state_key(vault_secret: bytes) -> bytes:
    """The key that seals epoch.sealed, derived from a secret every slot of the vault opens."""
    return keys.hkdf_sha256(vault_secret, STATE_INFO)


def read_live_state(audit_dir: Path, vault_secret: bytes) -> LiveEpoch | None:
    """The running epoch, or None when there is none yet; IntegrityError when it cannot be opened."""
    try:
        sealed = (Path(audit_dir) / STATE_FILE).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return LiveEpoch.from_bytes(chunked.open_sealed(state_key(vault_secret), STATE_CONTEXT, sealed))
    except (IntegrityError, ValueError, KeyError, TypeError):
        raise IntegrityError(
            f"{Path(audit_dir) / STATE_FILE} cannot be opened: it was replaced or damaged",
            "run `strongroom audit verify --key` with the initial key; the next epoch will say the chain broke",
        ) from None


def write_live_state(audit_dir: Path, vault_secret: bytes, live: LiveEpoch) -> None:
    """Replace epoch.sealed atomically: the previous epoch's secrets are not kept anywhere."""
    atomic_write(
        Path(audit_dir) / STATE_FILE, chunked.seal(state_key(vault_secret), STATE_CONTEXT, live.to_bytes())
    )


def new_epoch(epoch: int, start_seq: int, start_offset: int) -> LiveEpoch:
    return LiveEpoch(epoch, SigningKey.generate(), os.urandom(32), start_seq, start_offset)


def epoch_detail(
    previous: LiveEpoch | None, nxt: LiveEpoch, seq: int, prev: str, reason: str, idle: bool
) -> dict[str, Any]:
    """The detail of the `audit.epoch` entry that opens `nxt`, certified by `previous` when there is one."""
    key = base64.b64encode(nxt.signing.public_raw()).decode()
    commit = hashlib.sha256(nxt.mac_key).hexdigest()
    reveal = previous.mac_key.hex() if previous is not None else ""
    certificate = ""
    if previous is not None:
        message = cert_message(nxt.epoch, seq, prev, key, commit, reveal)
        certificate = base64.b64encode(previous.signing.sign(message)).decode()
    return {
        "epoch": nxt.epoch,
        "key": key,
        "mac_commit": commit,
        "reveal": reveal,
        "certificate": certificate,
        "idle": idle,
        "reason": reason,
    }


# ----------------------------------------------------------------------------- verification
@dataclass
class SealCheck:
    """What the walk over the seals found."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unsealed: set[int] = field(default_factory=set)  # seqs with no valid seal (known so far)
    legacy: int = 0  # entries before the first epoch: sealed by the legacy checkpoints only
    epochs: int = 0
    open_epoch: int | None = None
    open_entries: int = 0  # entries of the running epoch, whose MAC key is not revealed yet
    initial_key: bytes | None = None


def _finding(seq: int | None, kind: str, expected: str, found: str, message: str) -> Finding:
    return Finding(seq=seq, kind=kind, expected=expected, found=found, message=message)


def check_seals(lines: Iterable[bytes], initial_key: bytes | None = None) -> SealCheck:
    """Walk the epochs of a log: certificates from the first epoch's key (which must be
    `initial_key` when given), MAC commitments and reveals, and the seal of every entry."""
    out = SealCheck()
    key: bytes | None = None  # the current epoch's public key
    commit = ""
    epoch = -1
    idle = False
    pending: list[int] = []
    held: list[bytes] = []  # the lines at `pending`, until their epoch's key is revealed
    found_unsealed: list[int] = []
    recorded: set[int] = set()
    for pos, line in enumerate(lines):
        # Canonical JSON puts "action" first: most lines are told apart by their first bytes alone.
        ordinary = line.startswith(b'{"action":"') and not line.startswith(SPECIAL, 11)
        if ordinary and key is not None and not idle:
            pending.append(pos)
            held.append(line)
            continue
        is_epoch = is_keyless = False
        entry: dict[str, Any] | None = None
        action = None
        if not ordinary:
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                entry = None
            action = entry.get("action") if isinstance(entry, dict) else None
            is_epoch = action == EPOCH_ACTION
            is_keyless = action in KEYLESS_ACTIONS
            if action == UNSEALED_ACTION and isinstance(entry.get("detail"), dict):  # type: ignore[union-attr]
                recorded.update(s for s in entry["detail"].get("seqs", []) if isinstance(s, int))  # type: ignore[index]
        if key is None and not is_epoch:
            out.legacy += 1
            continue
        if is_epoch:
            assert entry is not None
            detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
            try:
                nxt_epoch = int(detail["epoch"])
                nxt_key = base64.b64decode(detail["key"], validate=True)
                nxt_commit, reveal = str(detail["mac_commit"]), str(detail["reveal"])
                certificate = base64.b64decode(detail["certificate"], validate=True)
            except (KeyError, TypeError, ValueError):
                out.findings.append(
                    _finding(pos, "epoch_invalid", "an epoch entry with its fields", "a bad one", "")
                )
                continue
            if key is None:  # the first epoch: its key is the one the auditor was given
                out.initial_key = nxt_key
                if initial_key is not None and nxt_key != initial_key:
                    out.findings.append(
                        _finding(
                            pos,
                            "epoch_key",
                            f"the first epoch's key {fingerprint(initial_key)} (the initial key given)",
                            f"{fingerprint(nxt_key)}",
                            "the log's chain of epochs does not start at the key the auditor holds: it was rewritten",
                        )
                    )
            else:
                message = cert_message(
                    nxt_epoch, pos, str(entry.get("prev")), detail["key"], nxt_commit, reveal
                )
                certified = verify_signature(key, certificate, message)
                if nxt_epoch != epoch + 1 or not certified:
                    out.findings.append(
                        _finding(
                            pos,
                            "epoch_certificate",
                            f"epoch {epoch + 1} certified by epoch {epoch}'s key",
                            f"epoch {nxt_epoch}, certificate out of order"  # a valid one, for another number
                            if certified
                            else f"epoch {nxt_epoch} with a certificate that does not verify",
                            "the log before this entry is not the log the previous epoch's key signed",
                        )
                    )
                try:
                    revealed = bytes.fromhex(reveal)
                except ValueError:
                    revealed = b""
                if not reveal and len(pending) > 1:
                    out.notes.append(
                        f"entries {pending[1]}..{pending[-1]} of epoch {epoch} cannot be checked: its MAC key "
                        "was never revealed (its sealed state was lost)"
                    )
                elif not reveal:
                    pass
                elif hashlib.sha256(revealed).hexdigest() != commit:
                    out.findings.append(
                        _finding(
                            pos, "epoch_reveal", f"the MAC key committed in epoch {epoch}", "another", ""
                        )
                    )
                    found_unsealed.extend(pending)
                else:
                    found_unsealed.extend(_unsealed_among(revealed, held, pending))
            pending, held = [pos], [line]
            key, commit, epoch, idle = nxt_key, nxt_commit, nxt_epoch, bool(detail.get("idle"))
            out.epochs += 1
            continue
        if is_keyless and split_seal(line) is None:
            out.notes.append(f"seq {pos}: a failed unlock, written without any key (not sealed)")
            continue
        if idle and action != UNSEALED_ACTION:
            found_unsealed.append(pos)  # only the record of what it found is written in an idle epoch
            continue
        pending.append(pos)
        held.append(line)
    out.open_epoch = epoch if key is not None else None
    out.open_entries = len(pending)
    for pos in found_unsealed:
        out.unsealed.add(pos)
        out.findings.append(
            _finding(
                pos,
                "unsealed",
                "an entry sealed by the epoch it was written in",
                "no valid seal" + (" (recorded by a later command)" if pos in recorded else ""),
                f"entry {pos} was not written by Strongroom: someone without the epoch's key added or changed it",
            )
        )
    if key is not None and not idle and len(pending) > 1:
        out.notes.append(
            f"entries {pending[1]}..{pending[-1]} are in the running epoch {epoch}: sealed, and checked when it "
            "closes (at the end of the command that writes them, or at the next command)"
        )
    elif key is not None and len(pending) > 1:  # the sealer writes nothing after an idle opening at rest
        out.notes.append(
            f"entries {pending[1]}..{pending[-1]} follow the opening of the idle epoch {epoch}: records of lines "
            "found unsealed, checked when the next command reveals the epoch's key (a command interrupted "
            "between the two, or lines added since)"
        )
    if out.legacy and key is not None:
        out.notes.append(
            f"entries 0..{out.legacy - 1} were written before the log's first epoch: sealed by the legacy "
            "checkpoints only"
        )
    return out


def _unsealed_among(mac_key: bytes, lines: list[bytes], positions: list[int]) -> list[int]:
    """The positions whose line (the one beside it in `lines`) has no valid seal under `mac_key`
    (the hot loop of verification)."""
    blake2b = hashlib.blake2b
    bad = []
    for pos, line in zip(positions, lines, strict=True):
        at = line.rfind(SEAL_KEY)
        end = at + 8 + SEAL_HEX
        if (
            at < 0
            or line[end : end + 1] != b'"'
            or blake2b(line[: at + 8] + line[end:], key=mac_key, digest_size=32).hexdigest().encode()
            != line[at + 8 : end]
        ):
            bad.append(pos)
    return bad


def _sealed(mac_key: bytes, line: bytes) -> bool:
    parts = split_seal(line)
    return parts is not None and mac(mac_key, parts[0]).encode() == parts[1]


def unsealed_in(lines: list[bytes], first_seq: int, mac_key: bytes) -> list[int]:
    """Seqs among the running epoch's lines (from its opening entry on) with no valid seal."""
    bad = []
    for index, line in enumerate(lines):
        if index == 0 or _sealed(mac_key, line):
            continue
        if b'"session.unlock_failed"' in line and split_seal(line) is None:
            continue
        bad.append(first_seq + index)
    return bad


def vouched(lines_last_first: Iterable[bytes], key: str, live: LiveEpoch) -> Iterator[tuple[int, Any]]:
    """(seq, value) of each entry whose detail holds `key`, newest first, among the lines this
    vault's keys vouch for. Walking back from the end, a line counts when its seal is valid under its
    epoch's MAC key: the running epoch's from the live state, and each earlier epoch's from the
    opening after it (an opening sealed by its own epoch reveals the key of the one before). A line
    written by hand has no valid seal and is passed over, wherever it was put. Nor does a line count
    that follows an idle epoch's opening: the vault writes nothing there but the next opening
    (check_seals), while the idle epoch's key lies in epoch.sealed between commands, open to every
    role's catalog key. Lines of an epoch whose key was never revealed, and lines from before the
    first epoch, have nothing to check them with: they count."""
    needle = f'"{key}":'.encode()
    mac_key: bytes | None = live.mac_key
    if live.opening is not None:  # its opening is not in the log yet: the lines there are the last epoch's
        mac_key = _revealed(live.opening.get("reveal"))
    found: list[tuple[int, Any]] = []  # the epoch's, until its opening says it was not idle
    for line in lines_last_first:
        opening = line.startswith(b'{"action":"audit.epoch"')
        if not opening and needle not in line:
            continue
        if mac_key is not None and not _sealed(mac_key, line):
            continue  # not written by this vault
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        detail = entry.get("detail") if isinstance(entry, dict) else None
        if not isinstance(detail, dict):
            continue
        if opening and entry.get("action") == EPOCH_ACTION:
            if not detail.get("idle"):
                yield from found
            found = []  # after an idle opening: not the vault's
            mac_key = _revealed(detail.get("reveal"))  # the lines before it are the previous epoch's
        elif key in detail and counts(entry.get("action"), key):
            seq = entry.get("seq")
            found.append(((seq if type(seq) is int else -1), detail[key]))
    yield from found


def vouched_above(log_path: Path, key: str, live: LiveEpoch, bound: int) -> tuple[int, Any] | None:
    """The newest entry the vault sealed recording `key` above `bound` (or not a whole number)."""
    found = vouched(lines_backwards(log_path), key, live)
    return next((f for f in found if type(f[1]) is not int or f[1] > bound), None)


def _revealed(reveal: Any) -> bytes | None:
    try:
        return bytes.fromhex(reveal) if isinstance(reveal, str) and reveal else None
    except ValueError:
        return None
