"""An opened vault's state and its three duties: decide (ask the policy), record (the audit entry),
and write (one writer, the catalog committed atomically).

`Session.create` and `Session.open` unlock a key slot; every service of the door (datasets, keys,
training, export, policy, verify, network) is built on one session and reaches the vault's files
only through it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vault.audit import AuditLog
from vault.crypto import keys
from vault.crypto.signing import SigningKey
from vault.errors import AuthError, IntegrityError, IsolationError, NotFound, StrongroomError
from vault.netguard import state as isolation_state
from vault.policy import Decision, Policy, Request
from vault.storage import catalog as catalogs
from vault.storage import keyring
from vault.storage.catalog import Catalog, ObjectRef, PolicyHistoryEntry, PolicyRecord
from vault.storage.files import VaultLock, atomic_write, canonical_json, fsync_dir, utc_now
from vault.storage.header import read_header
from vault.storage.layout import (
    AUDIT_DIR,
    CATALOG_FILE,
    CATALOG_NEXT,
    FORMAT_NAME,
    FORMAT_VERSION,
    HEADER_FILE,
    OBJECTS_DIR,
)
from vault.storage.names import check_name
from vault.storage.objects import ObjectStore

ISOLATION_HINT = (
    "run strongroom as root or where user namespaces are allowed "
    "(sysctl kernel.unprivileged_userns_clone=1), or have an admin set a policy that allows 'guard'"
)


def policy_record(
    policy: Policy, *, set_by: str, when: str, history: list[PolicyHistoryEntry] | None = None
) -> PolicyRecord:
    """The catalog's "policy" section for `policy` (the text is the source of truth)."""
    return {
        "text": policy.text,
        "sha256": policy.sha256,
        "name": policy.name,
        "source": policy.source,
        "set": when,
        "set_by": set_by,
        "history": list(history or []),
    }


