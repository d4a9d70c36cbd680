"""The fixed words of a policy: roles, actions, sensitivities, isolation levels and rule ids.

A policy file may only use these words; anything else is refused when the file is loaded.
"""

from __future__ import annotations

ROLES: tuple[str, ...] = ("admin", "operator", "auditor")

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

# Facts a request must carry for an action to be decided; missing ones deny (request.incomplete).
REQUIRED_FACTS: dict[str, tuple[str, ...]] = {
    "dataset.import": ("dataset",),
    "dataset.sample": ("dataset",),
    "dataset.delete": ("dataset",),
    "dataset.export": ("dataset",),
    "train": ("dataset", "dp", "model"),
    "evaluate": ("dataset",),
    "model.export": ("dataset", "dp", "model"),
}

SENSITIVITIES: tuple[str, ...] = ("low", "medium", "high")

# Ordered from weakest to strongest.
ISOLATION_LEVELS: tuple[str, ...] = ("none", "guard", "namespace+seccomp")
REQUIRABLE_ISOLATION: tuple[str, ...] = ("guard", "namespace+seccomp")

ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp")

DEFAULT_APPROVER_ROLES: tuple[str, ...] = ("operator", "admin")

# Built-in rule ids and what each one checks. Explicit rules add `forbid.<id>`, and every
# role adds `roles.<role>` (which permits its listed actions; anything unlisted is denied by default
# and the denial names `roles.<role>`, the table to change).
RULES: dict[str, str] = {
    "request.invalid": "the request names an unknown action, role, sensitivity or malformed fact",
    "request.incomplete": "the request lacks a fact the action needs (e.g. train needs dataset, dp, model)",
    "export.raw_data": "raw records are never exported, whatever the roles say",
    "isolation.required": "the session's isolation level must reach [isolation] required",
    "retention.max_dataset_age_days": "records older than the limit may not be sampled, trained on or evaluated",
    "privacy.dp_required": "training on (or exporting a model of) a listed sensitivity needs DP",
    "privacy.max_epsilon_per_run": "a DP run's epsilon may not exceed the per-run cap",
    "privacy.max_delta": "a DP run's delta (and the ledger's) may not exceed the cap",
    "privacy.max_lifetime_epsilon": "the dataset's composed epsilon after the run may not exceed the lifetime cap",
    "privacy.accountant": "DP runs use the accountant the policy names",
    "models.allowed": "only listed model architectures may be trained",
    "export.approver_is_requester": "an export's approver must be someone other than the requester",
    "export.approvals_required": "a model export needs this many approvals from other users of approver roles",
}


def isolation_rank(level: str) -> int:
    """Strength of an isolation mode string: 0 none, 1 guard, 2 namespace+seccomp.

    Reported modes may name more layers than a policy can require (e.g. `namespace+seccomp+landlock`);
    a mode reaches `namespace+seccomp` when it includes both of those layers.
    """
    layers = {part.strip() for part in level.split("+") if part.strip()}
    if {"namespace", "seccomp"} <= layers:
        return 2
    if layers & {"guard", "namespace", "seccomp"}:
        return 1
    if layers <= {"none"}:
        return 0
    raise ValueError(f"unknown isolation mode {level!r}")
