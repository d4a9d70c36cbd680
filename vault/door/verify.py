"""Verification through the door: authenticate the header, the catalog and every object, and re-derive
the content digests.

Findings are structured values (which object, what was expected, what was found) so the CLI can
print them and the TUI can list them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vault.door.results import VerifyReport
from vault.door.session import Session
from vault.errors import IntegrityError
from vault.findings import Finding, VerifyProgress
from vault.privacy import ledgerlog, lineage
from vault.storage import shards
from vault.storage.catalog import DatasetVersion, ObjectRef, referenced_objects


class VerifyService:
    """The door's verification."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def verify(self, on_event: Callable[[Any], None] | None = None) -> VerifyReport:
        session = self.session
        session.decide("verify", target="vault")
        findings: list[Finding] = []
        try:
            session.fresh_header()
        except IntegrityError as exc:
            findings.append(
                Finding(
                    object="vault.json",
                    kind="header",
                    expected="the authority's signature" if session.format_version >= 2 else "valid MAC",
                    found="mismatch",
                    message=exc.title,
                )
            )
        catalog = session.read_catalog()  # raises IntegrityError naming the catalog when it fails
        versions = [(name, v) for name, e in sorted(catalog["datasets"].items()) for v in e["versions"]]
        model_refs = [
            (f"model {mid}", ref)
            for mid, m in sorted(catalog["models"].items())
            for ref in m["objects"].values()
        ]
        model_refs += [
            (f"record index {set_id}", stored["object"])
            for set_id, stored in sorted(catalog.get("lineage", {}).get("sets", {}).items())
        ]
        progress = _Progress(sum(len(v["shards"]) for _, v in versions) + len(model_refs), on_event)
        checked = 0
        full = session.vault_keys.data is not None
        if not full:  # an auditor: no data key, so objects are checked for presence and size only
            checked = self._verify_presence(versions, model_refs, findings, progress)
            versions, model_refs = [], []
        for name, version in versions:
            session.record("dataset.read", name, "ok", version=version["version"], purpose="verify")
            checked += self._verify_version(name, version, findings, progress)
        for model_id, ref in model_refs:
            try:
                session.objects.get(ref, session.data_key(ref["wrapped_key"]))
                checked += 1
            except IntegrityError as exc:
                findings.append(
                    Finding(
                        object=ref["id"],
                        kind=model_id,
                        expected="authentic object",
                        found="failed",
                        message=exc.title,
                    )
                )
            progress.step(ref)
        findings += _ledger_findings(session, catalog)
        referenced = referenced_objects(catalog)
        for object_id in session.objects.all_ids():
            if object_id not in referenced:
                findings.append(
                    Finding(
                        object=object_id,
                        kind="object",
                        expected="referenced by the catalog",
                        found="unreferenced",
                        message="left by an interrupted write; the next write removes it",
                        severity="warning",
                    )
                )
        errors = [f for f in findings if f.severity == "error"]
        report: VerifyReport = {
            "scope": "full" if full else "presence",
            "ok": not errors,
            "objects_checked": checked,
            "datasets": len(catalog["datasets"]),
            "models": len(catalog["models"]),
            "findings": [f.to_json() for f in findings],
        }
        session.record(
            "vault.verify",
            session.vault_id,
            "ok" if report["ok"] else "failed",
            objects=checked,
            findings=len(errors),
        )
        return report

    def _verify_presence(
        self,
        versions: list[tuple[str, DatasetVersion]],
        model_refs: list[tuple[str, ObjectRef]],
        findings: list[Finding],
        progress: _Progress,
    ) -> int:
        """Without a data key: every object the catalog names exists with the sealed size it records."""
        checked = 0
        refs = [(f"dataset {n} v{v['version']}", ref) for n, v in versions for ref in v["shards"]]
        refs += model_refs
        for label, ref in refs:
            path = self.session.objects.path_of(ref["id"])
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = None
            if size != ref["sealed_size"]:
                findings.append(
                    Finding(
                        object=ref["id"],
                        kind=label,
                        expected=f"{ref['sealed_size']} sealed bytes",
                        found="missing" if size is None else f"{size} bytes",
                        message="an object the catalog names is missing or has another size",
                    )
                )
            else:
                checked += 1
            progress.step(ref)
        return checked

    def _verify_version(
        self, name: str, ver: DatasetVersion, findings: list[Finding], progress: _Progress
    ) -> int:
        """Authenticate a version's shards and re-derive its digest; returns the shards that opened."""
        label = f"dataset {name} v{ver['version']}"
        where = f"catalog:{name}/v{ver['version']}"
        try:
            key = self.session.data_key(ver["wrapped_key"])
        except IntegrityError as exc:
            findings.append(
                Finding(
                    object=where, kind=label, expected="data key unwraps", found="failed", message=exc.title
                )
            )
            for ref in ver["shards"]:
                progress.step(ref)
            return 0
        import numpy as np

        labels: list[Any] = []
        images: list[Any] = []
        texts: list[str] = []
        intact = True
        checked = 0
        for ref in ver["shards"]:
            try:
                content = shards.unpack(
                    ver["kind"], self.session.objects.get(ref, key), f"object {ref['id']}"
                )
                checked += 1
                labels.append(content.labels)
                if content.images is not None:
                    images.append(content.images)
                else:
                    texts.extend(content.texts or [])
            except IntegrityError as exc:
                intact = False
                findings.append(
                    Finding(
                        object=ref["id"],
                        kind=f"{label} shard {ref['ident'].rsplit('=', 1)[-1]}",
                        expected="authentic object",
                        found="failed authentication or missing",
                        message=exc.title,
                    )
                )
            progress.step(ref)
        if intact:
            all_labels = np.concatenate(labels) if labels else np.empty(0, dtype=np.int64)
            all_images = np.concatenate(images) if images else None
            digest = shards.content_digest(
                ver["kind"], ver["classes"], all_labels, all_images, texts if ver["kind"] == "text" else None
            )
            if digest != ver["digest"]:
                findings.append(
                    Finding(
                        object=where,
                        kind=label,
                        expected=ver["digest"],
                        found=digest,
                        message="records do not match the recorded content digest",
                    )
                )
        return checked


class _Progress:
    """Counts objects checked and reports each to the caller's callback."""

    def __init__(self, total: int, on_event: Callable[[Any], None] | None) -> None:
        self.total, self.done, self.on_event = total, 0, on_event

    def step(self, ref: ObjectRef) -> None:
        self.done += 1
        if self.on_event is not None:
            self.on_event(VerifyProgress(done=self.done, total=self.total, stage="objects", object=ref["id"]))


def _ledger_findings(session: Session, catalog: dict[str, Any]) -> list[Finding]:
    """The catalog's ledgers against the ones the log recorded, rebuilt from the `ledger.state`
    lines the vault wrote (sealed) only: a line written by hand cannot vouch for an edited ledger.
    Each such line is a finding of its own."""
    places: list[int] = []
    states = session.audit.entries(action=ledgerlog.ACTION, positions=places)
    unsealed = session.audit.unsealed()
    findings = [
        Finding(
            kind="ledger",
            object=f"audit:{place}",
            expected="ledger states written by the vault (sealed)",
            found="a ledger.state line with no valid seal",
            message="written by someone without the vault's keys: not used to rebuild the ledgers",
        )
        for place in places
        if place in unsealed
    ]
    sealed = [state for state, place in zip(states, places, strict=True) if place not in unsealed]
    return findings + ledgerlog.differences(catalog["ledger"], lineage.links_map(catalog["lineage"]), sealed)
