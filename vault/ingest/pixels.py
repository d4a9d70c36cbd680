"""One image file to pixels: open with Pillow (PNG, JPEG, BMP, GIF only), read the header, decode
straight into a row of the caller's (C, H, W) uint8 array.

Grey images are rendered as one channel and broadcast when the dataset is colour, so a grey file
gives the same pixels whichever path decodes it. EXIF orientation is applied; GIFs give their first
frame; alpha is dropped; 16-bit grey keeps its top 8 bits.

An image whose header declares more than MAX_PIXELS pixels is refused before it is decoded
(Pillow itself only warns up to twice its limit, and a few kilobytes of PNG can declare that many).
"""

from __future__ import annotations

import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin  # noqa: F401  (EXIF parsing needs it; import it before any fork)

from vault.errors import InputError

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif"})
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    Image.DecompressionBombError,
)

Image.init()  # load every format plugin now, not lazily inside a forked decoder
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's own limit (about 0.25 GiB of RGB)


@dataclass(frozen=True)
class Header:
    """What the file's header says, after EXIF orientation: displayed width and height, grey or not."""

    width: int
    height: int
    grey: bool
    orientation: int = 1

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


def open_image(path: str | Path, shown: str) -> Image.Image:
    """Open lazily (header only). Raises InputError naming the file when it is not a usable image,
    or when its header declares more than MAX_PIXELS pixels."""
    try:
        with warnings.catch_warnings():  # Pillow's warning band is refused below, not warned about
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path, formats=IMAGE_FORMATS)
        width, height = im.size
        if width * height > MAX_PIXELS:
            im.close()
            raise Image.DecompressionBombError(f"{width * height} pixels")
        return im
    except Image.UnidentifiedImageError:
        suffix = Path(path).suffix
        if suffix.lower() in IMAGE_SUFFIXES:
            raise InputError(
                f"corrupt image {shown}: its header is not readable as {suffix[1:].upper()}",
                "re-export the image, or remove it from the folder",
            ) from None
        raise InputError(
            f"not a PNG, JPEG, BMP or GIF image: {shown}",
            "remove it from the image folder (or convert it to PNG)",
        ) from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
            raise InputError(
                f"cannot read {shown}: {exc.strerror}", "check that the file is readable"
            ) from None
        raise corrupt(shown, exc) from None
    except _DECODE_ERRORS as exc:
        raise corrupt(shown, exc) from None


def corrupt(shown: str, exc: BaseException) -> InputError:
    """The error for an image whose data cannot be decoded; never quotes the bytes themselves."""
    if isinstance(exc, Image.DecompressionBombError):
        return InputError(
            f"image too large to decode safely: {shown} declares more than {MAX_PIXELS:,} pixels",
            f"scale it below {MAX_PIXELS:,} pixels, or remove it from the folder",
            detail={"file": shown, "problem": "too large"},
        )
    truncated = isinstance(exc, EOFError) or "truncated" in str(exc).lower()
    what = "truncated" if truncated else "corrupt"
    return InputError(
        f"{what} image {shown}: its pixel data cannot be decoded",
        "re-export or re-copy the image, or remove it from the folder",
        detail={"file": shown, "problem": what},
    )


def read_header(im: Image.Image, shown: str) -> Header:
    try:
        orientation = _orientation(im)
        grey = _is_grey(im)
    except _DECODE_ERRORS as exc:
        raise corrupt(shown, exc) from None
    width, height = im.size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Header(width, height, grey, orientation)


def render(im: Image.Image, header: Header, out: np.ndarray, shown: str) -> None:
    """Decode `im` into out, shaped (C, H, W): resized to (W, H), grey broadcast when C is 3."""
    channels, height, width = out.shape
    try:
        if im.format == "JPEG" and header.size != (width, height):
            request = (height, width) if header.orientation in (5, 6, 7, 8) else (width, height)
            im.draft(None, request)
        im.load()
        im = _eight_bit(im)
        if header.orientation in _TRANSPOSE:
            im = im.transpose(_TRANSPOSE[header.orientation])
        mode = "L" if header.grey else "RGB"
        if im.mode != mode:
            with warnings.catch_warnings():  # palette transparency warnings: alpha is dropped anyway
                warnings.simplefilter("ignore", UserWarning)
                im = im.convert(mode)
        if im.size != (width, height):
            im = im.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.frombuffer(im.tobytes(), dtype=np.uint8)
    except _DECODE_ERRORS as exc:
        raise corrupt(shown, exc) from None
    if header.grey:
        out[...] = pixels.reshape(1, height, width)
    elif channels == 3:
        out[...] = pixels.reshape(height, width, 3).transpose(2, 0, 1)
    else:
        raise ValueError("a colour image cannot go into a one-channel array")


def _eight_bit(im: Image.Image) -> Image.Image:
    if im.mode in _WIDE_GREY_MODES:
        wide = np.asarray(im).astype(np.int64)
        return Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L")
    return im


def _orientation(im: Image.Image) -> int:
    if "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except (*_DECODE_ERRORS, KeyError, TypeError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _is_grey(im: Image.Image) -> bool:
    if im.mode in _GREY_MODES:
        return True
    if im.mode in ("P", "PA"):
        palette = im.getpalette("RGB")
        if not palette:
            return False
        rgb = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        return bool((rgb == rgb[:, :1]).all())
    return False


__all__ = ["IMAGE_FORMATS", "IMAGE_SUFFIXES", "Header", "corrupt", "open_image", "read_header", "render"]
