"""The signed, tamper-evident audit log and its verification.

Files in `<vault>/audit/` and how to check them without Strongroom: docs/AUDIT.md.

Modules:
  log         AuditLog: appends (durable, one line each), checkpoints, reading
  state       the cached tree state at the end of the log
  reader      times as users type them; the filters of `audit show`
  entries     lazily parsed entries for screens
  verify      verification of a snapshot of the log: chain, checkpoints, key
  checkpoint  C2SP signed-note checkpoints (Ed25519)
  epochs      forward-secure sealing: the format of seals and epochs, and their verification
  sealing     the writer's side: the running epoch, rotation, closing at the end of a command
  witness     witness keys and C2SP cosignatures; cosign: a witness cosigning a vault's log
  merkle      RFC 6962 hashing, inclusion and consistency proofs
"""

from __future__ import annotations

from vault.audit.log import AuditLog
from vault.audit.reader import parse_time
from vault.audit.scan import ENTRY_VERSION
from vault.audit.verify import AuditReport

__all__ = ["ENTRY_VERSION", "AuditLog", "AuditReport", "parse_time"]
