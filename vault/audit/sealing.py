"""The writer's side of forward-secure sealing (format and reasons: vault/audit/epochs.py).

A `Sealer` is attached to an AuditLog by a session that opened the vault's catalog. Under the log's
lock it keeps the running epoch (re-read when another process moved it on), opens the first epoch of
a log, opens a new one when the running one is idle (closed at the end of a command) or older than
ROTATE_AFTER, seals each line, and at the end of a command records any line it did not write and
closes the epoch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vault.audit import epochs, merkle
from vault.audit.reader import latest_detail, lines_backwards
from vault.audit.state import TreeState, split_lines
from vault.errors import IntegrityError

ROTATE_AFTER = 15 * 60.0  # seconds: a long-running session (the TUI) moves its keys on this often

WriteEntry = Callable[[TreeState, str, str, str, str, str, dict[str, Any]], dict[str, Any]]


class Sealer:
    """Seals the entries one process writes to one vault's log."""

    def __init__(
        self, audit_dir: Path, vault_secret: bytes, actor: str = "strongroom", role: str = "unknown"
    ) -> None:
        self.dir = Path(audit_dir)
        self._state_path = os.fspath(self.dir / epochs.STATE_FILE)
        self._secret = vault_secret
        self.actor, self.role = actor, role
        self._live: epochs.LiveEpoch | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._opened_at = time.monotonic()

    @property
    def current(self) -> epochs.LiveEpoch | None:
        return self._live

    # ----------------------------------------------------------------- the running epoch
    def _state_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._state_path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _load(self) -> epochs.LiveEpoch | None:
        stamp = self._state_stamp()
        if stamp is None:
            self._live, self._stamp = None, None
        elif stamp != self._stamp:
            try:
                self._live = epochs.read_live_state(self.dir, self._secret)
            except IntegrityError:
                self._live = None  # replaced or damaged: the next epoch starts uncertified, and says so
            self._stamp = stamp
            self._opened_at = time.monotonic()
        return self._live

    def _save(self, live: epochs.LiveEpoch) -> None:
        epochs.write_live_state(self.dir, self._secret, live)
        self._live, self._stamp = live, self._state_stamp()
        self._opened_at = time.monotonic()

    def ready(
        self, log_path: Path, state: TreeState, write: WriteEntry, actor: str, role: str
    ) -> epochs.LiveEpoch:
        """The epoch the next entry is sealed in (lock held): opened first when there is none, when
        the running one is idle, or when it has run for ROTATE_AFTER."""
        live = self._load()
        if live is not None and live.opening is not None:
            live = self._finish_opening(live, state, write, actor, role)
        if live is None:
            logged = latest_detail(log_path, "mac_commit")
            reason = (
                "the first epoch of this log"
                if logged is None
                else "the sealed epoch state was missing or unreadable: this epoch is not certified by the last one"
            )
            nxt = epochs.new_epoch(_logged_epoch(log_path) + 1, state.size, state.offset)
            return self._open(None, nxt, state, write, actor, role, reason, idle=False)
        if live.idle:
            return self.rotate(state, write, actor, role, "a new command", idle=False, log_path=log_path)
        if time.monotonic() - self._opened_at > ROTATE_AFTER:
            return self.rotate(state, write, actor, role, "15 minutes passed", idle=False, log_path=log_path)
        return live

    def close(self, log_path: Path, state: TreeState, write: WriteEntry) -> None:
        """The end of a command: close the running epoch, leaving it idle (lock held)."""
        live = self._load()
        if live is not None and live.opening is not None:
            live = self._finish_opening(live, state, write, self.actor, self.role)
        if live is None:
            live = self.ready(log_path, state, write, self.actor, self.role)
        if not (live.idle and live.start_seq == state.size - 1):
            self.rotate(
                state, write, self.actor, self.role, "the command ended", idle=True, log_path=log_path
            )

    def move_on(self, log_path: Path, state: TreeState, write: WriteEntry) -> None:
        """Rotate a running epoch now (lock held); an idle or absent one is left for the next entry."""
        live = self._load()
        if live is not None and live.opening is None and not live.idle:
            self.rotate(
                state, write, self.actor, self.role, "15 minutes passed", idle=False, log_path=log_path
            )

    def seal(self, live: epochs.LiveEpoch, unsealed_line: bytes) -> bytes:
        return epochs.seal_line(live.mac_key, unsealed_line)

    def rotate(
        self,
        state: TreeState,
        write: WriteEntry,
        actor: str,
        role: str,
        reason: str,
        *,
        idle: bool,
        log_path: Path,
    ) -> epochs.LiveEpoch:
        """Close the running epoch (recording any line in it that it did not seal) and open the next."""
        live = self._load()
        if live is None:
            return self.ready(log_path, state, write, actor, role)
        lines = self._epoch_lines(log_path, live, state)
        bad = epochs.unsealed_in(lines, live.start_seq, live.mac_key) if lines is not None else []
        if bad:
            write(
                state,
                actor,
                role,
                epochs.UNSEALED_ACTION,
                "log.jsonl",
                "found",
                {
                    "seqs": bad,
                    "leaf_hashes": [merkle.leaf_hash(lines[s - live.start_seq]).hex() for s in bad],  # type: ignore[index]
                    "reason": "lines this vault did not write (no valid seal): never sealed or signed as ours",
                },
            )
        nxt = epochs.new_epoch(live.epoch + 1, state.size, state.offset)
        return self._open(live, nxt, state, write, actor, role, reason, idle=idle)

    def _epoch_lines(self, log_path: Path, live: epochs.LiveEpoch, state: TreeState) -> list[bytes] | None:
        if live.start_offset > state.offset:
            return None
        with open(log_path, "rb") as f:
            f.seek(live.start_offset)
            data = f.read(state.offset - live.start_offset)
        lines, _ = split_lines(data)
        return lines

    def _open(
        self,
        previous: epochs.LiveEpoch | None,
        nxt: epochs.LiveEpoch,
        state: TreeState,
        write: WriteEntry,
        actor: str,
        role: str,
        reason: str,
        *,
        idle: bool,
    ) -> epochs.LiveEpoch:
        """Persist the next epoch with its signed opening first (so a crash cannot lose the
        certificate: the next writer finishes it), then write the opening entry."""
        nxt.start_seq, nxt.start_offset = state.size, state.offset
        nxt.idle = idle
        nxt.opening = epochs.epoch_detail(previous, nxt, state.size, state.tree.root().hex(), reason, idle)
        self._save(nxt)  # the previous epoch's secrets are gone from disk from here on
        return self._finish_opening(nxt, state, write, actor, role)

    def _finish_opening(
        self, live: epochs.LiveEpoch, state: TreeState, write: WriteEntry, actor: str, role: str
    ) -> epochs.LiveEpoch:
        assert live.opening is not None
        if state.size == live.start_seq:
            self._live = live  # the opening entry is sealed with this epoch's key
            write(state, actor, role, epochs.EPOCH_ACTION, f"epoch {live.epoch}", "ok", dict(live.opening))
        live.opening = None
        self._save(live)
        return live


def _logged_epoch(log_path: Path) -> int:
    """The number of the newest epoch the log opened, -1 when none."""
    for line in lines_backwards(log_path):
        if b'"audit.epoch"' in line:
            try:
                return int(json.loads(line)["detail"]["epoch"])
            except (ValueError, KeyError, TypeError):
                continue
    return -1
