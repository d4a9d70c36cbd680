"""Image folders (SOURCE/CLASS/IMAGE): list and check the layout, then decode every image into one
(n, C, H, W) uint8 array in a single pass over the files wherever possible.

The pass decodes each image whose size and colour fit the layout guessed from the first file (or
fixed by image_size) and only reads the header of the others; once every header is known, the
images that did not fit are decoded again at the final size. Large folders are split between
forked processes (see parallel.py).

Symbolic links are followed only where they stay inside the folder: a link that leaves it (to
/etc/hostname, to another folder), dangles or loops is refused, naming the link. The number of
images, their bytes on disk and the decoded pixel array are checked against the import's caps
(ImportOptions.max_records, max_bytes) before they are read or allocated.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vault.errors import InputError
from vault.ingest.parallel import run_split, shared_zeros
from vault.ingest.pixels import IMAGE_SUFFIXES, Header, open_image, read_header, render
from vault.ingest.types import (
    DecodedDataset,
    ImportOptions,
    Preview,
    Progress,
    check_bytes,
    check_records,
    most_common,
    require_two_classes,
)

SPLIT_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval"})
PARALLEL_MIN_IMAGES = 2000
_CAP_EVERY = 4096  # entries listed between checks of the record cap
LAYOUT_HINT = "an image folder holds one sub-folder per class, and each of those holds that class's images"


@dataclass
class Listing:
    """The files of an image folder in import order (classes by folder name, files by name)."""

    root: Path
    classes: list[str]
    files: list[str]
    shown: list[str]
    labels: np.ndarray
    notes: list[str] = field(default_factory=list)


def list_folder(root: Path, options: ImportOptions) -> Listing:
    """Check the two-level layout and list the images; hidden files and folders (.name) are skipped.
    Links must stay inside the folder; the count and the bytes on disk must fit the import's caps."""
    inside_root = _real_folder(root)
    entries, hidden = _entries(root, inside_root, root.name)
    dirs = [e for e in entries if e.is_dir()]
    loose = [e for e in entries if not e.is_dir()]
    if not entries:
        raise InputError(f"{root.name} is empty", LAYOUT_HINT)
    if not dirs:
        if any(Path(e.name).suffix.lower() in IMAGE_SUFFIXES for e in loose):
            raise InputError(
                f"{root.name} holds images but no class folders",
                "point at the folder above it if that holds one folder per class; "
                "otherwise move the images into one folder per class",
            )
        raise InputError(f"{root.name} holds no class folders", LAYOUT_HINT)
    if all(d.name.lower() in SPLIT_NAMES for d in dirs) and all(
        _has_subfolder(d.path, inside_root, f"{root.name}/{d.name}") for d in dirs
    ):
        names = ", ".join(d.name for d in dirs)
        example = next((d.name for d in dirs if d.name.lower().startswith("train")), dirs[0].name)
        raise InputError(
            f"{root.name} holds split folders ({names}), not class folders",
            f"import one split at a time, e.g. {Path(root, example)}",
        )
    stray = [e.name for e in loose if Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
    if stray:
        raise InputError(
            f"{len(stray)} image(s) in {root.name} lie outside the class folders, e.g. {stray[0]}",
            "move each image into its class folder, or remove it",
        )
    notes = []
    if loose:
        names = ", ".join(e.name for e in loose[:5]) + (", ..." if len(loose) > 5 else "")
        notes.append(f"ignored {len(loose)} file(s) beside the class folders: {names}")
    classes = [d.name for d in dirs]
    require_two_classes(classes, root, "class folder")

    files: list[str] = []
    shown: list[str] = []
    counts = []
    disk_bytes = 0
    for d in dirs:
        inside, hidden_inside = _entries(
            Path(d.path),
            inside_root,
            f"{root.name}/{d.name}",
            cap=_record_cap(root, options, len(files)),
        )
        hidden += hidden_inside
        sub = [e.name for e in inside if e.is_dir()]
        if sub:
            raise InputError(
                f"class folder {root.name}/{d.name} holds a folder ({sub[0]})",
                "an image folder has two levels, SOURCE/CLASS/IMAGE: move the images up "
                "into the class folder or remove the inner folder",
            )
        if not inside:
            raise InputError(
                f"class folder {root.name}/{d.name} has no images",
                "add images to it or remove the empty folder",
            )
        special = next((e.name for e in inside if not e.is_file()), None)
        if special is not None:  # a FIFO would block the import, a device would never end
            raise InputError(
                f"{root.name}/{d.name}/{special} is not a regular file (a pipe, socket or device)",
                "remove it from the image folder",
                detail={"file": f"{root.name}/{d.name}/{special}", "problem": "not a regular file"},
            )
        prefix = f"{root.name}/{d.name}/"
        files.extend(e.path for e in inside)
        shown.extend(prefix + e.name for e in inside)
        counts.append(len(inside))
        check_records(len(files), root, options)
        disk_bytes += sum(_size(e, prefix) for e in inside)
        check_bytes(disk_bytes, "the images on disk", root, options)
    if hidden:
        notes.append(f"skipped {hidden} hidden file(s) or folder(s)")
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), counts)
    return Listing(root, classes, files, shown, labels, notes)


