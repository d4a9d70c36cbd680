"""Image folders: round trips over PNG/JPEG/BMP/GIF, grey and colour, mixed sizes; layout and file errors."""

from __future__ import annotations

import contextlib
import os
import re
import struct
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vault.errors import Cancelled, InputError, UsageError
from vault.ingest import DecodedDataset, ImportOptions, ImportProgress, decode, detect

LOSSLESS = ("png", "bmp")


def pattern(seed: int, size: tuple[int, int], grey: bool) -> np.ndarray:
    """Deterministic pixels (H, W) or (H, W, 3)."""
    rng = np.random.default_rng(seed)
    width, height = size
    shape = (height, width) if grey else (height, width, 3)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def write(path: Path, pixels: np.ndarray, fmt: str | None = None, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **params)
    return path


def chw(pixels: np.ndarray) -> np.ndarray:
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def make_folder(
    root: Path, spec: dict[str, list[tuple[str, tuple[int, int], bool]]]
) -> dict[str, np.ndarray]:
    """spec: class -> [(file name, (w, h), grey)]; returns file key 'class/name' -> pixels written."""
    written = {}
    for cls, files in spec.items():
        for i, (name, size, grey) in enumerate(files):
            pixels = pattern(hash((cls, name)) % 2**32 + i, size, grey)
            write(root / cls / name, pixels)
            written[f"{cls}/{name}"] = pixels
    return written


def row(data: DecodedDataset, cls: str, index_in_class: int) -> np.ndarray:
    positions = np.flatnonzero(data.labels == data.classes.index(cls))
    return data.images[positions[index_in_class]]


# ---------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", LOSSLESS)
@pytest.mark.parametrize("grey", [True, False])
def test_lossless_round_trip_is_exact(tmp_path: Path, ext: str, grey: bool) -> None:
    spec = {cls: [(f"{i:02d}.{ext}", (6, 5), grey) for i in range(3)] for cls in ("b_cat", "a_dog")}
    written = make_folder(tmp_path / "src", spec)
    data = decode(tmp_path / "src")
    assert data.kind == "image" and data.fmt == "image-folder" and data.source_name == "src"
    assert data.classes == ["a_dog", "b_cat"]  # sorted by folder name
    assert data.images.dtype == np.uint8 and data.labels.dtype == np.int64
    assert data.shape == ((1 if grey else 3), 5, 6)
    assert data.counts == {"a_dog": 3, "b_cat": 3}
    for cls in ("a_dog", "b_cat"):
        for i in range(3):
            np.testing.assert_array_equal(row(data, cls, i), chw(written[f"{cls}/{i:02d}.{ext}"]))


