"""Datasets through the door: import, list, show, sample, delete; and the one decrypting read that
training, evaluation and sampling use after their own decisions.

Each dataset version has its own data key, wrapped by the master key; its records live only in
sealed shards. Deleting a dataset destroys its keys (crypto-shredding) and its objects. The
privacy ledger follows the records, not the name: it survives deletion and re-import.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vault.door.lineage import RecordIndex
from vault.door.results import DatasetFacts, DatasetInfo, Deleted, Sample, SampledRecord
from vault.door.session import Session
from vault.errors import Cancelled, InputError, NotFound, StrongroomError
from vault.privacy import ledger, lineage
from vault.storage import shards
from vault.storage.catalog import Catalog, DatasetEntry, DatasetVersion, ObjectRef, referenced_objects
from vault.storage.files import utc_now
from vault.storage.names import check_name
from vault.vocabulary import PURPOSES, SENSITIVITIES, check_choice

if TYPE_CHECKING:
    from vault.ingest import ImportOptions
PUBLIC_FIELDS = (
    "name",
    "version",
    "kind",
    "samples",
    "classes",
    "sensitivity",
    "digest",
    "created",
    "counts",
    "shape",
    "format",
    "source_name",
    "ledger_id",
    "versions",
)


@dataclass
class LoadedDataset:
    """A dataset version decrypted into memory. `x`: uint8 N x C x H x W tensor, or a list of str."""

    name: str
    version: int
    kind: str
    classes: list[str]
    x: Any
    y: Any
    digest: str
    ledger_id: str
    sensitivity: str
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.y))


@dataclass(frozen=True)
class SealProgress:
    """Import progress while the decoded records are sealed into the vault."""

    stage: str
    done: int
    total: int


def public_info(name: str, entry: DatasetEntry, version: DatasetVersion) -> DatasetInfo:
    info: DatasetInfo = {
        "name": name,
        "version": version["version"],
        "kind": version["kind"],
        "samples": version["samples"],
        "classes": list(version["classes"]),
        "sensitivity": entry["sensitivity"],
        "digest": version["digest"],
        "created": version["created"],
        "counts": dict(version["counts"]),
        "shape": version.get("shape"),
        "format": version["format"],
        "source_name": version.get("source_name", ""),
        "ledger_id": entry["ledger_id"],
        "versions": len(entry["versions"]),
    }
    return info


class DatasetService:
    """The door's datasets: every public method decides and records; `load` is for services that have."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def summaries(self) -> list[DatasetInfo]:
        self.session.decide("dataset.read_metadata", target="datasets")
        catalog = self.session.read_catalog()
        return [public_info(name, e, e["versions"][-1]) for name, e in sorted(catalog["datasets"].items())]

    @staticmethod
    def entry(catalog: Catalog, name: str) -> DatasetEntry:
        entry = catalog["datasets"].get(name)
        if entry is None:
            known = ", ".join(sorted(catalog["datasets"])) or "none yet"
            raise NotFound(f"no dataset named {name!r}", f"`strongroom datasets` lists them (known: {known})")
        return entry

    @staticmethod
    def version(entry: DatasetEntry, name: str, version: int | None) -> DatasetVersion:
        if version is None:
            return entry["versions"][-1]
        for v in entry["versions"]:
            if v["version"] == version:
                return v
        raise NotFound(
            f"dataset {name!r} has no version {version}",
            f"versions: {', '.join(str(v['version']) for v in entry['versions'])}",
        )

    def info(self, name: str, version: int | None = None, *, decide: bool = True) -> DatasetInfo:
        """A dataset version's public facts (no records); `decide=False` for services that decided."""
        catalog = self.session.read_catalog()
        if decide:
            entry = self.entry(catalog, name)
            self.session.decide(
                "dataset.read_metadata", dataset={"name": name, "sensitivity": entry["sensitivity"]}
            )
        entry = self.entry(catalog, name)
        info = public_info(name, entry, self.version(entry, name, version))
        info["all_versions"] = [
            {"version": v["version"], "samples": v["samples"], "digest": v["digest"], "created": v["created"]}
            for v in entry["versions"]
        ]
        return info

    def facts(self, name: str) -> DatasetFacts:
        """What the policy needs to know about a dataset (no records)."""
        info = self.info(name, None, decide=False)
        return {
            "name": info["name"],
            "sensitivity": info["sensitivity"],
            "created": info["created"],
            "digest": info["digest"],
            "kind": info["kind"],
            "samples": info["samples"],
            "ledger_id": info["ledger_id"],
        }

    # ------------------------------------------------------------------ import
    def import_(
        self,
        source: Path | str,
        *,
        name: str,
        sensitivity: str = "high",
        options: ImportOptions | None = None,
        on_event: Callable[[Any], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> DatasetInfo:
        from vault.ingest import ImportOptions, decode

        check_name(name)
        check_choice(sensitivity, SENSITIVITIES, "sensitivity")
        self.session.check_writable()
        source = Path(source).expanduser()
        self.session.decide("dataset.import", dataset={"name": name, "sensitivity": sensitivity})
        decoded = decode(source, options or ImportOptions(), on_event=on_event, cancel=cancel)
        digest = shards.content_digest(
            decoded.kind, decoded.classes, decoded.labels, decoded.images, decoded.texts
        )
        if decoded.kind == "image":
            assert decoded.images is not None
            pieces = shards.image_shards(decoded.images, decoded.labels)
        else:
            assert decoded.texts is not None
            pieces = shards.text_shards(decoded.texts, decoded.labels)
        total = len(decoded.labels)
        refs: list[ObjectRef] = []
        try:
            with self.session.writing() as catalog:
                entry = catalog["datasets"].get(name)
                version_no = entry["versions"][-1]["version"] + 1 if entry else 1
                if entry is not None and entry["sensitivity"] != sensitivity:
                    raise InputError(
                        f"dataset {name!r} is {entry['sensitivity']} sensitivity; a new version cannot be {sensitivity}",
                        f"import it under another name, or keep --sensitivity {entry['sensitivity']}",
                    )
                index = RecordIndex(self.session)
                record_set = index.hashes(catalog, decoded.kind, decoded.images, decoded.texts)
                shared, same = index.compare(catalog, record_set)
                ledger_id = (
                    (entry["ledger_id"] if entry else None)
                    or catalog["ledger_index"].get(digest)
                    or same
                    or digest
                )
                key, wrapped = self.session.new_data_key()
                for i, (start, stop, blob) in enumerate(pieces):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(
                            "import cancelled; nothing was added to the vault", "run the import again"
                        )
                    ident = f"dataset={name}/version={version_no}/shard={i}"
                    ref = self.session.objects.put("shard", ident, blob, key)
                    ref.update(start=start, stop=stop)
                    refs.append(ref)
                    if on_event is not None:
                        on_event(SealProgress("seal", stop, total))
                version = {
                    "version": version_no,
                    "kind": decoded.kind,
                    "format": decoded.fmt,
                    "samples": total,
                    "classes": list(decoded.classes),
                    "counts": {str(k): int(v) for k, v in decoded.counts.items()},
                    "shape": list(decoded.shape) if decoded.shape else None,
                    "digest": digest,
                    "created": utc_now(),
                    "source_name": decoded.source_name,
                    "imported_by": self.session.user,
                    "wrapped_key": wrapped,
                    "shards": refs,
                }
                if entry is None:
                    entry = {
                        "name": name,
                        "sensitivity": sensitivity,
                        "created": version["created"],
                        "ledger_id": ledger_id,
                        "versions": [],
                    }
                    catalog["datasets"][name] = entry
                entry["versions"].append(version)
                catalog["ledger_index"].setdefault(digest, entry["ledger_id"])
                index.store(
                    catalog, record_set, shared, ledger_id=ledger_id, dataset=name, version=version_no
                )
                overlaps = self.overlaps(catalog, name)
                self.session.record(
                    "dataset.import",
                    name,
                    "ok",
                    version=version_no,
                    samples=total,
                    kind=decoded.kind,
                    format=decoded.fmt,
                    classes=len(decoded.classes),
                    digest=digest,
                    sensitivity=sensitivity,
                    source=decoded.source_name,
                    shards=len(refs),
                    ledger_id=ledger_id,
                    overlaps=[{k: o[k] for k in ("dataset", "records", "of", "lineage")} for o in overlaps],
                )
        except (StrongroomError, OSError) as exc:
            with contextlib.suppress(StrongroomError, OSError):  # drop objects the catalog never took
                live = referenced_objects(self.session.read_catalog())
                for ref in refs:
                    if ref["id"] not in live:
                        self.session.objects.remove(ref["id"])
            with contextlib.suppress(StrongroomError, OSError):
                self.session.record(
                    "dataset.import",
                    name,
                    "failed",
                    error=exc.title if isinstance(exc, StrongroomError) else type(exc).__name__,
                )
            raise
        info = self.info(name, None, decide=False)
        info["overlaps"] = overlaps
        return info

    def overlaps(self, catalog: Catalog, name: str) -> list[dict[str, Any]]:
        """The datasets whose records `name` shares, each with the spend its lineage carries:
        [{"dataset", "records", "of", "lineage", "deleted", "epsilon", "message"}]."""
        from vault.privacy.accounting import default_delta

        rows = lineage.dataset_overlaps(catalog.get("lineage", {}), name, catalog["datasets"])
        for row in rows:
            row["epsilon"] = ledger.own_epsilon(catalog["ledger"], row["lineage"], default_delta(row["of"]))
            row["message"] = lineage.overlap_phrase(row)
        return rows

    # ------------------------------------------------------------------ load
    def load(self, name: str, *, purpose: str, version: int | None = None) -> LoadedDataset:
        """Decrypt a dataset version into memory, recorded as a read for `purpose`. Plaintext never
        touches disk. Not a door method: the caller (training, evaluation, sampling) has decided."""
        check_choice(purpose, PURPOSES, "purpose")
        catalog = self.session.read_catalog()
        entry = self.entry(catalog, name)
        ver = self.version(entry, name, version)
        self.session.record(
            "dataset.read",
            name,
            "ok",
            version=ver["version"],
            purpose=purpose,
            samples=ver["samples"],
            digest=ver["digest"],
        )
        labels, images, texts = self._records(ver)
        import torch

        x: Any = torch.from_numpy(images) if images is not None else texts
        return LoadedDataset(
            name=name,
            version=ver["version"],
            kind=ver["kind"],
            classes=list(ver["classes"]),
            x=x,
            y=torch.from_numpy(labels),
            digest=ver["digest"],
            ledger_id=entry["ledger_id"],
            sensitivity=entry["sensitivity"],
            info=public_info(name, entry, ver),
        )

    def _records(self, ver: DatasetVersion) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
        """A version's labels and records (images or texts), decrypted in memory."""
        key = self.session.data_key(ver["wrapped_key"])
        labels = np.empty(ver["samples"], dtype=np.int64)
        images: np.ndarray | None = None
        texts: list[str] | None = None
        if ver["kind"] == "image":
            images = np.empty([ver["samples"], *(ver["shape"] or [])], dtype=np.uint8)
        else:
            texts = []
        for ref in ver["shards"]:
            content = shards.unpack(ver["kind"], self.session.get_object(ref, key), f"object {ref['id']}")
            start, stop = ref["start"], ref["stop"]
            if len(content.labels) != stop - start:
                raise StrongroomError(
                    f"object {ref['id']} holds the wrong number of records", "run `strongroom verify`"
                )
            labels[start:stop] = content.labels
            if images is not None:
                images[start:stop] = content.images
            else:
                assert texts is not None and content.texts is not None
                texts.extend(content.texts)
        return labels, images, texts

    def index_records(self) -> list[dict[str, Any]]:
        """Give every dataset version imported before the record index its set of keyed record
        hashes, and link it to the sets it overlaps (at an operator's or admin's open; recorded as
        `ledger.lineage`). Returns what was indexed."""
        session = self.session
        if session.read_only or session.vault_keys.data is None:
            return []
        index = RecordIndex(session)
        if not index.missing(session.read_catalog()):
            return []
        done: list[dict[str, Any]] = []
        with session.writing() as catalog:
            for name, number in index.missing(catalog):
                entry = catalog["datasets"][name]
                ver = self.version(entry, name, number)
                session.record("dataset.read", name, "ok", version=number, purpose="lineage")
                _, images, texts = self._records(ver)
                blob = index.hashes(catalog, ver["kind"], images, texts)
                shared, _ = index.compare(catalog, blob)
                index.store(catalog, blob, shared, ledger_id=entry["ledger_id"], dataset=name, version=number)
                done.append({"dataset": name, "version": number, "records": lineage.count(blob)})
            links = len(catalog["lineage"]["links"])
        session.record("ledger.lineage", session.vault_id, "ok", indexed=done, links=links)
        return done

    def sample(self, name: str, n: int = 5, *, version: int | None = None) -> Sample:
        """A few records, decrypted on request: an audited read that policy may refuse."""
        facts = self.facts(name)
        self.session.decide("dataset.sample", dataset=facts)
        data = self.load(name, purpose="sample", version=version)
        n = max(0, min(int(n), len(data)))
        idx = np.linspace(0, len(data) - 1, num=n, dtype=np.int64) if n else np.array([], dtype=np.int64)
        records: list[SampledRecord] = []
        for i in idx.tolist():
            label = data.classes[int(data.y[i])]
            if data.kind == "image":
                records.append({"index": i, "label": label, "pixels": data.x[i].tolist()})
            else:
                records.append({"index": i, "label": label, "text": data.x[i]})
        return {"name": name, "version": data.version, "kind": data.kind, "records": records}

    # ------------------------------------------------------------------ delete
    def delete(self, name: str) -> Deleted:
        """Destroy a dataset: its data keys leave the catalog (crypto-shredding), then its objects go."""
        facts = self.facts(name)
        self.session.decide("dataset.delete", dataset=facts)
        with self.session.writing() as catalog:
            entry = self.entry(catalog, name)
            doomed = [ref["id"] for v in entry["versions"] for ref in v["shards"]]
            del catalog["datasets"][name]
            RecordIndex(self.session).mark_deleted(catalog, name)
            self.session.record(
                "dataset.delete",
                name,
                "ok",
                versions=len(entry["versions"]),
                objects=len(doomed),
                ledger_kept=entry["ledger_id"],
            )
        for object_id in doomed:
            self.session.objects.remove(object_id)
        return {"name": name, "versions": len(entry["versions"]), "objects_removed": len(doomed)}
