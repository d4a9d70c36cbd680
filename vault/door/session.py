"""An unlocked vault's state and its three duties: decide (ask the policy), record (the audit entry),
and write (one writer, the catalog committed atomically).

`vault.door.unlock` makes a Session (create, open, resume); every service of the door (datasets,
keys, training, export, policy, verify, network) is built on one session and reaches the vault's
files only through it. A session holds only its role's keys: an auditor's session has no data key
and no authority, and the methods that would need them say so.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.audit import AuditLog
from vault.crypto import keys
from vault.crypto.signing import SigningKey
from vault.errors import IntegrityError, IsolationError, NotFound, PolicyDenied, StrongroomError
from vault.netguard import state as isolation_state
from vault.policy import Decision, Policy, Request
from vault.privacy import ledgerlog, lineage
from vault.storage import catalog as catalogs
from vault.storage import keyring, legacy
from vault.storage.catalog import Catalog, ObjectRef, PolicyHistoryEntry, PolicyRecord
from vault.storage.files import VaultLock, atomic_write, canonical_json, fsync_dir
from vault.storage.header import read_header
from vault.storage.keyring import SlotSecrets, VaultKeys
from vault.storage.layout import AUDIT_DIR, CATALOG_FILE, CATALOG_NEXT, HEADER_FILE
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


@dataclass
class Unlocked:
    """What a user's slot opened: the role's share of the vault's keys (format 1: the master key in
    both places), the slot's own secrets (format 2), and why the session may not write, if so."""

    header: dict[str, Any]
    user: str
    role: str
    keys: VaultKeys
    secrets: SlotSecrets | None
    read_only: str | None = None

    @property
    def catalog_key(self) -> bytes:
        if int(self.header["version"]) < 2:
            return legacy.catalog_key(self.keys.meta)
        return keyring.catalog_key(self.keys.meta)


