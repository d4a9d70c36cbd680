"""The catalog: the vault's encrypted index of datasets, versions, models, runs, the privacy ledger
and the policy, sealed as one object (`catalog.sealed`) under a key derived from the master key.

Its shape is typed here once; every service reads and changes it through these types, and the
writer (`Session.writing`) commits it atomically with a generation one higher.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from vault.crypto import keys, open_sealed, seal
from vault.errors import IntegrityError
from vault.storage.files import atomic_write, canonical_json
from vault.storage.layout import CATALOG_FILE


class ObjectRef(TypedDict):
    """A sealed object: its id, the kind and ident its context binds, its sizes."""

    id: str
    kind: str
    ident: str
    size: int
    sealed_size: int
    wrapped_key: NotRequired[str]  # a model object's own data key, wrapped by the master key
    start: NotRequired[int]  # a shard's first record
    stop: NotRequired[int]  # one past a shard's last record


class DatasetVersion(TypedDict):
    version: int
    kind: str
    format: str
    samples: int
    classes: list[str]
    counts: dict[str, int]
    shape: list[int] | None
    digest: str
    created: str
    source_name: str
    imported_by: str
    wrapped_key: str  # the version's data key, wrapped by the master key
    shards: list[ObjectRef]


class DatasetEntry(TypedDict):
    name: str
    sensitivity: str
    created: str
    ledger_id: str
    versions: list[DatasetVersion]


class ModelEntry(TypedDict):
    id: str
    run: str
    name: str
    model: str
    config: dict[str, Any]  # the model's constructor arguments (vault.train.models)
    classes: list[str]
    dataset: str
    dataset_version: int
    dataset_facts: dict[str, Any]
    dp: bool
    epsilon: float | None
    delta: float | None
    accuracy: float
    macro_f1: float | None
    created: str
    user: str
    objects: dict[str, ObjectRef]


class RunEntry(TypedDict):
    run: str
    dataset_digest: str
    dataset: str
    version: int
    model: str | None
    created: str
    outcome: str
    steps: int
    user: str
    name: str
    finished: NotRequired[str]


class LedgerEntry(TypedDict):
    digest: str
    delta: float
    accountant: str
    charges: list[dict[str, Any]]  # vault.privacy.ledger.Charge.to_json()


class PolicyHistoryEntry(TypedDict):
    sha256: str
    name: str
    source: str | None
    set: str | None
    set_by: str | None
    replaced: str


class PolicyRecord(TypedDict):
    text: str
    sha256: str
    name: str
    source: str
    set: str
    set_by: str
    history: list[PolicyHistoryEntry]


class Catalog(TypedDict):
    vault_id: str
    generation: int
    created: str
    signing_key: str
    policy: PolicyRecord
    datasets: dict[str, DatasetEntry]
    ledger_index: dict[str, str]
    ledger: dict[str, LedgerEntry]
    models: dict[str, ModelEntry]
    runs: dict[str, RunEntry]
    lineage: dict[str, Any]  # the record index: "key", "sets", "links" (vault.privacy.lineage)


CATALOG_SECTIONS = ("datasets", "ledger_index", "ledger", "models", "runs", "lineage")


def empty_catalog(vault_id: str, signing_key: str, policy: PolicyRecord, created: str) -> Catalog:
    return {
        "vault_id": vault_id,
        "generation": 0,
        "created": created,
        "signing_key": signing_key,
        "policy": policy,
        "datasets": {},
        "ledger_index": {},
        "ledger": {},
        "models": {},
        "runs": {},
        "lineage": {},
    }


def referenced_objects(catalog: Catalog) -> set[str]:
    """Every object id the catalog names: what a sweep keeps and verify expects."""
    refs: set[str] = set()
    for entry in catalog["datasets"].values():
        for version in entry["versions"]:
            refs.update(shard["id"] for shard in version["shards"])
    for model in catalog["models"].values():
        refs.update(ref["id"] for ref in model["objects"].values())
    for stored in catalog.get("lineage", {}).get("sets", {}).values():
        refs.add(stored["object"]["id"])
    return refs


def rewrap_data_keys(catalog: Catalog, old: bytes, new: bytes) -> int:
    """Every dataset version's, model object's and record index's key, unwrapped by `old` and wrapped by `new` (in
    place); returns how many. The objects themselves are not touched."""
    count = 0

    def rewrap(wrapped: str) -> str:
        key = keys.unwrap_key(old, base64.b64decode(wrapped, validate=True))
        return base64.b64encode(keys.wrap_key(new, key)).decode("ascii")

    for entry in catalog["datasets"].values():
        for version in entry["versions"]:
            version["wrapped_key"] = rewrap(version["wrapped_key"])
            count += 1
    for model in catalog["models"].values():
        for ref in model["objects"].values():
            if "wrapped_key" in ref:
                ref["wrapped_key"] = rewrap(ref["wrapped_key"])
                count += 1
    index = catalog.get("lineage", {})
    if "key" in index:
        index["key"] = rewrap(index["key"])
        count += 1
    for stored in index.get("sets", {}).values():
        stored["object"]["wrapped_key"] = rewrap(stored["object"]["wrapped_key"])
        count += 1
    return count


def catalog_context(vault_id: str) -> bytes:
    return f"strongroom/v1|vault={vault_id}|kind=catalog".encode()


def read_catalog(root: Path, vault_id: str, key: bytes, filename: str = CATALOG_FILE) -> Catalog:
    path = root / filename
    try:
        sealed = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            "the vault's catalog is missing",
            "restore catalog.sealed from a backup; without it the vault's contents cannot be listed",
        ) from None
    try:
        plain = open_sealed(key, catalog_context(vault_id), sealed)
    except IntegrityError:
        raise IntegrityError(
            "the vault's catalog failed authentication: it was altered or damaged",
            "restore catalog.sealed from a backup",
            detail={"object": CATALOG_FILE},
        ) from None
    try:
        catalog = json.loads(plain)
    except json.JSONDecodeError:
        raise IntegrityError(
            "the vault's catalog is not valid JSON", "restore catalog.sealed from a backup"
        ) from None
    if not isinstance(catalog, dict) or catalog.get("vault_id") != vault_id:
        raise IntegrityError(
            "the catalog belongs to another vault", "restore catalog.sealed from this vault's backup"
        )
    for section in CATALOG_SECTIONS:
        catalog.setdefault(section, {})
    return cast(Catalog, catalog)


def seal_catalog(vault_id: str, key: bytes, catalog: Catalog) -> bytes:
    return seal(key, catalog_context(vault_id), canonical_json(catalog))


def write_catalog(root: Path, vault_id: str, key: bytes, catalog: Catalog) -> None:
    atomic_write(root / CATALOG_FILE, seal_catalog(vault_id, key, catalog))
