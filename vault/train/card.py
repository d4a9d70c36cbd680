"""Model cards: what a trained model is, what it was trained on, what it leaks, in JSON and Markdown.

The card states the DP guarantee exactly (who it protects, which accountant, what it does not
cover) and sets an empirical membership-inference check beside the bound the guarantee implies.
"""

from __future__ import annotations

from typing import Any

from vault.privacy.release import text_marker
from vault.train.config import TrainOutcome

CARD_FORMAT = "strongroom-model-card-1"


def dp_statement(outcome: TrainOutcome, dataset: str, metrics_mode: str | None = None) -> str:
    facts = outcome.dp
    if facts is None:
        return (
            "Trained WITHOUT differential privacy: the weights may reveal individual training records. "
            f"The privacy budget of {dataset} is unbounded from this run on."
        )
    noise = (
        "drawn from generators seeded from the OS CSPRNG for this run (PyTorch's generators themselves are "
        "not cryptographically secure; Opacus' secure_mode needs torchcsprng, which is not installed)"
        if facts.noise_source == "os-csprng"
        else "derived from the recorded seed (reproducible run): anyone holding the seed can replay the "
        "sampling and the noise, so the guarantee holds only while the seed stays secret"
    )
    return (
        f"Trained with DP-SGD (Opacus): Poisson sampling at rate {facts.sample_rate:.6g}, per-sample gradients "
        f"clipped to norm {facts.max_grad_norm:g}, Gaussian noise of standard deviation "
        f"{facts.noise_multiplier:.4g} x {facts.max_grad_norm:g}, {facts.steps} steps. By the "
        f"{facts.accountant.upper()} accountant the weights are ({facts.epsilon:.3f}, {facts.delta:.3g})-"
        "differentially private with respect to adding or removing one record of the training split of "
        f"{dataset}. Sampling and noise were {noise}. {_figures_sentence(metrics_mode)} Other runs "
        "on the same records add to the dataset's ledger, not to this figure."
    )


def _figures_sentence(metrics_mode: str | None) -> str:
    if metrics_mode == "noised":
        return (
            "The held-out figures on this card were released through their own DP mechanism, charged "
            "to the ledger beside the training (see metrics_privacy); the membership check is withheld."
        )
    return (
        "The held-out metrics and the membership check read the records directly and are not covered "
        "by this guarantee (exact, outside the DP guarantee); they are for the operator."
    )


