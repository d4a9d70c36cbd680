"""The TUI's only way into the vault: a thin adapter over `vault.Vault` and the audit reader.

Principle "one door": no module under tui/ reads or writes vault files; every call goes
through here, and here only through the core's public API. Imports of the core happen
inside the functions, so starting the TUI does not import torch.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

EventCallback = Callable[[Any], None]


def as_dict(value: Any) -> dict[str, Any]:
    """A plain dict for a core record (dict, frozen dataclass, or object with to_json())."""
    if isinstance(value, Mapping):
        return dict(value)
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        result = to_json()
        if isinstance(result, Mapping):
            return dict(result)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    return dict(vars(value))


def as_dicts(values: Iterable[Any]) -> list[dict[str, Any]]:
    return [as_dict(value) for value in values]


class Backend:
    """An unlocked vault, as the TUI sees it. Every method may block: call it from a worker."""

    def __init__(self, vault: Any) -> None:
        self._vault = vault

    @classmethod
    def unlock(cls, path: Path | str, *, user: str, passphrase: bytes) -> Backend:
        from vault.door import Vault

        return cls(Vault.open(path, user=user, passphrase=passphrase))

    @classmethod
    def resume(cls, path: Path | str, *, user: str, secrets: bytes) -> Backend:
        """The session of a parent process, from its slot secrets (the trainer)."""
        from vault.door import Vault
        from vault.storage.keyring import SlotSecrets

        return cls(Vault.resume(path, user=user, slot_secrets=SlotSecrets.unpack(secrets)))

    def slot_secrets(self) -> bytes:
        return bytes(self._vault.slot_secrets().pack())

    @property
    def user(self) -> str:
        return str(self._vault.user)

    @property
    def role(self) -> str:
        return str(self._vault.role)

    @property
    def path(self) -> Path:
        return Path(self._vault.path)

    def close(self) -> None:
        self._vault.close()

    def move_sealing_on(self) -> None:
        """Move the audit log's sealing keys to a new epoch (the old ones are destroyed)."""
        self._vault.audit.move_sealing_on()

    # Datasets.
    def datasets(self) -> list[dict[str, Any]]:
        return as_dicts(self._vault.datasets())

    def dataset(self, name: str) -> dict[str, Any]:
        return as_dict(self._vault.dataset(name))

    def sample(self, name: str, count: int) -> Any:
        return self._vault.sample(name, count)

    def delete_dataset(self, name: str) -> None:
        self._vault.delete_dataset(name)

    @staticmethod
    def import_options(**choices: Any) -> Any:
        """The core's ImportOptions (fmt, labels, image_size, text_column, label_column, header)."""
        from vault.ingest import ImportOptions

        return ImportOptions(**{key: value for key, value in choices.items() if value is not None})

    def detect(self, source: Path, options: Any) -> dict[str, Any]:
        """What an import would find (format, kind, classes, counts, ...), without writing anything."""
        from vault.ingest import detect

        return as_dict(detect(source, options))

    def import_dataset(
        self,
        source: Path,
        *,
        name: str,
        sensitivity: str,
        options: Any,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any]:
        info = self._vault.import_dataset(
            source, name=name, sensitivity=sensitivity, options=options, on_event=on_event, cancel=cancel
        )
        return as_dict(info)

    # Training, models, privacy.
    def train(
        self, request: dict[str, Any], *, on_event: EventCallback | None, cancel: threading.Event
    ) -> dict:
        return as_dict(self._vault.train(request, on_event=on_event, cancel=cancel))

    def models(self) -> list[dict[str, Any]]:
        return as_dicts(self._vault.models())

    def model_card(self, model_id: str) -> str:
        """The model card as Markdown (DP statement, metrics, leakage check)."""
        return str(self._vault.model_card(model_id, markdown=True))

    def evaluate(self, model_id: str, dataset: str) -> dict[str, Any]:
        return as_dict(self._vault.evaluate(model_id, dataset))

    def export(
        self,
        model_id: str,
        out_dir: Path,
        *,
        approver: str | None = None,
        approver_passphrase: bytes | None = None,
    ) -> Any:
        return self._vault.export(
            model_id, out_dir, approver=approver, approver_passphrase=approver_passphrase
        )

    def budget(self) -> list[dict[str, Any]]:
        return as_dicts(self._vault.budget())

    # Policy.
    def policy_show(self) -> dict[str, Any]:
        """The active policy: name, sha256, source, rules (id, effect, text) and its TOML text."""
        return as_dict(self._vault.policy_show())

    def policy_check(self, action: str, **facts: Any) -> dict[str, Any]:
        """A dry run (audited): allowed, outcome, rule, reason, facts."""
        return as_dict(self._vault.policy_check(action, **{k: v for k, v in facts.items() if v is not None}))


