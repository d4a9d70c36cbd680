"""Lineage: which records a dataset holds, as keyed per-record hashes, so the privacy budget follows
the records and not their order, file format, labels or the dataset's name.

Each record's canonical content is hashed with HMAC-SHA256 under the vault's record index key (held
only by data-key holders, so the stored hashes reveal nothing to anyone else, an auditor included,
and cannot be used to test whether a guessed record is in the vault):

- an image: its decoded pixels as uint8 bytes with their shape (channels x height x width), so the
  same pixels read from a PNG folder and from IDX files give the same hashes;
- a text: Unicode NFC, runs of whitespace made one space, ends stripped, so the same texts read
  from CSV, TSV or JSONL give the same hashes.

Labels are left out on purpose: relabelling the same records does not make them new records, and
an import whose labels were changed must still carry the spend of the records it repeats.

The carry rule. Every record's privacy loss is the composition of every mechanism that ever read
it. A lineage's own ledger composes the runs on its records (by the accountant); a record that is
also in other lineages was, in addition, read by their runs. Sequential composition of (eps_i,
delta_i)-DP mechanisms over the same record is (sum eps_i, sum delta_i)-DP, so a lineage's
spend is its own composed epsilon plus the own epsilon of every other lineage that shares at
least one record with it. It is conservative (a record outside the overlap is charged too, and
the sum is looser than composing the histories together), never optimistic. A re-import holding
exactly the records of an existing lineage (shuffled, renamed, relabelled, another format) joins
that lineage's ledger instead, which composes tightly.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

HASH_BYTES = 32
_SPACE = re.compile(r"\s+")


def canonical_text(text: str) -> str:
    """The form in which a text record is compared: NFC, whitespace runs as one space, stripped."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def record_hashes(
    key: bytes, kind: str, images: np.ndarray | None = None, texts: Sequence[str] | None = None
) -> bytes:
    """The sorted, de-duplicated HMAC-SHA256 of every record, concatenated (32 bytes each)."""
    if len(key) != 32:
        raise ValueError("the record index key is 32 bytes")
    seen: set[bytes] = set()
    if kind == "image":
        if images is None:
            raise ValueError("an image dataset needs its pixels")
        pixels = np.ascontiguousarray(images, dtype=np.uint8)
        shape = "x".join(str(int(d)) for d in pixels.shape[1:]).encode("ascii")
        base = hmac.new(key, b"strongroom/record/image\x00" + shape + b"\x00", hashlib.sha256)
        for record in pixels:
            h = base.copy()  # the keyed state after the prefix, computed once
            h.update(memoryview(record).cast("B"))
            seen.add(h.digest())
    elif kind == "text":
        if texts is None:
            raise ValueError("a text dataset needs its texts")
        base = hmac.new(key, b"strongroom/record/text\x00", hashlib.sha256)
        for text in texts:
            h = base.copy()
            h.update(canonical_text(text).encode("utf-8"))
            seen.add(h.digest())
    else:
        raise ValueError(f"unknown dataset kind {kind!r}")
    return b"".join(sorted(seen))


def as_set(blob: bytes) -> set[bytes]:
    if len(blob) % HASH_BYTES:
        raise ValueError("a record hash set is a whole number of 32-byte hashes")
    return {blob[i : i + HASH_BYTES] for i in range(0, len(blob), HASH_BYTES)}


def count(blob: bytes) -> int:
    return len(blob) // HASH_BYTES


def overlap(a: set[bytes], b: set[bytes]) -> int:
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return sum(1 for h in small if h in large)


# ---- the catalog's "lineage" section:
# {"key": wrapped root key, "sets": {set_id: {"id", "ledger_id", "dataset", "version", "records",
#  "object": ObjectRef}}, "links": [{"sets": [a, b] (sorted), "records": shared count}]}


def sets_of(section: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(section.get("sets", {}))


def links_of(section: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(section.get("links", []))


def linked_lineages(section: Mapping[str, Any], ledger_id: str) -> dict[str, int]:
    """Every other lineage that shares records with `ledger_id`: {lineage: most records shared by
    one pair of imports}."""
    sets = sets_of(section)
    out: dict[str, int] = {}
    for link in links_of(section):
        a, b = (sets.get(s) for s in link["sets"])
        if a is None or b is None:
            continue
        for mine, other in ((a, b), (b, a)):
            if mine["ledger_id"] == ledger_id and other["ledger_id"] != ledger_id:
                out[other["ledger_id"]] = max(out.get(other["ledger_id"], 0), int(link["records"]))
    return out


def links_map(section: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """{lineage: {linked lineage: records}} for every lineage that shares records with another."""
    ids = {s["ledger_id"] for s in sets_of(section).values()}
    return {lid: found for lid in sorted(ids) if (found := linked_lineages(section, lid))}


def dataset_overlaps(section: Mapping[str, Any], dataset: str, live: Iterable[str]) -> list[dict[str, Any]]:
    """The other datasets whose records the dataset `dataset` shares: [{"dataset", "records", "of",
    "lineage", "deleted"}], the largest overlap per other dataset, by name."""
    live_names = set(live)
    sets = sets_of(section)
    best: dict[str, dict[str, Any]] = {}
    for link in links_of(section):
        a, b = (sets.get(s) for s in link["sets"])
        if a is None or b is None:
            continue
        for mine, other in ((a, b), (b, a)):
            if mine["dataset"] != dataset or other["dataset"] == dataset:
                continue
            row = {
                "dataset": other["dataset"],
                "records": int(link["records"]),
                "of": int(mine["records"]),
                "lineage": other["ledger_id"],
                "deleted": other["dataset"] not in live_names or bool(other.get("deleted")),
            }
            found = best.get(other["dataset"])
            if found is None or (row["deleted"], -row["records"]) < (found["deleted"], -found["records"]):
                best[other["dataset"]] = row
    return sorted(best.values(), key=lambda r: (r["deleted"], -r["records"], r["dataset"]))


def overlap_phrase(row: Mapping[str, Any]) -> str:
    """One overlap as people read it: "overlaps 'clinic' (200 of 200 records): ε 10.74 spent
    carries over". `row` is one of `dataset_overlaps` with the lineage's "epsilon" (None: unbounded)."""
    name = f"'{row['dataset']}'" + (" (deleted)" if row.get("deleted") else "")
    epsilon = row.get("epsilon")
    spend = "an unbounded spend" if epsilon is None else f"ε {epsilon:.2f} spent"
    return f"overlaps {name} ({row['records']} of {row['of']} records): {spend} carries over"
