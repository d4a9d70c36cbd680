"""Models out, never data: export a model's weights and card with a signed manifest.

The export directory holds `model.safetensors`, `card.json`, `card.md`, `MANIFEST.sha256`
(`sha256sum -c` format), `MANIFEST.sig` (raw Ed25519 signature over the manifest's bytes) and
`signer.pub.pem` (the vault's audit public key; compare it with the one the auditor holds).
Check with: `sha256sum -c MANIFEST.sha256` and
`openssl pkeyutl -verify -pubin -inkey signer.pub.pem -rawin -in MANIFEST.sha256 -sigfile MANIFEST.sig`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vault import keyring, store
from vault.errors import AuthError, InputError, StrongroomError

EXPORT_FILES = ("model.safetensors", "card.json", "card.md")


class ExportMixin:
    """`Vault.export()`: mixed into `vault.Vault`."""

    path: Path
    user: str
    role: str
    _read_catalog: Callable[..., dict[str, Any]]
    _record: Callable[..., dict[str, Any]]
    _decide: Callable[..., Any]
    _get_object: Callable[..., bytes]
    _signing_key: Callable[[], Any]
    dataset_facts: Callable[[str], dict[str, Any]]
    _model_entry: Callable[[dict[str, Any], str], dict[str, Any]]  # from TrainingMixin

    def _authenticate_approver(self, approver: str, passphrase: bytes) -> tuple[str, str]:
        if approver == self.user:
            self._record("model.export.approval", approver, "denied", reason="approver is the requester")
            raise InputError(
                f"{approver!r} cannot approve their own export",
                "a second person (another operator or admin) must approve: --approver NAME",
            )
        header = store.read_header(self.path)
        try:
            _, _, slot = keyring.unlock(header, approver, passphrase)
        except AuthError:
            self._record("model.export.approval", approver, "denied", reason="approver authentication failed")
            raise AuthError(
                "approver authentication failed: unknown user or wrong passphrase",
                "check --approver / STRONGROOM_APPROVER and STRONGROOM_APPROVER_PASSPHRASE",
            ) from None
        self._record("model.export.approval", approver, "ok", approver_role=slot["role"])
        return approver, slot["role"]

    def model_files(self, model_id: str) -> dict[str, bytes]:
        """The exportable files of a model, decrypted in memory (weights, card JSON, card Markdown)."""
        objects = self._model_entry(self._read_catalog(), model_id).get("objects", {})
        missing = [name for name in EXPORT_FILES if name not in objects]
        if missing:
            raise StrongroomError(f"model {model_id} lacks {', '.join(missing)}", "train it again")
        return {name: self._get_object(objects[name]) for name in EXPORT_FILES}

    def export(
        self,
        model_id: str,
        out_dir: Path | str,
        *,
        approver: str | None = None,
        approver_passphrase: bytes | None = None,
    ) -> dict[str, Any]:
        """Write a model's files and a signed manifest to `out_dir` (which must not exist or be empty)."""
        out = Path(out_dir).expanduser()
        catalog = self._read_catalog()
        if model_id not in catalog["models"] and model_id in catalog["datasets"]:
            # Raw records never leave: the policy's export.raw_data rule refuses, and says so.
            self._decide("dataset.export", dataset=self.dataset_facts(model_id))
        model = self._model_entry(catalog, model_id)
        approvals: list[tuple[str, str]] = []
        if approver:
            approvals.append(self._authenticate_approver(approver, approver_passphrase or b""))
        dataset = dict(model.get("dataset_facts") or {})
        self._decide(
            "model.export",
            target=model_id,
            model=model.get("model"),
            dataset=dataset or None,
            dp=model.get("dp"),
            epsilon=model.get("epsilon"),
            delta=model.get("delta"),
            approvals=tuple(approvals),
        )
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InputError(f"{out} exists and is not an empty directory", "choose a new --out directory")
        files = self.model_files(model_id)
        manifest = "".join(
            f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
        )
        signing_key = self._signing_key()
        signature = signing_key.sign(manifest.encode("utf-8"))
        out.mkdir(parents=True, exist_ok=True)
        written = []
        try:
            for name, data in [
                *files.items(),
                ("MANIFEST.sha256", manifest.encode()),
                ("MANIFEST.sig", signature),
                ("signer.pub.pem", signing_key.public_pem()),
            ]:
                store.atomic_write(out / name, data)
                os.chmod(out / name, 0o644)
                written.append(name)
        except BaseException:
            for name in written:
                with contextlib.suppress(FileNotFoundError):
                    (out / name).unlink()
            raise
        self._record(
            "model.export",
            model_id,
            "ok",
            out=str(out),
            files=sorted(written),
            manifest_sha256=hashlib.sha256(manifest.encode()).hexdigest(),
            approvals=[{"user": u, "role": r} for u, r in approvals],
        )
        return {
            "model": model_id,
            "out": str(out),
            "files": sorted(written),
            "approvals": [{"user": u, "role": r} for u, r in approvals],
        }
