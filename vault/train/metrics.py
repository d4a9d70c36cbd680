"""Held-out classification metrics and the loss-threshold membership-inference check.

All of these read the records directly (the held-out split and, for the leakage check, training
records too): exact, they are outside the DP guarantee of the weights. What a card publishes of them
is the policy's `card_metrics` choice (vault/train/card_metrics.py): exact and marked as such, or
released through the Gaussian mechanism (vault/privacy/release.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def classification_metrics(
    predicted: torch.Tensor, truth: torch.Tensor, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix
    (rows: true class, columns: predicted class)."""
    k = len(classes)
    confusion = torch.zeros(k, k, dtype=torch.int64)
    if truth.numel():
        confusion.index_put_((truth.cpu(), predicted.cpu()), torch.ones_like(truth.cpu()), accumulate=True)
    return metrics_from_confusion(confusion.tolist(), classes)


def metrics_from_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> dict[str, Any]:
    """The figures of `classification_metrics` from a confusion matrix alone (rows: true class,
    columns: predicted), so that figures derived from a noisy matrix are post-processing of it."""
    matrix = torch.tensor([[int(v) for v in row] for row in confusion], dtype=torch.int64).reshape(
        len(classes), len(classes)
    )
    true_positive = matrix.diag().double()
    predicted_count = matrix.sum(0).double()
    actual_count = matrix.sum(1).double()
    precision = torch.where(predicted_count > 0, true_positive / predicted_count.clamp(min=1), 0.0)
    recall = torch.where(actual_count > 0, true_positive / actual_count.clamp(min=1), 0.0)
    f1 = torch.where(
        precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0
    )
    present = actual_count > 0
    total = int(matrix.sum())
    return {
        "samples": total,
        "accuracy": float(true_positive.sum() / total) if total else None,
        "macro_f1": float(f1[present].mean()) if bool(present.any()) else None,
        "per_class": [
            {
                "class": str(name),
                "precision": round(float(precision[i]), 6),
                "recall": round(float(recall[i]), 6),
                "f1": round(float(f1[i]), 6),
                "support": int(actual_count[i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion": matrix.tolist(),
    }


def roc_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """Probability that a random member scores above a random non-member (ties count half)."""
    scores = np.concatenate([member_scores, nonmember_scores])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    m, n = len(member_scores), len(nonmember_scores)
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr: float) -> float:
    """True-positive rate of the threshold that flags at most `fpr` of the non-members."""
    ordered = np.sort(nonmember_scores)[::-1]
    allowed = int(math.floor(fpr * len(ordered)))
    threshold = ordered[allowed] if allowed < len(ordered) else -np.inf
    return float((member_scores > threshold).mean())


def dp_tpr_bound(epsilon: float, delta: float, fpr: float) -> float:
    """Largest TPR any membership test can reach at `fpr` against an (epsilon, delta)-DP model
    (Kairouz et al. 2015): min(1, e^eps * fpr + delta, 1 - e^-eps * (1 - delta - fpr))."""
    return float(min(1.0, math.exp(epsilon) * fpr + delta, 1 - math.exp(-epsilon) * (1 - delta - fpr)))


def dp_auc_bound(epsilon: float, delta: float) -> float:
    """Largest ROC AUC a membership test can reach against an (epsilon, delta)-DP model: the
    area under the bound's trade-off curve."""
    grid = np.linspace(0.0, 1.0, 20001)
    tpr = np.minimum.reduce(
        [np.ones_like(grid), math.exp(epsilon) * grid + delta, 1 - math.exp(-epsilon) * (1 - delta - grid)]
    )
    return float(np.trapezoid(np.clip(tpr, 0, 1), grid))


def membership_check(
    member_losses: np.ndarray, nonmember_losses: np.ndarray, epsilon: float | None, delta: float | None
) -> dict[str, Any]:
    """Loss-threshold membership inference (Yeom et al. 2018): lower loss => guess "member".
    Returns the attack's AUC and TPR at 1% FPR beside what (epsilon, delta) allows."""
    members, nonmembers = -np.asarray(member_losses, np.float64), -np.asarray(nonmember_losses, np.float64)
    result: dict[str, Any] = {
        "attack": "loss threshold (Yeom et al. 2018)",
        "members": int(len(members)),
        "non_members": int(len(nonmembers)),
        "auc": None,
        "tpr_at_1pct_fpr": None,
        "bound_auc": None,
        "bound_tpr_at_1pct_fpr": None,
    }
    if len(members) and len(nonmembers):
        result["auc"] = round(roc_auc(members, nonmembers), 4)
        result["tpr_at_1pct_fpr"] = round(tpr_at_fpr(members, nonmembers, 0.01), 4)
    if epsilon is not None and delta is not None:
        result["bound_auc"] = round(dp_auc_bound(epsilon, delta), 4)
        result["bound_tpr_at_1pct_fpr"] = round(dp_tpr_bound(epsilon, delta, 0.01), 4)
    return result
