"""Text records from CSV, TSV and JSONL: strict UTF-8 (a BOM is tolerated), RFC 4180 quoting for CSV,
quoted or plain TSV, one JSON object (or array) per JSONL line.

Each record gives one text (several text columns are joined with a space) and one label string
(surrounding whitespace removed). Errors name the file, the row and line, never a field's content.

Memory: the file's size is checked against ImportOptions.max_bytes before it is read, and its
record count against max_records before the records are taken. CSV/TSV rows are read by the csv
module while every field is short; its buffer costs 4 bytes a character, so a field longer than
CSV_MODULE_FIELD_LIMIT sends the whole file to a reader of the same grammar written with regular
expressions, which costs about the field's own size. No field may exceed FIELD_LIMIT characters.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vault.errors import InputError
from vault.ingest.columns import Columns, Key, name_like, resolve
from vault.ingest.types import (
    MAX_LABEL_CHARS,
    DecodedDataset,
    ImportOptions,
    Progress,
    check_bytes,
    check_records,
    class_order,
    encode_labels,
    require_two_classes,
)

FIELD_LIMIT = 1 << 26  # characters in one CSV/TSV field, whichever reader reads it
CSV_MODULE_FIELD_LIMIT = 1 << 20  # longer fields go to the regular-expression reader (memory)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # lines as io.StringIO(newline="") splits them
_LONE_CR = re.compile(r"\r(?!\n)")
_LINE_END = re.compile(r"\r\n|\r|\n")
_QUOTED = re.compile(r'"([^"]*+(?:""[^"]*+)*+)"')  # possessive: an unclosed quote fails at once
_SAMPLE_ROWS = 2000


@dataclass
class Table:
    """Parsed records before columns are chosen: lists (CSV/TSV/JSON arrays) or dicts (JSON objects)."""

    records: list[tuple[int, list[str] | dict]]  # (line where the record starts, fields)
    names: list[str] | None
    width: int | None
    notes: list[str]


def decode_text(source: Path, fmt: str, options: ImportOptions, progress: Progress) -> DecodedDataset:
    content = read_utf8(source, options)
    if fmt == "jsonl":
        table = parse_jsonl(content, source, progress)
    else:
        table = parse_delimited(content, source, fmt, options, progress)
    check_records(len(table.records), source, options)
    if not table.records:
        raise InputError(
            f"{source.name} holds no records", "a text dataset needs at least one row with a label"
        )
    sample = [fields for _, fields in table.records[:_SAMPLE_ROWS] if isinstance(fields, list)]
    columns = resolve(
        options.text_column,
        options.label_column,
        source=source,
        names=table.names,
        width=table.width,
        header_row=options.header and fmt != "jsonl",
        sample=sample,
    )
    texts, names = extract(table, columns, source, fmt, options.header and fmt != "jsonl")
    classes = class_order(names)
    require_two_classes(classes, source, "label value")
    notes = [f"{len(texts)} records, {len(classes)} classes", *table.notes, *columns.notes]
    return DecodedDataset(
        "text", fmt, classes, encode_labels(names, classes), None, texts, source.name, notes
    )


def read_utf8(path: Path, options: ImportOptions) -> str:
    """The whole file as text; InputError naming line and byte offset of the first invalid byte.
    Reads no more than the file's size and options.max_bytes allow (+1 to know it grew meanwhile)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            check_bytes(size, "the file's bytes", path, options)
            data = handle.read(size + 1)
        if len(data) > size:
            raise InputError(
                f"{path.name} grew while it was being read", "import it once nothing is writing to it"
            )
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror}", "check the path and its permissions"
        ) from None
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        line = data.count(b"\n", 0, offset) + 1
        column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
        raise InputError(
            f"{path.name} is not UTF-8: {exc.reason} at line {line}, byte {column} of that line "
            f"(file offset {offset})",
            f"convert it to UTF-8, e.g. iconv -f WINDOWS-1252 -t UTF-8 {path.name} > {path.stem}-utf8{path.suffix} "
            "(name the file's real encoding after -f)",
            detail={"file": path.name, "line": line, "offset": offset},
        ) from None


def parse_delimited(
    content: str, source: Path, fmt: str, options: ImportOptions, progress: Progress
) -> Table:
    delimiter = "," if fmt == "csv" else "\t"
    notes: list[str] = []
    guessing = fmt == "tsv" and options.quoting is None
    quoted = options.quoting is not False
    try:
        try:
            rows = _read_rows(content, delimiter, quoted, source, progress)
        except _Malformed:
            if not guessing:
                raise
            quoted = False
            rows = _read_rows(content, delimiter, quoted, source, progress)
    except _Malformed as exc:
        raise InputError(exc.title, exc.hint, detail=exc.detail) from None
    if fmt == "tsv" and '"' in content:
        notes.append(
            "double quotes read as CSV-style quoting"
            if quoted
            else "plain TSV: double quotes are kept as ordinary characters"
        )
    names: list[str] | None = None
    if options.header and rows:
        names = rows.pop(0)[1]
    width = len(names) if names is not None else (len(rows[0][1]) if rows else 0)
    return Table(rows, names, width, notes)  # type: ignore[arg-type]


