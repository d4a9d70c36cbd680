"""Reading the audit log for people: times as users type them, and the filters of `audit show`."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vault.errors import IntegrityError, UsageError


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 time or a plain date (taken as UTC midnight); UsageError otherwise."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"not a time: {text!r}", "use RFC 3339 like 2025-01-31T09:00:00Z, or a date like 2025-01-31"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_until(text: str) -> dt.datetime:
    """The end of a period: a time as given, or a plain date as the last instant of that day (UTC)."""
    value = parse_time(text)
    if len(text.strip()) == 10:
        value += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return value


def select(
    lines: list[bytes],
    after: dt.datetime | None,
    action: str | None,
    actor: str | None,
    positions: list[int] | None = None,
) -> list[dict[str, Any]]:
    """The entries among `lines` at or after `after`, of `action` (exactly or as a dotted prefix),
    by `actor`; a line that is not a JSON object is an IntegrityError naming it. The place of each
    entry kept (its line, from 0) goes to `positions` when given."""
    out: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            entry = None
        if not isinstance(entry, dict):
            raise IntegrityError(
                f"audit log line {index + 1} is not a JSON object",
                "run `strongroom audit verify` to list every problem",
            )
        if action is not None and not _action_matches(str(entry.get("action")), action):
            continue
        if actor is not None and entry.get("actor") != actor:
            continue
        if after is not None:
            try:
                when = parse_time(str(entry.get("time")))
            except UsageError:
                continue
            if when < after:
                continue
        out.append(entry)
        if positions is not None:
            positions.append(index)
    return out


def _action_matches(action: str, wanted: str) -> bool:
    return action == wanted or action.startswith(wanted.rstrip(".") + ".")


def lines_backwards(path: Path, block: int = 1 << 16) -> Iterator[bytes]:
    """The complete lines of a file, last first, read in blocks from the end (a torn tail skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        end = os.fstat(fd).st_size
        carry = b""
        first = True
        while end > 0:
            start = max(0, end - block)
            chunk = os.pread(fd, end - start, start) + carry
            end = start
            parts = chunk.split(b"\n")
            carry = parts.pop(0) if start > 0 else b""
            if first:
                parts.pop()  # the bytes after the last newline: empty, or a torn line
                first = False
            yield from reversed([p for p in parts if p])
        if carry:
            yield carry
    finally:
        os.close(fd)


def recorded(path: Path, key: str) -> Iterator[tuple[int, Any]]:
    """(seq, value) of each entry whose detail holds `key`, newest first."""
    needle = f'"{key}":'.encode()
    for line in lines_backwards(path):
        found = _detail_of(line, key) if needle in line else None
        if found is not None:
            yield found


def earliest_detail(path: Path, key: str, block: int = 1 << 20) -> tuple[int, Any] | None:
    """(seq, value) of the oldest entry whose detail holds `key`, or None: read from the start,
    stopping at the first (for a value fixed at `init`, recorded in the log's first lines)."""
    found = (_detail_of(line, key) for line in lines_holding(path, f'"{key}":'.encode(), block=block))
    return next((f for f in found if f is not None), None)


# Entries written before the change they record commits (audit before action), with the facts it
# commits as: a crash at its commit point leaves them recording what never happened. They are not
# read back as what the vault holds; the entries written once it committed are (`catalog.commit`,
# `header.commit`, and every `session.unlock`). `ledger.state` came before the catalog's commit in
# logs written before it came after: its generation is read from the `catalog.commit` that follows.
INTENTS = frozenset({"keys.add", "keys.remove", "keys.rotate", "policy.set", "vault.upgrade"})
EARLY = {"catalog_generation": INTENTS | {"ledger.state"}}


def counts(action: Any, key: str) -> bool:
    """Whether an entry of `action` recording `key` says what the vault holds (see INTENTS)."""
    return action not in EARLY.get(key, INTENTS)


def _detail_of(line: bytes, key: str) -> tuple[int, Any] | None:
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None
    detail = entry.get("detail") if isinstance(entry, dict) else None
    if isinstance(detail, dict) and key in detail and counts(entry.get("action"), key):
        seq = entry.get("seq")
        return (seq if type(seq) is int else -1), detail[key]
    return None


def latest_detail(path: Path, key: str) -> tuple[int, Any] | None:
    """(seq, value) of the newest entry whose detail holds `key`, or None."""
    return next(recorded(path, key), None)


def lines_holding(path: Path, *needles: bytes, block: int = 1 << 23) -> Iterator[bytes]:
    """The complete lines that hold any of `needles`, oldest first, found with bytes.find in large
    blocks: a pass over a log of a million entries for keys few lines record costs about the read."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    with f:
        carry = b""
        while chunk := f.read(block):
            data = carry + chunk
            end = data.rfind(b"\n") + 1
            carry = data[end:]  # the line this block cuts (or a torn tail at the end)
            starts: set[int] = set()
            for needle in needles:
                at = data.find(needle, 0, end)
                while at >= 0:
                    starts.add(data.rfind(b"\n", 0, at) + 1)
                    at = data.find(needle, data.find(b"\n", at), end)
            for start in sorted(starts):
                yield data[start : data.find(b"\n", start)]


def above_detail(path: Path, bounds: Mapping[str, int]) -> dict[str, list[tuple[int, Any]]]:
    """For each key, (seq, value) of each entry whose detail records it above its bound, or not as a
    whole number, oldest first: one pass for all the keys."""
    out: dict[str, list[tuple[int, Any]]] = {key: [] for key in bounds}
    needles = {key: f'"{key}":'.encode() for key in bounds}
    for line in lines_holding(path, *needles.values()):
        for key, bound in bounds.items():
            found = _detail_of(line, key) if needles[key] in line else None
            if found is not None and (type(found[1]) is not int or found[1] > bound):
                out[key].append(found)
    return out
