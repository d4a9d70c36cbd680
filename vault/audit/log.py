"""The signed, tamper-evident audit log: JSON Lines entries that are leaves of an RFC 6962 tree.

Each entry carries `prev`, the Merkle root of the log before it, so edits, swaps and insertions
break the chain even without a signature; signed C2SP checkpoints commit to the whole log, and a
checkpoint kept off the machine proves the log was not cut back since. Reading and verifying need
no key: an auditor works on `<vault>/audit/` alone (the read side is reading.py). Format and
manual checks: docs/AUDIT.md.

Files in `<vault>/audit/`:
  log.jsonl        one canonical JSON object per line; the leaf data is the line without "\\n"
  pubkey.pem       the vault's Ed25519 public key, for auditors
  checkpoint       the latest signed checkpoint; checkpoints/<size>.txt keeps every one
  .lock            appenders take an exclusive flock on it, readers a shared one
  state.json       a cache of tree states (end of log, last checkpoint) for cheap appends and
                   checkpoints; checked before use, rebuilt when wrong, never read by verify
  torn/            bytes of a torn last line, kept when an append repairs it
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vault.audit import epochs, merkle
from vault.audit.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint, verify_checkpoint
from vault.audit.handles import DirLocks, HeldFile
from vault.audit.reading import LogReading
from vault.audit.scan import ACTION_RE, ENTRY_VERSION, scan_log
from vault.audit.sealing import Sealer
from vault.audit.state import TreeState, split_lines
from vault.audit.verify import AuditReport, verify_snapshot
from vault.audit.witness import WitnessKey
from vault.crypto.signing import SigningKey, load_public_pem
from vault.errors import IntegrityError, StrongroomError, UsageError
from vault.findings import Finding, VerifyProgress
from vault.storage.files import atomic_write, canonical_json, fsync_dir, utc_now
from vault.storage.layout import TMP_PREFIX

LOG_FILE = "log.jsonl"
PUBKEY_FILE = "pubkey.pem"
CHECKPOINT_FILE = "checkpoint"
CHECKPOINTS_DIR = "checkpoints"
LOCK_FILE = ".lock"
STATE_FILE = "state.json"
TORN_DIR = "torn"


def _write_failed(path: Path, exc: OSError) -> StrongroomError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return StrongroomError(
            f"the disk holding {path.parent} is full: the audit entry was not written and the action did not run",
            "free space on that disk, then run the command again",
        )
    return StrongroomError(
        f"cannot write the audit log {path}: {exc.strerror}",
        "check the vault directory's permissions and disk; the action did not run",
    )


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    """What changes whenever anyone writes to, truncates, replaces or touches the log."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class AuditLog(LogReading):
    """The audit log of one vault, in `audit_dir` (`<vault>/audit`). Safe across processes."""

    def __init__(self, audit_dir: Path | str, *, origin: str | None = None) -> None:
        self.dir = Path(audit_dir)
        self.origin = origin
        self.log_path = self.dir / LOG_FILE
        self.pubkey_path = self.dir / PUBKEY_FILE
        self.checkpoint_path = self.dir / CHECKPOINT_FILE
        self.checkpoints_dir = self.dir / CHECKPOINTS_DIR
        self.lock_path = self.dir / LOCK_FILE
        self.state_path = self.dir / STATE_FILE
        self._state: TreeState | None = None
        self._locks = DirLocks(self.lock_path)
        self._log_file = HeldFile(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._written: tuple[int, ...] | None = None  # the log's stat after this object's last append
        self._log_stat: os.stat_result | None = None  # the log's stat as the lock holder last saw it
        self.sealer: Sealer | None = None

    def attach_sealer(self, vault_secret: bytes, actor: str, role: str) -> None:
        """Seal every entry this object writes from now on (a session that opened the catalog)."""
        if self.sealer is None:
            self.sealer = Sealer(self.dir, vault_secret, actor, role)

    # ------------------------------------------------------------------ locking
    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self._locks.exclusive()

    def writer_lock(self) -> contextlib.AbstractContextManager[None]:
        """The appenders' exclusive lock, for a writer of the audit directory (a witness cosigning)."""
        return self._locks.exclusive()

    # ------------------------------------------------------------------ tree state
    def _rescan(self) -> TreeState:
        lines, tail = split_lines(self._read_log())
        state = TreeState()
        for line in lines:
            state.add(line)
        if tail:
            state.torn = (state.offset, tail)
        return state

    def _still_valid(self, state: TreeState, file_size: int) -> bool:
        """Cheap check that a cached state still describes the start of the file."""
        if state.offset > file_size:
            return False
        if state.size == 0:
            return state.offset == 0
        if state.last_len <= 0 or state.last_len > state.offset:
            return False
        with open(self.log_path, "rb") as f:
            f.seek(state.offset - state.last_len - (1 if state.offset > state.last_len else 0))
            chunk = f.read(state.last_len + (1 if state.offset > state.last_len else 0))
        if state.offset > state.last_len:
            if chunk[:1] != b"\n":
                return False
            chunk = chunk[1:]
        return chunk.endswith(b"\n") and merkle.leaf_hash(chunk[:-1]) == state.last_leaf

    def _current_state(self) -> TreeState:
        """The tree state at the end of the log (lock held): cached, caught up, or rescanned."""
        try:
            st = os.stat(self.log_path)
        except FileNotFoundError:
            st = None
        self._log_stat = st
        file_size = st.st_size if st is not None else 0
        state = self._state
        if state is not None and st is not None and _stamp(st) == self._written and state.offset == file_size:
            state.torn = None  # the file is as this object's last append left it: nothing to read
            return state
        if state is None:
            with contextlib.suppress(OSError, ValueError):
                state = TreeState.from_json(json.loads(self.state_path.read_bytes()))
            if state is not None and not self._agrees_with_checkpoint(state):
                state = None
        if state is not None and file_size and self._still_valid(state, file_size):
            state.torn = None
            if file_size > state.offset:
                lines, tail = split_lines(self._read_log(state.offset))
                for line in lines:
                    state.add(line)
                if tail:
                    state.torn = (state.offset, tail)
        elif state is not None and file_size == 0 and state.size == 0:
            state.torn = None
        else:
            state = self._rescan()
            self._save_state(state)
        self._state = state
        return state

    def _agrees_with_checkpoint(self, state: TreeState) -> bool:
        """A cache read from disk must not contradict the latest checkpoint when both have one size."""
        try:
            cp = parse_checkpoint(self.checkpoint_path.read_bytes())
        except (OSError, StrongroomError):
            return True
        return cp.size != state.size or cp.root == state.tree.root()

    def _save_state(self, state: TreeState) -> None:
        """Refresh the sidecar cache (at checkpoints and after a full rescan)."""
        with contextlib.suppress(OSError, StrongroomError):
            atomic_write(self.state_path, canonical_json(state.to_json()))

    # ------------------------------------------------------------------ writing
    def init(self, public_pem: bytes) -> None:
        """Create the audit directory and publish the vault's public key for auditors."""
        with self._exclusive():
            self._install_pubkey(public_pem)

    def _install_pubkey(self, public_pem: bytes) -> None:
        try:
            raw = load_public_pem(public_pem)
        except ValueError:
            raise UsageError(
                "not an Ed25519 public key in PEM form", "pass SigningKey.public_pem()"
            ) from None
        try:
            existing = self.pubkey_path.read_bytes()
        except FileNotFoundError:
            atomic_write(self.pubkey_path, public_pem)
            return
        try:
            same = load_public_pem(existing) == raw
        except ValueError:
            same = False
        if not same:
            raise IntegrityError(
                f"{self.pubkey_path} does not hold this vault's audit public key",
                "the file was replaced or damaged: run `strongroom audit verify --pubkey` with a copy you trust",
            )

    def append(
        self,
        actor: str,
        role: str,
        action: str,
        subject: str,
        outcome: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one entry durably (fsync) and return it. Metadata only, never record content."""
        if not ACTION_RE.fullmatch(action):
            raise ValueError(f"audit action {action!r} is not dotted lower-case words (e.g. dataset.read)")
        for name, value in (("actor", actor), ("role", role), ("subject", subject), ("outcome", outcome)):
            if not isinstance(value, str):
                raise TypeError(f"audit {name} must be a string, not {type(value).__name__}")
        detail = dict(detail or {})
        canonical_json(detail)  # refuse what cannot be encoded before taking the lock
        with self._exclusive():
            state = self._current_state()
            repaired = self._cut_torn_tail(state) if state.torn is not None else None
            if self.sealer is not None:
                self.sealer.ready(self.log_path, state, self._write_entry, actor, role)
            if repaired is not None:
                self._write_entry(
                    state,
                    actor,
                    role,
                    "audit.repair",
                    f"{LOG_FILE}@{repaired['torn_offset']}",
                    "repaired",
                    repaired,
                )
            # state.json is refreshed at checkpoints, not here: renaming a file next to the log
            # on every append would make each append's fsync commit that too.
            return self._write_entry(state, actor, role, action, subject, outcome, detail)

    def _write_entry(
        self,
        state: TreeState,
        actor: str,
        role: str,
        action: str,
        subject: str,
        outcome: str,
        detail: dict[str, Any],
    ) -> dict[str, Any]:
        entry = {
            "v": ENTRY_VERSION,
            "seq": state.size,
            "time": utc_now(),
            "actor": actor,
            "role": role,
            "action": action,
            "subject": subject,
            "outcome": outcome,
            "detail": detail,
            "prev": state.tree.root().hex(),
        }
        live = self.sealer.current if self.sealer is not None else None
        if live is not None:
            entry["seal"] = ""
            data = self.sealer.seal(live, canonical_json(entry))  # type: ignore[union-attr]
            entry["seal"] = epochs.split_seal(data)[1].decode()  # type: ignore[index]
        else:
            data = canonical_json(entry)
        line = data + b"\n"
        created = state.offset == 0 and not self.log_path.exists()
        try:
            fd = self._log_file.fd(self._log_stat)
        except OSError as exc:
            raise _write_failed(self.log_path, exc) from None
        try:
            written = os.write(fd, line)  # one write: no reader or appender sees half a line
            if written != len(line):
                os.ftruncate(fd, state.offset)
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
            self._written = _stamp(os.fstat(fd))
        except OSError as exc:
            self._written = None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, state.offset)
            self._log_file.close()
            raise _write_failed(self.log_path, exc) from None
        if created:
            fsync_dir(self.dir)
        state.add(data)
        return entry

    def move_sealing_on(self) -> None:
        """A new sealing epoch now, when this process's epoch is running (a long-lived session calls
        this every ROTATE_AFTER seconds, so that keys move on even while nothing is written)."""
        if self.sealer is None:
            return
        with self._exclusive():
            state = self._current_state()
            if state.torn is None:
                self.sealer.move_on(self.log_path, state, self._write_entry)

    def _cut_torn_tail(self, state: TreeState) -> dict[str, Any]:
        """Cut off a partial last line (kept under torn/); the detail of the entry that records it."""
        assert state.torn is not None
        offset, torn = state.torn
        torn_dir = self.dir / TORN_DIR
        torn_dir.mkdir(exist_ok=True, mode=0o700)
        saved = torn_dir / f"{offset}.partial"
        atomic_write(saved, torn)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        state.torn = None
        return {
            "reason": "torn last line (an append was interrupted)",
            "torn_offset": offset,
            "torn_bytes": len(torn),
            "torn_sha256": hashlib.sha256(torn).hexdigest(),
            "after_seq": state.size - 1,
            "kept_as": f"{TORN_DIR}/{saved.name}",
        }

    def write_checkpoint(self, signing_key: SigningKey, origin: str | None = None) -> str:
        """Sign the log's current size and root; write `checkpoint` and `checkpoints/<size>.txt`.

        What is signed is the previous checkpoint's tree extended by the entries written since,
        each checked to chain; it refuses (IntegrityError) when they do not, or when the log no
        longer extends the previous checkpoint. So an edit to the file never gets signed.
        """
        origin = origin or self.origin
        if not origin:
            raise ValueError("a checkpoint needs the log's origin, e.g. strongroom.local/vault/<vault_id>")
        with self._exclusive():
            self._install_pubkey(signing_key.public_pem())
            state = self._current_state()
            if self.sealer is not None:  # close the epoch: what it did not seal is recorded first
                self.sealer.close(self.log_path, state, self._write_entry)
            size, root, offset, subtrees = self._checked_head(signing_key.public_raw(), state.signed)
            text = sign_checkpoint(signing_key, origin, size, root)
            self.checkpoints_dir.mkdir(exist_ok=True, mode=0o755)
            self._remove_stale_temp_files()
            # The latest first: a crash between the two leaves history one behind, never ahead of it.
            atomic_write(self.checkpoint_path, text.encode())
            atomic_write(self.checkpoints_dir / f"{size}.txt", text.encode())
            state.signed = {"size": size, "offset": offset, "subtrees": [h.hex() for h in subtrees]}
            self._save_state(state)
        return text

    def _remove_stale_temp_files(self) -> None:
        """Temp files left by a writer killed mid-write (lock held: no live writer owns one)."""
        for folder in (self.dir, self.checkpoints_dir, self.dir / TORN_DIR):
            for path in folder.glob(f"{TMP_PREFIX}*"):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _signed_base(
        self, anchor: Checkpoint, cached: dict[str, Any] | None
    ) -> tuple[merkle.MerkleTree, int] | None:
        """The tree and byte offset at the last checkpoint, from the cache, if its root is the signed one.

        A compact range whose root equals the signed root is the signed tree (short of a SHA-256
        collision), so the entries before it need not be hashed again to extend it.
        """
        try:
            assert cached is not None and cached["size"] == anchor.size
            tree = merkle.MerkleTree(anchor.size, [bytes.fromhex(h) for h in cached["subtrees"]])
            offset = int(cached["offset"])
        except (AssertionError, KeyError, TypeError, ValueError):
            return None
        if tree.root() != anchor.root or offset < 0:
            return None
        if offset and self._read_log(offset - 1)[:1] != b"\n":
            return None
        return tree, offset

    def _checked_head(
        self, public_raw: bytes, cached: dict[str, Any] | None
    ) -> tuple[int, bytes, int, list[bytes]]:
        """Size, root, byte length and compact range of the log, checked against the last checkpoint.

        Only entries after the last checkpoint are parsed and checked; the signed prefix is taken
        from the cache when its root matches the signature, else hashed again from the file.
        """
        anchor = None
        with contextlib.suppress(OSError, StrongroomError):
            anchor = verify_checkpoint(self.checkpoint_path.read_bytes(), public_raw)
        base = self._signed_base(anchor, cached) if anchor is not None else None
        head, problems = self._scan_after(anchor, base)
        if problems and base is not None:  # a stale cache must never block signing: hash it all
            head, problems = self._scan_after(anchor, None)
        if problems:
            first = problems[0]
            raise IntegrityError(
                f"the audit log does not extend its last checkpoint or does not chain at entry {first.seq} "
                f"({first.kind}): it was not signed",
                "run `strongroom audit verify` and report the findings to the vault's administrator",
            )
        return head

    def _scan_after(
        self, anchor: Checkpoint | None, base: tuple[merkle.MerkleTree, int] | None
    ) -> tuple[tuple[int, bytes, int, list[bytes]], list[Finding]]:
        start = base[1] if base is not None else 0
        data = self._read_log(start)
        signed_size = anchor.size if anchor is not None else 0
        scan = scan_log(
            data, base=base[0] if base else None, check_from=signed_size, want_roots={signed_size}
        )
        problems = [f for f in scan.findings if f.kind != "torn_tail"]
        if anchor is not None and (anchor.size > scan.size or scan.roots.get(anchor.size) != anchor.root):
            problems.insert(
                0,
                Finding(
                    seq=anchor.size - 1,
                    kind="checkpoint_root",
                    expected="",
                    found="",
                    message="signed entries changed",
                ),
            )
        end = start + len(data) - (scan.torn[1] if scan.torn else 0)
        return (scan.size, scan.roots[scan.size], end, scan.subtrees), problems

    # ------------------------------------------------------------------ verifying
    def verify(
        self,
        pubkey_pem: bytes | None = None,
        checkpoint_text: str | bytes | None = None,
        *,
        on_event: Callable[[VerifyProgress], None] | None = None,
        cancel: threading.Event | None = None,
        on_entry: Callable[[dict[str, Any]], None] | None = None,
        initial_key: bytes | None = None,
        witnesses: tuple[WitnessKey, ...] = (),
    ) -> AuditReport:
        """Check the whole log: JSON, versions, sequence, prev chain, checkpoints and public key;
        each parsed entry goes to `on_entry` on the way (one read of the log for a report).

        `pubkey_pem` is a public key the auditor trusts (else audit/pubkey.pem is used and the
        report says so); `checkpoint_text` a checkpoint saved earlier, to rule out truncation.
        """
        with self._shared():
            data = self._read_log()
            pubkey_file = _read_optional(self.pubkey_path)
            latest = _read_optional(self.checkpoint_path)
            history = []
            if self.checkpoints_dir.is_dir():
                for path in sorted(self.checkpoints_dir.glob("*.txt")):
                    history.append((f"{CHECKPOINTS_DIR}/{path.name}", path.read_bytes()))
        if isinstance(checkpoint_text, str):
            checkpoint_text = checkpoint_text.encode("utf-8")
        return verify_snapshot(
            data,
            pubkey_file=pubkey_file,
            trusted_pubkey=pubkey_pem,
            checkpoints=history,
            latest=latest,
            external=checkpoint_text,
            origin=self.origin,
            on_event=on_event,
            cancel=cancel,
            on_entry=on_entry,
            initial_key=initial_key,
            witnesses=witnesses,
        )


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
