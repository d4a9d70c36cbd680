"""Loss and accuracy curves: a plotext chart when the terminal is wide, sparklines at 80 columns.

The numbers sit beside the curves, so the picture is never the only way to read them.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

WIDE = 100


class Curves(Vertical):
    """Call `update(losses, accuracies)` with the series so far; the widget picks its form by width."""

    DEFAULT_CSS = """
    Curves { height: auto; }
    Curves .curve-row { height: 1; }
    Curves .curve-label { width: 22; }
    Curves Sparkline { width: 1fr; height: 1; }
    Curves #curves-plot { height: 12; display: none; }
    Curves.wide #curves-plot { display: block; }
    Curves.wide .curve-row Sparkline { display: none; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        self._plot = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="curve-row"):
            yield Static("loss      -", id="loss-label", classes="curve-label")
            yield Sparkline([], id="loss-spark")
        with Horizontal(classes="curve-row"):
            yield Static("accuracy  -", id="acc-label", classes="curve-label")
            yield Sparkline([], id="acc-spark")

    def on_resize(self) -> None:
        wide = self.size.width >= WIDE
        if wide and self._plot is None:
            from textual_plotext import PlotextPlot

            self._plot = PlotextPlot(id="curves-plot")
            self.mount(self._plot)
        self.set_class(wide, "wide")
        self._draw()

    def update(self, losses: list[float], accuracies: list[float]) -> None:
        self.losses = list(losses)
        self.accuracies = list(accuracies)
        self._draw()

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        loss_text = f"loss      {self.losses[-1]:.4f}" if self.losses else "loss      -"
        acc_text = f"accuracy  {self.accuracies[-1]:.1%}" if self.accuracies else "accuracy  -"
        self.query_one("#loss-label", Static).update(loss_text)
        self.query_one("#acc-label", Static).update(acc_text)
        self.query_one("#loss-spark", Sparkline).data = self.losses[-200:]
        self.query_one("#acc-spark", Sparkline).data = self.accuracies[-200:]
        if self._plot is not None and self.has_class("wide"):
            plt = self._plot.plt
            plt.clear_data()
            plt.clear_figure()
            if self.losses:
                plt.plot(self.losses, label="loss (per step)")
            if self.accuracies:
                plt.plot(self.accuracies, label="held-out accuracy (per epoch)", yside="right")
            plt.title("training curves")
            self._plot.refresh()