def test_gif_round_trip_keeps_palette_colours(tmp_path: Path) -> None:
    palette_rgb = np.array([[255, 0, 0], [0, 128, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    for cls, seed in (("x", 1), ("y", 2)):
        index = np.random.default_rng(seed).integers(0, 4, (7, 9), dtype=np.uint8)
        im = Image.fromarray(index, mode="P")
        im.putpalette(palette_rgb.flatten().tolist() + [0] * (768 - 12))
        (tmp_path / "src" / cls).mkdir(parents=True)
        im.save(tmp_path / "src" / cls / "a.gif")
    data = decode(tmp_path / "src")
    assert data.shape == (3, 7, 9)
    expected = palette_rgb[np.random.default_rng(1).integers(0, 4, (7, 9), dtype=np.uint8)].transpose(2, 0, 1)
    np.testing.assert_array_equal(data.images[0], expected)


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    smooth = np.zeros((16, 16, 3), dtype=np.uint8)
    smooth[..., 0] = np.arange(16)[None, :] * 16
    smooth[..., 1] = np.arange(16)[:, None] * 16
    smooth[..., 2] = 100
    write(tmp_path / "src" / "a" / "1.jpg", smooth, quality=95)
    write(tmp_path / "src" / "b" / "1.jpeg", 255 - smooth, quality=95)
    data = decode(tmp_path / "src")
    assert data.shape == (3, 16, 16)
    assert np.abs(data.images[0].astype(int) - smooth.transpose(2, 0, 1)).mean() < 4


def test_mixed_formats_grey_and_colour_give_rgb_with_grey_replicated(tmp_path: Path) -> None:
    grey = pattern(1, (8, 8), True)
    colour = pattern(2, (8, 8), False)
    write(tmp_path / "src" / "a" / "grey.png", grey)
    write(tmp_path / "src" / "a" / "grey.bmp", grey)
    write(tmp_path / "src" / "b" / "colour.png", colour)
    write(tmp_path / "src" / "b" / "grey.gif", grey)
    data = decode(tmp_path / "src")
    assert data.shape == (3, 8, 8)
    for i in (0, 1, 3):
        np.testing.assert_array_equal(data.images[i], np.broadcast_to(grey, (3, 8, 8)))
    np.testing.assert_array_equal(data.images[2], colour.transpose(2, 0, 1))
    assert any("grey image(s) stored as RGB" in note for note in data.notes)


def test_colour_found_after_grey_start_upgrades_channels(tmp_path: Path) -> None:
    """The first file is grey, so decoding starts with one channel; a later colour file widens it."""
    grey = [pattern(i, (5, 4), True) for i in range(3)]
    colour = pattern(9, (5, 4), False)
    for i, g in enumerate(grey):
        write(tmp_path / "src" / "a" / f"{i}.png", g)
    write(tmp_path / "src" / "b" / "z.png", colour)
    for workers in (1, 2):
        data = decode(tmp_path / "src", ImportOptions(workers=workers))
        assert data.shape == (3, 4, 5)
        for i, g in enumerate(grey):
            np.testing.assert_array_equal(data.images[i], np.broadcast_to(g, (3, 4, 5)))
        np.testing.assert_array_equal(data.images[3], colour.transpose(2, 0, 1))


def test_all_grey_gives_one_channel(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.gif", (4, 4), True)]})
    assert decode(tmp_path / "src").shape == (1, 4, 4)
    assert detect(tmp_path / "src").shape == (1, 4, 4)


def test_mixed_sizes_resize_to_most_common(tmp_path: Path) -> None:
    spec = {
        "a": [("1.png", (10, 6), False), ("2.png", (10, 6), False), ("3.png", (20, 12), False)],
        "b": [("1.png", (10, 6), False), ("2.png", (3, 3), False)],
    }
    written = make_folder(tmp_path / "src", spec)
    data = decode(tmp_path / "src")
    assert data.shape == (3, 6, 10)
    np.testing.assert_array_equal(row(data, "a", 0), chw(written["a/1.png"]))
    expected = np.asarray(Image.fromarray(written["a/3.png"]).resize((10, 6), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(row(data, "a", 2), chw(expected))
    assert any("2 image(s) of another size" in note for note in data.notes)


def test_first_image_of_odd_size_still_gives_most_common(tmp_path: Path) -> None:
    """The first file's size is only a guess; the most common size wins and everything is redone."""
    spec = {
        "a": [("0.png", (9, 9), False), ("1.png", (4, 5), False)],
        "b": [("1.png", (4, 5), False), ("2.png", (4, 5), False)],
    }
    written = make_folder(tmp_path / "src", spec)
    serial = decode(tmp_path / "src", ImportOptions(workers=1))
    assert serial.shape == (3, 5, 4)
    np.testing.assert_array_equal(row(serial, "b", 1), chw(written["b/2.png"]))
    parallel = decode(tmp_path / "src", ImportOptions(workers=2))
    np.testing.assert_array_equal(serial.images, parallel.images)


def test_image_size_option_resizes_every_image(tmp_path: Path) -> None:
    written = make_folder(
        tmp_path / "src", {"a": [("1.png", (8, 8), True)], "b": [("1.jpg", (64, 48), False)]}
    )
    data = decode(tmp_path / "src", ImportOptions(image_size=16))
    assert data.shape == (3, 16, 16)
    expected = np.asarray(Image.fromarray(written["a/1.png"]).resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(data.images[0], np.broadcast_to(expected, (3, 16, 16)))
    preview = detect(tmp_path / "src", ImportOptions(image_size=16))
    assert preview.shape == (3, 16, 16)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = pattern(3, (6, 4), False)  # 6 wide, 4 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    for cls in ("a", "b"):
        (tmp_path / "src" / cls).mkdir(parents=True)
        Image.fromarray(pixels).save(tmp_path / "src" / cls / "r.png", exif=exif)
    data = decode(tmp_path / "src")
    assert data.shape == (3, 6, 4)
    rotated = np.asarray(Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_270))
    np.testing.assert_array_equal(data.images[0], rotated.transpose(2, 0, 1))


def test_sixteen_bit_grey_keeps_top_bits_and_alpha_is_dropped(tmp_path: Path) -> None:
    wide = np.arange(16, dtype=np.uint16).reshape(4, 4) * 4000
    write(tmp_path / "src" / "a" / "w.png", wide)
    rgba = np.dstack([pattern(4, (4, 4), False), np.full((4, 4), 7, np.uint8)])
    write(tmp_path / "src" / "b" / "t.png", rgba)
    data = decode(tmp_path / "src")
    np.testing.assert_array_equal(data.images[0, 0], (wide >> 8).astype(np.uint8))
    np.testing.assert_array_equal(data.images[1], rgba[..., :3].transpose(2, 0, 1))


def test_parallel_decode_matches_serial(tmp_path: Path) -> None:
    spec = {
        cls: [(f"{i:03d}.png", (8, 8) if i % 7 else (12, 10), i % 3 == 0) for i in range(40)]
        for cls in ("a", "b", "c")
    }
    make_folder(tmp_path / "src", spec)
    serial = decode(tmp_path / "src", ImportOptions(workers=1))
    parallel = decode(tmp_path / "src", ImportOptions(workers=2))
    np.testing.assert_array_equal(serial.images, parallel.images)
    np.testing.assert_array_equal(serial.labels, parallel.labels)
    assert "decoded by 2 processes" in parallel.notes


def test_detect_matches_decode_without_decoding_pixels(tmp_path: Path) -> None:
    spec = {"a": [("1.png", (8, 8), False), ("2.png", (8, 8), True)], "b": [("1.bmp", (4, 4), False)]}
    make_folder(tmp_path / "src", spec)
    preview = detect(tmp_path / "src")
    data = decode(tmp_path / "src")
    assert (preview.fmt, preview.kind, preview.classes, preview.counts, preview.samples, preview.shape) == (
        data.fmt,
        data.kind,
        data.classes,
        data.counts,
        data.samples,
        data.shape,
    )
    # a truncated pixel stream is invisible to the header scan, but decode finds it
    path = tmp_path / "src" / "b" / "1.bmp"
    path.write_bytes(path.read_bytes()[:-20])
    assert detect(tmp_path / "src").samples == 3
    with pytest.raises(InputError, match=r"truncated image src/b/1\.bmp"):
        decode(tmp_path / "src")


def test_hidden_files_skipped_and_loose_files_noted(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})
    (tmp_path / "src" / "a" / ".DS_Store").write_bytes(b"\0\1junk")
    (tmp_path / "src" / ".cache").mkdir()
    (tmp_path / "src" / "README.md").write_text("about")
    data = decode(tmp_path / "src")
    assert data.samples == 2 and data.classes == ["a", "b"]
    assert any("README.md" in note for note in data.notes)
    assert any("skipped 2 hidden" in note for note in data.notes)


def test_progress_events_and_cancel(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {c: [(f"{i}.png", (4, 4), False) for i in range(300)] for c in ("a", "b")})
    events: list[ImportProgress] = []
    decode(tmp_path / "src", ImportOptions(workers=1), on_event=events.append)
    assert events[0] == ImportProgress("scan", 600, 600, "files")
    decoding = [e for e in events if e.stage == "decode"]
    assert decoding[-1] == ImportProgress("decode", 600, 600, "images")
    assert [e.done for e in decoding] == sorted(e.done for e in decoding)

    cancel = threading.Event()

    def stop_midway(event: ImportProgress) -> None:
        if event.done >= 256:
            cancel.set()

    for workers in (1, 2):
        cancel.clear()
        with pytest.raises(Cancelled):
            decode(tmp_path / "src", ImportOptions(workers=workers), on_event=stop_midway, cancel=cancel)
        assert child_pids() == set(), "a cancelled import leaves no decoding process behind"


def child_pids() -> set[str]:
    listings = list(Path("/proc/self/task").glob("*/children"))
    if not listings:
        pytest.skip("/proc/self/task/*/children is unavailable on this system")
    return {pid for listing in listings for pid in listing.read_text().split()}


def test_parallel_decode_maps_and_opens_no_files(tmp_path: Path) -> None:
    """Pixels cross between processes through anonymous shared memory: no process of the import maps
    or opens a new file in /dev/shm or the temp directory while it runs."""
    make_folder(tmp_path / "src", {c: [(f"{i}.png", (6, 6), False) for i in range(150)] for c in ("a", "b")})
    watched = (str(Path(tempfile.gettempdir()).resolve()), "/dev/shm", "/run/shm")

    def files_in_watched_places() -> set[str]:
        found = set()
        for pid in ["self", *child_pids()]:
            try:
                maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except (FileNotFoundError, ProcessLookupError):
                continue  # a helper that already finished
            names = [line.split(maxsplit=5)[5] for line in maps if len(line.split(maxsplit=5)) == 6]
            for fd in fds:
                with contextlib.suppress(OSError):  # closed since the listing
                    names.append(os.readlink(fd))
            found.update(n for n in names if n.startswith(watched) and not n.startswith(str(tmp_path)))
        return found

    before = files_in_watched_places()  # e.g. pytest's own capture files
    seen: set[str] = set()
    helpers_seen = []

    def look(event: ImportProgress) -> None:
        helpers_seen.append(len(child_pids()))
        seen.update(files_in_watched_places())

    decode(tmp_path / "src", ImportOptions(workers=2), on_event=look)
    assert max(helpers_seen) >= 1, "the helper process was running while we looked"
    assert seen - before == set()


# ---------------------------------------------------------------------------------------- bad input


def expect_input_error(source: Path, title: str, options: ImportOptions | None = None) -> InputError:
    """Both detect() and decode() refuse the source with a title matching `title` and a hint."""
    for call in (detect, decode):
        with pytest.raises(InputError) as caught:
            call(source, options or ImportOptions())
        assert re.search(title, caught.value.title), caught.value.title
        assert caught.value.hint, "every error carries a hint"
    return caught.value


def test_source_that_does_not_exist(tmp_path: Path) -> None:
    err = expect_input_error(tmp_path / "nope", r"source not found: .*nope")
    assert err.exit_code == 1


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    expect_input_error(tmp_path / "src", r"^src is empty$")


def test_folder_with_one_class(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"cat": [("1.png", (4, 4), True), ("2.png", (4, 4), True)]})
    err = expect_input_error(tmp_path / "src", r"src has only one class folder \(cat\)")
    assert "at least two classes" in err.hint


def test_folder_of_images_without_class_folders(tmp_path: Path) -> None:
    write(tmp_path / "src" / "1.png", pattern(1, (4, 4), True))
    expect_input_error(tmp_path / "src", r"holds images but no class folders")


def test_empty_class_folder(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})
    (tmp_path / "src" / "c").mkdir()
    expect_input_error(tmp_path / "src", r"class folder src/c has no images")


def test_nested_folder_inside_class(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})
    (tmp_path / "src" / "b" / "more").mkdir()
    expect_input_error(tmp_path / "src", r"class folder src/b holds a folder \(more\)")


def test_split_folders_are_refused_with_a_hint(tmp_path: Path) -> None:
    for split in ("train", "test"):
        make_folder(
            tmp_path / "src" / split, {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]}
        )
    err = expect_input_error(tmp_path / "src", r"src holds split folders \(test, train\), not class folders")
    assert str(tmp_path / "src" / "train") in err.hint
    assert decode(tmp_path / "src" / "train").samples == 2


def test_stray_image_beside_class_folders(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})
    write(tmp_path / "src" / "lost.jpg", pattern(1, (4, 4), False))
    expect_input_error(tmp_path / "src", r"lie outside the class folders, e\.g\. lost\.jpg")


