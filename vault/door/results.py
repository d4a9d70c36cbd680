"""What the door's methods return: plain JSON-able dicts, typed here once. The CLI prints them with
`--json` (their keys are a contract with users' scripts); the TUI shows them."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class VersionSummary(TypedDict):
    version: int
    samples: int
    digest: str
    created: str


class DatasetInfo(TypedDict):
    name: str
    version: int
    kind: str
    samples: int
    classes: list[str]
    sensitivity: str
    digest: str
    created: str
    counts: dict[str, int]
    shape: list[int] | None
    format: str
    source_name: str
    ledger_id: str
    versions: int
    all_versions: NotRequired[list[VersionSummary]]
    overlaps: NotRequired[list[dict[str, Any]]]  # an import's: vault.door.datasets.DatasetService.overlaps


class DatasetFacts(TypedDict):
    """What the policy knows of a dataset: never a record."""

    name: str
    sensitivity: str
    created: str
    digest: str
    kind: str
    samples: int
    ledger_id: str


class SampledRecord(TypedDict):
    index: int
    label: str
    pixels: NotRequired[list[Any]]  # nested lists: channels x height x width
    text: NotRequired[str]


class Sample(TypedDict):
    name: str
    version: int
    kind: str
    records: list[SampledRecord]


class Deleted(TypedDict):
    name: str
    versions: int
    objects_removed: int


class KeySlotInfo(TypedDict):
    user: str
    role: str
    created: str
    kdf: dict[str, Any]
    fingerprint: str | None  # of the user's Ed25519 signing key (None in a format 1 vault)
    authority_fingerprint: str | None  # of the key that signs the header


class ModelSummary(TypedDict):
    id: str
    dataset: str
    version: int
    model: str
    dp: bool
    epsilon: float | None
    delta: float | None
    accuracy: float
    created: str
    name: str


class Budget(TypedDict):
    dataset: str
    epsilon_spent: float | None  # None when unbounded
    unbounded: bool
    delta: float
    accountant: str
    epsilon_cap: float | None
    digest: str
    runs: list[dict[str, Any]]  # vault.privacy.ledger.Charge.to_json()
    epsilon_own: float | None  # the lineage's own composed epsilon
    epsilon_carried: float | None  # what lineages sharing its records carry (summed)
    delta_with_overlaps: float
    overlaps: list[dict[str, Any]]  # {"dataset", "records", "of", "lineage", "deleted", "epsilon", "message"}


class Approval(TypedDict):
    user: str
    role: str


class Exported(TypedDict):
    model: str
    out: str
    files: list[str]
    approvals: list[Approval]


class VerifyReport(TypedDict):
    scope: str  # "full": every object authenticated; "presence": sizes only (a role without a data key)
    ok: bool
    objects_checked: int
    datasets: int
    models: int
    findings: list[dict[str, Any]]  # vault.findings.Finding.to_json()