def card_json(
    outcome: TrainOutcome,
    *,
    model_id: str,
    dataset: dict[str, Any],
    run_name: str = "",
    created: str = "",
    reproducible: bool = False,
    metrics_privacy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card as JSON. `dataset` holds name, version, digest (and anything else worth keeping);
    `metrics_privacy` says what the figures read from records are (vault/train/card_metrics.py)."""
    parameters = sum(int(t.numel()) for t in outcome.state_dict.values())
    name = str(dataset.get("name", ""))
    return {
        "format": CARD_FORMAT,
        "model": {
            "id": model_id,
            "run_name": run_name,
            "architecture": outcome.model_config["name"],
            "config": outcome.model_config,
            "parameters": parameters,
            "hyperparameters": outcome.hyperparameters,
        },
        "dataset": {**dataset, "split": outcome.split},
        "privacy": {
            "dp": outcome.dp is not None,
            **(outcome.dp.to_json() if outcome.dp else {}),
            "statement": dp_statement(outcome, name or "the dataset", (metrics_privacy or {}).get("mode")),
        },
        "metrics": outcome.metrics,
        "leakage": outcome.leakage,
        "seed": outcome.seed,
        "reproducible": reproducible,
        "device": outcome.device,
        "distributed": outcome.distributed,
        "versions": outcome.versions,
        "timings": outcome.timings,
        "epochs": outcome.epochs,
        "created": created,
        **({"tuning": outcome.tuning} if outcome.tuning else {}),
        **({"metrics_privacy": metrics_privacy} if metrics_privacy else {}),
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def card_markdown(card: dict[str, Any]) -> str:
    model, data, privacy = card["model"], card["dataset"], card["privacy"]
    metrics, leakage = card["metrics"], card["leakage"]
    lines = [
        f"# Model card: {model['id']}",
        "",
        f"- Architecture: `{model['architecture']}` ({model['parameters']:,} parameters)",
        f"- Dataset: {data.get('name', '')} version {data.get('version', '')}, digest `{data.get('digest', '')}`",
        f"- Split: {data['split']['train']} training / {data['split']['val']} held-out records, "
        f"seed {data['split']['seed']} (stratified)",
        f"- Seed: {card['seed']}{' (reproducible run)' if card.get('reproducible') else ''}",
        f"- Device: {card['device']}",
        f"- Processes: {(card.get('distributed') or {}).get('world_size', 1)}"
        f" ({(card.get('distributed') or {}).get('backend', 'one process')})",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in card['versions'].items())}",
        f"- Created: {card.get('created', '')}",
        "",
        "## Hyperparameters",
        "",
        *[f"- {k}: {v}" for k, v in model["hyperparameters"].items()],
        "",
        "## Differential privacy",
        "",
        privacy["statement"],
        "",
    ]
    if privacy["dp"]:
        lines += [
            "| epsilon | delta | noise multiplier | sample rate | steps | clipping norm | accountant |",
            "|---|---|---|---|---|---|---|",
            f"| {privacy['epsilon']:.3f} | {privacy['delta']:.3g} | {privacy['noise_multiplier']:.4g} | "
            f"{privacy['sample_rate']:.6g} | {privacy['steps']} | {privacy['max_grad_norm']:g} | {privacy['accountant']} |",
            "",
        ]
    tuning = card.get("tuning")
    if tuning:
        lines += [
            "## How the hyperparameters were chosen",
            "",
            f"{tuning['statement']}",
            "",
            f"- Learning rates tried at random from: {', '.join(f'{r:.4g}' for r in tuning['candidates']['lr'])}",
            f"- Candidates run: {tuning['runs']} (mean {tuning['mean']}, {tuning['distribution']})",
            f"- Chosen: learning rate {tuning['chosen']['lr']:.4g}, noisy held-out accuracy "
            f"{tuning['chosen']['noisy_score']:.4f} (noise {tuning['score_noise']:.3g} records)",
            f"- Whole run: epsilon {tuning['epsilon']:.3f} at delta {tuning['delta']:.3g} ({tuning['accountant']})",
            "",
        ]
    released = card.get("metrics_privacy")
    marker = f" ({text_marker(released)})" if released else ""
    lines += [
        "## Held-out metrics",
        "",
        *([f"Figures: {released['mode']}. {released['statement']}", ""] if released else []),
        f"Accuracy {_fmt(metrics['accuracy'])}, macro-F1 {_fmt(metrics['macro_f1'])} on {metrics['samples']} "
        f"records{marker}.",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *[
            f"| {c['class']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
            for c in metrics["per_class"]
        ],
        "",
        f"Confusion matrix (rows: true class, columns: predicted){marker}:",
        "",
        "```",
        *[" ".join(f"{v:6d}" for v in row) for row in metrics["confusion"]],
        "```",
        "",
        "## Empirical leakage check",
        "",
        *([f"The membership check is {leakage['withheld']}.", ""] if leakage.get("withheld") else []),
        f"{leakage['attack']}: {leakage['members']} training records against {leakage['non_members']} held-out"
        f"{' (exact, outside the DP guarantee)' if (released or {}).get('mode') == 'marked' else ''}.",
        "",
        "| | attack | bound from (epsilon, delta) |",
        "|---|---|---|",
        f"| ROC AUC | {_fmt(leakage['auc'])} | {_fmt(leakage['bound_auc'])} |",
        f"| TPR at 1% FPR | {_fmt(leakage['tpr_at_1pct_fpr'])} | {_fmt(leakage['bound_tpr_at_1pct_fpr'])} |",
        "",
        "An attack near AUC 0.5 finds nothing; the bound is the most any attack could reach.",
        "",
    ]
    return "\n".join(lines)