class Session:
    """One user's unlocked session on a vault. Create with `Session.create`, open with `Session.open`."""

    def __init__(
        self, root: Path, header: dict[str, Any], user: str, role: str, master: bytes, private: bytes
    ) -> None:
        self.path = root
        self.vault_id: str = header["vault_id"]
        self.user = user
        self.role = role
        self.header = header
        self._master = master
        self.slot_private = private
        self.objects = ObjectStore(root, self.vault_id)
        self.audit = AuditLog(root / AUDIT_DIR)
        self.lock = VaultLock(root)
        self.closed = False
        self.isolation: dict[str, Any] = {}
        self._catalog_cache: Catalog | None = None
        self._policy_cache: Policy | None = None

    # ----------------------------------------------------------------- creation and opening
    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        user: str,
        passphrase: bytes,
        policy_text: str | None,
        policy_source: str,
    ) -> Session:
        root = Path(path).expanduser()
        check_name(user, "user")
        policy = (
            Policy.load(policy_text, source=policy_source) if policy_text is not None else Policy.default()
        )
        if root.exists() and any(root.iterdir()):
            what = "a vault" if (root / HEADER_FILE).exists() else "a non-empty directory"
            raise StrongroomError(
                f"{root} already exists and is {what}; nothing was changed",
                "choose another --vault path, or open the existing vault",
            )
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / OBJECTS_DIR).mkdir(exist_ok=True)
        created = utc_now()
        vault_id = secrets.token_hex(8)
        master = keys.random_key()
        header: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "vault_id": vault_id,
            "created": created,
            "slots": [],
        }
        first_slot, private = keyring.new_slot(user, "admin", passphrase, master, created)
        header["slots"].append(first_slot)
        header["mac"] = keyring.header_mac(master, header)
        signing_key = SigningKey.generate()
        with VaultLock(root):
            catalogs.write_catalog(
                root,
                vault_id,
                keyring.catalog_key(master),
                catalogs.empty_catalog(
                    vault_id,
                    keyring.b64(signing_key.raw()),
                    policy_record(policy, set_by=user, when=created),
                    created,
                ),
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
                    "format_version": FORMAT_VERSION,
                    "kdf": {k: v for k, v in header["slots"][0]["kdf"].items() if k != "salt"},
                },
            )
            # The header goes last: until it exists, the directory is not a vault.
            atomic_write(root / HEADER_FILE, canonical_json(header))
        return cls._unlocked(root, header, user, "admin", master, private)

    @classmethod
    def open(cls, path: Path | str, *, user: str, passphrase: bytes) -> Session:
        root = Path(path).expanduser()
        header = read_header(root)
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
        return cls._unlocked(root, header, user, slot["role"], master, private)

    @classmethod
    def _unlocked(
        cls, root: Path, header: dict[str, Any], user: str, role: str, master: bytes, private: bytes
    ) -> Session:
        session = cls(root, header, user, role, master, private)
        session._recover_rotation()
        session.read_catalog()
        return session

    def start(self, *, unlock: bool) -> None:
        """Record the isolation evidence and, for an unlock, ask the policy (which also compares the
        isolation with the level it requires). Closes the session when refused."""
        report = isolation_state.current_report()
        self.isolation = report
        try:
            if unlock:
                self.record("session.unlock", self.vault_id, "ok", pid=os.getpid())
            self.record(
                "network.isolation", self.vault_id, "ok" if report.get("isolated") else "degraded", **report
            )
            self.decide("unlock", target=self.user)
        except StrongroomError:
            self.close()
            raise

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(StrongroomError, OSError):
            from vault.netguard import recorder_errors

            self.record(
                "session.end",
                self.vault_id,
                "ok",
                network_blocked=isolation_state.blocked_count(),
                network_blocked_unrecorded=recorder_errors(),
            )
            self.audit.write_checkpoint(self.signing_key(), self.origin)
        self.lock.release()
        self._master = b"\0" * 32

    @property
    def origin(self) -> str:
        return f"strongroom.local/vault/{self.vault_id}"

    def check_open(self) -> None:
        if self.closed:
            raise StrongroomError("this vault session is closed", "open the vault again")

    # ----------------------------------------------------------------- the catalog
    @property
    def catalog_key(self) -> bytes:
        return keyring.catalog_key(self._master)

    def read_catalog(self) -> Catalog:
        """A fresh, decrypted snapshot of the catalog (read-only by convention)."""
        self.check_open()
        catalog = catalogs.read_catalog(self.path, self.vault_id, self.catalog_key)
        self._catalog_cache = catalog
        return catalog

    def catalog(self) -> Catalog:
        """The catalog as last read in this session (for the policy and the signing key)."""
        return self._catalog_cache or self.read_catalog()

    @contextlib.contextmanager
    def writing(self) -> Iterator[Catalog]:
        """Hold the writer lock around a fresh catalog; commit it atomically when the block succeeds.

        Objects written inside the block land first; the catalog write is the commit point.
        Unreferenced objects from an earlier interrupted writer are swept first.
        """
        self.check_open()
        if self.lock.held:
            raise StrongroomError("nested vault write", "this is a bug in strongroom; please report it")
        with self.lock:
            catalog = self.read_catalog()
            self.objects.sweep(catalogs.referenced_objects(catalog))
            yield catalog
            catalog["generation"] = int(catalog.get("generation", 0)) + 1
            catalogs.write_catalog(self.path, self.vault_id, self.catalog_key, catalog)
            self._catalog_cache = catalog

    # ----------------------------------------------------------------- objects and data keys
    def put_object(
        self, kind: str, ident: str, data: bytes | memoryview, key: bytes | None = None
    ) -> ObjectRef:
        """Seal `data` as a new object. Without `key`, a fresh data key is made, wrapped by the master key."""
        self.check_open()
        wrapped = None
        if key is None:
            key, wrapped = self.new_data_key()
        ref = self.objects.put(kind, ident, data, key)
        if wrapped is not None:
            ref["wrapped_key"] = wrapped
        return ref

    def data_key(self, wrapped_b64: str) -> bytes:
        try:
            return keys.unwrap_key(self._master, keyring.unb64(wrapped_b64, "wrapped_key"))
        except IntegrityError:
            raise IntegrityError(
                "a data key failed to unwrap: the catalog was altered", "run `strongroom verify`"
            ) from None

    def new_data_key(self) -> tuple[bytes, str]:
        key = keys.random_key()
        return key, keyring.b64(keys.wrap_key(self._master, key))

    def rewrap(self, wrapped_b64: str, new_master: bytes) -> str:
        """A data key wrapped by the current master key, wrapped again by `new_master`."""
        return keyring.b64(keys.wrap_key(new_master, self.data_key(wrapped_b64)))

    def get_object(self, ref: ObjectRef, key: bytes | None = None) -> bytes:
        self.check_open()
        if key is None:
            key = self.data_key(ref["wrapped_key"])
        try:
            return self.objects.get(ref, key)
        except IntegrityError:
            # Readers take no lock. An object that vanished because another process deleted its
            # dataset or model meanwhile is not damage: the fresh catalog no longer refers to it.
            if self.objects.path_of(ref["id"]).exists() or ref["id"] in catalogs.referenced_objects(
                self.read_catalog()
            ):
                raise
            raise NotFound(
                f"the {ref['kind']} {ref['ident']} was deleted by another process while it was being read",
                "list what the vault holds now with `strongroom datasets` or `strongroom models`",
                detail={"object": ref["id"]},
            ) from None

    def signing_key(self) -> SigningKey:
        return SigningKey.from_raw(keyring.unb64(self.catalog()["signing_key"], "signing_key"))

    # ----------------------------------------------------------------- header and master key
    def fresh_header(self) -> dict[str, Any]:
        """`vault.json` as it is on disk now, authenticated by this session's master key."""
        header = read_header(self.path)
        keyring.check_header_mac(self._master, header)
        return header

    def commit_header(self, header: dict[str, Any], master: bytes | None = None) -> None:
        header["mac"] = keyring.header_mac(master or self._master, header)
        atomic_write(self.path / HEADER_FILE, canonical_json(header))
        self.header = header

    def new_slot(self, name: str, role: str, passphrase: bytes) -> dict[str, Any]:
        slot, _ = keyring.new_slot(name, role, passphrase, self._master, utc_now())
        return slot

    def replace_master(self, header: dict[str, Any], catalog: Catalog, new_master: bytes) -> None:
        """Commit a new master key (lock held): the new catalog beside the old, then the header (the
        commit point), then the rename. An interrupted replacement is finished or dropped at the next open."""
        next_path = self.path / CATALOG_NEXT
        atomic_write(
            next_path, catalogs.seal_catalog(self.vault_id, keyring.catalog_key(new_master), catalog)
        )
        self.commit_header(header, new_master)
        os.replace(next_path, self.path / CATALOG_FILE)
        fsync_dir(self.path)
        self._master = new_master
        self._catalog_cache = catalog

    def _recover_rotation(self) -> None:
        """Finish a master-key rotation interrupted between its header and catalog writes."""
        nxt = self.path / CATALOG_NEXT
        if not nxt.exists():
            return
        try:
            catalogs.read_catalog(self.path, self.vault_id, self.catalog_key, CATALOG_NEXT)
        except IntegrityError:
            # The header still holds the old master key: the rotation never committed. Drop it.
            with contextlib.suppress(FileNotFoundError):
                nxt.unlink()
            return
        os.replace(nxt, self.path / CATALOG_FILE)
        fsync_dir(self.path)

    # ----------------------------------------------------------------- audit and policy
    def record(self, action: str, subject: str, outcome: str = "ok", **detail: Any) -> dict[str, Any]:
        """Append one audit entry, durably, before the action goes on. Metadata only, never records."""
        return self.audit.append(self.user, self.role, action, subject, outcome, detail)

    @property
    def policy(self) -> Policy:
        stored = self.catalog()["policy"]
        if self._policy_cache is None or self._policy_cache.sha256 != stored["sha256"]:
            self._policy_cache = Policy.load(stored["text"], source=stored.get("source", "<vault>"))
        return self._policy_cache

    def request(self, action: str, actor: str, role: str, facts: dict[str, Any]) -> Request:
        """A policy request for `action` by `actor` in this session's isolation, now."""
        approvals = tuple(tuple(pair) for pair in facts.get("approvals", ()))
        rest = {k: v for k, v in facts.items() if k != "approvals"}
        return Request(
            actor=actor,
            role=role,
            action=action,
            approvals=approvals,  # type: ignore[arg-type]
            isolation=isolation_state.level_of(self.isolation),
            now=dt.datetime.now(dt.UTC),
            **rest,
        )

    def decide(self, action: str, *, record: bool = True, dry_run: bool = False, **facts: Any) -> Decision:
        """Ask the policy; record the decision (allowed or denied, with the rule); raise when denied.

        A denial by `isolation.required` is an IsolationError (exit 6) with the fix; any other is
        PolicyDenied (exit 3)."""
        decision = self.policy.decide(self.request(action, self.user, self.role, facts))
        if record:
            self.record_decision(action, decision, facts, dry_run=dry_run)
        if not decision.allowed and not dry_run:
            if decision.rule == "isolation.required":
                raise IsolationError(
                    f"network isolation {self.isolation.get('mode')!r} is below the "
                    f"{self.policy.required_isolation!r} that the vault's policy requires",
                    ISOLATION_HINT,
                )
            raise decision.to_error()
        return decision

    def record_decision(
        self, action: str, decision: Decision, facts: dict[str, Any], *, dry_run: bool, **extra: Any
    ) -> None:
        subject = (
            (facts.get("dataset") or {}).get("name") or facts.get("target") or facts.get("model") or action
        )
        self.record(
            "policy.decision",
            str(subject),
            decision.outcome,
            request_action=action,
            rule=decision.rule,
            reason=decision.reason,
            dry_run=dry_run,
            policy_sha256=self.policy.sha256,
            **extra,
        )
