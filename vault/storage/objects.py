"""Sealed objects under `<vault>/objects/<2 hex>/<object id>`, each bound by its context to the vault,
its kind, its owner and its name, and sealed with the data key its owner holds.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from vault.crypto.chunked import open_sealed_file, sealing
from vault.errors import IntegrityError
from vault.storage.catalog import ObjectRef
from vault.storage.files import atomic_write
from vault.storage.layout import OBJECTS_DIR, TMP_PREFIX


def object_context(vault_id: str, kind: str, ident: str, object_id: str) -> bytes:
    """The context that binds a sealed object to its vault, kind, owner and name.

    `ident` names the owner, e.g. "dataset=mnist/version=2/shard=0" or "model=m-1a2b".
    A ciphertext moved to another name, kind or vault fails to open.
    """
    return f"strongroom/v1|vault={vault_id}|kind={kind}|{ident}|object={object_id}".encode()


class ObjectStore:
    """Sealed objects under `<vault>/objects/<2 hex>/<object id>`, each with the key its owner holds."""

    def __init__(self, root: Path, vault_id: str) -> None:
        self.root = root
        self.dir = root / OBJECTS_DIR
        self.vault_id = vault_id

    def path_of(self, object_id: str) -> Path:
        if len(object_id) != 32 or any(c not in "0123456789abcdef" for c in object_id):
            raise IntegrityError(
                f"catalog names a malformed object id {object_id!r}", "run `strongroom verify`"
            )
        return self.dir / object_id[:2] / object_id

    def put(self, kind: str, ident: str, data: bytes | memoryview, key: bytes) -> ObjectRef:
        object_id = secrets.token_hex(16)
        path = self.path_of(object_id)
        # The sealed object goes from the thread's reusable workspace straight to the file.
        with sealing(key, object_context(self.vault_id, kind, ident, object_id), data) as sealed:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, sealed)
            sealed_size = len(sealed)
        return {"id": object_id, "kind": kind, "ident": ident, "size": len(data), "sealed_size": sealed_size}

    def get(self, ref: ObjectRef, key: bytes) -> bytes:
        path = self.path_of(ref["id"])
        try:
            # Read into the thread's reusable workspace and decrypt there: no fresh buffer but the result.
            return open_sealed_file(
                key, object_context(self.vault_id, ref["kind"], ref["ident"], ref["id"]), path
            )
        except FileNotFoundError:
            raise IntegrityError(
                f"object {ref['id']} ({ref['kind']} {ref['ident']}) is missing",
                "restore the vault from a backup; `strongroom verify` lists every affected object",
                detail={"object": ref["id"]},
            ) from None
        except IntegrityError:
            raise IntegrityError(
                f"object {ref['id']} ({ref['kind']} {ref['ident']}) failed authentication: it was altered or damaged",
                "restore the vault from a backup; `strongroom verify` lists every affected object",
                detail={"object": ref["id"]},
            ) from None

    def remove(self, object_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path_of(object_id).unlink()

    def all_ids(self) -> Iterator[str]:
        if not self.dir.is_dir():
            return
        for sub in sorted(self.dir.iterdir()):
            if sub.is_dir():
                for f in sorted(sub.iterdir()):
                    if not f.name.startswith(TMP_PREFIX):
                        yield f.name

    def sweep(self, referenced: set[str]) -> list[str]:
        """Remove temp files and objects no catalog entry names (left by an interrupted writer)."""
        removed: list[str] = []
        for tmp in self.root.rglob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        for object_id in list(self.all_ids()):
            if object_id not in referenced:
                self.remove(object_id)
                removed.append(object_id)
        return removed
