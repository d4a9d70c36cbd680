"""Area 2, Train: the run form with a live policy pre-check, and the run monitor (progress,
curves, epsilon spent against the target and the dataset's budget, cancel with confirmation).

The run trains in its own process (tui.training); this screen only receives its events. With
processes above 1 (the command line's --nproc) the trainer runs the processes of one run at the
isolation level 'namespace+seccomp-loopback', started by the UI's trainer launcher (`tui.launcher`)
when the UI sits in its own stricter sandbox; the form says so and refuses the run when the vault's
policy does not allow that level or no launcher holds it. Progress and epsilon come from
the first process, as for one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Label, ProgressBar, Select, Static, Switch

from tui.keys import bindings
from tui.screens.area import AreaScreen
from tui.text import literal, safe_name
from tui.training import RunEnded, RunEvent, RunProgress, TrainingRun
from tui.widgets.curves import Curves
from tui.widgets.ledger_bar import ledger_bar, target_bar
from vault.errors import UsageError
from vault.train.config import (
    TrainConfig,
    default_model,
    gpus_present,
    models_for,
    parse_nproc,
    resolve_nproc,
)
from vault.vocabulary import LOOPBACK_ISOLATION, isolation_rank

NUMBER_FIELDS = ("epsilon", "delta", "epochs", "batch", "lr")
# The core's defaults (the CLI's too); a blank field is the core's choice (delta: min(1e-5, 1/(10 n))).
DEFAULTS = {
    "epsilon": f"{TrainConfig().epsilon:g}",
    "delta": "",
    "epochs": "",
    "batch": "",
    "lr": "",
    "nproc": str(TrainConfig().nproc),
}
SHELL_HINT = "train from a shell instead: strongroom train DATASET --nproc N"


def process_limit() -> int:
    """The most processes a run may have here: one per CPU core (or per GPU, where there are more)."""
    return max(os.cpu_count() or 1, gpus_present())


def parse_processes(raw: str, dp: bool) -> int:
    """The processes field as the command line's --nproc: a whole number up to the host's cores, or
    'auto' (one per GPU, 1 on the CPU); blank is 1. ValueError naming the field otherwise."""
    limit = process_limit()
    text = raw.strip() or "1"
    try:
        value = resolve_nproc(parse_nproc(text), "auto")
    except UsageError:
        raise ValueError(
            f"processes must be a whole number from 1 to {limit} or auto (got {raw!r})"
        ) from None
    if value > limit:
        raise ValueError(f"processes: this host has {limit} CPU cores, so at most {limit} (got {value})")
    if value > 1 and not dp:
        raise ValueError("processes above 1 train with DP only: turn DP-SGD on, or use 1 process")
    return value


def processes_refusal(
    processes: int, required: str | None, own_mode: str, launcher: str | None = "no trainer launcher"
) -> str | None:
    """Why a run of `processes` cannot start from this UI, or None. Above 1 it runs at the loopback
    level: the vault's policy must allow it (`required` at or below it; None: not known here, the
    door decides). A UI inside the plain namespace+seccomp sandbox, whose filter refuses internet
    sockets to every process it starts, runs it through its trainer launcher (`tui.launcher`), which
    holds the loopback level; `launcher` is None when that launcher is ready, else why it is not."""
    if processes <= 1:
        return None
    if required is not None and isolation_rank(LOOPBACK_ISOLATION) < isolation_rank(required):
        return (
            f"{processes} processes run at isolation {LOOPBACK_ISOLATION}, and the vault's policy requires "
            f"{required}: use 1 process, or have an admin set a policy whose [isolation] required is "
            f"{LOOPBACK_ISOLATION}"
        )
    if launcher is None:
        return None
    if own_mode == "namespace+seccomp":
        return (
            f"{processes} processes run at isolation {LOOPBACK_ISOLATION}, and this UI's sandbox "
            f"(namespace+seccomp) refuses internet sockets to every process it starts, while its trainer "
            f"launcher is not available ({launcher}): use 1 process, or {SHELL_HINT}"
        )
    return None


def parse_request(dataset: str | None, model: str | None, dp: bool, values: dict[str, str]) -> dict[str, Any]:
    """The form as a training request; raises ValueError naming the field that is not a number."""
    if not dataset:
        raise ValueError("choose a dataset")
    request: dict[str, Any] = {"dataset": dataset, "model": model, "dp": dp}
    converters = {"epsilon": float, "delta": float, "epochs": int, "batch": int, "lr": float}
    keys = {"batch": "batch_size"}
    for name in NUMBER_FIELDS:
        raw = values.get(name, "").strip()
        if not raw:
            continue
        if not dp and name in ("epsilon", "delta"):
            continue
        try:
            request[keys.get(name, name)] = converters[name](raw)
        except ValueError:
            raise ValueError(f"{name} must be a number (got {raw!r})") from None
    request["nproc"] = parse_processes(values.get("nproc", ""), dp)
    return request


def decision_text(decision: dict[str, Any]) -> Text:
    allowed = decision.get("allowed", decision.get("outcome") == "allowed")
    rule = decision.get("rule", "?")
    reason = decision.get("reason", "")
    if allowed:
        return Text.assemble(
            ("✓ allowed", "bold green"), f" by rule {rule}" + (f": {reason}" if reason else "")
        )
    return Text.assemble(("✗ refused", "bold red"), f" by rule {rule}: {reason}")


def figures_note(block: object) -> str:
    """What the held-out figures are, as the card says (its `metrics_privacy` block)."""
    if not isinstance(block, dict):
        return ""
    if block.get("mode") == "marked":
        return " (exact, outside the DP guarantee)"
    if isinstance(block.get("sigma"), (int, float)):
        return f" (DP-noised: ε {block['epsilon']:g}, σ {block['sigma']:.3g}; charged)"
    return " (noised card: nothing held out)"


class TrainScreen(AreaScreen):
    AREA = "train"
    BINDINGS = bindings("train")
    AUTO_FOCUS = "#train-dataset"

    def __init__(self) -> None:
        super().__init__()
        self.datasets: dict[str, dict[str, Any]] = {}
        self.budget: dict[str, dict[str, Any]] = {}
        self.run: TrainingRun | None = None
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        self.target_epsilon: float | None = None
        self._check_timer: Timer | None = None
        self.budget_readable = True
        self.required_isolation: str | None = None  # the policy's [isolation] required, once read

    def compose_area(self) -> ComposeResult:
        with Vertical(id="train-form"):
            with Horizontal(classes="form-row"):
                yield Label("Dataset")
                yield Select([], prompt="dataset", compact=True, id="train-dataset")
                yield Label("Model")
                yield Select([], prompt="model", compact=True, id="train-model")
            with Horizontal(classes="form-row"):
                yield Label("DP-SGD")
                yield Switch(True, id="train-dp")
                yield Static("on", id="train-dp-word", classes="switch-word")
                yield Label("epsilon")
                yield Input(DEFAULTS["epsilon"], id="train-epsilon", compact=True)
                yield Label("delta")
                yield Input(DEFAULTS["delta"], id="train-delta", compact=True, placeholder="auto")
            with Horizontal(classes="form-row"):
                yield Label("epochs")
                yield Input(DEFAULTS["epochs"], id="train-epochs", compact=True, placeholder="auto")
                yield Label("batch")
                yield Input(DEFAULTS["batch"], id="train-batch", compact=True, placeholder="auto")
                yield Label("lr")
                yield Input(DEFAULTS["lr"], id="train-lr", compact=True, placeholder="auto")
                yield Label("processes")
                yield Input(
                    DEFAULTS["nproc"],
                    id="train-nproc",
                    compact=True,
                    tooltip=f"1 to {process_limit()}, or auto (one per GPU, 1 on the CPU)",
                )
            yield Static("policy: checking…", id="train-check", classes="status-line")
            yield Static("", id="train-isolation", classes="status-line")
        with Vertical(id="train-monitor"):
            yield Static(
                "No run yet. ctrl+r starts one with the settings above.",
                id="train-status",
                classes="status-line",
            )
            yield ProgressBar(total=100, show_eta=False, id="train-progress")
            yield Curves(id="train-curves")
            yield Static("", id="train-epsilon-line", classes="status-line")
            yield Static("", id="train-budget-line", classes="status-line")
            yield Static("", id="train-result", classes="status-line")

    def refresh_area(self) -> None:
        def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
            datasets = self.backend.datasets()
            try:
                budget = self.backend.budget()
            except Exception:  # the form still works; the budget line says it is unreadable
                budget = None
            try:
                shown = self.backend.policy_show()
                self.required_isolation = str(shown["isolation"]["required"])
            except Exception:  # not readable by this role: the door decides when the run starts
                self.required_isolation = None
            return datasets, budget

        self.call_core("train-datasets", load, done=self.show_datasets)

    def show_datasets(self, loaded: tuple[list[dict[str, Any]], list[dict[str, Any]] | None]) -> None:
        datasets, budget = loaded
        self.datasets = {str(info["name"]): info for info in datasets}
        self.budget_readable = budget is not None
        self.budget = {str(row.get("dataset")): row for row in budget or []}
        select = self.query_one("#train-dataset", Select)
        current = select.value
        select.set_options([(name, name) for name in self.datasets])
        if current in self.datasets:
            select.value = current
        elif self.datasets:
            select.value = next(iter(self.datasets))
        self.show_budget()

    # The form and its policy pre-check.
    def form(self) -> dict[str, Any]:
        dataset = self.query_one("#train-dataset", Select).value
        model = self.query_one("#train-model", Select).value
        values = {name: self.query_one(f"#train-{name}", Input).value for name in (*NUMBER_FIELDS, "nproc")}
        return parse_request(
            dataset if isinstance(dataset, str) else None,
            model if isinstance(model, str) else None,
            self.query_one("#train-dp", Switch).value,
            values,
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "train-dataset" and isinstance(event.value, str):
            kind = self.dataset_kind()
            model_select = self.query_one("#train-model", Select)
            model_select.set_options([(m, m) for m in models_for(kind)])
            model_select.value = default_model(kind, self.query_one("#train-dp", Switch).value)
            self.show_budget()
        self.run_check()

    def dataset_kind(self) -> str:
        dataset = self.query_one("#train-dataset", Select).value
        return (
            str(self.datasets.get(dataset, {}).get("kind", "image")) if isinstance(dataset, str) else "image"
        )

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.query_one("#train-dp-word", Static).update("on" if event.value else "off")
        if event.switch.id == "train-dp":  # the other recipe's default follows, unless a model was picked
            model_select = self.query_one("#train-model", Select)
            kind = self.dataset_kind()
            if model_select.value == default_model(kind, not event.value):
                model_select.value = default_model(kind, event.value)
        for name in ("epsilon", "delta"):
            self.query_one(f"#train-{name}", Input).disabled = not event.value
        self.run_check()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.id.startswith("train-"):
            self.schedule_check()

    def schedule_check(self) -> None:
        if self._check_timer is not None:
            self._check_timer.stop()
        self._check_timer = self.set_timer(0.25, self.run_check)

    def run_check(self) -> None:
        if self._check_timer is not None:
            self._check_timer.stop()
            self._check_timer = None
        line = self.query_one("#train-check", Static)
        try:
            request = self.form()
        except ValueError as problem:
            line.update(Text(f"✗ {safe_name(problem)}", style="bold"))
            self.show_isolation(None)
            return
        self.show_isolation(request)
        facts = {k: request.get(k) for k in ("dataset", "model", "dp", "epsilon", "delta")}
        self.call_core(
            "policy-check",
            self.backend.policy_check,
            "train",
            **facts,
            done=lambda decision: line.update(Text("policy: ").append_text(decision_text(decision))),
            failed=lambda error: self.check_failed(line, error),
        )

    def refusal(self, request: dict[str, Any]) -> str | None:
        from tui import launcher
        from vault.netguard import state

        processes = int(request.get("nproc", 1))
        own = str(state.current_report().get("mode", "none"))
        started = launcher.current()
        problem = "no trainer launcher" if started is None else started.refusal() if processes > 1 else None
        return processes_refusal(processes, self.required_isolation, own, problem)

    def show_isolation(self, request: dict[str, Any] | None) -> None:
        """Above 1 process: the level the run uses, and whether it may start from here."""
        line = self.query_one("#train-isolation", Static)
        processes = int(request.get("nproc", 1)) if request else 1
        line.display = processes > 1
        if processes <= 1 or request is None:
            return
        refused = self.refusal(request)
        if refused:
            line.update(Text.assemble(("✗ refused", "bold red"), f": {refused}"))
        else:
            line.update(
                Text(f"{processes} processes · isolation {LOOPBACK_ISOLATION}: ").append_text(
                    Text("✓ allowed", style="bold green")
                )
            )

    @staticmethod
    def check_failed(line: Static, error: BaseException) -> bool:
        line.update(
            Text(f"policy: ✗ cannot check: {safe_name(getattr(error, 'title', type(error).__name__))}")
        )
        return True

    def show_budget(self) -> None:
        dataset = self.query_one("#train-dataset", Select).value
        row = self.budget.get(dataset) if isinstance(dataset, str) else None
        line = self.query_one("#train-budget-line", Static)
        if not self.budget_readable:
            line.update("dataset budget: ? the ledger could not be read")
            return
        if row is None:
            line.update("dataset budget: no runs yet")
            return
        line.update(
            Text("dataset budget ").append_text(
                ledger_bar(
                    row.get("epsilon_spent"),
                    row.get("epsilon_cap"),
                    unbounded=bool(row.get("unbounded")),
                    width=16,
                )
            )
        )

    # Running.
    def action_start_run(self) -> None:
        if self.app.run_active:
            self.notify("A run is already active (ctrl+x cancels it).", severity="warning")
            return
        try:
            request = self.form()
        except ValueError as problem:
            self.notify(literal(problem), title="Cannot start", severity="error")
            return
        refused = self.refusal(request)
        if refused:
            self.show_isolation(request)
            self.notify(literal(refused), title="Cannot start", severity="error")
            return
        self.losses, self.accuracies = [], []
        self.target_epsilon = request.get("epsilon") if request.get("dp") else None
        self.query_one("#train-curves", Curves).update([], [])
        self.query_one("#train-result", Static).update("")
        self.query_one("#train-status", Static).update(
            f"… starting a run on {request['dataset']} "
            f"({request.get('model')}, {'DP' if request['dp'] else 'no DP'}"
            + (f", {request['nproc']} processes" if request.get("nproc", 1) > 1 else "")
            + ")"
        )
        try:
            self.run = TrainingRun(
                self,
                vault_path=self.app.vault_path,
                user=self.backend.user,
                secrets=self.app.training_secret(),
                request=request,
            )
        except OSError as problem:
            self.query_one("#train-status", Static).update(f"✗ the run did not start: {problem}")
            self.notify(literal(str(problem)), title="Cannot start", severity="error")
            return
        self.app.training_run = self.run

    def action_cancel_run(self) -> None:
        if self.run is None or not self.run.active:
            self.notify("No run is active.")
            return
        from tui.screens.dialogs import ConfirmDialog

        def decided(confirmed: bool | None) -> None:
            if confirmed and self.run is not None:
                self.run.cancel()
                self.query_one("#train-status", Static).update("… cancelling after the current step")

        self.app.push_screen(
            ConfirmDialog(
                "Cancel the training run?",
                "No model is written; the ledger is charged for the steps already taken.",
                "Cancel run",
            ),
            decided,
        )

    def on_run_progress(self, message: RunProgress) -> None:
        if self.run is None:
            return
        update = self.run.take_progress()
        if update is None:
            return
        fields = update.fields
        step, total = int(fields.get("step", 0)), int(fields.get("total_steps", 0) or 0)
        bar = self.query_one("#train-progress", ProgressBar)
        bar.update(total=total or None, progress=step)
        loss = fields.get("loss")
        if isinstance(loss, (int, float)):
            self.losses.append(float(loss))
        status = f"step {step}/{total} · epoch {fields.get('epoch', '?')}"
        if isinstance(loss, (int, float)):
            status += f" · loss {loss:.4f}"
        self.query_one("#train-status", Static).update(f"▶ running: {literal(status)}")
        self.query_one("#train-curves", Curves).update(self.losses, self.accuracies)
        self.show_epsilon(fields.get("epsilon_so_far"))

    def show_epsilon(self, spent: Any) -> None:
        line = self.query_one("#train-epsilon-line", Static)
        if self.target_epsilon is None:
            line.update(Text.assemble(("✗ no DP", "bold"), ": this run makes the dataset's ε unbounded"))
        elif isinstance(spent, (int, float)):
            line.update(Text("run ε ").append_text(target_bar(float(spent), self.target_epsilon)))

    def on_run_event(self, message: RunEvent) -> None:
        fields = message.update.fields
        if message.update.event == "EpochEnd":
            for key in ("val_acc", "train_acc"):
                value = fields.get(key)
                if isinstance(value, (int, float)):
                    self.accuracies.append(float(value))
                    break
            self.query_one("#train-curves", Curves).update(self.losses, self.accuracies)
            if fields.get("epsilon") is not None:
                self.show_epsilon(fields["epsilon"])

    def on_run_ended(self, message: RunEnded) -> None:
        status = self.query_one("#train-status", Static)
        if message.result is not None:
            result = message.result
            accuracy = result.get("accuracy")
            eps = result.get("epsilon")
            status.update(Text.assemble(("✓ finished", "bold green"), f": model {result.get('model')}"))
            summary = f"held-out accuracy {accuracy:.1%}" if isinstance(accuracy, (int, float)) else ""
            summary += figures_note(result.get("metrics_privacy"))
            summary += f" · ε {eps:.2f}" if isinstance(eps, (int, float)) else " · no DP (ε unbounded)"
            self.query_one("#train-result", Static).update(summary + " · see it in 3 Models and 4 Privacy")
            self.query_one("#train-progress", ProgressBar).update(
                progress=self.query_one("#train-progress", ProgressBar).total or 0
            )
        else:
            cancelled = message.error == "Cancelled"
            glyph = "■ cancelled" if cancelled else "✗ failed"
            status.update(Text.assemble((glyph, "bold"), f": {message.title}"))
            if not cancelled:
                from tui.screens.dialogs import ErrorDialog

                self.app.push_screen(ErrorDialog(message.title, message.hint))
        self.refresh_area()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Start training run", "Train with the form's settings (ctrl+r)", self.action_start_run
        )
        yield SystemCommand("Cancel training run", "Stop the active run (ctrl+x)", self.action_cancel_run)


SCREEN = TrainScreen
