"""The values that cross the ingest boundary: options in, a preview or decoded records out, progress events.

Everything here is plain data; the importers in this package fill it and the store encrypts it.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vault.errors import Cancelled, InputError, UsageError
from vault.vocabulary import DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS, MAX_IMAGE_SIDE

FORMATS = ("image-folder", "idx", "csv", "tsv", "jsonl")
TEXT_FORMATS = ("csv", "tsv", "jsonl")

ColumnSpec = str | int | Sequence[str | int] | None


@dataclass(frozen=True)
class ImportOptions:
    """How to read a source. Every field may stay at its default when the source is unambiguous.

    fmt: one of FORMATS, or None to detect it from the source.
    labels: the IDX labels file that goes with an IDX images source.
    image_size: square side to resize images to; None keeps the most common size in the source.
    text_column: the column holding the text, by header name or 0-based index. Several columns
        ("title,description", "1,2" or a list) are joined with one space, in the order given.
    label_column: the column holding the label, by header name or 0-based index.
    header: whether the first CSV/TSV row names the columns (ignored for JSONL).
    quoting: CSV/TSV double-quote handling. None: CSV is always quoted (RFC 4180); TSV is read
        as quoted when the whole file parses that way, otherwise as plain IANA TSV where quotes
        are ordinary characters. True/False force one reading.
    workers: processes used to decode large image folders; None picks 1 or 2 by size and CPUs.
    max_records: the most records one import takes (--max-records); checked before decoding.
    max_bytes: the most bytes one import reads or decodes into memory (--max-bytes): the source's
        size on disk, an IDX header's declared payload, the decoded pixel array; checked before
        the memory is taken.
    """

    fmt: str | None = None
    labels: Path | None = None
    image_size: int | None = None
    text_column: ColumnSpec = None
    label_column: str | int | None = None
    header: bool = True
    quoting: bool | None = None
    workers: int | None = None
    max_records: int = DEFAULT_MAX_RECORDS
    max_bytes: int = DEFAULT_MAX_BYTES

    def checked(self) -> ImportOptions:
        """Return self after rejecting values no source could satisfy (UsageError)."""
        if self.fmt is not None and self.fmt not in FORMATS:
            raise UsageError(f"unknown import format {self.fmt!r}", f"use one of: {', '.join(FORMATS)}")
        if self.image_size is not None:
            if isinstance(self.image_size, bool) or not isinstance(self.image_size, int):
                raise UsageError("--image-size must be a whole number of pixels", "e.g. --image-size 32")
            if not 1 <= self.image_size <= MAX_IMAGE_SIDE:
                raise UsageError(
                    f"--image-size {self.image_size} is out of range",
                    f"use a side between 1 and {MAX_IMAGE_SIDE} pixels",
                )
        if self.workers is not None and (isinstance(self.workers, bool) or not 1 <= self.workers <= 64):
            raise UsageError(f"workers must be between 1 and 64, not {self.workers!r}", "leave it unset")
        for flag, value in (("--max-records", self.max_records), ("--max-bytes", self.max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(
                    f"{flag} must be a whole number of at least 1, not {value!r}", f"leave {flag} unset"
                )
        if self.labels is not None and self.fmt not in (None, "idx"):
            raise UsageError(f"--labels only applies to IDX sources, not {self.fmt}", "drop --labels")
        return self


@dataclass(frozen=True)
class ImportProgress:
    """One progress report. stage: "scan" (listing files), "decode" (images, first pass),
    "finish" (images decoded again because their size or colour differed), "read" (IDX bytes),
    "parse" (text lines). unit names what done/total count."""

    stage: str
    done: int
    total: int
    unit: str = "items"


@dataclass(frozen=True)
class Preview:
    """What detect() found, before anything is decoded in full. Counts are exact."""

    fmt: str
    kind: str
    classes: list[str]
    counts: dict[str, int]
    samples: int
    shape: tuple[int, ...] | None
    notes: list[str] = field(default_factory=list)


@dataclass
class DecodedDataset:
    """Records decoded in memory. labels[i] indexes classes; images is (n, C, H, W) uint8 with C 1
    or 3 (image kind), texts holds one string per record (text kind)."""

    kind: str
    fmt: str
    classes: list[str]
    labels: np.ndarray
    images: np.ndarray | None
    texts: list[str] | None
    source_name: str
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.labels.dtype != np.int64 or self.labels.ndim != 1:
            raise ValueError("labels must be a 1-D int64 array")
        n = len(self.labels)
        if self.kind == "image":
            if self.images is None or self.images.dtype != np.uint8 or self.images.ndim != 4:
                raise ValueError("image datasets need a (n, C, H, W) uint8 array")
            if len(self.images) != n or self.images.shape[1] not in (1, 3):
                raise ValueError("images and labels disagree, or C is not 1 or 3")
        elif self.kind == "text":
            if self.texts is None or len(self.texts) != n:
                raise ValueError("text datasets need one string per label")
        else:
            raise ValueError(f"unknown kind {self.kind!r}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError("a label is outside the class list")

    @property
    def samples(self) -> int:
        return len(self.labels)

    @property
    def counts(self) -> dict[str, int]:
        per_class = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(k) for name, k in zip(self.classes, per_class, strict=True)}

    @property
    def shape(self) -> tuple[int, ...] | None:
        return tuple(int(d) for d in self.images.shape[1:]) if self.images is not None else None

    def preview(self) -> Preview:
        return Preview(
            self.fmt, self.kind, list(self.classes), self.counts, self.samples, self.shape, list(self.notes)
        )


Listener = Callable[[ImportProgress], None] | None


class Progress:
    """Sends throttled ImportProgress events and turns a set cancel flag into Cancelled."""

    def __init__(
        self, on_event: Listener = None, cancel: threading.Event | None = None, *, every: int = 256
    ) -> None:
        self.on_event = on_event
        self.cancel = cancel
        self.every = every
        self._last: tuple[str, int] = ("", -1)

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("import cancelled", "nothing was imported; run the import again to start over")

    def report(self, stage: str, done: int, total: int, unit: str) -> None:
        """Report once per `every` items, always the first and last; checks for cancellation too."""
        self.check()
        last_stage, last_done = self._last
        if stage == last_stage and done != total and done - last_done < self.every:
            return
        self._last = (stage, done)
        if self.on_event is not None:
            self.on_event(ImportProgress(stage, done, total, unit))


_INTEGER = re.compile(r"[+-]?\d+")


def class_order(names: Iterable[str]) -> list[str]:
    """Sorted unique class names: numerically when every name is an integer, else by code point."""
    unique = set(names)
    if unique and all(_INTEGER.fullmatch(n) for n in unique):
        return sorted(unique, key=lambda n: (int(n), n))
    return sorted(unique)


def size_text(count: int) -> str:
    """A byte count for people: 15.0 MiB, 20.0 GiB, 812 bytes."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count} bytes"


