"""Which fields hold the text and the label: parse --text-column/--label-column, resolve names and
0-based indexes against a header row (or JSONL keys), and pick the columns when it is obvious.

Obvious means: header names such as "text" and "label" (one of each, or one of them in a
two-column file), or, without names, a two-column file where one column has few distinct short
values and the other many longer ones. Otherwise the caller is asked to name the columns.
Messages list column names only when they look like names, so a data row read as a header by
mistake does not end up in an error message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vault.errors import InputError, UsageError
from vault.ingest.types import ColumnSpec

TEXT_NAMES = frozenset(
    {
        "text",
        "texts",
        "sentence",
        "message",
        "content",
        "body",
        "review",
        "document",
        "comment",
        "tweet",
        "sms",
        "utterance",
    }
)
LABEL_NAMES = frozenset(
    {"label", "labels", "class", "category", "target", "sentiment", "y", "tag", "class_name", "classname"}
)
LABEL_MAX_DISTINCT = 100
_NAME_LIKE = re.compile(r"[^\x00-\x1f\x7f]{1,40}")

Key = int | str


@dataclass(frozen=True)
class Columns:
    """Resolved columns: ints index list rows, strs are JSON object keys."""

    text: tuple[Key, ...]
    label: Key
    notes: list[str] = field(default_factory=list)


def parse_spec(spec: ColumnSpec, flag: str) -> list[Key] | None:
    """--text-column values: an int, "name", "1,2", "title,description" or a list of those."""
    if spec is None:
        return None
    items: list[Key]
    if isinstance(spec, bool):
        raise UsageError(f"{flag} must name a column or give its 0-based index", f"e.g. {flag} text")
    if isinstance(spec, int):
        items = [spec]
    elif isinstance(spec, str):
        items = [spec] if "," not in spec else [part.strip() for part in spec.split(",")]
    else:
        items = list(spec)
    keys: list[Key] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise UsageError(f"{flag} must name a column or give its 0-based index", f"e.g. {flag} text")
        if isinstance(item, int) and item < 0:
            raise UsageError(f"{flag} {item}: column indexes start at 0", f"e.g. {flag} 0")
        if isinstance(item, str) and not item.strip():
            raise UsageError(f"{flag} has an empty column name", f"e.g. {flag} text or {flag} 1,2")
        keys.append(item)
    return keys


def resolve(
    text_spec: ColumnSpec,
    label_spec: ColumnSpec,
    *,
    source: Path,
    names: Sequence[str] | None,
    width: int | None,
    header_row: bool,
    sample: Sequence[Sequence[str]],
) -> Columns:
    """Resolve both specs against the file. names: header row or JSONL keys (None without names);
    width: fields per row (None for JSONL objects); sample: rows for the distinct-values test."""
    text_keys = parse_spec(text_spec, "--text-column")
    label_keys = parse_spec(label_spec, "--label-column")
    if label_keys is not None and len(label_keys) != 1:
        raise UsageError("--label-column names one column", "e.g. --label-column label")
    text = [_locate(k, "text", source, names, width, header_row) for k in text_keys or []]
    label = _locate(label_keys[0], "label", source, names, width, header_row) if label_keys else None
    notes: list[str] = []
    if not text or label is None:
        text, label, notes = _choose(text, label, names, width, sample)
        if not text or label is None:
            raise UsageError(
                f"cannot tell which column of {source.name} holds the text and which the label",
                _name_them_hint(names, width, header_row),
            )
    if label in text:
        raise UsageError(
            "the label column is also a text column", "name different columns for text and label"
        )
    return Columns(tuple(text), label, notes)


def _locate(
    key: Key, role: str, source: Path, names: Sequence[str] | None, width: int | None, header_row: bool
) -> Key:
    flag = f"--{role}-column"
    if width is None:  # JSONL objects: keys are names
        if isinstance(key, int):
            raise UsageError(
                f"{flag} {key}: the records of {source.name} are JSON objects, named by key",
                f"name the key, e.g. {flag} {role}",
            )
        return key
    if isinstance(key, str):
        if names is not None:
            if key in names:
                return list(names).index(key)
            folded = [i for i, n in enumerate(names) if n.strip().lower() == key.strip().lower()]
            if len(folded) == 1:
                return folded[0]
            if key.isdigit():
                return _locate(int(key), role, source, names, width, header_row)
            raise InputError(
                f"{source.name} has no column named {key!r}", f"available columns: {available(names, width)}"
            )
        if key.isdigit():
            return _locate(int(key), role, source, names, width, header_row)
        reason = (
            "has no header row (--no-header)"
            if not header_row
            else "holds JSON arrays, whose fields have no names"
        )
        raise UsageError(
            f"{flag} {key!r}: {source.name} {reason}",
            f"give the 0-based column index instead, e.g. {flag} {1 if role == 'text' else 0}",
        )
    if key >= width:
        raise InputError(
            f"{source.name} has no column {key}: its rows have {width} field(s)",
            f"available columns: {available(names, width)}",
        )
    return key


def _choose(
    text: list[Key],
    label: Key | None,
    names: Sequence[str] | None,
    width: int | None,
    sample: Sequence[Sequence[str]],
) -> tuple[list[Key], Key | None, list[str]]:
    """Fill in whichever of text/label was not given, where the file makes it obvious."""
    if width is None:
        pool: list[Key] = list(names or [])
        named = {k: str(k) for k in pool}
    else:
        pool = list(range(width))
        named = {i: names[i] for i in range(width)} if names is not None else {}
    if named:
        text_hits = [k for k in pool if named[k].strip().lower() in TEXT_NAMES]
        label_hits = [k for k in pool if named[k].strip().lower() in LABEL_NAMES]
        if label is None and len(label_hits) == 1 and label_hits[0] not in text:
            label = label_hits[0]
        if not text and len(text_hits) == 1 and text_hits[0] != label:
            text = text_hits
    if len(pool) == 2:
        if label is None and len(text) == 1 and text[0] in pool:
            label = pool[1 - pool.index(text[0])]
        elif not text and label in pool:
            text = [pool[1 - pool.index(label)]]
    notes: list[str] = []
    if not text and label is None and not named and width == 2:
        guess = _label_like(sample)
        if guess is not None:
            label, text = guess, [1 - guess]
            distinct = len({row[guess] for row in sample if len(row) == 2})
            notes.append(
                f"columns chosen automatically: label = column {guess} ({distinct} distinct values), "
                f"text = column {1 - guess}; name them with --text-column/--label-column to override"
            )
    elif text and label is not None:
        notes.append(
            f"columns used: text = {', '.join(_show(k, named) for k in text)}, label = {_show(label, named)}"
        )
    return text, label, notes


def _show(key: Key, named: dict[Key, str]) -> str:
    name = named.get(key)
    if isinstance(key, str) or name is None:
        return repr(key) if isinstance(key, str) else f"column {key}"
    return f"{name!r} (column {key})" if name_like(name) else f"column {key}"


def _label_like(rows: Sequence[Sequence[str]]) -> int | None:
    """In two-column rows, the column with few distinct short values, if exactly one is like that."""
    columns = [[row[i] for row in rows if len(row) == 2] for i in (0, 1)]
    if not columns[0]:
        return None
    distinct = [len(set(c)) for c in columns]
    mean_len = [sum(map(len, c)) / len(c) for c in columns]
    for i in (0, 1):
        j = 1 - i
        if distinct[i] <= LABEL_MAX_DISTINCT and distinct[i] * 2 <= distinct[j] and mean_len[i] < mean_len[j]:
            return i
    return None


def available(names: Sequence[str] | None, width: int | None) -> str:
    """The columns, by name when every header cell looks like a name, else by index only."""
    if names is not None and names and all(name_like(n) for n in names):
        return ", ".join(f"{i}: {n}" for i, n in enumerate(names)) if width is not None else ", ".join(names)
    count = width if width is not None else len(names or [])
    return f"0-based indexes 0 to {count - 1}" if count else "none found"


def name_like(name: str) -> bool:
    return bool(_NAME_LIKE.fullmatch(name))


def _name_them_hint(names: Sequence[str] | None, width: int | None, header_row: bool) -> str:
    hint = f"name them with --text-column and --label-column ({available(names, width)})"
    if header_row and width is not None and names is not None and not all(name_like(n) for n in names):
        hint += "; if the file has no header row, add --no-header"
    return hint + "; several text columns may be joined, e.g. --text-column 1,2"