class _Malformed(InputError):
    """Quoting that does not parse; plain TSV is tried next when the reading was a guess."""


def _read_rows(
    content: str, delimiter: str, quoted: bool, source: Path, progress: Progress
) -> list[tuple[int, list[str]]]:
    """(line where the record starts, fields) for every non-empty record; _Malformed on bad quoting."""
    previous = csv.field_size_limit(min(CSV_MODULE_FIELD_LIMIT, FIELD_LIMIT))  # process-wide: restored below
    try:
        return _read_rows_csv(content, delimiter, quoted, source, progress)
    except _FieldTooLong:
        return _read_rows_long(content, delimiter, quoted, source, progress)
    finally:
        csv.field_size_limit(previous)


class _FieldTooLong(Exception):
    """The csv module met a field longer than CSV_MODULE_FIELD_LIMIT."""


def _lines(content: str) -> Iterator[str]:
    """The lines of content with their endings, one at a time (never a copy of the whole file)."""
    if _LONE_CR.search(content):  # old Mac line ends: the slower general split
        for match in _LINE.finditer(content):
            yield match.group()
        return
    pos, end, find = 0, len(content), content.find
    while pos < end:
        stop = find("\n", pos) + 1 or end
        yield content[pos:stop]
        pos = stop


def _read_rows_csv(
    content: str, delimiter: str, quoted: bool, source: Path, progress: Progress
) -> list[tuple[int, list[str]]]:
    total_lines = content.count("\n") + 1
    reader = csv.reader(
        _lines(content),
        delimiter=delimiter,
        quotechar='"',
        doublequote=True,
        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        strict=quoted,
    )
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for fields in reader:
            if fields:
                rows.append((start, fields))
            start = reader.line_num + 1
            progress.report("parse", reader.line_num, total_lines, "lines")
        progress.report("parse", total_lines, total_lines, "lines")
    except csv.Error as exc:
        reason = str(exc)
        if reason.startswith("field larger than field limit"):
            raise _FieldTooLong from None
        raise _malformed(source, start, quoted, reason) from None
    return rows


def _read_rows_long(
    content: str, delimiter: str, quoted: bool, source: Path, progress: Progress
) -> list[tuple[int, list[str]]]:
    """The csv module's grammar (RFC 4180 quotes when `quoted`, strict; else none) for files with
    long fields: each field is one slice of `content`, so memory stays near the file's own size."""
    total_lines = content.count("\n") + 1
    unquoted = re.compile(f"[^{re.escape(delimiter)}\r\n]*")
    rows: list[tuple[int, list[str]]] = []
    pos, end, line = 0, len(content), 1
    while pos < end:
        start, record_start = line, pos
        blank = _LINE_END.match(content, pos)
        if blank:
            line, pos = line + 1, blank.end()
            continue
        fields: list[str] = []
        while True:
            if quoted and content.startswith('"', pos):
                match = _QUOTED.match(content, pos)
                if match is None:
                    raise _malformed(source, start, quoted, "unexpected end of data")
                value = match.group(1)
                if '""' in value:
                    value = value.replace('""', '"')
                pos = match.end()
                if pos < end and content[pos] not in (delimiter, "\r", "\n"):
                    raise _malformed(source, start, quoted, f"'{delimiter}' expected after '\"'")
            else:
                match = unquoted.match(content, pos)
                assert match is not None  # the pattern matches the empty string
                value, pos = match.group(), match.end()
            if len(value) > FIELD_LIMIT:
                raise InputError(
                    f"{source.name} line {start}: a field is longer than {FIELD_LIMIT:,} characters",
                    "a record's text must be shorter: split it, or leave the record out",
                    detail={"file": source.name, "line": start, "limit": FIELD_LIMIT},
                )
            fields.append(value)
            if pos < end and content[pos] == delimiter:
                pos += 1
                continue
            break
        newline = _LINE_END.match(content, pos)
        if newline:
            pos = newline.end()
        line = start + len(_LINE_END.findall(content, record_start, pos))
        rows.append((start, fields))
        progress.report("parse", line - 1, total_lines, "lines")
    progress.report("parse", total_lines, total_lines, "lines")
    return rows


def _malformed(source: Path, start: int, quoted: bool, reason: str) -> _Malformed:
    return _Malformed(
        f"{source.name} line {start}: malformed {'quoted ' if quoted else ''}field ({reason})",
        'inside a quoted field, write a double quote as two (""), and close every quoted field',
        detail={"file": source.name, "line": start},
    )


