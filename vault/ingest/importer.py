"""detect() and decode(): check the source and options, pick the format, hand over to its reader."""

from __future__ import annotations

import threading
from pathlib import Path

from vault.errors import InputError, UsageError
from vault.ingest.folder import decode_folder, detect_folder
from vault.ingest.idx import GZIP_MAGIC, decode_idx, looks_like_idx
from vault.ingest.text import decode_text
from vault.ingest.types import TEXT_FORMATS, DecodedDataset, ImportOptions, Listener, Preview, Progress

SOURCE_HINT = "give a folder of class folders, an IDX images file (with --labels) or a CSV, TSV or JSONL file"
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SNIFF_BYTES = 1 << 16
DEFAULT_OPTIONS = ImportOptions()


def detect(
    source: Path,
    options: ImportOptions = DEFAULT_OPTIONS,
    *,
    on_event: Listener = None,
    cancel: threading.Event | None = None,
) -> Preview:
    """What importing `source` would give. Image folders: the layout and every header, not the pixels;
    IDX and text: a full read, which is cheap for them. Raises the same errors as decode()."""
    source, fmt = resolve_format(source, options)
    progress = Progress(on_event, cancel)
    if fmt == "image-folder":
        return detect_folder(source, options, progress)
    return _decode(source, fmt, options, progress).preview()


def decode(
    source: Path,
    options: ImportOptions = DEFAULT_OPTIONS,
    *,
    on_event: Listener = None,
    cancel: threading.Event | None = None,
) -> DecodedDataset:
    """Decode every record of `source` into memory. Raises InputError (bad data), UsageError (bad
    options) or Cancelled; nothing is written anywhere."""
    source, fmt = resolve_format(source, options)
    return _decode(source, fmt, options, Progress(on_event, cancel))


def resolve_format(source: Path, options: ImportOptions) -> tuple[Path, str]:
    """The source as a Path and its format, from options.fmt or from what the source looks like."""
    options.checked()
    source = Path(source)
    if not source.exists():
        raise InputError(f"source not found: {source}", SOURCE_HINT)
    fmt = options.fmt
    if source.is_dir():
        if fmt not in (None, "image-folder"):
            raise UsageError(
                f"--format {fmt} needs a file, but {source.name} is a folder",
                "give the file, or drop --format to import the folder as images",
            )
        fmt = "image-folder"
    elif not source.is_file():
        raise InputError(f"{source} is neither a file nor a folder", SOURCE_HINT)
    elif fmt == "image-folder":
        raise UsageError(
            f"--format image-folder needs a folder, but {source.name} is a file",
            "give the folder that holds one folder per class",
        )
    elif fmt is None:
        fmt = "idx" if options.labels is not None else sniff_file(source)
    _check_applicable(fmt, options)
    return source, fmt


def sniff_file(path: Path) -> str:
    """csv/tsv/jsonl by suffix, IDX by magic number, else from the first line of text."""
    suffix = path.suffix.lower()
    if suffix in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffix]
    if looks_like_idx(path):
        return "idx"
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror}", "check the path and its permissions"
        ) from None
    if head.startswith(GZIP_MAGIC):
        raise InputError(
            f"{path.name} is compressed but is not an IDX file",
            "decompress it first (gunzip) to import CSV, TSV or JSONL",
        )
    if b"\0" in head:
        raise InputError(f"{path.name} looks binary: it is not CSV, TSV, JSONL or IDX", SOURCE_HINT)
    first = next(
        (line for line in head.decode("utf-8", "ignore").lstrip("\ufeff").splitlines() if line.strip()), ""
    )
    if first.lstrip().startswith(("{", "[")):
        return "jsonl"
    if "\t" in first:
        return "tsv"
    if "," in first:
        return "csv"
    raise UsageError(
        f"cannot tell the format of {path.name}", "add --format csv, --format tsv or --format jsonl"
    )


def _check_applicable(fmt: str, options: ImportOptions) -> None:
    text_only = {
        "--text-column": options.text_column is not None,
        "--label-column": options.label_column is not None,
        "--no-header": not options.header,
        "quoting": options.quoting is not None,
    }
    if fmt not in TEXT_FORMATS:
        used = [flag for flag, present in text_only.items() if present]
        if used:
            raise UsageError(f"{used[0]} only applies to CSV, TSV or JSONL, not {fmt}", f"drop {used[0]}")
    elif options.image_size is not None:
        raise UsageError(f"--image-size only applies to images, not {fmt}", "drop --image-size")
    if fmt != "idx" and options.labels is not None:
        raise UsageError(f"--labels only applies to IDX images, not {fmt}", "drop --labels")


def _decode(source: Path, fmt: str, options: ImportOptions, progress: Progress) -> DecodedDataset:
    progress.check()
    if fmt == "image-folder":
        return decode_folder(source, options, progress)
    if fmt == "idx":
        return decode_idx(source, options, progress)
    return decode_text(source, fmt, options, progress)
