"""The vault's storage core: atomic files, the writer lock, sealed objects and the sealed catalog.

Writes follow restic's order: a temp file inside the vault, write, check the length, fsync,
rename, fsync the directory; objects first, the catalog last. So a crash at any instant leaves
the vault as it was before or after an action: objects written by an action that did not reach
its catalog write are unreferenced, invisible, and removed by the next writer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vault.crypto import open_sealed, seal
from vault.crypto.chunked import open_sealed_file, sealing
from vault.errors import InputError, IntegrityError, NotFound, StrongroomError, VaultBusy

FORMAT_NAME = "strongroom-vault"
FORMAT_VERSION = 1
HEADER_FILE = "vault.json"
CATALOG_FILE = "catalog.sealed"
LOCK_FILE = "lock"
OBJECTS_DIR = "objects"
TMP_PREFIX = ".tmp-"


def utc_now() -> str:
    """The current time as RFC 3339 UTC with microseconds, as every record in the vault writes it."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_vault_path() -> Path:
    """`$STRONGROOM_VAULT`, else `<user data dir>/strongroom/vault` (XDG_DATA_HOME on Linux)."""
    env = os.environ.get("STRONGROOM_VAULT")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "strongroom" / "vault"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full_error(path: Path) -> StrongroomError:
    return StrongroomError(
        f"the disk holding {path.parent} is full; nothing was changed",
        "free space on that disk (or choose a vault on another disk) and run the command again",
    )


def atomic_write(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix."""
    tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += os.write(fd, view[written:])
            if os.fstat(fd).st_size != len(view):
                raise IntegrityError(
                    f"short write to {tmp.name}: expected {len(view)} bytes",
                    "check the disk for errors; the vault was not changed",
                )
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise disk_full_error(path) from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def read_header(root: Path) -> dict[str, Any]:
    """Read and shape-check `vault.json`; says plainly when `root` is not a vault."""
    header_path = root / HEADER_FILE
    if not root.exists():
        raise NotFound(
            f"no vault at {root}",
            "create one with `strongroom init`, or point --vault / STRONGROOM_VAULT at an existing vault",
        )
    if not header_path.is_file():
        raise NotFound(
            f"{root} is not a Strongroom vault (no {HEADER_FILE})",
            "point --vault / STRONGROOM_VAULT at a vault directory, or create one with `strongroom init`",
        )
    try:
        header = json.loads(header_path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IntegrityError(
            f"{header_path} is damaged (not valid JSON)",
            "restore vault.json from a backup; `strongroom verify` lists what else is affected",
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise NotFound(
            f"{root} is not a Strongroom vault ({HEADER_FILE} has another format)",
            "point --vault / STRONGROOM_VAULT at a vault directory",
        )
    if header.get("version") != FORMAT_VERSION:
        raise IntegrityError(
            f"vault format version {header.get('version')!r} is not supported (this build reads {FORMAT_VERSION})",
            "open it with the Strongroom release that wrote it",
        )
    for key, kind in (("vault_id", str), ("slots", list), ("mac", str)):
        if not isinstance(header.get(key), kind):
            raise IntegrityError(
                f"{HEADER_FILE} field {key!r} is missing or damaged", "restore vault.json from a backup"
            )
    return header


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class VaultLock:
    """One writer at a time: an exclusive flock on `<vault>/lock`; a second writer is told, not hung."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (process {int(self.path.read_text().strip() or 0)})"
            raise VaultBusy(
                f"vault is busy: another strongroom process is writing to it{holder}",
                "wait for that command to finish, then run this one again",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> VaultLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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

    def put(self, kind: str, ident: str, data: bytes | memoryview, key: bytes) -> dict[str, Any]:
        object_id = secrets.token_hex(16)
        path = self.path_of(object_id)
        # The sealed object goes from the thread's reusable workspace straight to the file.
        with sealing(key, object_context(self.vault_id, kind, ident, object_id), data) as sealed:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, sealed)
            sealed_size = len(sealed)
        return {"id": object_id, "kind": kind, "ident": ident, "size": len(data), "sealed_size": sealed_size}

    def get(self, ref: dict[str, Any], key: bytes) -> bytes:
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


def catalog_context(vault_id: str) -> bytes:
    return f"strongroom/v1|vault={vault_id}|kind=catalog".encode()


def read_catalog(root: Path, vault_id: str, key: bytes, filename: str = CATALOG_FILE) -> dict[str, Any]:
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
    return catalog


def seal_catalog(vault_id: str, key: bytes, catalog: dict[str, Any]) -> bytes:
    return seal(key, catalog_context(vault_id), canonical_json(catalog))


def write_catalog(root: Path, vault_id: str, key: bytes, catalog: dict[str, Any]) -> None:
    atomic_write(root / CATALOG_FILE, seal_catalog(vault_id, key, catalog))


def check_name(name: str, what: str = "dataset") -> str:
    """Names become parts of contexts and screens: refuse path tricks and control characters."""
    bad = (
        not name
        or len(name) > 64
        or "/" in name
        or "\\" in name
        or name in (".", "..")
        or ".." in name
        or name.startswith("-")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
        or "|" in name
        or "=" in name
    )
    if bad:
        raise InputError(
            f"invalid {what} name {name!r}",
            "use 1-64 characters without '/', '\\', '..', '|', '=', control characters or a leading '-', "
            "e.g. clinic-xrays-2026",
        )
    return name
