"""IDX files, the MNIST format: a big-endian header (0x00 0x00, a type byte, a dimension count, then one
uint32 per dimension) followed by the values, raw or gzip-compressed.

Images are unsigned bytes shaped (count, rows, cols), or (count, rows, cols, channels) with 1 or 3
channels; labels are integers shaped (count). Sizes are checked before anything is allocated: the
header's count against ImportOptions.max_records, count x item size against max_bytes and (for
gzip) against what deflate can expand the file to. The values are read straight into their final
array, in chunks, never more than the header declares plus one byte to detect excess.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vault.errors import InputError, UsageError
from vault.ingest.types import (
    DecodedDataset,
    ImportOptions,
    Progress,
    check_bytes,
    check_records,
    class_order,
    encode_labels,
    require_two_classes,
)

GZIP_MAGIC = b"\x1f\x8b"
MAX_DEFLATE_RATIO = 1032  # deflate cannot expand one input byte into more than ~1032 output bytes
_CHUNK = 1 << 22
_TYPES: dict[int, tuple[np.dtype, str]] = {
    0x08: (np.dtype(">u1"), "unsigned byte"),
    0x09: (np.dtype(">i1"), "signed byte"),
    0x0B: (np.dtype(">i2"), "16-bit integer"),
    0x0C: (np.dtype(">i4"), "32-bit integer"),
    0x0D: (np.dtype(">f4"), "32-bit float"),
    0x0E: (np.dtype(">f8"), "64-bit float"),
}
_INTEGER_TYPES = (0x08, 0x09, 0x0B, 0x0C)
_MAGIC_HINT = (
    "an IDX file starts with 0x0000, a type byte and a dimension count, e.g. 0x00000803 for MNIST images"
)


@dataclass(frozen=True)
class IdxHeader:
    type_code: int
    dims: tuple[int, ...]
    compressed: bool
    disk_bytes: int

    @property
    def dtype(self) -> np.dtype:
        return _TYPES[self.type_code][0]

    @property
    def header_bytes(self) -> int:
        return 4 + 4 * len(self.dims)

    @property
    def payload_bytes(self) -> int:
        return math.prod(self.dims) * self.dtype.itemsize

    def describe(self) -> str:
        return f"{_TYPES[self.type_code][1]} values shaped {' x '.join(map(str, self.dims))}"


def looks_like_idx(path: Path) -> bool:
    """True when the file (gzip or raw) starts with a plausible IDX magic number."""
    try:
        with _open(path) as stream:
            magic = stream.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return _magic_ok(magic)


def decode_idx(source: Path, options: ImportOptions, progress: Progress) -> DecodedDataset:
    if options.labels is None:
        raise UsageError(f"IDX images {source.name} need a labels file", _labels_hint(source))
    labels_path = Path(options.labels)
    if not labels_path.is_file():
        raise InputError(f"labels file not found: {labels_path}", "check the --labels path")
    image_header = read_header(source)
    label_header = read_header(labels_path)
    _check_images(source, image_header)
    _check_labels(labels_path, label_header)
    n = image_header.dims[0]
    if n != label_header.dims[0]:
        raise InputError(
            f"IDX counts differ: {source.name} holds {n} images, {labels_path.name} holds "
            f"{label_header.dims[0]} labels",
            "pair each images file with its own labels file (t10k with t10k, train with train)",
        )
    if n == 0:
        raise InputError(f"{source.name} holds no images", "an IDX images file needs at least one record")
    check_records(n, source, options)
    _check_ratio(source, image_header)
    _check_ratio(labels_path, label_header)
    check_bytes(image_header.payload_bytes, "the images its header declares", source, options)
    check_bytes(label_header.payload_bytes, "the labels its header declares", labels_path, options)

    raw_labels = read_values(labels_path, label_header, progress).astype(np.int64)
    names = [str(v) for v in raw_labels.tolist()]
    classes = class_order(names)
    require_two_classes(classes, labels_path, "label value")
    labels = encode_labels(names, classes)

    pixels = read_values(source, image_header, progress)
    if len(image_header.dims) == 3:
        images = pixels.reshape(n, 1, *image_header.dims[1:])
    else:
        images = np.ascontiguousarray(pixels.reshape(image_header.dims).transpose(0, 3, 1, 2))
    notes = [
        f"{n} images of {images.shape[3]}x{images.shape[2]}, {images.shape[1]} channel(s)",
        f"classes are the label values present, sorted numerically: {', '.join(classes)}",
    ]
    side = options.image_size
    if side is not None and images.shape[2:] != (side, side):
        images = _resize(images, side, progress)
        notes.append(f"resized to {side}x{side} (--image-size), aspect ratio not kept")
    return DecodedDataset("image", "idx", classes, labels, images, None, source.name, notes)


def read_header(path: Path) -> IdxHeader:
    try:
        disk_bytes = path.stat().st_size
        with _open(path) as stream:
            magic = stream.read(4)
            if len(magic) < 4:
                raise InputError(f"{path.name} is too short to be an IDX file", _MAGIC_HINT)
            if not _magic_ok(magic):
                raise InputError(f"{path.name} is not an IDX file (bad magic 0x{magic.hex()})", _MAGIC_HINT)
            ndim = magic[3]
            raw_dims = stream.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise InputError(f"{path.name} is truncated inside its IDX header", "copy the file again")
            compressed = isinstance(stream, gzip.GzipFile)
    except OSError as exc:
        raise _read_error(path, exc) from None
    except (EOFError, zlib.error) as exc:
        raise _read_error(path, exc) from None
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    return IdxHeader(magic[2], dims, compressed, disk_bytes)


def read_values(path: Path, header: IdxHeader, progress: Progress) -> np.ndarray:
    """Read the payload into a flat array of the header's dtype; exact length or InputError."""
    expected = header.payload_bytes
    if not header.compressed:
        found = header.disk_bytes - header.header_bytes
        if found != expected:
            raise _length_error(path, header, found)
    _check_ratio(path, header)
    buffer = np.empty(expected, dtype=np.uint8)
    view = buffer.data
    done = 0
    try:
        with _open(path) as stream:
            stream.read(header.header_bytes)
            while done < expected:
                got = stream.readinto(view[done : done + _CHUNK])
                if not got:
                    raise _length_error(path, header, done)
                done += got
                progress.report("read", done, expected, "bytes")
            extra = len(stream.read(1))  # one byte is enough to know the file holds more
    except OSError as exc:
        raise _read_error(path, exc) from None
    except (EOFError, zlib.error) as exc:
        raise _read_error(path, exc) from None
    if extra:
        raise _length_error(path, header, None)
    return buffer.view(header.dtype)


