"""Key slots through the door: list, add, remove, change passphrase, rotate the master key, and
authenticate a second person (an export's approver).

Rotation makes a new master key, rewraps every data key under it, reseals it to every slot's
public key (no passphrases needed) and re-encrypts the catalog. It writes the new catalog beside
the old, then the header (the commit point), then renames; an interrupted rotation is finished or
dropped the next time the vault opens.
"""

from __future__ import annotations

from typing import Any

from vault.crypto import keys
from vault.door.results import KeySlotInfo
from vault.door.session import Session
from vault.errors import InputError, NotFound
from vault.storage import keyring
from vault.storage.names import check_name


def _kdf_public(slot: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in slot["kdf"].items() if k != "salt"}


class KeyService:
    """The door's key slots."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def slots(self) -> list[KeySlotInfo]:
        header = self.session.fresh_header()
        return [
            {"user": s["user"], "role": s["role"], "created": s["created"], "kdf": _kdf_public(s)}
            for s in header["slots"]
        ]

    def role_of(self, user: str) -> str:
        slot = keyring.find_slot(self.session.fresh_header(), user)
        if slot is None:
            raise NotFound(f"no user {user!r} in this vault", "`strongroom keys list` shows the users")
        return str(slot["role"])

    def authenticate(self, user: str, passphrase: bytes) -> str:
        """Open `user`'s slot with `passphrase` in the authenticated header; returns the user's role.
        Raises AuthError for an unknown user or a wrong passphrase."""
        _, _, slot = keyring.unlock(self.session.fresh_header(), user, passphrase)
        return str(slot["role"])

    def add(self, name: str, role: str, passphrase: bytes) -> dict[str, Any]:
        session = self.session
        check_name(name, "user")
        keyring.check_role(role)
        session.decide("keys.manage", target=name)
        with session.lock:
            header = session.fresh_header()
            if keyring.find_slot(header, name) is not None:
                raise InputError(
                    f"user {name!r} already has a key slot", "choose another name, or `keys remove` it first"
                )
            slot = session.new_slot(name, role, passphrase)
            header["slots"].append(slot)
            session.record("keys.add", name, "ok", role=role, kdf=_kdf_public(slot))
            session.commit_header(header)
        return {"user": name, "role": role}

    def remove(self, name: str) -> dict[str, Any]:
        session = self.session
        session.decide("keys.manage", target=name)
        with session.lock:
            header = session.fresh_header()
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
            session.record("keys.remove", name, "ok", role=slot["role"])
            session.commit_header(header)
        return {
            "user": name,
            "removed": True,
            "note": "a removed user who copied the master key could still read old copies; "
            "run `strongroom keys rotate` to replace it",
        }

    def passwd(self, new_passphrase: bytes) -> dict[str, Any]:
        session = self.session
        session.check_open()
        with session.lock:
            header = session.fresh_header()
            slot = keyring.find_slot(header, session.user)
            if slot is None:
                raise NotFound(f"user {session.user!r} no longer has a key slot", "ask an admin")
            keyring.set_passphrase(slot, session.slot_private, new_passphrase)
            session.record("keys.passwd", session.user, "ok")
            session.commit_header(header)
        return {"user": session.user, "changed": True}

    def rotate(self) -> dict[str, Any]:
        """Replace the master key; rewrap every data key; reseal the master key to every slot."""
        session = self.session
        session.decide("keys.manage", target="master-key")
        new_master = keys.random_key()
        rewrapped = 0
        with session.lock:
            header = session.fresh_header()
            catalog = session.read_catalog()
            for entry in catalog["datasets"].values():
                for version in entry["versions"]:
                    version["wrapped_key"] = session.rewrap(version["wrapped_key"], new_master)
                    rewrapped += 1
            for model in catalog["models"].values():
                for ref in model["objects"].values():
                    if "wrapped_key" in ref:
                        ref["wrapped_key"] = session.rewrap(ref["wrapped_key"], new_master)
                        rewrapped += 1
            catalog["generation"] = int(catalog.get("generation", 0)) + 1
            for slot in header["slots"]:
                keyring.seal_master(slot, new_master)
            session.record(
                "keys.rotate",
                session.vault_id,
                "ok",
                data_keys_rewrapped=rewrapped,
                slots=len(header["slots"]),
            )
            session.replace_master(header, catalog, new_master)
        return {"rotated": True, "data_keys_rewrapped": rewrapped, "slots": len(header["slots"])}