def detect_folder(root: Path, options: ImportOptions, progress: Progress) -> Preview:
    """Lists the folder and reads every image header (not the pixels) to report the exact layout."""
    listing = list_folder(root, options)
    n = len(listing.files)
    headers = []
    for i, (path, shown) in enumerate(zip(listing.files, listing.shown, strict=True)):
        with open_image(path, shown) as im:
            headers.append(read_header(im, shown))
        progress.report("scan", i + 1, n, "files")
    sizes = [h.size for h in headers]
    size = _final_size(sizes, options)
    channels = 1 if all(h.grey for h in headers) else 3
    notes = [*listing.notes, *_layout_notes(n, listing, sizes, size, channels, headers, options)]
    notes.append("headers read; pixel data is checked when the images are decoded")
    counts = np.bincount(listing.labels, minlength=len(listing.classes))
    return Preview(
        "image-folder",
        "image",
        list(listing.classes),
        {c: int(k) for c, k in zip(listing.classes, counts, strict=True)},
        n,
        (channels, size[1], size[0]),
        notes,
    )


def decode_folder(root: Path, options: ImportOptions, progress: Progress) -> DecodedDataset:
    listing = list_folder(root, options)
    files, shown = listing.files, listing.shown
    n = len(files)
    progress.report("scan", n, n, "files")
    with open_image(files[0], shown[0]) as im:
        first = read_header(im, shown[0])
    fixed = options.image_size is not None
    guess = _final_size([first.size], options)
    channels = 1 if first.grey else 3
    _check_memory(n, channels, guess, root, options)
    workers = _workers(options, n)
    zeros = shared_zeros if workers > 1 else np.zeros
    images = zeros((n, channels, guess[1], guess[0]), np.uint8)
    sizes = zeros((n, 2), np.int32)
    grey = zeros((n,), np.bool_)
    done = zeros((n,), np.bool_)

    def first_pass(lo: int, hi: int, tick) -> None:
        for i in range(lo, hi):
            with open_image(files[i], shown[i]) as im:
                header = read_header(im, shown[i])
                sizes[i] = header.size
                grey[i] = header.grey
                if (fixed or header.size == guess) and (header.grey or channels == 3):
                    render(im, header, images[i], shown[i])
                    done[i] = True
            tick(i - lo + 1)

    run_split(n, first_pass, workers, lambda total: progress.report("decode", total, n, "images"))

    size_list = [(int(w), int(h)) for w, h in sizes]
    size = _final_size(size_list, options)
    final_channels = 1 if grey.all() else 3
    if size != guess:
        del images
        _check_memory(n, final_channels, size, root, options)
        images = np.zeros((n, final_channels, size[1], size[0]), np.uint8)
        done[:] = False
    elif final_channels != channels:
        wider = np.empty((n, 3, size[1], size[0]), np.uint8)
        for i in np.flatnonzero(done):
            wider[i] = images[i]
        images = wider
    pending = np.flatnonzero(~done)
    for k, i in enumerate(pending, start=1):
        with open_image(files[i], shown[i]) as im:
            render(im, read_header(im, shown[i]), images[i], shown[i])
        progress.report("finish", k, len(pending), "images")
    headers = [Header(w, h, bool(g)) for (w, h), g in zip(size_list, grey, strict=True)]
    notes = [*listing.notes, *_layout_notes(n, listing, size_list, size, final_channels, headers, options)]
    if workers > 1:
        notes.append(f"decoded by {workers} processes")
    return DecodedDataset(
        "image", "image-folder", list(listing.classes), listing.labels, images, None, root.name, notes
    )


def _check_memory(n: int, channels: int, size: tuple[int, int], root: Path, options: ImportOptions) -> None:
    """Refuse up front a pixel array over the byte cap or larger than this machine's memory, rather
    than fail inside numpy."""
    needed = n * channels * size[0] * size[1]
    check_bytes(needed, f"{n} decoded images of {channels}x{size[1]}x{size[0]}", root, options)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > physical * 0.8:
        raise InputError(
            f"{n} images of {channels}x{size[1]}x{size[0]} need {needed / 2**30:.1f} GiB, more than this "
            f"machine's memory ({physical / 2**30:.1f} GiB)",
            "choose a smaller --image-size, or import the folder in parts",
        )


