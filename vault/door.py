"""The one door: every action on a vault goes through an opened `Vault`.

Each action asks the policy, writes its audit entry (durably), then acts. The CLI and the TUI are
thin faces over this class; neither reads nor writes vault files itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vault import keyring, netguard_state, store
from vault.audit import AuditLog
from vault.crypto import keys
from vault.crypto.signing import SigningKey
from vault.datasets import DatasetsMixin
from vault.errors import AuthError, IntegrityError, IsolationError, NotFound, StrongroomError
from vault.export import ExportMixin
from vault.keys_door import KeysMixin
from vault.netguard.vault_mixin import NetworkMixin
from vault.policy import Decision, Policy, Request
from vault.policy_door import PolicyMixin, policy_record
from vault.store import utc_now
from vault.train.service import TrainingMixin
from vault.verify import VerifyMixin

AUDIT_DIR = "audit"
CATALOG_NEXT = "catalog.next.sealed"


def empty_catalog(
    vault_id: str, signing_key: SigningKey, policy: Policy, created: str, user: str
) -> dict[str, Any]:
    return {
        "vault_id": vault_id,
        "generation": 0,
        "created": created,
        "signing_key": keyring.b64(signing_key.raw()),
        "policy": policy_record(policy, set_by=user, when=created),
        "datasets": {},
        "ledger_index": {},
        "ledger": {},
        "models": {},
        "runs": {},
    }


class Vault(DatasetsMixin, KeysMixin, VerifyMixin, ExportMixin, NetworkMixin, PolicyMixin, TrainingMixin):
    """An opened vault. Create with `Vault.create`, open with `Vault.open`; use as a context manager."""

    def __init__(
        self, root: Path, header: dict[str, Any], user: str, role: str, master: bytes, private: bytes
    ) -> None:
        self.path = root
        self.vault_id: str = header["vault_id"]
        self.user = user
        self.role = role
        self._header = header
        self._master = master
        self._slot_private = private
        self._objects = store.ObjectStore(root, self.vault_id)
        self.audit = AuditLog(root / AUDIT_DIR)
        self._lock = store.VaultLock(root)
        self._closed = False
        self.isolation: dict[str, Any] = {}
        self._catalog_cache: dict[str, Any] | None = None
        self._policy_cache: Policy | None = None

    # ----------------------------------------------------------------- creation and opening
    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        user: str = "admin",
        passphrase: bytes,
        policy_text: str | None = None,
        policy_source: str = "policies/default.toml",
    ) -> Vault:
        root = Path(path).expanduser()
        store.check_name(user, "user")
        policy = (
            Policy.load(policy_text, source=policy_source) if policy_text is not None else Policy.default()
        )
        if root.exists() and any(root.iterdir()):
            what = "a vault" if (root / store.HEADER_FILE).exists() else "a non-empty directory"
            raise StrongroomError(
                f"{root} already exists and is {what}; nothing was changed",
                "choose another --vault path, or open the existing vault",
            )
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / store.OBJECTS_DIR).mkdir(exist_ok=True)
        created = utc_now()
        vault_id = secrets.token_hex(8)
        master = keys.random_key()
        header: dict[str, Any] = {
            "format": store.FORMAT_NAME,
            "version": store.FORMAT_VERSION,
            "vault_id": vault_id,
            "created": created,
            "slots": [],
        }
        first_slot, private = keyring.new_slot(user, "admin", passphrase, master, created)
        header["slots"].append(first_slot)
        header["mac"] = keyring.header_mac(master, header)
        signing_key = SigningKey.generate()
        with store.VaultLock(root):
            store.write_catalog(
                root,
                vault_id,
                keyring.catalog_key(master),
                empty_catalog(vault_id, signing_key, policy, created, user),
            )
            audit = AuditLog(root / AUDIT_DIR)
            audit.init(signing_key.public_pem())
            audit.append(
                user,
                "admin",
                "vault.init",
                vault_id,
                "ok",
                {
                    "policy": policy.name,
                    "policy_sha256": policy.sha256,
                    "format_version": store.FORMAT_VERSION,
                    "kdf": {k: v for k, v in header["slots"][0]["kdf"].items() if k != "salt"},
                },
            )
            # The header goes last: until it exists, the directory is not a vault.
            store.atomic_write(root / store.HEADER_FILE, store.canonical_json(header))
        vault = cls._open_unlocked(root, header, user, "admin", master, private)
        vault._start_session(unlock=False)
        return vault

    @classmethod
    def open(cls, path: Path | str, *, user: str, passphrase: bytes) -> Vault:
        root = Path(path).expanduser()
        header = store.read_header(root)
        try:
            master, private, slot = keyring.unlock(header, user, passphrase)
        except AuthError:
            with contextlib.suppress(OSError, StrongroomError):
                AuditLog(root / AUDIT_DIR).append(
                    user,
                    "unknown",
                    "session.unlock_failed",
                    header["vault_id"],
                    "denied",
                    {"reason": "unknown user or wrong passphrase", "pid": os.getpid()},
                )
            raise
        keyring.check_header_mac(master, header)
        vault = cls._open_unlocked(root, header, user, slot["role"], master, private)
        vault._start_session(unlock=True)
        return vault

    @classmethod
    def _open_unlocked(
        cls, root: Path, header: dict[str, Any], user: str, role: str, master: bytes, private: bytes
    ) -> Vault:
        vault = cls(root, header, user, role, master, private)
        vault._recover_rotation()
        vault._read_catalog()
        return vault

    def _start_session(self, *, unlock: bool) -> None:
        self._watch_network()
        report = netguard_state.current_report()
        self.isolation = report
        if unlock:
            self._record("session.unlock", self.vault_id, "ok", pid=os.getpid())
            try:
                self._decide("unlock", target=self.user)
            except StrongroomError:
                self.close()
                raise
        self._record(
            "network.isolation", self.vault_id, "ok" if report.get("isolated") else "degraded", **report
        )
        required = self.policy.required_isolation
        if not netguard_state.meets(report, required):
            self._record(
                "policy.decision",
                "isolation",
                "denied",
                rule="isolation.required",
                reason=f"policy requires {required}, this session has {report.get('mode')}",
            )
            self.close()
            raise IsolationError(
                f"network isolation {report.get('mode')!r} is below the {required!r} that the vault's policy requires",
                "run strongroom as root or where user namespaces are allowed "
                "(sysctl kernel.unprivileged_userns_clone=1), or have an admin set a policy that allows 'guard'",
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(StrongroomError, OSError):
            from vault.netguard import recorder_errors

            blocked = netguard_state.blocked_count()
            self._record(
                "session.end",
                self.vault_id,
                "ok",
                network_blocked=blocked,
                network_blocked_unrecorded=recorder_errors(),
            )
            self.audit.write_checkpoint(self._signing_key(), self.origin)
        self._unwatch_network()
        self._lock.release()
        self._master = b"\0" * 32

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def origin(self) -> str:
        return f"strongroom.local/vault/{self.vault_id}"

    # ----------------------------------------------------------------- internals for mixins
    def _check_open(self) -> None:
        if self._closed:
            raise StrongroomError("this vault session is closed", "open the vault again")

    @property
    def _catalog_key(self) -> bytes:
        return keyring.catalog_key(self._master)

    def _read_catalog(self) -> dict[str, Any]:
        """A fresh, decrypted snapshot of the catalog (read-only by convention)."""
        self._check_open()
        catalog = store.read_catalog(self.path, self.vault_id, self._catalog_key)
        if catalog.get("vault_id") != self.vault_id:
            raise IntegrityError(
                "the catalog belongs to another vault", "restore catalog.sealed from this vault's backup"
            )
        self._catalog_cache = catalog
        return catalog

    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, Any]]:
        """Hold the writer lock around a fresh catalog; commit it atomically when the block succeeds.

        Objects written inside the block land first; the catalog write is the commit point.
        Unreferenced objects from an earlier interrupted writer are swept first.
        """
        self._check_open()
        if self._lock.held:
            raise StrongroomError("nested vault write", "this is a bug in strongroom; please report it")
        with self._lock:
            catalog = self._read_catalog()
            self._objects.sweep(self._referenced_objects(catalog))
            yield catalog
            catalog["generation"] = int(catalog.get("generation", 0)) + 1
            store.write_catalog(self.path, self.vault_id, self._catalog_key, catalog)
            self._catalog_cache = catalog

    @staticmethod
    def _referenced_objects(catalog: dict[str, Any]) -> set[str]:
        refs: set[str] = set()
        for ds in catalog.get("datasets", {}).values():
            for ver in ds.get("versions", []):
                refs.update(shard["id"] for shard in ver.get("shards", []))
        for model in catalog.get("models", {}).values():
            for ref in model.get("objects", {}).values():
                refs.add(ref["id"])
        return refs

    def _put_object(
        self, kind: str, ident: str, data: bytes | memoryview, key: bytes | None = None
    ) -> dict[str, Any]:
        """Seal `data` as a new object. Without `key`, a fresh data key is made, wrapped by the master key."""
        self._check_open()
        wrapped = None
        if key is None:
            key = keys.random_key()
            wrapped = keyring.b64(keys.wrap_key(self._master, key))
        ref = self._objects.put(kind, ident, data, key)
        if wrapped is not None:
            ref["wrapped_key"] = wrapped
        return ref

    def _data_key(self, wrapped_b64: str) -> bytes:
        try:
            return keys.unwrap_key(self._master, keyring.unb64(wrapped_b64, "wrapped_key"))
        except IntegrityError:
            raise IntegrityError(
                "a data key failed to unwrap: the catalog was altered", "run `strongroom verify`"
            ) from None

    def _new_data_key(self) -> tuple[bytes, str]:
        key = keys.random_key()
        return key, keyring.b64(keys.wrap_key(self._master, key))

    def _get_object(self, ref: dict[str, Any], key: bytes | None = None) -> bytes:
        self._check_open()
        if key is None:
            key = self._data_key(ref["wrapped_key"])
        try:
            return self._objects.get(ref, key)
        except IntegrityError:
            # Readers take no lock. An object that vanished because another process deleted its
            # dataset or model meanwhile is not damage: the fresh catalog no longer refers to it.
            if self._objects.path_of(ref["id"]).exists() or ref["id"] in self._referenced_objects(
                self._read_catalog()
            ):
                raise
            raise NotFound(
                f"the {ref['kind']} {ref['ident']} was deleted by another process while it was being read",
                "list what the vault holds now with `strongroom datasets` or `strongroom models`",
                detail={"object": ref["id"]},
            ) from None

    def _signing_key(self) -> SigningKey:
        catalog = self._catalog_cache or self._read_catalog()
        return SigningKey.from_raw(keyring.unb64(catalog["signing_key"], "signing_key"))

    # ----------------------------------------------------------------- audit and policy
    def _record(self, action: str, subject: str, outcome: str = "ok", **detail: Any) -> dict[str, Any]:
        """Append one audit entry, durably, before the action goes on. Metadata only, never records."""
        return self.audit.append(self.user, self.role, action, subject, outcome, detail)

    @property
    def policy(self) -> Policy:
        catalog = self._catalog_cache or self._read_catalog()
        p = catalog["policy"]
        if self._policy_cache is None or self._policy_cache.sha256 != p["sha256"]:
            self._policy_cache = Policy.load(p["text"], source=p.get("source", "<vault>"))
        return self._policy_cache

    def _decide(self, action: str, *, record: bool = True, dry_run: bool = False, **facts: Any) -> Decision:
        """Ask the policy; record the decision (allowed or denied, with the rule); raise when denied."""
        request = Request(
            actor=self.user,
            role=self.role,
            action=action,
            isolation=None if self.isolation.get("waived_by_test_switch") else self.isolation.get("mode"),
            now=dt.datetime.now(dt.UTC),
            **facts,
        )
        decision = self.policy.decide(request)
        if record:
            subject = (
                (facts.get("dataset") or {}).get("name")
                or facts.get("target")
                or facts.get("model")
                or action
            )
            self._record(
                "policy.decision",
                str(subject),
                "allowed" if decision.allowed else "denied",
                request_action=action,
                rule=decision.rule,
                reason=decision.reason,
                dry_run=dry_run,
                policy_sha256=self.policy.sha256,
            )
        if not decision.allowed and not dry_run:
            raise decision.to_error()
        return decision

    # ----------------------------------------------------------------- master key rotation support
    def _recover_rotation(self) -> None:
        """Finish a master-key rotation interrupted between its header and catalog writes."""
        nxt = self.path / CATALOG_NEXT
        if not nxt.exists():
            return
        try:
            store.read_catalog(self.path, self.vault_id, self._catalog_key, CATALOG_NEXT)
        except IntegrityError:
            # The header still holds the old master key: the rotation never committed. Drop it.
            with contextlib.suppress(FileNotFoundError):
                nxt.unlink()
            return
        os.replace(nxt, self.path / store.CATALOG_FILE)
        store.fsync_dir(self.path)
