"""Strongroom's core: an encrypted vault of sensitive records, and everything done to them.

Open a vault with `vault.Vault.open(path, user=..., passphrase=...)`; every action goes through
that object, which asks the policy, writes the audit entry, then acts.

Glossary
--------
vault        A directory holding `vault.json` (format, key slots, signed), `catalog.sealed` (the
             encrypted catalog), `objects/` (sealed objects), `audit/` (the signed log) and `lock`.
role keys    The metadata key (every role: it seals the catalog), the data key (operators and
             admins: it wraps every object's key) and the authority (admins: it signs the header).
key slot     One per user, with a role (admin, operator, auditor): the role's keys sealed to it,
             the user's own signing key under their passphrase; see `vault.storage.keyring`.
authority    The Ed25519 key that signs the header (users, roles, the policy's hash); its
             fingerprint, printed at init, is how anyone checks a vault's users and approvals.
object key   A random key per dataset version (and per model object), wrapped by the data key.
             Deleting a dataset destroys its keys: crypto-shredding.
object       A sealed blob (C2SP chunked encryption, AES-256-GCM) bound by its context to the vault,
             its kind, its owner and its name.
shard        An object holding decoded records as tensors (safetensors).
catalog      The encrypted index: datasets, versions, models, runs, the privacy ledger, the policy.
digest       SHA-256 over a dataset's records and labels, in order: what `verify` re-derives.
lineage      The records a ledger is charged for, known by keyed per-record hashes (HMAC-SHA-256,
             order, format, labels and name left out); lineages sharing records are linked, and
             each carries the other's spend.
ledger       Privacy budget spent per lineage, composed across runs by the accountant; every
             change is recorded in the audit log.
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
