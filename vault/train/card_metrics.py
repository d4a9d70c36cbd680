"""What a model card publishes of the figures computed from private records, as the policy's
`card_metrics` says: "noised" (released through the Gaussian mechanism of vault/privacy/release.py
and charged to the ledger) or "marked" (exact, each figure marked as outside the DP guarantee).

Held-out accuracy, macro-F1, per-class figures and the confusion matrix come from held-out records;
the membership check and the per-epoch loss and accuracies read training records too. A noised card
carries figures derived from the noisy confusion matrix only; the membership check and the
per-epoch figures have no mechanism here and are withheld from it, and the card says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vault.privacy.release import MetricsRelease, noisy_counts
from vault.train.config import TrainOutcome
from vault.train.metrics import metrics_from_confusion

# Every figure read from private records, as JSON paths into the card (epochs.X: each epoch's X).
HELD_OUT = (
    "metrics.samples",
    "metrics.accuracy",
    "metrics.macro_f1",
    "metrics.per_class",
    "metrics.confusion",
)
MEMBERSHIP = ("leakage.auc", "leakage.tpr_at_1pct_fpr")
PER_EPOCH = ("epochs.loss", "epochs.train_acc", "epochs.val_acc")
EXACT_FIGURES = (*HELD_OUT, *MEMBERSHIP, *PER_EPOCH)

MARKED = (
    "The held-out metrics, the confusion matrix, the membership check and the per-epoch loss and "
    "accuracies are exact, outside the DP guarantee: they are computed from the records themselves "
    'and may reveal individual records. The policy marks them (card_metrics = "marked") instead of '
    "noising them."
)
WITHHELD = "withheld from a noised card: it reads training records exactly and has no noised release here"


def marked(outcome: TrainOutcome) -> tuple[TrainOutcome, dict[str, Any]]:
    """The outcome as it is, and the card's block naming every exact figure."""
    return outcome, {
        "mode": "marked",
        "covered_by_dp": False,
        "figures": list(EXACT_FIGURES),
        "statement": MARKED,
    }


def noised(
    outcome: TrainOutcome, plan: MetricsRelease | None, *, charge: str | None = None
) -> tuple[TrainOutcome, dict[str, Any]]:
    """The outcome with its held-out figures derived from a noisy confusion matrix (`plan`: the
    release's budget and noise; None when the run kept no held-out records, so nothing is
    released), the membership check and per-epoch figures withheld, and the card's block."""
    classes = [c["class"] for c in outcome.metrics.get("per_class", [])]
    if plan is not None and outcome.metrics.get("samples"):
        metrics = metrics_from_confusion(noisy_counts(outcome.metrics["confusion"], plan.sigma), classes)
        statement = (
            f"The held-out figures are ({plan.epsilon:g}, {plan.delta:.3g})-differentially private with "
            f"respect to adding or removing one held-out record: Gaussian noise of standard deviation "
            f"{plan.sigma:.4g} was added to every count of the confusion matrix (L2 sensitivity 1), "
            "from the OS CSPRNG, and accuracy, per-class precision, recall, F1, support and macro-F1 "
            "were derived from the noisy counts (clamped at 0, rounded). This release is charged to "
            "the dataset's privacy ledger as its own charge."
        )
    else:
        metrics = metrics_from_confusion([[0] * len(classes) for _ in classes], classes)
        metrics.update(samples=0, accuracy=None, macro_f1=None)
        statement = "The run kept no held-out records: no held-out figures were released or charged."
    leakage = {
        **outcome.leakage,
        "auc": None,
        "tpr_at_1pct_fpr": None,
        "withheld": WITHHELD,
    }
    epochs = [{**e, "loss": None, "train_acc": None, "val_acc": None} for e in outcome.epochs]
    block: dict[str, Any] = {
        "mode": "noised",
        "covered_by_dp": plan is not None,
        "figures": list(HELD_OUT) if plan is not None else [],
        "withheld": [*MEMBERSHIP, *PER_EPOCH],
        "statement": statement + " The membership check and the per-epoch loss and accuracies read "
        "the records exactly and are withheld from this card.",
        **(plan.to_json() if plan is not None else {"epsilon": None, "delta": None, "sigma": None}),
    }
    if charge is not None:
        block["charge"] = charge
    return replace(outcome, metrics=metrics, leakage=leakage, epochs=epochs), block
