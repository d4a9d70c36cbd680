"""Ingest: turn a source on disk into records decoded in memory, or a clear error saying what is wrong.

Nothing here writes anything; the store encrypts what decode() returns.

    preview = detect(Path("photos"))                  # format, classes, counts, shape, notes
    data = decode(Path("photos"), ImportOptions(image_size=64), on_event=print)
    data.images.shape, data.labels, data.classes      # (n, C, H, W) uint8, int64, names

Sources, detected from what is on disk or named with ImportOptions.fmt:

image-folder  SOURCE/CLASS/IMAGE, PNG/JPEG/BMP/GIF, classes sorted by folder name. Images are
              resized to image_size (square) or to the most common size, without keeping the aspect
              ratio; C is 1 when every image is grey, else 3 (grey ones are copied to R, G and B).
              EXIF orientation is applied, GIFs give their first frame, alpha is dropped. Hidden
              files are skipped; other files beside the class folders are ignored (and noted). A
              folder holding only split folders (train/, test/) is refused: import each split.
idx           MNIST-style images file (count x rows x cols unsigned bytes, optionally x 1 or 3
              channels) plus the labels file in ImportOptions.labels, each raw or gzip. Classes are
              the label values present, sorted numerically.
csv, tsv      One record per row; text_column and label_column by header name, or by 0-based index
              (header=False for files without a header row). Several text columns ("1,2") are
              joined with a space. CSV follows RFC 4180 quoting; TSV is read with the same quoting
              when the whole file parses that way, else as plain TSV (quotes are ordinary
              characters), or as ImportOptions.quoting says.
jsonl         One JSON object per line (keys name the columns) or one array per line (indexes).

Text must be UTF-8 (a BOM is fine). Labels are stripped of surrounding whitespace; classes are
the distinct labels sorted (numerically when all are integers). Columns are picked without
being named only when obvious: header names such as "text"/"label", or a headerless two-column
file with one short low-cardinality column.

Every unusable input raises vault.errors.InputError (UsageError for option problems) whose title
names the file and, where it applies, the row, line or byte offset, and whose hint says how to fix
it; messages never quote record content. Long work reports ImportProgress events and stops with
Cancelled when the cancel event is set.
"""

from vault.ingest.importer import decode, detect, resolve_format
from vault.ingest.types import FORMATS, DecodedDataset, ImportOptions, ImportProgress, Preview

__all__ = [
    "FORMATS",
    "DecodedDataset",
    "ImportOptions",
    "ImportProgress",
    "Preview",
    "decode",
    "detect",
    "resolve_format",
]
