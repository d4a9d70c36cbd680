"""Verification of an audit log snapshot: every entry (see scan), the prev chain, checkpoints and the key.

Works on bytes already read (log, public key, checkpoints), so it needs no lock and no key, and
reports each problem as a structured `Finding` (which entry, what was expected, what was found)
that the CLI prints one per line and the TUI can list.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from vault.audit import epochs, merkle
from vault.audit.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
from vault.audit.forked import Forked
from vault.audit.scan import SIDE_BY_SIDE_FROM, Scan, complete_lines, scan_log, short_hash
from vault.audit.witness import WitnessKey, cosignatures
from vault.crypto.signing import load_public_pem
from vault.errors import StrongroomError
from vault.findings import Finding, VerifyProgress


@dataclass
class AuditReport:
    """The outcome of `AuditLog.verify`. `ok` is True only when there are no findings."""

    ok: bool
    entries: int
    size: int
    root: str
    findings: list[Finding]
    truncation_ruled_out: bool
    message: str
    signed_size: int = 0
    unsigned: int = 0
    origin: str | None = None
    key_source: str = "none"
    notes: list[str] = field(default_factory=list)
    epochs: int = 0
    initial_key: str | None = None  # fingerprint of the first epoch's key, as the log says
    initial_key_checked: bool = False  # True when it was compared with a key the auditor keeps
    unsealed_seqs: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "findings": [f.to_json() for f in self.findings]}


def _key_label(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def _trusted_key(
    pubkey_file: bytes | None, trusted_pubkey: bytes | None, findings: list[Finding]
) -> tuple[bytes | None, str]:
    """The raw key to check signatures with, and where it came from; key problems become findings."""
    file_raw: bytes | None = None
    if pubkey_file is not None:
        try:
            file_raw = load_public_pem(pubkey_file)
        except ValueError:
            findings.append(
                Finding(
                    seq=None,
                    kind="pubkey_invalid",
                    expected="an Ed25519 public key in audit/pubkey.pem",
                    found="something else",
                    message="",
                )
            )
    if trusted_pubkey is not None:
        try:
            given = trusted_pubkey if len(trusted_pubkey) == 32 else load_public_pem(trusted_pubkey)
        except ValueError:
            findings.append(
                Finding(
                    seq=None,
                    kind="pubkey_invalid",
                    expected="an Ed25519 public key (PEM) in --pubkey",
                    found="something else",
                    message="the given public key cannot be used",
                )
            )
            return None, "none"
        if pubkey_file is None:
            findings.append(
                Finding(
                    seq=None,
                    kind="pubkey_missing",
                    expected="audit/pubkey.pem",
                    found="no such file",
                    message="the public key file was removed",
                )
            )
        elif file_raw is not None and file_raw != given:
            findings.append(
                Finding(
                    seq=None,
                    kind="pubkey_replaced",
                    expected=f"audit/pubkey.pem = the given key {_key_label(given)}",
                    found=f"another key {_key_label(file_raw)}",
                    message="the vault's public key file was replaced",
                )
            )
        return given, "given"
    if pubkey_file is None:
        findings.append(
            Finding(
                seq=None,
                kind="pubkey_missing",
                expected="audit/pubkey.pem",
                found="no such file",
                message="checkpoint signatures cannot be checked; pass --pubkey with a copy you keep",
            )
        )
    return file_raw, ("vault" if file_raw is not None else "none")


def _check_checkpoint(
    label: str,
    text: bytes,
    key: bytes | None,
    origin: str | None,
    scan: Scan,
    findings: list[Finding],
) -> Checkpoint | None:
    """Signature, origin, size and root of one checkpoint; returns it when all hold."""
    try:
        cp = parse_checkpoint(text)
    except StrongroomError as exc:
        findings.append(
            Finding(
                seq=None,
                kind="checkpoint_invalid",
                expected=f"a signed checkpoint in {label}",
                found=exc.title,
                message="",
            )
        )
        return None
    good = True
    if key is not None:
        try:
            verify_checkpoint(text, key)
        except StrongroomError as exc:
            good = False
            findings.append(
                Finding(
                    seq=None,
                    kind="checkpoint_signature",
                    expected=f"{label} signed by {_key_label(key)}",
                    found=exc.title,
                    message="the checkpoint was forged or changed, or is from another vault",
                )
            )
    else:
        good = False
    if origin is not None and cp.origin != origin:
        findings.append(
            Finding(
                seq=None,
                kind="checkpoint_origin",
                expected=f"origin {origin}",
                found=f"origin {cp.origin}",
                message=f"{label} is a checkpoint of another log",
            )
        )
        return None
    if cp.size > scan.size:
        findings.append(
            Finding(
                seq=scan.size,
                kind="checkpoint_newer",
                expected=f"at least {cp.size} entries ({label})",
                found=f"{scan.size} complete entries",
                message=f"the log is shorter than {label}: entries {scan.size}..{cp.size - 1} were removed "
                "(truncation or rollback)",
            )
        )
        return None
    if scan.roots.get(cp.size) != cp.root:
        findings.append(
            Finding(
                seq=cp.size - 1 if cp.size else None,
                kind="checkpoint_root",
                expected=f"root {short_hash(cp.root)} over the first {cp.size} entries ({label})",
                found=f"root {short_hash(scan.roots.get(cp.size, b''))}",
                message="entries covered by this signed checkpoint were changed",
            )
        )
        return None
    return cp if good else None


def _seals_of(data: bytes, initial_key: bytes | None) -> epochs.SealCheck:
    return epochs.check_seals(complete_lines(data), initial_key)


def verify_snapshot(
    data: bytes,
    *,
    pubkey_file: bytes | None,
    trusted_pubkey: bytes | None,
    checkpoints: list[tuple[str, bytes]],
    latest: bytes | None,
    external: bytes | None,
    origin: str | None,
    on_event: Callable[[VerifyProgress], None] | None = None,
    cancel: threading.Event | None = None,
    on_entry: Callable[[dict[str, Any]], None] | None = None,
    initial_key: bytes | None = None,
    witnesses: tuple[WitnessKey, ...] = (),
) -> AuditReport:
    """Verify a log snapshot against its checkpoints, its public key and an optional saved checkpoint;
    each parsed entry goes to `on_entry` as it is checked (one pass for a reader such as the report)."""
    findings: list[Finding] = []
    key, key_source = _trusted_key(pubkey_file, trusted_pubkey, findings)
    parsed: dict[bytes, Checkpoint | None] = {}
    for text in [latest, external, *(t for _, t in checkpoints)]:
        if text is not None and text not in parsed:
            try:
                parsed[text] = parse_checkpoint(text)
            except StrongroomError:
                parsed[text] = None
    wanted = {cp.size for cp in parsed.values() if cp is not None}
    # The seals and epochs are checked in a forked child while the entries are scanned here.
    sealing = Forked(_seals_of, data, initial_key) if data.count(b"\n") >= SIDE_BY_SIDE_FROM else None
    try:
        scan = scan_log(
            data,
            want_roots=wanted,
            on_event=on_event,
            cancel=cancel,
            on_entry=on_entry,
        )
    except BaseException:
        if sealing is not None:
            sealing.cancel()
        raise
    findings.extend(scan.findings)
    seals = sealing.result() if sealing is not None else _seals_of(data, initial_key)
    findings.extend(seals.findings)
    if initial_key is not None and seals.initial_key is None:
        findings.append(
            Finding(
                seq=None,
                kind="epoch_key",
                expected=f"a log whose epochs start at the given key {epochs.fingerprint(initial_key)}",
                found="a log with no epochs",
                message="the log was replaced by one written without the vault's sealing keys",
            )
        )
    latest_cp = parsed.get(latest) if latest is not None else None
    if origin is None and latest_cp is not None:
        origin = latest_cp.origin

    signed_size = 0
    seen: set[bytes] = set()
    sources = ([("audit/checkpoint", latest)] if latest is not None else []) + checkpoints
    history_max = 0
    for label, text in sources:
        if text is None or (text in seen and label != "audit/checkpoint"):
            continue
        seen.add(text)
        cp = _check_checkpoint(label, text, key, origin, scan, findings)
        if cp is not None:
            signed_size = max(signed_size, cp.size)
            name = label.rsplit("/", 1)[-1]
            if label != "audit/checkpoint" and name != f"{cp.size}.txt":
                findings.append(
                    Finding(
                        seq=None,
                        kind="checkpoint_name",
                        expected=f"{cp.size}.txt",
                        found=name,
                        message=f"{label} was renamed",
                    )
                )
            if label != "audit/checkpoint":
                history_max = max(history_max, cp.size)
    if latest_cp is not None and latest_cp.size < history_max:
        findings.append(
            Finding(
                seq=None,
                kind="checkpoint_rollback",
                expected=f"audit/checkpoint covering {history_max} entries (the newest in checkpoints/)",
                found=f"one covering {latest_cp.size}",
                message="the latest checkpoint was replaced by an older one",
            )
        )
    if latest is None and checkpoints:
        findings.append(
            Finding(
                seq=None,
                kind="checkpoint_missing",
                expected="audit/checkpoint",
                found="no such file",
                message="the latest checkpoint was removed",
            )
        )

    truncation_ruled_out = False
    external_size: int | None = None
    if external is not None:
        before = len(findings)
        cp = _check_checkpoint("the given checkpoint", external, key, origin, scan, findings)
        if cp is not None and cp.size > 0:
            proof = merkle.consistency_proof(scan.leaves, cp.size, scan.size)
            try:
                merkle.verify_consistency(cp.size, scan.size, proof, cp.root, scan.roots[scan.size])
            except merkle.ProofError as exc:
                findings.append(
                    Finding(
                        seq=cp.size - 1,
                        kind="consistency",
                        expected="today's log to extend the given checkpoint",
                        found=str(exc),
                        message="",
                    )
                )
        for witness in witnesses:
            try:
                cosigned = cosignatures(external, witness)
            except StrongroomError:
                cosigned = []
            if not cosigned:
                findings.append(
                    Finding(
                        seq=None,
                        kind="witness_signature",
                        expected=f"the given checkpoint cosigned by witness {witness.name}",
                        found="no valid cosignature by that key",
                        message="the checkpoint is not one this witness cosigned (changed, or another witness's)",
                    )
                )
        if cp is not None and len(findings) == before and key is not None:
            truncation_ruled_out = True
            external_size = cp.size

    root_hex = scan.roots[scan.size].hex()
    unsigned = scan.size - signed_size
    ok = not findings
    return AuditReport(
        ok=ok,
        entries=scan.size,
        size=scan.size,
        root=root_hex,
        findings=findings,
        truncation_ruled_out=truncation_ruled_out,
        message=_message(ok, scan.size, root_hex, findings, signed_size, key_source, external, external_size),
        signed_size=signed_size,
        unsigned=unsigned,
        origin=origin,
        key_source=key_source,
        notes=scan.notes + seals.notes,
        epochs=seals.epochs,
        initial_key=epochs.fingerprint(seals.initial_key) if seals.initial_key else None,
        initial_key_checked=initial_key is not None and seals.initial_key == initial_key,
        unsealed_seqs=sorted(seals.unsealed),
    )


def _message(
    ok: bool,
    size: int,
    root_hex: str,
    findings: list[Finding],
    signed_size: int,
    key_source: str,
    external: bytes | None,
    external_size: int | None,
) -> str:
    parts = [
        f"intact: {size} entries, root {root_hex}."
        if ok
        else f"NOT intact: {len(findings)} finding(s) in a log of {size} entries."
    ]
    if signed_size < size:
        newer = (
            f"entry {signed_size} is" if size - signed_size == 1 else f"entries {signed_size}..{size - 1} are"
        )
        parts.append(
            f"A signed checkpoint covers the first {signed_size} entries; {newer} protected by the hash chain "
            "only until the next checkpoint (a command may still be running, or the last one ended without "
            "signing)."
        )
    else:
        parts.append(f"A signed checkpoint covers all {size} entries.")
    if key_source == "vault":
        parts.append(
            "Signatures were checked with audit/pubkey.pem from the vault itself; pass --pubkey with a copy "
            "kept elsewhere to rule out a replaced key."
        )
    if external_size is not None:
        parts.append(
            f"The log extends the given checkpoint of {external_size} entries: nothing it covers was removed "
            "or rewritten, so truncation and rollback since then are ruled out."
        )
    elif external is None:
        parts.append(
            "No saved checkpoint was given, so truncation or rollback of the log cannot be ruled out. Keep "
            "the output of `strongroom audit checkpoint` off this machine and pass it with --checkpoint."
        )
    else:
        parts.append("The log does not verify against the given checkpoint: see the findings.")
    return "\n".join(parts)