def parse_jsonl(content: str, source: Path, progress: Progress) -> Table:
    lines = content.split("\n")
    records: list[tuple[int, list[str] | dict]] = []
    shape: type | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped:
            try:
                value = json.loads(stripped)
            except RecursionError:
                raise InputError(
                    f"{source.name} line {number} nests JSON arrays or objects too deeply to read",
                    'write one flat JSON object per line, e.g. {"text": "...", "label": "..."}',
                    detail={"file": source.name, "line": number},
                ) from None
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{source.name} line {number} is not valid JSON: {exc.msg} (column {exc.colno})",
                    'write one JSON object per line, e.g. {"text": "...", "label": "..."}',
                    detail={"file": source.name, "line": number},
                ) from None
            kind = type(value)
            if kind not in (dict, list):
                raise InputError(
                    f"{source.name} line {number} holds a JSON {_json_type(value)}, not an object",
                    'write one JSON object per line, e.g. {"text": "...", "label": "..."}',
                )
            if shape is None:
                shape = kind
            elif kind is not shape:
                raise InputError(
                    f"{source.name} line {number} holds a JSON {_json_type(value)}, but line "
                    f"{records[0][0]} holds a {_json_type(records[0][1])}",
                    "use objects on every line (or arrays on every line)",
                )
            records.append((number, value))
        progress.report("parse", number, len(lines), "lines")
    names: list[str] | None = None
    width: int | None = None
    if records and shape is dict:
        names = [str(k) for k in records[0][1]]
    elif records:
        width = len(records[0][1])
    return Table(records, names, width, [])


def extract(
    table: Table, columns: Columns, source: Path, fmt: str, header: bool
) -> tuple[list[str], list[str]]:
    """Texts and label names, checking every record: label present and non-empty, text present."""
    texts: list[str] = []
    labels: list[str] = []
    first_line_is_header = 1 if header else 0
    for row, (line, fields) in enumerate(table.records, start=1):
        where = f"{source.name} row {row} (line {line})"
        label = _field(fields, columns.label)
        if label is None:
            raise InputError(
                f"{where} has no label ({_named(columns.label, table.names)} is missing)",
                "give every row a label, or remove the rows without one",
                detail={"file": source.name, "row": row, "line": line},
            )
        label = (_json_label(label, where) if fmt == "jsonl" else str(label)).strip()
        if len(label) > MAX_LABEL_CHARS:
            raise InputError(
                f"{where} has a label longer than {MAX_LABEL_CHARS:,} characters",
                "check that the right column holds the label (--label-column); labels are short names",
                detail={"file": source.name, "row": row, "line": line},
            )
        if not label:
            raise InputError(
                f"{where} has an empty label",
                "give every row a label, or remove the rows without one",
                detail={"file": source.name, "row": row, "line": line},
            )
        parts = []
        for key in columns.text:
            value = _field(fields, key)
            if value is None:
                raise InputError(
                    f"{where} has no text ({_named(key, table.names)} is missing)",
                    "give every row its text, or remove the incomplete rows",
                    detail={"file": source.name, "row": row, "line": line},
                )
            if not isinstance(value, str):
                raise InputError(
                    f"{where}: the text ({_named(key, table.names)}) is a JSON {_json_type(value)}, "
                    "not a string",
                    "store the text as a JSON string",
                )
            parts.append(value)
        if table.width is not None and fmt != "jsonl" and len(fields) != table.width:
            expected = "the header has" if first_line_is_header else "the first row has"
            raise InputError(
                f"{where} has {len(fields)} fields; {expected} {table.width}",
                _width_hint(fmt),
                detail={"file": source.name, "row": row, "line": line},
            )
        texts.append(parts[0] if len(parts) == 1 else " ".join(parts))
        labels.append(label)
    return texts, labels


def _field(fields: list | dict, key: Key) -> object | None:
    if isinstance(fields, dict):
        return fields.get(key) if isinstance(key, str) else None
    if isinstance(key, int) and key < len(fields):
        return fields[key]
    return None


def _json_label(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InputError(
        f"{where}: the label is a JSON {_json_type(value)}", "labels must be strings or integers"
    )


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {
        dict: "object",
        list: "array",
        str: "string",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _named(key: Key, names: Sequence[str] | None) -> str:
    if isinstance(key, str):
        return f"key {key!r}"
    if names is not None and key < len(names) and name_like(names[key]):
        return f"column {key}, {names[key]!r}"
    return f"column {key}"


def _width_hint(fmt: str) -> str:
    if fmt == "csv":
        return "quote fields that contain commas or line breaks with double quotes (RFC 4180)"
    return "a TSV field cannot contain a tab; check the row, or read it as CSV with --format csv"
