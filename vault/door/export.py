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
from pathlib import Path

from vault.door.datasets import DatasetService
from vault.door.keys import KeyService
from vault.door.results import Exported
from vault.door.session import Session
from vault.door.training import TrainingService
from vault.errors import AuthError, InputError, StrongroomError
from vault.storage.files import atomic_write

EXPORT_FILES = ("model.safetensors", "card.json", "card.md")


class ExportService:
    """The door's export."""

    def __init__(
        self, session: Session, datasets: DatasetService, training: TrainingService, keys: KeyService
    ) -> None:
        self.session = session
        self.datasets = datasets
        self.training = training
        self.keys = keys

    def _authenticate_approver(self, approver: str, passphrase: bytes) -> tuple[str, str]:
        session = self.session
        if approver == session.user:
            session.record("model.export.approval", approver, "denied", reason="approver is the requester")
            raise InputError(
                f"{approver!r} cannot approve their own export",
                "a second person (another operator or admin) must approve: --approver NAME",
            )
        try:
            role = self.keys.authenticate(approver, passphrase)
        except AuthError:
            session.record(
                "model.export.approval", approver, "denied", reason="approver authentication failed"
            )
            raise AuthError(
                "approver authentication failed: unknown user or wrong passphrase",
                "check --approver / STRONGROOM_APPROVER and STRONGROOM_APPROVER_PASSPHRASE",
            ) from None
        session.record("model.export.approval", approver, "ok", approver_role=role)
        return approver, role

    def _model_files(self, model_id: str) -> dict[str, bytes]:
        """The exportable files of a model, decrypted in memory (weights, card JSON, card Markdown)."""
        objects = self.training.model_entry(self.session.read_catalog(), model_id)["objects"]
        missing = [name for name in EXPORT_FILES if name not in objects]
        if missing:
            raise StrongroomError(f"model {model_id} lacks {', '.join(missing)}", "train it again")
        return {name: self.session.get_object(objects[name]) for name in EXPORT_FILES}

    def export(
        self,
        model_id: str,
        out_dir: Path | str,
        *,
        approver: str | None = None,
        approver_passphrase: bytes | None = None,
    ) -> Exported:
        """Write a model's files and a signed manifest to `out_dir` (which must not exist or be empty)."""
        out = Path(out_dir).expanduser()
        catalog = self.session.read_catalog()
        if model_id not in catalog["models"] and model_id in catalog["datasets"]:
            # Raw records never leave: the policy's export.raw_data rule refuses, and says so.
            self.session.decide("dataset.export", dataset=self.datasets.facts(model_id))
        model = self.training.model_entry(catalog, model_id)
        approvals: list[tuple[str, str]] = []
        if approver:
            approvals.append(self._authenticate_approver(approver, approver_passphrase or b""))
        dataset = dict(model["dataset_facts"] or {})
        self.session.decide(
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
        files = self._model_files(model_id)
        manifest = "".join(
            f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
        )
        signing_key = self.session.signing_key()
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
                atomic_write(out / name, data)
                os.chmod(out / name, 0o644)
                written.append(name)
        except BaseException:
            for name in written:
                with contextlib.suppress(FileNotFoundError):
                    (out / name).unlink()
            raise
        self.session.record(
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
