"""The record index behind the ledger's lineages: keyed per-record hashes, sealed as objects, and the
links between imports that share records (vault.privacy.lineage says what is hashed and why the
spend of overlapping lineages is summed).

The index key is a random 32-byte root, wrapped by the data key in the catalog (so a key rotation
rewraps it and the hashes stay comparable), from which the HMAC key is derived by HKDF with its own
label. Only data-key holders (operators, admins) import, so only they hash; an auditor reads the
links and counts in the catalog, never a hash it could test a guessed record against.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

import numpy as np

from vault.door.session import Session
from vault.privacy import lineage
from vault.storage import keyring
from vault.storage.catalog import Catalog


class RecordIndex:
    """The catalog's "lineage" section, read and changed inside a session's writer block."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def section(catalog: Catalog) -> dict[str, Any]:
        found = catalog.setdefault("lineage", {})
        found.setdefault("sets", {})
        found.setdefault("links", [])
        return found

    def key(self, catalog: Catalog) -> bytes:
        """The HMAC key of the per-record hashes (made on first use, inside a writer block)."""
        section = self.section(catalog)
        if "key" not in section:
            section["key"] = self.session.new_data_key()[1]
        return keyring.record_index_key(self.session.data_key(section["key"]))

    def hashes(
        self, catalog: Catalog, kind: str, images: np.ndarray | None, texts: list[str] | None
    ) -> bytes:
        return lineage.record_hashes(self.key(catalog), kind, images, texts)

    def load(self, catalog: Catalog) -> dict[str, set[bytes]]:
        """Every stored set of hashes, by set id (decrypted in memory)."""
        out = {}
        for set_id, stored in self.section(catalog)["sets"].items():
            out[set_id] = lineage.as_set(self.session.get_object(stored["object"]))
        return out

    def compare(self, catalog: Catalog, blob: bytes) -> tuple[dict[str, int], str | None]:
        """The records `blob` shares with each stored set ({set id: count}, only those sharing any),
        and the lineage that holds exactly these records, if one does."""
        mine = lineage.as_set(blob)
        stored = self.load(catalog)
        sets = self.section(catalog)["sets"]
        shared = {set_id: n for set_id, other in stored.items() if (n := lineage.overlap(mine, other))}
        unions: dict[str, set[bytes]] = {}
        for set_id, other in stored.items():
            unions.setdefault(sets[set_id]["ledger_id"], set()).update(other)
        same = next((lid for lid, union in sorted(unions.items()) if mine and union == mine), None)
        return shared, same

    def store(
        self,
        catalog: Catalog,
        blob: bytes,
        shared: dict[str, int],
        *,
        ledger_id: str,
        dataset: str,
        version: int,
    ) -> str:
        """Seal `blob` as a new set of the lineage `ledger_id` and link it to every set it overlaps."""
        section = self.section(catalog)
        set_id = f"set-{secrets.token_hex(6)}"
        ref = self.session.put_object("lineage", f"lineage={ledger_id}/set={set_id}", blob)
        section["sets"][set_id] = {
            "id": set_id,
            "ledger_id": ledger_id,
            "dataset": dataset,
            "version": version,
            "records": lineage.count(blob),
            "object": ref,
        }
        for other, n in sorted(shared.items()):
            section["links"].append({"sets": sorted([set_id, other]), "records": n})
        return set_id

    def mark_deleted(self, catalog: Catalog, dataset: str) -> None:
        for stored in self.section(catalog)["sets"].values():
            if stored["dataset"] == dataset:
                stored["deleted"] = True

    def missing(self, catalog: Catalog) -> list[tuple[str, int]]:
        """Dataset versions with no set yet (a vault from before the index): (name, version)."""
        have = {
            (s["dataset"], s["version"])
            for s in self.section(catalog)["sets"].values()
            if not s.get("deleted")
        }
        return [
            (name, v["version"])
            for name, entry in sorted(catalog["datasets"].items())
            for v in entry["versions"]
            if (name, v["version"]) not in have
        ]


def links_by_lineage(catalog: Catalog) -> dict[str, set[str]]:
    """Every lineage's linked lineages (those sharing records with it), from the catalog alone."""
    section = catalog.get("lineage", {})
    ids: Iterable[str] = {s["ledger_id"] for s in lineage.sets_of(section).values()}
    return {lid: set(lineage.linked_lineages(section, lid)) for lid in ids}
