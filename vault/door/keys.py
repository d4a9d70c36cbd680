"""Key slots through the door: list, add, remove, change passphrase, rotate the vault's keys, and
authenticate a second person (an export's approver).

Adding a user, removing one, changing a role or rotating keys needs the authority key (admins'
slots only): the header is signed by it, so an operator with the data key still cannot produce a
header that verifies. Removing a user also rotates the metadata and data keys, so the removed
slot's keys open nothing current even from an old copy of vault.json. Rotation writes the new
catalog beside the old, then the header (the commit point), then renames; an interrupted one is
finished or dropped at the next open.
"""

from __future__ import annotations

from typing import Any

from vault.crypto import keys
from vault.door.results import KeySlotInfo
from vault.door.session import Session
from vault.errors import InputError, IntegrityError, NotFound
from vault.storage import catalog as catalogs
from vault.storage import keyring
from vault.storage.files import utc_now
from vault.storage.keyring import SlotSecrets, VaultKeys
from vault.storage.names import check_name


def _kdf_public(slot: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in slot["kdf"].items() if k != "salt"}


class KeyService:
    """The door's key slots."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def slots(self) -> list[KeySlotInfo]:
        header = self.session.fresh_header()
        authority = (
            keyring.fingerprint(keyring.unb64(header["authority"], "authority"))
            if "authority" in header
            else None
        )
        rows: list[KeySlotInfo] = []
        for s in header["slots"]:
            signing = s.get("signing_public")
            rows.append(
                {
                    "user": s["user"],
                    "role": s["role"],
                    "created": s["created"],
                    "kdf": _kdf_public(s),
                    "fingerprint": keyring.fingerprint(keyring.unb64(signing, "signing_public"))
                    if signing
                    else None,
                    "authority_fingerprint": authority,
                }
            )
        return rows

    def role_of(self, user: str) -> str:
        slot = keyring.find_slot(self.session.fresh_header(), user)
        if slot is None:
            raise NotFound(f"no user {user!r} in this vault", "`strongroom keys list` shows the users")
        return str(slot["role"])

    def authenticate(self, user: str, passphrase: bytes) -> tuple[str, SlotSecrets]:
        """Open `user`'s slot with `passphrase` in the authenticated header: (role, the slot's secrets,
        whose signing key makes the user's approval). AuthError for an unknown user or a wrong
        passphrase; IntegrityError when the slot does not pin this vault's authority."""
        header = self.session.fresh_header()
        slot, kek = keyring.passphrase_key(header, user, passphrase)
        secrets, _ = keyring.open_secrets(slot, kek, header)
        if secrets.authority != self.session.secrets.authority:
            raise IntegrityError(
                f"the slot of {user!r} pins another authority than this vault's",
                "restore vault.json from a backup",
                detail={"object": "vault.json"},
            )
        return str(slot["role"]), secrets

    def add(self, name: str, role: str, passphrase: bytes) -> dict[str, Any]:
        session = self.session
        check_name(name, "user")
        keyring.check_role(role)
        session.decide("keys.manage", target=name)
        session.authority()  # refuse before any work when this session cannot sign the header
        with session.lock:
            header = session.fresh_header()
            if keyring.find_slot(header, name) is not None:
                raise InputError(
                    f"user {name!r} already has a key slot", "choose another name, or `keys remove` it first"
                )
            slot, _ = keyring.new_slot(
                session.vault_id, name, role, passphrase, session.vault_keys, utc_now()
            )
            header["slots"].append(slot)
            session.record(
                "keys.add",
                name,
                "ok",
                role=role,
                kdf=_kdf_public(slot),
                fingerprint=keyring.fingerprint(keyring.unb64(slot["signing_public"], "signing_public")),
                header_generation=int(header["generation"]) + 1,
            )
            session.commit_header(header)
        return {"user": name, "role": role}

    def remove(self, name: str) -> dict[str, Any]:
        session = self.session
        session.decide("keys.manage", target=name)
        session.authority()
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
            if name == session.user:
                raise InputError("you cannot remove your own slot", "have another admin remove it")
            header["slots"] = [s for s in header["slots"] if s["user"] != name]
            rewrapped = self._rotate(header, f"keys.remove of {name}", removed=name, role=slot["role"])
        return {
            "user": name,
            "removed": True,
            "rotated": True,
            "data_keys_rewrapped": rewrapped,
            "note": "the metadata and data keys were replaced, so the removed slot opens nothing current; "
            "records the user read before remain what they read",
        }

    def passwd(self, new_passphrase: bytes) -> dict[str, Any]:
        session = self.session
        session.check_writable()
        with session.lock:
            header = session.fresh_header()
            slot = keyring.find_slot(header, session.user)
            if slot is None:
                raise NotFound(f"user {session.user!r} no longer has a key slot", "ask an admin")
            keyring.set_passphrase(slot, session.secrets, new_passphrase)
            session.record("keys.passwd", session.user, "ok")
            session.write_owner_fields(header)
        return {"user": session.user, "changed": True}

    def rotate(self) -> dict[str, Any]:
        """Replace the metadata and data keys; rewrap every data key; reseal them to every slot."""
        session = self.session
        session.decide("keys.manage", target="vault-keys")
        session.authority()
        with session.lock:
            header = session.fresh_header()
            rewrapped = self._rotate(header, "keys.rotate")
        return {"rotated": True, "data_keys_rewrapped": rewrapped, "slots": len(header["slots"])}

    def _rotate(self, header: dict[str, Any], why: str, **detail: Any) -> int:
        """New metadata and data keys (lock held): data keys rewrapped, the catalog resealed, each
        slot given its role's share, the header signed at the next generation, then committed."""
        session = self.session
        old = session.vault_keys
        new = VaultKeys(keys.random_key(), keys.random_key(), old.authority)
        catalog = session.read_catalog()
        assert old.data is not None and new.data is not None
        rewrapped = catalogs.rewrap_data_keys(catalog, old.data, new.data)
        catalog["generation"] = int(catalog.get("generation", 0)) + 1
        for slot in header["slots"]:
            keyring.seal_keys(slot, new)
        header["generation"] = int(header["generation"]) + 1
        keyring.sign_header(header, session.authority())
        action = "keys.remove" if "removed" in detail else "keys.rotate"
        subject = detail.pop("removed", session.vault_id)
        session.record(
            action,
            subject,
            "ok",
            data_keys_rewrapped=rewrapped,
            slots=len(header["slots"]),
            header_generation=header["generation"],
            reason=why,
            **detail,
        )
        session.commit_catalog_and_header(header, catalog, new)
        return rewrapped
