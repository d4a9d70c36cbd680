"""Key slots through the door: list, add, remove, change passphrase, rotate the master key.

Rotation makes a new master key, rewraps every data key under it, reseals it to every slot's
public key (no passphrases needed) and re-encrypts the catalog. It writes the new catalog beside
the old, then the header (the commit point), then renames; an interrupted rotation is finished or
dropped the next time the vault opens.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vault import keyring, store
from vault.crypto import keys
from vault.errors import InputError, NotFound


class KeysMixin:
    """Vault methods for key slots (mixed into `vault.Vault`)."""

    path: Path
    user: str
    role: str
    vault_id: str
    _header: dict[str, Any]
    _master: bytes
    _slot_private: bytes
    _lock: store.VaultLock
    _record: Callable[..., dict[str, Any]]
    _decide: Callable[..., Any]
    _read_catalog: Callable[..., dict[str, Any]]
    _check_open: Callable[[], None]

    def _fresh_header(self) -> dict[str, Any]:
        header = store.read_header(self.path)
        keyring.check_header_mac(self._master, header)
        return header

    def _commit_header(self, header: dict[str, Any], master: bytes | None = None) -> None:
        header["mac"] = keyring.header_mac(master or self._master, header)
        store.atomic_write(self.path / store.HEADER_FILE, store.canonical_json(header))
        self._header = header

    def keys_list(self) -> list[dict[str, Any]]:
        header = self._fresh_header()
        return [
            {
                "user": s["user"],
                "role": s["role"],
                "created": s["created"],
                "kdf": {k: v for k, v in s["kdf"].items() if k != "salt"},
            }
            for s in header["slots"]
        ]

    def keys_add(self, name: str, role: str, passphrase: bytes) -> dict[str, Any]:
        store.check_name(name, "user")
        keyring.check_role(role)
        self._decide("keys.manage", target=name)
        with self._lock:
            header = self._fresh_header()
            if keyring.find_slot(header, name) is not None:
                raise InputError(
                    f"user {name!r} already has a key slot", "choose another name, or `keys remove` it first"
                )
            slot, _ = keyring.new_slot(name, role, passphrase, self._master, store.utc_now())
            header["slots"].append(slot)
            self._record(
                "keys.add", name, "ok", role=role, kdf={k: v for k, v in slot["kdf"].items() if k != "salt"}
            )
            self._commit_header(header)
        return {"user": name, "role": role}

    def keys_remove(self, name: str) -> dict[str, Any]:
        self._decide("keys.manage", target=name)
        with self._lock:
            header = self._fresh_header()
            slot = keyring.find_slot(header, name)
            if slot is None:
                raise NotFound(f"no key slot for user {name!r}", "`strongroom keys list` shows the users")
            admins = [s for s in header["slots"] if s["role"] == "admin" and s["user"] != name]
            if slot["role"] == "admin" and not admins:
                raise InputError(
                    f"{name!r} holds the last admin slot; removing it would lock every admin out",
                    "add another admin first (`strongroom keys add NAME --role admin`)",
                )
            header["slots"] = [s for s in header["slots"] if s["user"] != name]
            self._record("keys.remove", name, "ok", role=slot["role"])
            self._commit_header(header)
        return {
            "user": name,
            "removed": True,
            "note": "a removed user who copied the master key could still read old copies; "
            "run `strongroom keys rotate` to replace it",
        }

    def keys_passwd(self, new_passphrase: bytes) -> dict[str, Any]:
        self._check_open()
        with self._lock:
            header = self._fresh_header()
            slot = keyring.find_slot(header, self.user)
            if slot is None:
                raise NotFound(f"user {self.user!r} no longer has a key slot", "ask an admin")
            keyring.set_passphrase(slot, self._slot_private, new_passphrase)
            self._record("keys.passwd", self.user, "ok")
            self._commit_header(header)
        return {"user": self.user, "changed": True}

    def keys_rotate(self) -> dict[str, Any]:
        """Replace the master key; rewrap every data key; reseal the master key to every slot."""
        from vault.door import CATALOG_NEXT

        self._decide("keys.manage", target="master-key")
        new_master = keys.random_key()
        rewrapped = 0
        with self._lock:
            header = self._fresh_header()
            catalog = self._read_catalog()
            for entry in catalog["datasets"].values():
                for version in entry["versions"]:
                    version["wrapped_key"] = self._rewrap(version["wrapped_key"], new_master)
                    rewrapped += 1
            for model in catalog["models"].values():
                for ref in model.get("objects", {}).values():
                    if "wrapped_key" in ref:
                        ref["wrapped_key"] = self._rewrap(ref["wrapped_key"], new_master)
                        rewrapped += 1
            catalog["generation"] = int(catalog.get("generation", 0)) + 1
            for slot in header["slots"]:
                keyring.seal_master(slot, new_master)
            self._record(
                "keys.rotate", self.vault_id, "ok", data_keys_rewrapped=rewrapped, slots=len(header["slots"])
            )
            next_path = self.path / CATALOG_NEXT
            store.atomic_write(
                next_path, store.seal_catalog(self.vault_id, keyring.catalog_key(new_master), catalog)
            )
            self._commit_header(header, new_master)  # the commit point
            os.replace(next_path, self.path / store.CATALOG_FILE)
            store.fsync_dir(self.path)
            self._master = new_master
        return {"rotated": True, "data_keys_rewrapped": rewrapped, "slots": len(header["slots"])}

    def _rewrap(self, wrapped_b64: str, new_master: bytes) -> str:
        key = keys.unwrap_key(self._master, keyring.unb64(wrapped_b64, "wrapped_key"))
        return keyring.b64(keys.wrap_key(new_master, key))
