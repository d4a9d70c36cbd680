"""Strongroom's core: an encrypted vault of sensitive records, and everything done to them.

Open a vault with `vault.Vault.open(path, user=..., passphrase=...)`; every action goes through
that object, which asks the policy, writes the audit entry, then acts.

Glossary
--------
vault        A directory holding `vault.json` (format, key slots), `catalog.sealed` (the encrypted
             catalog), `objects/` (sealed objects), `audit/` (the signed log) and `lock`.
master key   A random 256-bit key. Each user's key slot opens it; it wraps every data key and
             derives the catalog key.
key slot     One per user, with a role (admin, operator, auditor) and its own Argon2id salt and
             parameters; see `vault.storage.keyring`.
data key     A random key per dataset version (and per model), wrapped by the master key.
             Deleting a dataset destroys its keys: crypto-shredding.
object       A sealed blob (C2SP chunked encryption, AES-256-GCM) bound by its context to the vault,
             its kind, its owner and its name.
shard        An object holding decoded records as tensors (safetensors).
catalog      The encrypted index: datasets, versions, models, runs, the privacy ledger, the policy.
digest       SHA-256 over a dataset's records and labels; the privacy ledger follows it.
ledger       Privacy budget spent per dataset lineage, composed across runs by the accountant.
policy       TOML rules the vault keeps (content and hash); every decision names its rule.
audit log    Append-only JSON Lines, hash-chained leaves of an RFC 6962 Merkle tree, with signed
             checkpoints (C2SP signed notes, Ed25519).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Vault"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Vault":
        from vault.door import Vault

        return Vault
    raise AttributeError(name)
