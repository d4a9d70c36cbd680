"""The release of a run's card figures through the door: planned with the run (before any record is
read, so the policy sees its cost in the projection), charged to the ledger as its own charge beside
the training's, and applied to the outcome before the card is sealed.

Under the policy's `card_metrics = "noised"`, the held-out figures are the Gaussian mechanism's
(vault/privacy/release.py) at the policy's `card_metrics_epsilon` and a delta below 1/n of the
held-out records; under "marked", nothing is released under DP and nothing is charged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vault.errors import UsageError
from vault.privacy import ledger
from vault.privacy.release import MetricsRelease, gaussian_rdp, plan_release


@dataclass(frozen=True)
class CardRelease:
    mode: str  # "noised" or "marked"
    plan: MetricsRelease | None  # the Gaussian release; None when marked or nothing is held out

    def cost(
        self, history: Sequence[Sequence[float]], curve: Sequence[float] | None
    ) -> tuple[list[tuple[float, float, int]], tuple[float, ...] | None]:
        """The run's planned (history, RDP curve) with the release added: a tuned run's curve
        gains the Gaussian mechanism's alpha / (2 sigma^2); a history gains its entry."""
        history = [(float(s), float(q), int(k)) for s, q, k in history]
        if self.plan is None:
            return history, tuple(curve) if curve is not None else None
        if curve is not None:
            from vault.privacy.tuning import orders

            extra = gaussian_rdp(self.plan.sigma, orders())
            return history, tuple(c + e for c, e in zip(curve, extra, strict=True))
        return [*history, *self.plan.history], None

    def facts(self) -> dict[str, Any]:
        """What the policy and the log are told of the release."""
        return {"metrics_epsilon": self.plan.epsilon} if self.plan is not None else {}

    def charge(
        self, charge_base: dict[str, Any], *, outcome: str, created: str, released: bool = True
    ) -> ledger.Charge | None:
        """The release's own charge (None when there is none). `released` False: the figures were
        never drawn (the run stopped before its card), so it costs nothing."""
        if self.plan is None:
            return None
        return ledger.Charge(
            **{**charge_base, "run": f"{charge_base['run']}.metrics"},
            history=self.plan.history if released else (),
            dp=True,
            created=created,
            outcome=outcome,
            epsilon=self.plan.epsilon if released else 0.0,
            metrics_of=charge_base["run"],
        )

    def apply(self, outcome: Any, run_id: str) -> tuple[Any, dict[str, Any]]:
        """The outcome as its card publishes it, and the card's `metrics_privacy` block."""
        from vault.train import card_metrics

        if self.mode == "noised":
            return card_metrics.noised(
                outcome, self.plan, charge=f"{run_id}.metrics" if self.plan is not None else None
            )
        return card_metrics.marked(outcome)


def plan(policy: Any, run: Any, ledger_delta: float) -> CardRelease:
    """The release the policy asks for, for a planned run whose ledger composes at `ledger_delta`."""
    from vault.privacy.accounting import default_delta

    mode = policy.card_metrics
    if mode != "noised" or int(run.val_records) <= 0:
        return CardRelease(mode, None)
    delta = min(float(ledger_delta), default_delta(int(run.val_records)))
    try:
        return CardRelease(mode, plan_release(policy.card_metrics_epsilon, delta, int(run.val_records)))
    except ValueError as error:
        raise UsageError(
            f"the card's noised metrics cannot be calibrated: {error}",
            "set privacy.card_metrics_epsilon in the policy to a positive number",
        ) from error