def _final_size(sizes: list[tuple[int, int]], options: ImportOptions) -> tuple[int, int]:
    if options.image_size is not None:
        return (options.image_size, options.image_size)
    return most_common(sizes)


def _layout_notes(
    n: int,
    listing: Listing,
    sizes: list[tuple[int, int]],
    size: tuple[int, int],
    channels: int,
    headers: list[Header],
    options: ImportOptions,
) -> list[str]:
    why = "--image-size" if options.image_size is not None else "the most common size"
    notes = [
        f"{n} images in {len(listing.classes)} class folders",
        f"shape {channels}x{size[1]}x{size[0]} (C x H x W; {size[0]}x{size[1]} is {why})",
    ]
    resized = sum(1 for s in sizes if s != size)
    if resized:
        other = Counter(s for s in sizes if s != size).most_common(1)[0][0]
        notes.append(
            f"{resized} image(s) of another size (e.g. {other[0]}x{other[1]}) "
            f"resized to {size[0]}x{size[1]}, aspect ratio not kept"
        )
    grey_count = sum(1 for h in headers if h.grey)
    if channels == 3 and grey_count:
        notes.append(f"{grey_count} grey image(s) stored as RGB, since the folder also holds colour images")
    return notes


def _workers(options: ImportOptions, n: int) -> int:
    if options.workers is not None:
        return max(1, min(options.workers, n))
    if n < PARALLEL_MIN_IMAGES or not hasattr(os, "fork"):
        return 1
    cpus = len(os.sched_getaffinity(0))
    idle = cpus - os.getloadavg()[0]  # a helper only pays off on a core nobody else is using
    return max(1, min(4, cpus, int(idle) + 1))


def _real_folder(root: Path) -> str:
    """The folder's real path (the root itself may be reached through a link), or a clear error."""
    try:
        return os.path.realpath(root, strict=True)
    except OSError as exc:
        raise _link_error(root.name, exc) from None


def _record_cap(root: Path, options: ImportOptions, before: int) -> Callable[[int], None]:
    def cap(listed: int) -> None:
        check_records(before + listed, root, options, at_least=True)

    return cap


def _entries(
    folder: Path, inside: str, shown: str, cap: Callable[[int], None] | None = None
) -> tuple[list[os.DirEntry], int]:
    """Visible entries sorted by name, and how many hidden ones were skipped. A symbolic link must
    resolve to a path under `inside` (the real image folder); shown names the folder in errors.
    cap(count) may refuse the folder while it is listed (millions of tiny files)."""
    try:
        everything = []
        with os.scandir(folder) as it:
            for entry in it:
                everything.append(entry)
                if cap is not None and len(everything) % _CAP_EVERY == 0:
                    cap(len(everything))
    except NotADirectoryError:
        raise InputError(f"{folder.name} is not a folder", LAYOUT_HINT) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_error(shown, exc) from None
        raise InputError(
            f"cannot list {folder}: {exc.strerror}", "check that the folder is readable"
        ) from None
    visible = sorted((e for e in everything if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in visible:
        if entry.is_symlink():
            _check_link(entry, inside, f"{shown}/{entry.name}")
    return visible, len(everything) - len(visible)


def _check_link(entry: os.DirEntry, inside: str, shown: str) -> None:
    try:
        target = os.path.realpath(entry.path, strict=True)
    except OSError as exc:
        raise _link_error(shown, exc) from None
    if os.path.commonpath([inside, target]) != inside:
        raise InputError(
            f"{shown} is a symbolic link that leaves the image folder (to {target})",
            "copy the file into the folder instead of linking to it, or remove the link",
            detail={"file": shown, "problem": "link leaves the folder"},
        )


def _link_error(shown: str, exc: OSError) -> InputError:
    if exc.errno == errno.ELOOP:
        return InputError(
            f"{shown} is a symbolic link that loops (it leads back to itself)",
            "remove the link, or point it at a real file inside the folder",
            detail={"file": shown, "problem": "link loop"},
        )
    if isinstance(exc, FileNotFoundError):
        return InputError(
            f"{shown} is a symbolic link to nothing (its target does not exist)",
            "remove the link, or point it at a real file inside the folder",
            detail={"file": shown, "problem": "dangling link"},
        )
    return InputError(f"cannot read {shown}: {exc.strerror}", "check that it is readable")


def _size(entry: os.DirEntry, prefix: str) -> int:
    try:
        return entry.stat().st_size
    except OSError as exc:
        raise _link_error(prefix + entry.name, exc) from None


def _has_subfolder(folder: str, inside: str, shown: str) -> bool:
    entries, _ = _entries(Path(folder), inside, shown)
    return any(e.is_dir() for e in entries)
