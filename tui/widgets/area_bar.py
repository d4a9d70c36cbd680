"""The strip at the top of every area: where you are (▸ and reverse, not colour alone) and who you are."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class AreaBar(Widget):
    """`▣ Strongroom  ▸1 Datasets  2 Train ...  user (role)`; areas absent for this session are left out."""

    DEFAULT_CSS = """
    AreaBar { height: 1; background: $panel; color: $foreground; }
    """

    def __init__(self, current: str, areas: list[tuple[str, str, str]], who: str) -> None:
        super().__init__()
        self.current = current
        self.areas = areas
        self.who = who

    def render(self) -> Text:
        text = Text(" ▣ Strongroom ", style="bold")
        for area, number, title in self.areas:
            if area == self.current:
                text.append(f"▸{number} {title}", style="bold reverse")
            else:
                text.append(f" {number} {title}")
            text.append(" ")
        width = self.size.width
        if self.who and text.cell_len + len(self.who) + 2 <= width:
            text.append(" " * (width - text.cell_len - len(self.who) - 1))
            text.append(self.who, style="italic")
        return text
