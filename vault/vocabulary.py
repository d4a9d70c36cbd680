"""Every word the product and its policies share, defined once: roles, actions, sensitivities,
purposes of a read, accountants, and the isolation levels with their one ranking.

A policy file may only use these words (anything else is refused when it loads); the door, the
CLI and the TUI offer exactly these choices.
"""

from __future__ import annotations

from vault.errors import InputError, UsageError

ROLES: tuple[str, ...] = ("admin", "operator", "auditor")

SENSITIVITIES: tuple[str, ...] = ("low", "medium", "high")
DEFAULT_SENSITIVITY = "high"

# Why records are decrypted; each read's audit entry names one.
PURPOSES: tuple[str, ...] = ("train", "evaluate", "sample", "verify", "export-check", "lineage")

ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp")

# What a model card publishes of its held-out figures (the policy's privacy.card_metrics):
# "noised", released through a DP mechanism and charged to the ledger; "marked", exact and marked
# as outside the DP guarantee.
CARD_METRICS_MODES: tuple[str, ...] = ("noised", "marked")
DEFAULT_CARD_METRICS = "marked"

ACTIONS: tuple[str, ...] = (
    "init",
    "unlock",
    "keys.manage",
    "policy.set",
    "policy.show",
    "dataset.import",
    "dataset.read_metadata",
    "dataset.sample",
    "dataset.delete",
    "dataset.export",
    "train",
    "evaluate",
    "model.read_metadata",
    "model.export",
    "audit.read",
    "budget.read",
    "netcheck",
    "verify",
)

# Actions that decrypt records (not only metadata). Auditors may never be granted these,
# and retention applies to them.
RECORD_ACTIONS: frozenset[str] = frozenset({"dataset.sample", "train", "evaluate"})

# Raw records can never leave the vault: no policy may grant this action.
RAW_EXPORT_ACTION = "dataset.export"

# Without these an admin cannot manage the vault at all; a policy must grant them to `admin`.
ADMIN_ESSENTIAL: tuple[str, ...] = ("unlock", "keys.manage", "policy.set")

DEFAULT_APPROVER_ROLES: tuple[str, ...] = ("operator", "admin")

# What one import may take (--image-size, --max-records, --max-bytes raise or set them per import).
MAX_IMAGE_SIDE = 4096
DEFAULT_MAX_RECORDS = 10_000_000
DEFAULT_MAX_BYTES = 20 * 2**30

# Isolation a process reached, ordered from weakest to strongest; a policy requires one of the
# last three. `isolation_rank` is the only comparison of levels anywhere in the product.
# 'namespace+seccomp-loopback' is the full sandbox with internet sockets allowed inside a network
# namespace checked to hold only `lo` (the collectives of a run across several processes): below
# the plain level, so a policy that requires 'namespace+seccomp' refuses it.
LOOPBACK_ISOLATION = "namespace+seccomp-loopback"
ISOLATION_LEVELS: tuple[str, ...] = ("none", "guard", LOOPBACK_ISOLATION, "namespace+seccomp")
REQUIRABLE_ISOLATION: tuple[str, ...] = ("guard", LOOPBACK_ISOLATION, "namespace+seccomp")


def isolation_rank(level: str) -> int:
    """Strength of an isolation level (0 for none); an unknown level is an error, never a guess."""
    if level not in ISOLATION_LEVELS:
        raise UsageError(f"unknown isolation level {level!r}", f"use one of: {', '.join(ISOLATION_LEVELS)}")
    return ISOLATION_LEVELS.index(level)


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """`value` when it is one of `choices`; otherwise an InputError that lists them."""
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}", f"choose one of: {', '.join(choices)}")
    return value