class AuditReader:
    """The audit log of a vault, read without a passphrase (what an auditor may do)."""

    def __init__(self, vault_path: Path) -> None:
        self.vault_path = Path(vault_path)

    def _log(self) -> Any:
        from vault.audit import AuditLog

        return AuditLog(self.vault_path / "audit")

    def entries(self) -> Sequence[dict[str, Any]]:
        """The log's entries, parsed as the screen draws them."""
        return self._log().lazy_entries()

    def verify(self, on_event: EventCallback | None = None) -> dict[str, Any]:
        """The verification report: ok, entries, signed_size, message, notes, findings (as dicts)."""
        report = self._log().verify(on_event=on_event)
        result = as_dict(report)
        result["findings"] = as_dicts(report.findings)
        result["witness"] = self.witness_status()
        return result

    def witness_status(self) -> dict[str, Any] | None:
        """The largest cosigned checkpoint in the vault: witness, size, time (UTC text); None if none."""
        import datetime as dt

        from vault.audit.cosign import last_cosigned

        found = last_cosigned(self._log())
        if found is None:
            return None
        when = dt.datetime.fromtimestamp(found.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return {"witness": found.name, "size": found.size, "time": when}

    def cosign(self, key_file: Path) -> dict[str, Any]:
        """Cosign the latest checkpoint with the witness key in `key_file` (see `strongroom audit cosign`)."""
        from vault.audit.cosign import cosign_vault

        return cosign_vault(self._log(), Path(key_file).expanduser())

    def report(self, since: str = "", until: str = "", dataset: str = "", user: str = "") -> dict[str, Any]:
        """The access report (as `strongroom audit report --format json` gives it) for a scope."""
        from vault.audit import parse_time
        from vault.audit.reader import parse_until
        from vault.audit.report import Scope, build_report
        from vault.audit.report.render import now_text

        scope = Scope(
            since=parse_time(since) if since else None,
            until=parse_until(until) if until else None,
            dataset=dataset or None,
            user=user or None,
        )
        return build_report(self.vault_path / "audit", scope, generated=now_text())

    def save_report(self, report: dict[str, Any], target: Path) -> Path:
        """Write `report` to a new file, as Markdown, HTML or JSON by the file's suffix."""
        from vault.audit.report import render_html, render_json, render_markdown
        from vault.errors import InputError

        renderers = {".md": render_markdown, ".html": render_html, ".json": render_json}
        render = renderers.get(target.suffix.lower())
        if render is None:
            raise InputError(
                f"{target.name}: the report is written as .md, .html or .json", "name the file so"
            )
        return _write_new(target, render(report))

    def save_checkpoint(self, target: Path) -> Path:
        """Copy the latest signed checkpoint to `target` (a new file; an existing one is kept)."""
        from vault.errors import NotFound

        text = self._log().latest_checkpoint()
        if text is None:
            raise NotFound(
                "the log has no signed checkpoint yet",
                "a checkpoint is written at the end of every vault session; open and close the vault",
            )
        return _write_new(target, text)


def _write_new(target: Path, text: str) -> Path:
    """Write `text` to `target`, which must not exist yet (an existing file is never replaced)."""
    from vault.errors import InputError

    try:
        with open(target, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise InputError(f"{target} already exists; it was left as it is", "choose a new file name") from None
    except OSError as error:
        raise InputError(
            f"cannot write {target}: {error.strerror}", "choose a folder you can write to"
        ) from None
    return target
