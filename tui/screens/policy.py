"""Area 6, Policy: the vault's active policy (name, hash, rules, text) and a "what if" check
that asks the policy about a request without doing it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Select, Static, Switch

from tui.keys import bindings
from tui.screens.area import AreaScreen
from tui.screens.train import decision_text
from tui.text import safe_name, safe_name_lines
from tui.widgets.tables import KeyTable

ACTIONS = ("train", "evaluate", "dataset.sample", "dataset.import", "dataset.delete", "model.export")
RULE_COLUMNS = (("rule", 28), ("effect", 8), ("what it says", None))


def policy_header(policy: dict[str, Any]) -> Text:
    text = Text()
    text.append(safe_name(policy.get("name")), style="bold")
    if policy.get("description"):
        text.append(f" — {safe_name(policy['description'])}")
    text.append(f"\nsha256 {policy.get('sha256')}")
    if policy.get("source"):
        text.append(f" · from {safe_name(policy['source'])}")
    return text


class PolicyScreen(AreaScreen):
    AREA = "policy"
    BINDINGS = bindings("policy")

    def compose_area(self) -> ComposeResult:
        yield Static("", id="policy-header", classes="detail")
        yield KeyTable(RULE_COLUMNS, id="policy-rules")
        with Vertical(id="policy-whatif"):
            yield Static(
                "What if … (ctrl+r checks; nothing is done, the dry run is audited)", classes="section-title"
            )
            with Horizontal(classes="form-row"):
                yield Label("Action")
                yield Select(
                    [(a, a) for a in ACTIONS],
                    value="train",
                    allow_blank=False,
                    compact=True,
                    id="whatif-action",
                )
                yield Label("Dataset")
                yield Select([], prompt="dataset", compact=True, id="whatif-dataset")
            with Horizontal(classes="form-row"):
                yield Label("DP")
                yield Switch(True, id="whatif-dp")
                yield Static("on", id="whatif-dp-word", classes="switch-word")
                yield Label("epsilon")
                yield Input("3", id="whatif-epsilon", compact=True)
                yield Label("delta")
                yield Input("1e-5", id="whatif-delta", compact=True)
                yield Label("model")
                yield Input("", placeholder="auto", id="whatif-model", compact=True)
            yield Static("", id="whatif-result", classes="status-line")
        with VerticalScroll(id="policy-text-scroll"):
            yield Static("", id="policy-text", markup=False)

    def refresh_area(self) -> None:
        def load() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            return self.backend.policy_show(), self.backend.datasets()

        self.call_core("policy", load, done=self.show_policy)

    def show_policy(self, loaded: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
        policy, datasets = loaded
        self.query_one("#policy-header", Static).update(policy_header(policy))
        rules = [
            (
                str(rule.get("id")),
                (
                    str(rule.get("id")),
                    f"{'⊘ forbid' if rule.get('effect') == 'forbid' else '✓ permit'}",
                    str(rule.get("text", "")),
                ),
            )
            for rule in policy.get("rules") or []
        ]
        self.query_one("#policy-rules", KeyTable).set_rows(rules)
        self.query_one("#policy-text", Static).update(safe_name_lines(policy.get("text", "")))
        select = self.query_one("#whatif-dataset", Select)
        current = select.value
        names = [str(d["name"]) for d in datasets]
        select.set_options([(n, n) for n in names])
        if current in names:
            select.value = current
        elif names:
            select.value = names[0]

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.query_one("#whatif-dp-word", Static).update("on" if event.value else "off")

    def request(self) -> tuple[str, dict[str, Any]]:
        action = str(self.query_one("#whatif-action", Select).value)
        dataset = self.query_one("#whatif-dataset", Select).value
        facts: dict[str, Any] = {
            "dataset": dataset if isinstance(dataset, str) else None,
            "dp": self.query_one("#whatif-dp", Switch).value,
            "model": self.query_one("#whatif-model", Input).value.strip() or None,
        }
        for name in ("epsilon", "delta"):
            raw = self.query_one(f"#whatif-{name}", Input).value.strip()
            if raw and facts["dp"]:
                try:
                    facts[name] = float(raw)
                except ValueError:
                    raise ValueError(f"{name} must be a number (got {raw!r})") from None
        return action, facts

    def action_check(self) -> None:
        result = self.query_one("#whatif-result", Static)
        try:
            action, facts = self.request()
        except ValueError as problem:
            result.update(Text(f"✗ {safe_name(problem)}", style="bold"))
            return
        result.update("… asking the policy")
        self.call_core(
            "whatif",
            self.backend.policy_check,
            action,
            **facts,
            done=lambda decision: result.update(decision_text(decision)),
        )

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Policy what-if check", "Ask the policy about the request in the form (ctrl+r)", self.action_check
        )


SCREEN = PolicyScreen
