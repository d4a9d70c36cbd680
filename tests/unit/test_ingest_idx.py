"""IDX (MNIST-style) pairs: raw and gzip round trips, class mapping, and every malformed header or length."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vault.errors import InputError, UsageError
from vault.ingest import ImportOptions, ImportProgress, decode, detect


def idx_bytes(values: np.ndarray, type_code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    header = bytes([0, 0, type_code, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.astype(dtype).tobytes()


def write_idx(path: Path, values: np.ndarray, type_code: int = 0x08, *, gz: bool = False) -> Path:
    data = idx_bytes(values, type_code)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def pair(
    tmp_path: Path,
    n: int = 12,
    *,
    gz: bool = False,
    shape: tuple[int, ...] = (5, 4),
    labels: np.ndarray | None = None,
) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    labels = labels if labels is not None else (np.arange(n) % 3).astype(np.uint8)
    suffix = ".gz" if gz else ""
    images_path = write_idx(tmp_path / f"images-idx3-ubyte{suffix}", images, gz=gz)
    labels_path = write_idx(tmp_path / f"labels-idx1-ubyte{suffix}", labels, gz=gz)
    return images_path, labels_path, images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_raw_and_gzip(tmp_path: Path, gz: bool) -> None:
    images_path, labels_path, images, labels = pair(tmp_path, gz=gz)
    data = decode(images_path, ImportOptions(labels=labels_path))
    assert (data.kind, data.fmt, data.source_name) == ("image", "idx", images_path.name)
    assert data.classes == ["0", "1", "2"]
    assert data.shape == (1, 5, 4)
    np.testing.assert_array_equal(data.images[:, 0], images)
    np.testing.assert_array_equal(data.labels, labels.astype(np.int64))
    preview = detect(images_path, ImportOptions(labels=labels_path))
    assert (preview.fmt, preview.samples, preview.counts, preview.shape) == (
        "idx",
        12,
        data.counts,
        (1, 5, 4),
    )


def test_colour_idx_with_channel_dimension(tmp_path: Path) -> None:
    _, labels_path, _, _ = pair(tmp_path)
    colour = np.random.default_rng(0).integers(0, 256, (12, 3, 2, 3), dtype=np.uint8)
    images_path = write_idx(tmp_path / "colour-idx4", colour)
    data = decode(images_path, ImportOptions(labels=labels_path))
    assert data.shape == (3, 3, 2)
    np.testing.assert_array_equal(data.images, colour.transpose(0, 3, 1, 2))


def test_classes_are_the_label_values_present_sorted_numerically(tmp_path: Path) -> None:
    values = np.array([12, 3, 3, 12, 100, 3], dtype=np.int32)
    write_idx(tmp_path / "labels", values, 0x0C)
    images_path = write_idx(tmp_path / "images", np.zeros((6, 2, 2), np.uint8))
    data = decode(images_path, ImportOptions(labels=tmp_path / "labels"))
    assert data.classes == ["3", "12", "100"]
    assert data.labels.tolist() == [1, 0, 0, 1, 2, 0]
    assert data.counts == {"3": 3, "12": 2, "100": 1}


def test_image_size_resizes(tmp_path: Path) -> None:
    images_path, labels_path, images, _ = pair(tmp_path, shape=(8, 8))
    data = decode(images_path, ImportOptions(labels=labels_path, image_size=4))
    assert data.shape == (1, 4, 4)
    expected = np.asarray(Image.fromarray(images[3]).resize((4, 4), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(data.images[3, 0], expected)


def test_sniffed_without_format_and_progress_reported(tmp_path: Path) -> None:
    images_path, labels_path, _, _ = pair(tmp_path, gz=True)
    events: list[ImportProgress] = []
    decode(images_path, ImportOptions(labels=labels_path), on_event=events.append)
    assert events[-1] == ImportProgress("read", 12 * 5 * 4, 12 * 5 * 4, "bytes")


# ---------------------------------------------------------------------------------------- bad input


def refused(images: Path, labels: Path, title: str, error: type = InputError) -> None:
    for call in (detect, decode):
        with pytest.raises(error) as caught:
            call(images, ImportOptions(labels=labels))
        assert title in caught.value.title, caught.value.title
        assert caught.value.hint


def test_missing_labels_option_points_at_the_likely_file(tmp_path: Path) -> None:
    images = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 2, 2), np.uint8), gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1], np.uint8), gz=True)
    with pytest.raises(UsageError, match="need a labels file") as caught:
        decode(images)
    assert caught.value.hint == f"add --labels {tmp_path / 't10k-labels-idx1-ubyte.gz'}"


def test_labels_file_not_found(tmp_path: Path) -> None:
    images_path, _, _, _ = pair(tmp_path)
    refused(images_path, tmp_path / "absent", "labels file not found")


def test_mismatched_counts(tmp_path: Path) -> None:
    images_path, _, _, _ = pair(tmp_path, n=12)
    labels = write_idx(tmp_path / "other-labels", np.arange(10, dtype=np.uint8) % 2)
    refused(
        images_path,
        labels,
        "IDX counts differ: images-idx3-ubyte holds 12 images, other-labels holds 10 labels",
    )


@pytest.mark.parametrize("which", ["images", "labels"])
def test_bad_magic(tmp_path: Path, which: str) -> None:
    images_path, labels_path, _, _ = pair(tmp_path)
    target = images_path if which == "images" else labels_path
    data = bytearray(target.read_bytes())
    data[0:4] = b"\x12\x34\x08\x03"
    target.write_bytes(bytes(data))
    refused(images_path, labels_path, f"{target.name} is not an IDX file (bad magic 0x12340803)")


def test_swapped_files(tmp_path: Path) -> None:
    images_path, labels_path, _, _ = pair(tmp_path)
    refused(labels_path, images_path, "is an IDX labels file, not images", UsageError)


def test_images_of_the_wrong_type(tmp_path: Path) -> None:
    _, labels_path, _, _ = pair(tmp_path)
    floats = write_idx(tmp_path / "floats", np.zeros((12, 2, 2)), 0x0D)
    refused(floats, labels_path, "holds 32-bit float values shaped 12 x 2 x 2, not images")


def test_labels_of_the_wrong_shape(tmp_path: Path) -> None:
    images_path, _, _, _ = pair(tmp_path)
    labels = write_idx(tmp_path / "labels2d", np.zeros((12, 2), np.uint8))
    refused(images_path, labels, "not labels")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_images(tmp_path: Path, gz: bool) -> None:
    _, labels_path, images, _ = pair(tmp_path)
    raw = idx_bytes(images)[:-7]
    path = tmp_path / "short"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    refused(
        path,
        labels_path,
        "short is truncated: its header declares unsigned byte values shaped 12 x 5 x 4 "
        "(240 bytes of data) but the file holds 233",
    )


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    images_path, labels_path, _, _ = pair(tmp_path, gz=True)
    data = images_path.read_bytes()
    images_path.write_bytes(data[:-12])
    refused(images_path, labels_path, "truncated")


def test_corrupt_gzip(tmp_path: Path) -> None:
    images_path, labels_path, _, _ = pair(tmp_path, gz=True)
    data = bytearray(images_path.read_bytes())
    data[-8] ^= 0xFF  # the CRC
    images_path.write_bytes(bytes(data))
    refused(images_path, labels_path, "is corrupt: its gzip data cannot be decompressed")


def test_trailing_bytes(tmp_path: Path) -> None:
    _, labels_path, images, _ = pair(tmp_path)
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(images) + b"\0\0\0")
    refused(path, labels_path, "long has 3 byte(s) after the unsigned byte values shaped 12 x 5 x 4")


def test_header_claiming_more_than_gzip_can_hold(tmp_path: Path) -> None:
    _, labels_path, _, _ = pair(tmp_path)
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 12, 60000, 60000)))
    refused(path, labels_path, "more than the compressed file can hold")


def test_zero_records_and_one_class(tmp_path: Path) -> None:
    empty_images = write_idx(tmp_path / "none-images", np.zeros((0, 2, 2), np.uint8))
    empty_labels = write_idx(tmp_path / "none-labels", np.zeros((0,), np.uint8))
    refused(empty_images, empty_labels, "holds no images")
    images_path, _, _, _ = pair(tmp_path)
    same = write_idx(tmp_path / "same-labels", np.full(12, 7, np.uint8))
    refused(images_path, same, "same-labels has only one label value (7)")


def test_header_too_short(tmp_path: Path) -> None:
    _, labels_path, _, _ = pair(tmp_path)
    (tmp_path / "tiny").write_bytes(b"\0\0\x08\x03\0\0")
    refused(tmp_path / "tiny", labels_path, "tiny is truncated inside its IDX header")
