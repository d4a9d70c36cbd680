"""Images drawn in the terminal with half blocks: each cell is "▀", its foreground the upper
pixel and its background the lower one, so one text row shows two pixel rows.

Under NO_COLOR, Textual's monochrome filter turns the colours into greys, which still shows
the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.color import Color
from rich.style import Style
from rich.text import Text

Pixels = Sequence[Sequence[Sequence[int]]]  # C x H x W, uint8 values


def _rgb(pixels: Pixels, y: int, x: int) -> tuple[int, int, int]:
    if len(pixels) >= 3:
        return int(pixels[0][y][x]), int(pixels[1][y][x]), int(pixels[2][y][x])
    value = int(pixels[0][y][x])
    return value, value, value


def half_block_image(pixels: Pixels, *, max_width: int = 28) -> Text:
    """Render a C x H x W image (C = 1 or 3) as half-block text at most `max_width` cells wide."""
    height = len(pixels[0])
    width = len(pixels[0][0]) if height else 0
    step = max(1, -(-width // max_width))
    rows = list(range(0, height, step))
    cols = list(range(0, width, step))
    text = Text(no_wrap=True)
    for pair in range(0, len(rows), 2):
        top_y = rows[pair]
        bottom_y = rows[pair + 1] if pair + 1 < len(rows) else None
        for x in cols:
            top = Color.from_rgb(*_rgb(pixels, top_y, x))
            bottom = Color.from_rgb(*_rgb(pixels, bottom_y, x)) if bottom_y is not None else None
            text.append("▀", Style(color=top, bgcolor=bottom))
        if pair + 2 < len(rows):
            text.append("\n")
    return text


def image_row(images: Sequence[tuple[str, Pixels]], *, max_width: int = 28, gap: int = 2) -> Text:
    """Several labelled images side by side (label above each), as one block of text."""
    blocks = [(label, half_block_image(pixels, max_width=max_width)) for label, pixels in images]
    if not blocks:
        return Text()
    split = [(label, block.split("\n")) for label, block in blocks]
    widths = [max((line.cell_len for line in lines), default=0) for _, lines in split]
    height = max(len(lines) for _, lines in split)
    out = Text(no_wrap=True)
    for index, (label, _) in enumerate(split):
        out.append(label[: widths[index]].ljust(widths[index]) + " " * gap, style="bold")
    for row in range(height):
        out.append("\n")
        for index, (_, lines) in enumerate(split):
            if row < len(lines):
                out.append_text(lines[row])
                out.append(" " * (widths[index] - lines[row].cell_len))
            else:
                out.append(" " * widths[index])
            out.append(" " * gap)
    return out