def test_non_image_file_among_images(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})
    (tmp_path / "src" / "b" / "notes.txt").write_text("patient 4711 said hello")
    err = expect_input_error(tmp_path / "src", r"not a PNG, JPEG, BMP or GIF image: src/b/notes\.txt")
    assert "remove it" in err.hint
    assert "4711" not in str(err) and "hello" not in str(err)


def test_unsupported_image_format_is_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})
    write(tmp_path / "src" / "b" / "2.tiff", pattern(1, (4, 4), True))
    expect_input_error(tmp_path / "src", r"not a PNG, JPEG, BMP or GIF image: src/b/2\.tiff")


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "gif"])
def test_truncated_image_is_named(tmp_path: Path, ext: str) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), False)], "b": [("1.png", (4, 4), False)]})
    path = write(tmp_path / "src" / "b" / f"2.{ext}", pattern(5, (32, 32), False))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"truncated image src/b/2\.{ext}") as caught:
        decode(tmp_path / "src")
    assert caught.value.detail == {"file": f"src/b/2.{ext}", "problem": "truncated"}


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_image_is_named(tmp_path: Path, workers: int) -> None:
    make_folder(tmp_path / "src", {c: [(f"{i}.png", (4, 4), False) for i in range(20)] for c in ("a", "b")})
    path = tmp_path / "src" / "b" / "13.png"
    data = bytearray(path.read_bytes())
    data[40:60] = bytes(20)  # inside the compressed pixel data
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"corrupt image src/b/13\.png") as caught:
        decode(tmp_path / "src", ImportOptions(workers=workers))
    assert "remove it" in caught.value.hint


