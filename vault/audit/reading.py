"""Reading the audit log: entries, the facts its entries record, proofs, seals. Needs no key and
writes nothing; `AuditLog` (log.py) adds appending, checkpoints and verification on top."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

from vault.audit import epochs, merkle
from vault.audit.entries import LazyEntries
from vault.audit.handles import DirLocks
from vault.audit.reader import above_detail, earliest_detail, latest_detail, parse_time, select
from vault.audit.state import split_lines
from vault.errors import IntegrityError


class LogReading:
    """The read side of one vault's audit log; readers take the directory's shared lock."""

    dir: Path
    log_path: Path
    checkpoint_path: Path
    _locks: DirLocks

    def _shared(self) -> contextlib.AbstractContextManager[None]:
        return self._locks.shared()

    def _read_log(self, start: int = 0) -> bytes:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read()
        except FileNotFoundError:
            return b""

    def latest_checkpoint(self) -> str | None:
        """The latest signed checkpoint's text, unchecked (None before the first)."""
        try:
            return self.checkpoint_path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise IntegrityError(
                f"{self.checkpoint_path} is not text", "run `strongroom audit verify` to see what changed"
            ) from None

    def entries(
        self,
        since: str | dt.datetime | None = None,
        action: str | None = None,
        actor: str | None = None,
        positions: list[int] | None = None,
    ) -> list[dict[str, Any]]:
        """Complete entries in order, filtered; a torn last line is not an entry (verify reports it).

        `since` keeps entries at or after a time; `action` matches exactly or as a dotted prefix
        (`dataset` matches `dataset.read`); `actor` matches exactly. The place of each entry
        returned (its line, from 0: what verification names, whatever the line's `seq` says) goes
        to `positions` when given.
        """
        after = parse_time(since) if isinstance(since, str) else since
        if after is not None and after.tzinfo is None:
            after = after.replace(tzinfo=dt.UTC)
        with self._shared():
            lines, _ = split_lines(self._read_log())
        if after is None and action is None and actor is None:
            try:  # one parse for the whole log: the common case, and the audit screen's floor
                parsed = json.loads(b"[" + b",".join(lines) + b"]")
            except (ValueError, RecursionError):
                parsed = None  # find and name the bad line below
            if parsed is not None and len(parsed) == len(lines) and all(isinstance(e, dict) for e in parsed):
                if positions is not None:
                    positions.extend(range(len(parsed)))
                return parsed  # one value per line, each an object: the same as parsing line by line
        return select(lines, after, action, actor, positions)

    def latest(self, key: str, earliest: bool = False) -> tuple[int, Any] | None:
        """(seq, value) of the newest entry whose detail records `key` (e.g. header_generation), or
        with `earliest` the oldest (for a value fixed at init: the authority)."""
        with self._shared():
            return (earliest_detail if earliest else latest_detail)(self.log_path, key)

    def above_vouched(self, bounds: dict[str, int], vault_secret: bytes | None) -> dict[str, Any]:
        """For counts that only grow (generations), each key's bound: the newest entry this vault sealed
        recording the key above it (or not a whole number); no line appended later hides it. Seals are
        checked only for a key a line records above (epochs.vouched); with no running epoch, all count."""
        with self._shared():
            found = {key: rows for key, rows in above_detail(self.log_path, bounds).items() if rows}
        try:
            live = epochs.read_live_state(self.dir, vault_secret) if found and vault_secret else None
        except IntegrityError:
            live = None
        with self._shared():
            return {
                key: rows[-1] if live is None else epochs.vouched_above(self.log_path, key, live, bounds[key])
                for key, rows in found.items()
            }

    def lazy_entries(self) -> LazyEntries:
        """All complete entries, parsed on demand (for screens). Lines that are plainly not JSON
        objects are refused at once, as `entries()` refuses them."""
        with self._shared():
            lines, _ = split_lines(self._read_log())
        for index, line in enumerate(lines):
            if not (line.startswith(b"{") and line.endswith(b"}")):
                raise IntegrityError(
                    f"audit log line {index + 1} is not a JSON object",
                    "run `strongroom audit verify` to list every problem",
                )
        return LazyEntries(lines)

    def torn_tail(self) -> tuple[int, int] | None:
        """(byte offset, length) of a partial last line, or None."""
        data = self._read_log()
        if not data or data.endswith(b"\n"):
            return None
        start = data.rfind(b"\n") + 1
        return start, len(data) - start

    def inclusion_proof(self, seq: int, size: int | None = None) -> list[bytes]:
        """Audit path proving entry `seq` is in the tree of the first `size` entries (default all)."""
        with self._shared():
            lines, _ = split_lines(self._read_log())
        leaves = [merkle.leaf_hash(line) for line in lines]
        return merkle.inclusion_proof(leaves, seq, len(leaves) if size is None else size)

    def initial_key(self) -> bytes | None:
        """The first epoch's public key as the log records it (unchecked: the auditor compares its
        fingerprint with the one `init` printed), or None for a log without epochs."""
        with self._shared():
            lines, _ = split_lines(self._read_log())
        for line in lines:
            if b'"audit.epoch"' in line:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    if entry["action"] == epochs.EPOCH_ACTION:
                        return base64.b64decode(entry["detail"]["key"], validate=True)
        return None

    def unsealed(self) -> set[int]:
        """Seqs of complete lines without a valid seal, as far as the revealed keys tell."""
        with self._shared():
            lines, _ = split_lines(self._read_log())
        return epochs.check_seals(lines).unsealed