def check_records(count: int, source: Path, options: ImportOptions, *, at_least: bool = False) -> None:
    """Refuse, before decoding, a source of more records than one import may take (at_least: the
    count so far of a listing stopped early)."""
    if count > options.max_records:
        raise InputError(
            f"{source.name} holds {'at least ' if at_least else ''}{count:,} records, more than the import "
            f"limit of {options.max_records:,}",
            f"raise the limit with --max-records {count} if this is expected, or import the source in parts",
            detail={"file": source.name, "limit": "max_records", "found": count},
        )


def check_bytes(count: int, what: str, source: Path, options: ImportOptions) -> None:
    """Refuse, before the memory is taken, `count` bytes (of `what`) over the import's byte limit."""
    if count > options.max_bytes:
        raise InputError(
            f"{source.name}: {what} come to {size_text(count)} ({count:,} bytes), more than the import limit "
            f"of {size_text(options.max_bytes)}",
            f"raise the limit with --max-bytes {count} if this is expected, or import the source in parts",
            detail={"file": source.name, "limit": "max_bytes", "found": count},
        )


MAX_CLASSES = 100_000  # every class name lives in the catalog, which every command reads
MAX_LABEL_CHARS = 1_000


def require_two_classes(classes: list[str], source: Path, unit: str) -> None:
    """A classifier needs two classes, and at most MAX_CLASSES; unit names what a class is here
    ("class folder", "label value")."""
    if len(classes) > MAX_CLASSES:
        raise InputError(
            f"{source.name} has {len(classes):,} distinct {unit}s, more than {MAX_CLASSES:,}",
            f"check that the right column holds the label (--label-column); a classifier has at most "
            f"{MAX_CLASSES:,} classes",
        )
    if len(classes) < 2:
        found = f"only one {unit} ({classes[0]})" if classes else f"no {unit}"
        raise InputError(
            f"{source.name} has {found}",
            f"a classifier needs at least two classes: add records with another {unit}",
        )


def encode_labels(names: Sequence[str], classes: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    return np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))


def most_common(values: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """The most frequent (width, height); ties go to the larger area, then the wider."""
    counts = Counter(values)
    return max(counts, key=lambda wh: (counts[wh], wh[0] * wh[1], wh[0]))