def test_garbage_with_an_image_name_is_corrupt(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})
    (tmp_path / "src" / "a" / "2.jpg").write_bytes(b"definitely not a jpeg")
    expect_input_error(tmp_path / "src", r"corrupt image src/a/2\.jpg: its header is not readable as JPG")


def test_image_declaring_huge_dimensions_is_refused_before_decoding(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "src" / "b" / "huge.png").write_bytes(png)
    expect_input_error(tmp_path / "src", r"image too large to decode safely: src/b/huge\.png")


def test_first_bad_file_wins_in_parallel(tmp_path: Path) -> None:
    make_folder(
        tmp_path / "src", {c: [(f"{i:02d}.png", (4, 4), True) for i in range(30)] for c in ("a", "b")}
    )
    (tmp_path / "src" / "a" / "05.png").write_bytes(b"junk")
    (tmp_path / "src" / "b" / "20.png").write_bytes(b"junk")
    for workers in (1, 2, 3):
        with pytest.raises(InputError, match=r"src/a/05\.png"):
            decode(tmp_path / "src", ImportOptions(workers=workers))


def test_format_flags_that_do_not_fit_a_folder(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", {"a": [("1.png", (4, 4), True)], "b": [("1.png", (4, 4), True)]})
    with pytest.raises(UsageError, match="--format csv needs a file"):
        decode(tmp_path / "src", ImportOptions(fmt="csv"))
    with pytest.raises(UsageError, match="--text-column only applies"):
        decode(tmp_path / "src", ImportOptions(text_column="text"))
    with pytest.raises(UsageError, match="--image-size 0 is out of range"):
        decode(tmp_path / "src", ImportOptions(image_size=0))
    with pytest.raises(UsageError, match="unknown import format"):
        decode(tmp_path / "src", ImportOptions(fmt="parquet"))
    with pytest.raises(UsageError, match="needs a folder"):
        decode(tmp_path / "src" / "a" / "1.png", ImportOptions(fmt="image-folder"))
