"""The TUI says which figures a card carries: the run's result line and the ledger's charge rows."""

from __future__ import annotations

from tui.screens.privacy import run_rows
from tui.screens.train import figures_note
from vault.privacy.release import plan_release


def test_the_result_line_names_the_mode_and_the_noise() -> None:
    plan = plan_release(0.5, 1e-5, 200)
    noised = {"mode": "noised", "covered_by_dp": True, **plan.to_json()}
    assert figures_note({"mode": "marked", "covered_by_dp": False}) == " (exact, outside the DP guarantee)"
    assert figures_note(noised) == f" (DP-noised: ε 0.5, σ {plan.sigma:.3g}; charged)"
    assert figures_note(None) == ""


def test_a_metrics_charge_is_its_own_row() -> None:
    budget = [
        {
            "dataset": "digits",
            "runs": [
                {"run": "run-1", "dp": True, "epsilon": 3.0, "history": [[1.1, 0.01, 300]], "outcome": "ok"},
                {
                    "run": "run-1.metrics",
                    "dp": True,
                    "epsilon": 0.5,
                    "history": [[7.0, 1.0, 1]],
                    "outcome": "ok",
                    "metrics_of": "run-1",
                },
            ],
        }
    ]
    rows = [cells for _, cells in run_rows(budget)]
    assert [cells[2] for cells in rows] == ["✓ DP", "✓ card"]
    assert rows[1][3] == "0.50"
