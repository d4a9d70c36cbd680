"""The one door: every action on a vault goes through an opened `Vault`.

Each public method asks the policy, writes its audit entry (durably), then acts; the few that do
not stand on `EXEMPT` with the reason, and tests/integration/test_door_rules.py keeps it so. The
CLI and the TUI are thin faces over this class; neither reads nor writes vault files itself.

The Vault is composed, not mixed: one `Session` (the unlocked state, its decide/record/write
duties) and one service per concern, each built from the session and the services it needs:

    datasets  DatasetService   import, list, show, sample, delete; the decrypting read
    keys      KeyService       key slots, passphrases, master-key rotation, approver checks
    training  TrainingService  train, models, cards, evaluate, budget
    policy    PolicyService    show, set, dry-run checks
    export    ExportService    models out (never records), signed
    verify    VerifyService    authenticate everything, re-derive digests
    network   NetworkService   blocked attempts recorded; the fire drill
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault.audit import AuditLog
from vault.door import settle, unlock
from vault.door.datasets import DatasetService
from vault.door.export import ExportService
from vault.door.keys import KeyService
from vault.door.network import NetworkService
from vault.door.policy import PolicyService
from vault.door.results import (
    Budget,
    DatasetInfo,
    Deleted,
    Exported,
    KeySlotInfo,
    ModelSummary,
    Sample,
    VerifyReport,
)
from vault.door.session import Session
from vault.door.training import TrainingService
from vault.door.verify import VerifyService
from vault.errors import VaultBusy
from vault.netguard.probe import HostSentinel
from vault.netguard.sandbox import HostProcess
from vault.policy import Decision, Policy
from vault.storage import keyring
from vault.storage.keyring import SlotSecrets

if TYPE_CHECKING:  # names only: importing them here would load the importers and torch
    from vault.ingest import ImportOptions
    from vault.train.config import TrainConfig

EventCallback = Callable[[Any], None] | None

# Public methods that do not ask the policy, and why. Everything else on Vault decides and records.
EXEMPT: dict[str, str] = {
    "create": "makes the vault: records vault.init, then decides the admin's unlock as `open` does",
    "open": "unlocks a slot: records session.unlock (or session.unlock_failed) and decides `unlock`",
    "close": "ends the session: records session.end and signs a checkpoint",
    "keys_list": "names the users, their roles and KDF settings (no key material), which every user may "
    "see; a failed unlock's hint points to it",
    "keys_passwd": "re-wraps only the caller's own slot under a new passphrase; recorded as keys.passwd",
    "resume": "opens a session from slot secrets a parent session handed over (the TUI's trainer); "
    "records session.unlock and decides `unlock` as `open` does",
    "slot_secrets": "hands this session's own slot secrets to a process of ours that resumes it; "
    "nothing leaves the process but through the caller's pipe",
}


class Vault:
    """An opened vault. Create with `Vault.create`, open with `Vault.open`; use as a context manager."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._network = NetworkService(session)
        self._keys = KeyService(session)
        self._datasets = DatasetService(session)
        self._training = TrainingService(session, self._datasets)
        self._policy = PolicyService(session, self._datasets, self._keys, self._training)
        self._export = ExportService(session, self._datasets, self._training, self._keys)
        self._verify = VerifyService(session)

    # ----------------------------------------------------------------- lifecycle
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
        session = unlock.create(
            path, user=user, passphrase=passphrase, policy_text=policy_text, policy_source=policy_source
        )
        vault = cls._started(session, unlock=False)
        settle.record_ledger_baseline(session)
        return vault

    @classmethod
    def open(cls, path: Path | str, *, user: str, passphrase: bytes) -> Vault:
        return cls._started(unlock.open_with_passphrase(path, user=user, passphrase=passphrase), unlock=True)

    @classmethod
    def resume(cls, path: Path | str, *, user: str, slot_secrets: SlotSecrets) -> Vault:
        return cls._started(unlock.resume(path, user=user, slot_secrets=slot_secrets), unlock=True)

    def slot_secrets(self) -> SlotSecrets:
        """This session's slot secrets, to hand to a process of ours that resumes it (the TUI's
        trainer) instead of the passphrase: no second key derivation, no passphrase in a child."""
        return self._session.secrets

    @classmethod
    def _started(cls, session: Session, *, unlock: bool) -> Vault:
        vault = cls(session)
        vault._network.watch()
        try:
            session.start(unlock=unlock)
            if unlock:
                vault._upkeep()
        except BaseException:
            vault._network.unwatch()
            raise
        return vault

    def _upkeep(self) -> None:
        """At an operator's or admin's open: index records imported before the record index, and
        settle runs whose process died after their charge. Skipped while another process writes."""
        with contextlib.suppress(VaultBusy):
            self._datasets.index_records()
            settle.settle_interrupted(self._session)
            settle.record_ledger_baseline(self._session)

    def close(self) -> None:
        self._session.close()
        self._network.unwatch()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- what the session is
    @property
    def path(self) -> Path:
        return self._session.path

    @property
    def vault_id(self) -> str:
        return self._session.vault_id

    @property
    def user(self) -> str:
        return self._session.user

    @property
    def role(self) -> str:
        return self._session.role

    @property
    def isolation(self) -> dict[str, Any]:
        return dict(self._session.isolation)

    @property
    def policy(self) -> Policy:
        return self._session.policy

    @property
    def audit(self) -> AuditLog:
        return self._session.audit

    @property
    def authority_fingerprint(self) -> str | None:
        """The fingerprint of the key that signs this vault's header (None for format 1)."""
        header = self._session.header
        return (
            keyring.fingerprint(keyring.unb64(header["authority"], "authority"))
            if "authority" in header
            else None
        )

    @property
    def origin(self) -> str:
        return self._session.origin

    # ----------------------------------------------------------------- datasets
    def datasets(self) -> list[DatasetInfo]:
        return self._datasets.summaries()

    def dataset(self, name: str, version: int | None = None) -> DatasetInfo:
        return self._datasets.info(name, version)

    def import_dataset(
        self,
        source: Path | str,
        *,
        name: str,
        sensitivity: str = "high",
        options: ImportOptions | None = None,
        on_event: EventCallback = None,
        cancel: threading.Event | None = None,
    ) -> DatasetInfo:
        return self._datasets.import_(
            source, name=name, sensitivity=sensitivity, options=options, on_event=on_event, cancel=cancel
        )

    def sample(self, name: str, n: int = 5, *, version: int | None = None) -> Sample:
        return self._datasets.sample(name, n, version=version)

    def delete_dataset(self, name: str) -> Deleted:
        return self._datasets.delete(name)

    # ----------------------------------------------------------------- key slots
    def keys_list(self) -> list[KeySlotInfo]:
        return self._keys.slots()

    def keys_add(self, name: str, role: str, passphrase: bytes) -> dict[str, Any]:
        return self._keys.add(name, role, passphrase)

    def keys_remove(self, name: str) -> dict[str, Any]:
        return self._keys.remove(name)

    def keys_passwd(self, new_passphrase: bytes) -> dict[str, Any]:
        return self._keys.passwd(new_passphrase)

    def keys_rotate(self) -> dict[str, Any]:
        return self._keys.rotate()

    # ----------------------------------------------------------------- the policy
    def policy_show(self) -> dict[str, Any]:
        return self._policy.show()

    def policy_set(self, text: str, *, source: str = "<policy set>") -> dict[str, Any]:
        return self._policy.set(text, source=source)

    def policy_check(
        self,
        action: str,
        *,
        dataset: str | dict[str, Any] | None = None,
        as_user: str | None = None,
        approved_by: tuple[str, ...] | list[str] = (),
        **facts: Any,
    ) -> Decision:
        return self._policy.check(action, dataset=dataset, as_user=as_user, approved_by=approved_by, **facts)

    # ----------------------------------------------------------------- training and models
    def train(
        self,
        request: dict[str, Any] | TrainConfig,
        on_event: EventCallback = None,
        cancel: threading.Event | None = None,
        *,
        dataset: str | None = None,
    ) -> dict[str, Any]:
        return self._training.train(request, on_event, cancel, dataset=dataset)

    def models(self) -> list[ModelSummary]:
        return self._training.summaries()

    def model_card(self, model_id: str, *, markdown: bool = False) -> dict[str, Any] | str:
        return self._training.card(model_id, markdown=markdown)

    def evaluate(self, model_id: str, dataset: str, *, version: int | None = None) -> dict[str, Any]:
        return self._training.evaluate(model_id, dataset, version=version)

    def budget(self, dataset: str | None = None) -> list[Budget]:
        return self._training.budget(dataset)

    # ----------------------------------------------------------------- export, verify, network
    def export(
        self,
        model_id: str,
        out_dir: Path | str,
        *,
        approver: str | None = None,
        approver_passphrase: bytes | None = None,
    ) -> Exported:
        return self._export.export(
            model_id, out_dir, approver=approver, approver_passphrase=approver_passphrase
        )

    def verify(self, on_event: EventCallback = None) -> VerifyReport:
        return self._verify.verify(on_event)

    def netcheck(
        self,
        probe: str | None = None,
        *,
        unix_socket: str | None = None,
        sentinel: HostSentinel | None = None,
        timeout: float = 2.0,
    ) -> dict[str, Any]:
        return self._network.netcheck(probe, unix_socket=unix_socket, sentinel=sentinel, timeout=timeout)

    def sandbox_check(self, sentinel: HostProcess) -> dict[str, Any]:
        return self._network.sandbox_check(sentinel)


__all__ = ["EXEMPT", "Vault"]
