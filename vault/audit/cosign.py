"""A witness cosigning a vault's log (the files and formats: vault/audit/witness.py), and what the
vault shows of its witnesses."""

from __future__ import annotations

import struct
from pathlib import Path

from vault.audit.checkpoint import parse_checkpoint
from vault.audit.log import AuditLog
from vault.audit.state import split_lines
from vault.audit.witness import Cosignature, cosign, read_private
from vault.errors import IntegrityError, NotFound, StrongroomError
from vault.storage.files import atomic_write


def cosign_vault(log: AuditLog, key_file: Path) -> dict[str, object]:
    """Cosign a vault's latest checkpoint with the witness key in `key_file` (no vault key needed):
    adds the cosignature line to audit/checkpoint (and its copy in checkpoints/), and writes the
    cosigned checkpoint to FILE.checkpoint, the witness's own memory."""
    with log.writer_lock():
        text = log.latest_checkpoint()
        if text is None:
            raise NotFound(
                "this vault has no signed checkpoint yet", "run any command that opens the vault first"
            )
        try:
            pubkey = log.pubkey_path.read_bytes()
        except OSError:
            raise IntegrityError(
                f"{log.pubkey_path} cannot be read", "run `strongroom audit verify`"
            ) from None
        lines, _ = split_lines(log.log_path.read_bytes() if log.log_path.exists() else b"")
        cosigned, previous = cosign(log.dir, text.encode(), pubkey, lines, key_file)
        cp = parse_checkpoint(cosigned)
        atomic_write(log.checkpoint_path, cosigned.encode())
        copy = log.checkpoints_dir / f"{cp.size}.txt"
        if copy.exists() and parse_checkpoint(copy.read_bytes()).body == cp.body:
            atomic_write(copy, cosigned.encode())
        atomic_write(Path(f"{key_file}.checkpoint"), cosigned.encode())
    name, _ = read_private(key_file)
    return {
        "witness": name,
        "size": cp.size,
        "previous_size": previous,
        "origin": cp.origin,
        "memory": f"{key_file}.checkpoint",
    }


def last_cosigned(log: AuditLog) -> Cosignature | None:
    """The largest checkpoint in the vault that carries a cosignature, with its time (as the
    cosignature says; checking it needs the witness's public key: `audit verify --witness`)."""
    found = cosigned_by(log)
    return max(found, key=lambda c: (c.size, c.timestamp)) if found else None


def cosigned_by(log: AuditLog) -> list[Cosignature]:
    """Each witness's largest cosigned checkpoint in the vault (by the name it signs under), as the
    cosignature lines say; whether they are true needs the witnesses' keys."""
    best: dict[str, Cosignature] = {}
    paths = (
        [log.checkpoint_path, *sorted(log.checkpoints_dir.glob("*.txt"))]
        if log.checkpoints_dir.is_dir()
        else [log.checkpoint_path]
    )
    for path in paths:
        try:
            cp = parse_checkpoint(path.read_bytes())
        except (OSError, StrongroomError):
            continue
        for sig in cp.signatures:
            if len(sig.signature) == 72 and sig.key_name != cp.origin:
                (timestamp,) = struct.unpack(">Q", sig.signature[:8])
                seen = best.get(sig.key_name)
                if seen is None or (cp.size, timestamp) > (seen.size, seen.timestamp):
                    best[sig.key_name] = Cosignature(sig.key_name, timestamp, cp.size)
    return sorted(best.values(), key=lambda c: c.name)
