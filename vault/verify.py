"""Vault verification: authenticate the header, the catalog and every object, and re-derive digests.

Findings are structured values (which object, what was expected, what was found) so the CLI can
print them and the TUI can list them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from vault import keyring, shards, store
from vault.errors import IntegrityError


@dataclass(frozen=True)
class Finding:
    object: str
    kind: str
    expected: str
    found: str
    message: str
    severity: str = "error"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VerifyProgress:
    done: int
    total: int
    object: str


class VerifyMixin:
    """`Vault.verify()`: mixed into `vault.Vault`."""

    path: Any
    _master: bytes
    _objects: store.ObjectStore
    _read_catalog: Callable[..., dict[str, Any]]
    _record: Callable[..., dict[str, Any]]
    _data_key: Callable[[str], bytes]
    _decide: Callable[..., Any]

    def verify(self, on_event: Callable[[Any], None] | None = None) -> dict[str, Any]:
        self._decide("verify", target="vault")
        findings: list[Finding] = []
        try:
            keyring.check_header_mac(self._master, store.read_header(self.path))
        except IntegrityError as exc:
            findings.append(Finding("vault.json", "header", "valid MAC", "mismatch", exc.title))
        catalog = self._read_catalog()  # raises IntegrityError naming the catalog when it fails
        jobs: list[tuple[str, dict[str, Any], dict[str, Any] | None, str]] = []
        for name, entry in sorted(catalog["datasets"].items()):
            for ver in entry["versions"]:
                jobs.append(("dataset", {"name": name, **ver}, None, name))
        for model_id, model in sorted(catalog["models"].items()):
            for ref in model.get("objects", {}).values():
                jobs.append(("model", {"name": model_id}, ref, model_id))
        total = sum(len(j[1].get("shards", [])) if j[0] == "dataset" else 1 for j in jobs)
        done = 0
        checked = 0
        for kind, meta, ref, subject in jobs:
            if kind == "dataset":
                self._record("dataset.read", subject, "ok", version=meta["version"], purpose="verify")
                done, found = self._verify_version(meta, findings, on_event, done, total)
                checked += found
            else:
                assert ref is not None
                try:
                    self._objects.get(ref, self._data_key(ref["wrapped_key"]))
                    checked += 1
                except IntegrityError as exc:
                    findings.append(
                        Finding(ref["id"], f"model {subject}", "authentic object", "failed", exc.title)
                    )
                done += 1
                if on_event:
                    on_event(VerifyProgress(done, total, ref["id"]))
        referenced = set()
        for _, meta, ref, _ in jobs:
            referenced.update(s["id"] for s in meta.get("shards", []))
            if ref is not None:
                referenced.add(ref["id"])
        for object_id in self._objects.all_ids():
            if object_id not in referenced:
                findings.append(
                    Finding(
                        object_id,
                        "object",
                        "referenced by the catalog",
                        "unreferenced",
                        "left by an interrupted write; the next write removes it",
                        "warning",
                    )
                )
        errors = [f for f in findings if f.severity == "error"]
        report = {
            "ok": not errors,
            "objects_checked": checked,
            "datasets": len(catalog["datasets"]),
            "models": len(catalog["models"]),
            "findings": [f.to_json() for f in findings],
        }
        self._record(
            "vault.verify",
            self.vault_id if hasattr(self, "vault_id") else "vault",
            "ok" if report["ok"] else "failed",
            objects=checked,
            findings=len(errors),
        )
        return report

    def _verify_version(
        self, ver: dict[str, Any], findings: list[Finding], on_event: Any, done: int, total: int
    ) -> tuple[int, int]:
        name = ver["name"]
        label = f"dataset {name} v{ver['version']}"
        try:
            key = self._data_key(ver["wrapped_key"])
        except IntegrityError as exc:
            findings.append(
                Finding(f"catalog:{name}/v{ver['version']}", label, "data key unwraps", "failed", exc.title)
            )
            return done + len(ver["shards"]), 0
        import numpy as np

        labels: list[Any] = []
        images: list[Any] = []
        texts: list[str] = []
        intact = True
        checked = 0
        for ref in ver["shards"]:
            try:
                content = shards.unpack(ver["kind"], self._objects.get(ref, key), f"object {ref['id']}")
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
                        ref["id"],
                        f"{label} shard {ref['ident'].rsplit('=', 1)[-1]}",
                        "authentic object",
                        "failed authentication or missing",
                        exc.title,
                    )
                )
            done += 1
            if on_event:
                on_event(VerifyProgress(done, total, ref["id"]))
        if intact:
            all_labels = np.concatenate(labels) if labels else np.empty(0, dtype=np.int64)
            all_images = np.concatenate(images) if images else None
            digest = shards.content_digest(
                ver["kind"], ver["classes"], all_labels, all_images, texts if ver["kind"] == "text" else None
            )
            if digest != ver["digest"]:
                findings.append(
                    Finding(
                        f"catalog:{name}/v{ver['version']}",
                        label,
                        ver["digest"],
                        digest,
                        "records do not match the recorded content digest",
                    )
                )
        return done, checked
