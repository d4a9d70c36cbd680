"""Import: pick a file or folder, see what would be imported (format, kind, classes, counts)
before anything is written, then import with a progress bar."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DirectoryTree, Footer, Input, Label, ProgressBar, Select, Static
from textual.worker import Worker, WorkerState

from tui.keys import bindings
from tui.text import literal, safe_name, shown
from tui.widgets.area_bar import AreaBar
from vault.vocabulary import DEFAULT_SENSITIVITY, SENSITIVITIES

# The default first, then the rest from most to least sensitive.
SENSITIVITY_CHOICES = (DEFAULT_SENSITIVITY, *(s for s in reversed(SENSITIVITIES) if s != DEFAULT_SENSITIVITY))


def describe_preview(preview: dict[str, Any]) -> Text:
    counts = preview.get("counts") or {}
    classes = list(preview.get("classes") or counts.keys())
    text = Text()
    text.append("✓ detected ", style="bold")
    text.append(
        f"{preview.get('fmt')} · {preview.get('kind')} · {preview.get('samples')} records · "
        f"{len(classes)} classes"
    )
    shape = preview.get("shape")
    if shape:
        text.append(" · " + " × ".join(str(s) for s in shape))
    text.append("\n")
    text.append(
        "classes: " + ", ".join(f"{safe_name(name)} ({counts.get(name, '?')})" for name in classes[:12])
    )
    if len(classes) > 12:
        text.append(f", … {len(classes) - 12} more")
    for note in preview.get("notes") or []:
        text.append(f"\n• {safe_name(note)}", style="italic")
    return text


class FileTree(DirectoryTree):
    """The file picker: names of files and folders shown as they are, never read as markup."""

    def process_label(self, label: Any) -> Text:
        return shown(label.plain if isinstance(label, Text) else label)


class ImportProgress(Message):
    def __init__(self, stage: str, done: int, total: int) -> None:
        super().__init__()
        self.stage = stage
        self.done = done
        self.total = total


class ImportScreen(Screen[bool]):
    """Pushed from Datasets (i). Dismisses with True when something was imported."""

    BINDINGS = bindings("picker")
    AUTO_FOCUS = "#picker-tree"

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = root or Path.cwd()
        self.preview: dict[str, Any] | None = None
        self.previewed_path: Path | None = None
        self.cancel_import: threading.Event | None = None
        self._workers: dict[Worker[Any], str] = {}
        self._imported = False
        self.detect_worker: Worker[Any] | None = None
        self.import_worker: Worker[Any] | None = None

    def compose(self) -> ComposeResult:
        from tui.app import AREAS

        yield AreaBar("datasets", [(a, *AREAS[a]) for a in self.app.areas], "import")
        yield Input(
            str(self.root), id="picker-path", compact=True, placeholder="a file or folder; enter previews it"
        )
        yield FileTree(self.root, id="picker-tree")
        yield Static(
            Text("Select a file or folder (enter) to see what would be imported.", style="italic"),
            id="picker-preview",
        )
        with Horizontal(classes="form-row"):
            yield Label("IDX labels")
            yield Input(id="picker-labels", compact=True, placeholder="labels file for IDX images")
            yield Label("text col")
            yield Input(id="picker-text-col", compact=True, placeholder="name or index")
            yield Label("label col")
            yield Input(id="picker-label-col", compact=True, placeholder="name or index")
        with Horizontal(classes="form-row"):
            yield Label("Name")
            yield Input(id="picker-name", compact=True, placeholder="dataset name")
            yield Label("Sensitivity")
            yield Select(
                [(s, s) for s in SENSITIVITY_CHOICES],
                value="high",
                allow_blank=False,
                compact=True,
                id="picker-sensitivity",
            )
        with Horizontal(classes="form-row"):
            yield ProgressBar(total=100, show_eta=False, id="picker-progress")
            yield Static("", id="picker-status")
        yield Footer()

    # Choosing.
    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.choose(event.path)

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        self.choose(event.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "picker-path":
            path = Path(event.value).expanduser()
            if path.is_dir():
                self.query_one("#picker-tree", DirectoryTree).path = path
            self.choose(path)
        elif event.input.id == "picker-name":
            self.action_run_import()
        else:
            self.action_preview()

    def choose(self, path: Path) -> None:
        self.query_one("#picker-path", Input).value = str(path)
        name_field = self.query_one("#picker-name", Input)
        if not name_field.value:
            name_field.value = path.name.split(".")[0].replace(" ", "-")[:40]
        self.action_preview()

    def _options(self) -> Any:
        labels = self.query_one("#picker-labels", Input).value.strip()
        text_col = self.query_one("#picker-text-col", Input).value.strip()
        label_col = self.query_one("#picker-label-col", Input).value.strip()
        both_numeric = text_col.isdigit() and label_col.isdigit()
        return self.app.backend.import_options(
            labels=Path(labels).expanduser() if labels else None,
            text_column=(int(text_col) if both_numeric else text_col) or None,
            label_column=(int(label_col) if both_numeric else label_col) or None,
            header=False if both_numeric else None,
        )

    def _path(self) -> Path:
        return Path(self.query_one("#picker-path", Input).value).expanduser()

    def action_preview(self) -> None:
        path = self._path()
        self.preview = None
        try:
            options = self._options()
        except Exception as error:
            self.app.show_error(error)
            return
        backend = self.app.backend
        self.query_one("#picker-preview", Static).update("… detecting (nothing is written)")
        worker = self.run_worker(
            lambda: backend.detect(path, options),
            thread=True,
            exclusive=True,
            group="detect",
            exit_on_error=False,
        )
        self._workers[worker] = "detect"
        self.detect_worker = worker
        self.previewed_path = path

    # Importing.
    def action_run_import(self) -> None:
        if self.cancel_import is not None:
            return
        if self.preview is None or self.previewed_path != self._path():
            self.notify("Preview the selection first (p or enter), then import.", severity="warning")
            return
        name = self.query_one("#picker-name", Input).value.strip()
        if not name:
            self.notify("Give the dataset a name.", severity="warning")
            self.query_one("#picker-name", Input).focus()
            return
        sensitivity = str(self.query_one("#picker-sensitivity", Select).value)
        path, options, backend = self._path(), self._options(), self.app.backend
        self.cancel_import = threading.Event()
        cancel = self.cancel_import
        last_post = [0.0]

        def on_event(event: Any) -> None:
            done = getattr(event, "done", None)
            total = getattr(event, "total", None)
            if done is None or not total:
                return
            now = time.monotonic()
            if now - last_post[0] >= 0.05 or done >= total:
                last_post[0] = now
                self.post_message(ImportProgress(str(getattr(event, "stage", "")), int(done), int(total)))

        self.query_one("#picker-status", Static).update(f"… importing {literal(name)}")
        worker = self.run_worker(
            lambda: backend.import_dataset(
                path, name=name, sensitivity=sensitivity, options=options, on_event=on_event, cancel=cancel
            ),
            thread=True,
            exclusive=True,
            group="import",
            exit_on_error=False,
        )
        self._workers[worker] = "import"
        self.import_worker = worker

    def on_import_progress(self, message: ImportProgress) -> None:
        bar = self.query_one("#picker-progress", ProgressBar)
        bar.update(total=message.total, progress=message.done)
        self.query_one("#picker-status", Static).update(f"{message.stage} {message.done}/{message.total}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        kind = self._workers.get(event.worker)
        if kind is None or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        del self._workers[event.worker]
        if event.state == WorkerState.ERROR:
            if kind == "detect":
                self.query_one("#picker-preview", Static).update(
                    Text("✗ cannot import this selection", style="bold")
                )
            else:
                self.cancel_import = None
                self.query_one("#picker-status", Static).update("✗ import failed; nothing was added")
            self.app.show_error(event.worker.error or RuntimeError("failed"))
            return
        if kind == "detect" and event.state == WorkerState.SUCCESS:
            self.preview = event.worker.result
            self.query_one("#picker-preview", Static).update(describe_preview(self.preview or {}))
        elif kind == "import" and event.state == WorkerState.SUCCESS:
            info = event.worker.result
            self.cancel_import = None
            self._imported = True
            bar = self.query_one("#picker-progress", ProgressBar)
            bar.update(total=100, progress=100)
            self.query_one("#picker-status", Static).update(
                f"✓ imported {literal(info['name'])} v{info['version']}: {info['samples']} records"
            )
            self.notify(f"✓ imported {literal(info['name'])} v{info['version']}", title="Import done")

    def action_close(self) -> None:
        if self.cancel_import is not None:
            self.cancel_import.set()
            self.notify("Cancelling the import; nothing is added until it completes.")
            return
        self.dismiss(self._imported)