def _check_ratio(path: Path, header: IdxHeader) -> None:
    """A gzip file cannot expand past deflate's ratio: a header claiming more is corrupt (or a lie)."""
    if header.compressed and header.payload_bytes > header.disk_bytes * MAX_DEFLATE_RATIO:
        raise InputError(
            f"{path.name} is corrupt: its header claims {header.payload_bytes} bytes of {header.describe()}, "
            "more than the compressed file can hold",
            "copy the file again",
        )


def _check_images(path: Path, header: IdxHeader) -> None:
    dims = header.dims
    if len(dims) == 1:
        raise UsageError(
            f"{path.name} is an IDX labels file, not images",
            "pass the images file as SOURCE and this one with --labels",
        )
    shape_ok = len(dims) == 3 or (len(dims) == 4 and dims[3] in (1, 3))
    if header.type_code != 0x08 or not shape_ok:
        raise InputError(
            f"{path.name} holds {header.describe()}, not images",
            "IDX images are unsigned bytes shaped count x rows x cols (or x 1 or 3 channels)",
        )
    if 0 in dims[1:]:
        raise InputError(
            f"{path.name} declares images of zero size ({header.describe()})", "copy the file again"
        )


def _check_labels(path: Path, header: IdxHeader) -> None:
    if len(header.dims) != 1 or header.type_code not in _INTEGER_TYPES:
        hint = (
            "this looks like an images file: pass it as SOURCE and its labels with --labels"
            if len(header.dims) >= 3
            else "IDX labels are integers shaped (count)"
        )
        raise InputError(f"{path.name} holds {header.describe()}, not labels", hint)


def _magic_ok(magic: bytes) -> bool:
    return len(magic) == 4 and magic[:2] == b"\0\0" and magic[2] in _TYPES and 1 <= magic[3] <= 4


def _open(path: Path) -> io.BufferedIOBase:
    with open(path, "rb") as handle:
        start = handle.read(2)
    if start == GZIP_MAGIC:
        return gzip.GzipFile(path, "rb")
    return open(path, "rb")  # noqa: SIM115 - returned to the caller's with-block


def _length_error(path: Path, header: IdxHeader, found: int | None) -> InputError:
    """found: the data bytes the file holds; None when it holds more than declared (gzip, not counted)."""
    expected = header.payload_bytes
    if found is None:
        return InputError(
            f"{path.name} holds more data after the {header.describe()} its header declares",
            "copy the file again; an IDX file holds exactly the values its header declares",
        )
    if found < expected:
        return InputError(
            f"{path.name} is truncated: its header declares {header.describe()} ({expected} bytes of data) "
            f"but the file holds {found}",
            "copy the file again, or pair it with the header that matches its data",
        )
    return InputError(
        f"{path.name} has {found - expected} byte(s) after the {header.describe()} its header declares",
        "copy the file again; an IDX file holds exactly the values its header declares",
    )


def _read_error(path: Path, exc: BaseException) -> InputError:
    if isinstance(exc, EOFError):
        return InputError(f"{path.name} is truncated: the gzip stream ends early", "copy the file again")
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return InputError(f"cannot read {path}: {exc.strerror}", "check the path and its permissions")
    return InputError(f"{path.name} is corrupt: its gzip data cannot be decompressed", "copy the file again")


def _labels_hint(source: Path) -> str:
    guess = source.name.replace("images", "labels").replace("idx3", "idx1")
    if guess != source.name and (source.parent / guess).is_file():
        return f"add --labels {source.parent / guess}"
    return "add --labels LABELS.idx (the IDX file with one label per image)"


def _resize(images: np.ndarray, side: int, progress: Progress) -> np.ndarray:
    n, channels = images.shape[:2]
    out = np.empty((n, channels, side, side), dtype=np.uint8)
    for i in range(n):
        pixels = images[i, 0] if channels == 1 else images[i].transpose(1, 2, 0)
        small = Image.fromarray(np.ascontiguousarray(pixels)).resize((side, side), Image.Resampling.BILINEAR)
        arr = np.asarray(small)
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
        progress.report("finish", i + 1, n, "images")
    return out
