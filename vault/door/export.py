"""Models out, never data: export a model's weights and card with a signed manifest and the
signatures of the people who asked for and approved it.

The export directory holds `model.safetensors`, `model.onnx` (the same weights as an ONNX graph),
`preprocess.json` (raw input to the graph's input, output to a label), `predict.py` (a reference
that needs only numpy, pillow and onnxruntime), `card.json`, `card.md` (with the ONNX opset),
`export.json` (what was exported, by whom, when), `MANIFEST.sha256` (`sha256sum -c` format, over all
of these), `MANIFEST.sig` and `signer.pub.pem` (the vault's log key over the manifest's bytes), and
`approvals.json`: the requester's and each approver's Ed25519 signature over the manifest, with the
certificates the vault's authority signed for them (`authority.pub.pem` is that authority's key).
Check with: `sha256sum -c MANIFEST.sha256`, then docs/EXPORT.md's openssl recipe for each signer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from vault.crypto.signing import public_pem
from vault.door.approvals import Signer, approvals_document, signer
from vault.door.datasets import DatasetService
from vault.door.keys import KeyService
from vault.door.results import Exported
from vault.door.session import Session
from vault.door.training import TrainingService
from vault.errors import AuthError, InputError, StrongroomError
from vault.storage import keyring
from vault.storage.files import atomic_write, utc_now

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

    def _authenticate_approver(self, approver: str, passphrase: bytes) -> Signer:
        session = self.session
        if approver == session.user:
            session.record("model.export.approval", approver, "denied", reason="approver is the requester")
            raise InputError(
                f"{approver!r} cannot approve their own export",
                "a second person (another operator or admin) must approve: --approver NAME",
            )
        try:
            role, secrets = self.keys.authenticate(approver, passphrase)
        except AuthError:
            session.record(
                "model.export.approval", approver, "denied", reason="approver authentication failed"
            )
            raise AuthError(
                "approver authentication failed: unknown user or wrong passphrase",
                "check --approver / STRONGROOM_APPROVER and STRONGROOM_APPROVER_PASSPHRASE",
            ) from None
        approval = signer(session.fresh_header(), approver, role, "approver", secrets.signing_key())
        session.record(
            "model.export.approval",
            approver,
            "ok",
            approver_role=role,
            fingerprint=keyring.fingerprint(approval.key.public_raw()),
        )
        return approval

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
        """Write a model's files, signed, to `out_dir` (which must not exist or be empty)."""
        session = self.session
        out = Path(out_dir).expanduser()
        catalog = session.read_catalog()
        if model_id not in catalog["models"] and model_id in catalog["datasets"]:
            # Raw records never leave: the policy's export.raw_data rule refuses, and says so.
            session.decide("dataset.export", dataset=self.datasets.facts(model_id))
        model = self.training.model_entry(catalog, model_id)
        approvals: list[Signer] = []
        if approver:
            approvals.append(self._authenticate_approver(approver, approver_passphrase or b""))
        dataset = dict(model["dataset_facts"] or {})
        session.decide(
            "model.export",
            target=model_id,
            model=model.get("model"),
            dataset=dataset or None,
            dp=model.get("dp"),
            epsilon=model.get("epsilon"),
            delta=model.get("delta"),
            approvals=tuple((a.user, a.role) for a in approvals),
        )
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InputError(f"{out} exists and is not an empty directory", "choose a new --out directory")
        header = session.fresh_header()
        signers = [
            signer(header, session.user, session.role, "requester", session.secrets.signing_key()),
            *approvals,
        ]
        files = self._model_files(model_id)
        files.update(_portable_files(model, files))
        files["export.json"] = _export_record(session.vault_id, model_id, files, signers, header)
        manifest = "".join(
            f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
        ).encode("utf-8")
        log_key = session.signing_key()
        authority = keyring.unb64(header["authority"], "authority")
        bundle = {
            **files,
            "MANIFEST.sha256": manifest,
            "MANIFEST.sig": log_key.sign(manifest),
            "signer.pub.pem": log_key.public_pem(),
            "approvals.json": approvals_document(manifest, header, signers),
            "authority.pub.pem": public_pem(authority),
        }
        _write_bundle(out, bundle)
        summary = [{"user": s.user, "role": s.role} for s in approvals]
        session.record(
            "model.export",
            model_id,
            "ok",
            out=str(out),
            files=sorted(bundle),
            manifest_sha256=hashlib.sha256(manifest).hexdigest(),
            approvals=summary,
            signers=[
                {
                    "user": s.user,
                    "role": s.role,
                    "purpose": s.purpose,
                    "fingerprint": keyring.fingerprint(s.key.public_raw()),
                }
                for s in signers
            ],
        )
        return {"model": model_id, "out": str(out), "files": sorted(bundle), "approvals": summary}


def _portable_files(model: dict[str, Any], files: dict[str, bytes]) -> dict[str, bytes]:
    """model.onnx, preprocess.json and predict.py, and the card told of the ONNX graph."""
    from vault.train import bundle_predict, portable
    from vault.train.weights import weights_from_bytes

    weights = weights_from_bytes(files["model.safetensors"])
    graph = portable.onnx_model(weights, model["config"])
    document = portable.preprocess(model["config"], model["classes"], weights)
    card = json.loads(files["card.json"])
    card["onnx"] = portable.card_section(document)
    section = card["onnx"]
    markdown = files["card.md"].decode("utf-8").rstrip("\n") + (
        "\n\n## Outside the vault\n\n"
        f"`model.onnx`: ONNX opset {section['opset']}, exported with {section['exporter']}; input "
        f"`{section['input']['name']}` {section['input']['dtype']} {section['input']['shape']}, output "
        f"`{section['output']['name']}` {section['output']['dtype']} {section['output']['shape']}. "
        "`preprocess.json` states every step from a raw input to the input and from the output to a "
        "label; `predict.py` runs them with numpy, pillow and onnxruntime.\n"
    )
    return {
        "card.json": (json.dumps(card, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        "card.md": markdown.encode("utf-8"),
        "model.onnx": graph,
        "preprocess.json": (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        "predict.py": Path(bundle_predict.__file__).read_bytes(),
    }


def _export_record(
    vault_id: str, model_id: str, files: dict[str, bytes], signers: list[Signer], header: dict[str, object]
) -> bytes:
    """export.json: what was exported, from which vault, by whom and when (covered by the manifest)."""
    record = {
        "vault_id": vault_id,
        "model": model_id,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "requester": next({"user": s.user, "role": s.role} for s in signers if s.purpose == "requester"),
        "approvers": [{"user": s.user, "role": s.role} for s in signers if s.purpose == "approver"],
        "exported": utc_now(),
        "authority": keyring.fingerprint(keyring.unb64(header["authority"], "authority")),
    }
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _write_bundle(out: Path, bundle: dict[str, bytes]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    try:
        for name, data in bundle.items():
            atomic_write(out / name, data)
            os.chmod(out / name, 0o644)
            written.append(name)
    except BaseException:
        for name in written:
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
        raise