class Session:
    """One user's unlocked session on a vault."""

    def __init__(self, root: Path, unlocked: Unlocked) -> None:
        self.path = root
        self.header = unlocked.header
        self.vault_id: str = unlocked.header["vault_id"]
        self.user = unlocked.user
        self.role = unlocked.role
        self._unlocked = unlocked
        self.objects = ObjectStore(root, self.vault_id)
        self.audit = AuditLog(root / AUDIT_DIR)
        self.lock = VaultLock(root)
        self.closed = False
        self.isolation: dict[str, Any] = {}
        self._catalog_cache: Catalog | None = None
        self._policy_cache: Policy | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self, *, unlock: bool) -> None:
        """Record the isolation evidence and, for an unlock, ask the policy (which also compares the
        isolation with the level it requires). Closes the session when refused."""
        report = isolation_state.current_report()
        self.isolation = report
        try:
            if unlock:
                self.record("session.unlock", self.vault_id, "ok", pid=os.getpid(), **self.header_facts())
            self.record(
                "network.isolation",
                self.vault_id,
                "ok" if report.get("isolated") else "degraded",
                policy_requires=self.policy.required_isolation,
                **report,
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
        self._unlocked = Unlocked(self.header, self.user, self.role, VaultKeys(b""), None, "closed")

    @property
    def origin(self) -> str:
        return f"strongroom.local/vault/{self.vault_id}"

    @property
    def format_version(self) -> int:
        return int(self.header["version"])

    @property
    def read_only(self) -> str | None:
        return self._unlocked.read_only

    def check_open(self) -> None:
        if self.closed:
            raise StrongroomError("this vault session is closed", "open the vault again")

    def header_facts(self) -> dict[str, Any]:
        """What every unlock records, so the next one can tell a rolled-back header (format 2)."""
        if self.format_version < 2:
            return {"format_version": self.format_version}
        return {
            "header_generation": self.header["generation"],
            "authority": keyring.fingerprint(keyring.unb64(self.header["authority"], "authority")),
        }

    @property
    def secrets(self) -> SlotSecrets:
        if self._unlocked.secrets is None:
            raise StrongroomError(
                "this slot has no signing key yet (a format 1 vault not yet upgraded)",
                "an admin's next unlock upgrades the vault",
            )
        return self._unlocked.secrets

    # ----------------------------------------------------------------- the catalog
    @property
    def catalog_key(self) -> bytes:
        return self._unlocked.catalog_key

    def read_catalog(self) -> Catalog:
        """A fresh, decrypted snapshot of the catalog (read-only by convention)."""
        self.check_open()
        catalog = catalogs.read_catalog(self.path, self.vault_id, self.catalog_key)
        if self.format_version >= 2 and catalog["policy"]["sha256"] != self.header["policy_sha256"]:
            raise IntegrityError(
                "the catalog's policy is not the one the admin-signed header vouches for: it was altered",
                "restore catalog.sealed from a backup; only an admin can change the policy (`strongroom policy set`)",
                detail={"object": CATALOG_FILE},
            )
        self._catalog_cache = catalog
        self.audit.attach_sealer(keyring.unb64(catalog["signing_key"], "signing_key"), self.user, self.role)
        return catalog

    def catalog(self) -> Catalog:
        """The catalog as last read in this session (for the policy and the signing key)."""
        return self._catalog_cache or self.read_catalog()

    def check_writable(self) -> None:
        self.check_open()
        if self.read_only:
            raise StrongroomError(
                f"the vault is read-only for this session: {self.read_only}", "ask an admin to unlock it once"
            )

    @contextlib.contextmanager
    def writing(self) -> Iterator[Catalog]:
        """Hold the writer lock around a fresh catalog; commit it atomically when the block succeeds.

        Objects written inside the block land first; the catalog write is the commit point.
        Unreferenced objects from an earlier interrupted writer are swept first.
        """
        self.check_writable()
        if self.lock.held:
            raise StrongroomError("nested vault write", "this is a bug in strongroom; please report it")
        with self.lock:
            catalog = self.read_catalog()
            self.objects.sweep(catalogs.referenced_objects(catalog))
            ledger_before = copy.deepcopy(catalog["ledger"]), lineage.links_map(catalog["lineage"])
            yield catalog
            catalog["generation"] = int(catalog.get("generation", 0)) + 1
            catalogs.write_catalog(self.path, self.vault_id, self.catalog_key, catalog)
            self._catalog_cache = catalog
            # Both after the commit point: a crash between leaves the log behind the catalog (the
            # next change to that ledger records it whole), never ahead of it, which would read as a
            # rollback at the next open and as a charge dropped in verify.
            self.record_ledger(catalog, *ledger_before)
            self.record_commit(catalog)

    def commit_facts(self, catalog: Catalog) -> dict[str, Any]:
        """What every commit records in the sealed log, so that an older catalog or header put back
        is refused at the next open. Other state that must not roll back adds its fields here."""
        facts: dict[str, Any] = {"catalog_generation": int(catalog.get("generation", 0))}
        if self.format_version >= 2:
            facts.update(self.header_facts())
        return facts

    def record_commit(self, catalog: Catalog) -> None:
        """`catalog.commit`: written after the commit point, so a crash between leaves the log behind
        the catalog (accepted), never ahead of it (which would read as a rollback)."""
        self.record("catalog.commit", self.vault_id, "ok", **self.commit_facts(catalog))

    def record_ledger(
        self,
        catalog: Catalog,
        before: dict[str, Any] | None = None,
        links_before: dict[str, Any] | None = None,
        *,
        baseline: bool = False,
    ) -> None:
        """Record the ledgers a commit changed (all of them for a baseline), once it committed."""
        links = lineage.links_map(catalog["lineage"])
        changed = ledgerlog.changes({} if baseline else before or {}, catalog["ledger"])
        links_changed = baseline or links != (links_before or {})
        if not (changed or links_changed):
            return
        extra: dict[str, Any] = {"ledger_baseline": True} if baseline else {}
        self.record(
            ledgerlog.ACTION,
            self.vault_id,
            "ok",
            catalog_generation=catalog["generation"],
            lineages=changed,
            **({"links": links} if links_changed else {}),
            **extra,
        )

    # ----------------------------------------------------------------- objects and data keys
    @property
    def vault_keys(self) -> VaultKeys:
        """This session's share of the vault's keys (to seal to a new slot, an admin's whole set)."""
        return self._unlocked.keys

    def _data(self) -> bytes:
        if self._unlocked.keys.data is None:
            raise PolicyDenied(
                f"the {self.role} role holds no key that decrypts records or model weights",
                "ask an operator or an admin; an auditor reads the log, the catalog and the ledger",
                detail={"role": self.role},
            )
        return self._unlocked.keys.data

    def put_object(
        self, kind: str, ident: str, data: bytes | memoryview, key: bytes | None = None
    ) -> ObjectRef:
        """Seal `data` as a new object. Without `key`, a fresh data key is made, wrapped by the data key."""
        self.check_writable()
        wrapped = None
        if key is None:
            key, wrapped = self.new_data_key()
        ref = self.objects.put(kind, ident, data, key)
        if wrapped is not None:
            ref["wrapped_key"] = wrapped
        return ref

    def data_key(self, wrapped_b64: str) -> bytes:
        try:
            return keys.unwrap_key(self._data(), keyring.unb64(wrapped_b64, "wrapped_key"))
        except IntegrityError:
            raise IntegrityError(
                "a data key failed to unwrap: the catalog was altered", "run `strongroom verify`"
            ) from None

    def new_data_key(self) -> tuple[bytes, str]:
        key = keys.random_key()
        return key, keyring.b64(keys.wrap_key(self._data(), key))

    def rewrap(self, wrapped_b64: str, new_data: bytes) -> str:
        """A data key wrapped by the current data key, wrapped again by `new_data`."""
        return keyring.b64(keys.wrap_key(new_data, self.data_key(wrapped_b64)))

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

    def record_index_key(self) -> bytes:
        """The key of the per-record hashes that let the ledger follow records (data-key holders)."""
        return keyring.record_index_key(self._data())

    def signing_key(self) -> SigningKey:
        """The audit log's checkpoint key (every session writes the log)."""
        return SigningKey.from_raw(keyring.unb64(self.catalog()["signing_key"], "signing_key"))

    # ----------------------------------------------------------------- the header
    def fresh_header(self) -> dict[str, Any]:
        """`vault.json` as it is on disk now, authenticated: by the authority this user's slot pinned
        (format 2), or by the master key's MAC (format 1). The only way the door reads the header."""
        header = read_header(self.path)
        if int(header["version"]) != self.format_version:
            raise IntegrityError(
                f"vault.json changed format under this session ({self.format_version} -> {header['version']})",
                "open the vault again",
            )
        if self.format_version >= 2:
            keyring.verify_header(header, self.secrets.authority)
        else:
            legacy.check_header_mac(self._unlocked.keys.meta, header)
        return header

    def authority(self) -> SigningKey:
        if self._unlocked.keys.authority is None:
            raise PolicyDenied(
                f"only an admin can change users, roles or the policy (this session is {self.role})",
                "ask an admin: the header is signed by a key only admin slots hold",
                detail={"role": self.role},
            )
        return self._unlocked.keys.authority_key()

    def commit_header(self, header: dict[str, Any]) -> None:
        """Write a changed header (lock held): the next generation, signed by the authority."""
        self.check_writable()
        header["generation"] = int(header["generation"]) + 1
        keyring.sign_header(header, self.authority())
        self._write_header(header)
        self.record("header.commit", self.vault_id, "ok", **self.header_facts())

    def write_owner_fields(self, header: dict[str, Any]) -> None:
        """Write a header whose signed part is unchanged (a passphrase change): no authority needed."""
        keyring.verify_header(header, self.secrets.authority)
        self._write_header(header)

    def _write_header(self, header: dict[str, Any]) -> None:
        atomic_write(self.path / HEADER_FILE, canonical_json(header))
        self.header = header
        self._unlocked.header = header

    def commit_catalog_and_header(
        self, header: dict[str, Any], catalog: Catalog, vault_keys: VaultKeys | None = None
    ) -> None:
        """Commit a catalog and a signed header together (lock held), with new vault keys if given:
        the new catalog beside the old, then the header (the commit point), then the rename. An
        interrupted change is finished or dropped at the next open."""
        unlocked = Unlocked(
            header, self.user, self.role, vault_keys or self.vault_keys, self._unlocked.secrets
        )
        next_path = self.path / CATALOG_NEXT
        atomic_write(next_path, catalogs.seal_catalog(self.vault_id, unlocked.catalog_key, catalog))
        self._write_header(header)
        os.replace(next_path, self.path / CATALOG_FILE)
        fsync_dir(self.path)
        self._unlocked = unlocked
        self._catalog_cache = catalog
        self.record_commit(catalog)

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
