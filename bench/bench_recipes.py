"""Recipes on public data nobody tuned them for, each against its peer in the same run.

  images: 1,800 MNIST test images area-downsampled to 16x16 (the size of the public 1,797-image
          digits set), DP epsilon 3: every image model's recipe against the default (scatternet);
          goal: at least 0.85 of the default's accuracy. `--seeds N` repeats it on N held-out
          draws (seeds 1..N, fresh noise each run) and prints the range and mean of the ratio.
  text:   without DP, `bow` (and any --text-models) against a hashed uni+bigram logistic regression (tests/peers.py,
          scikit-learn's HashingVectorizer + LogisticRegression written out), same 80/20 split;
          goal: at least the peer on every set (sms, ag: AG News, docs: paragraphs of
          8 standard-library packages' docstrings, tests/peers.python_docs). `--dp` adds the DP
          epsilon 3 rows.

Engine in this process (records in memory); wall times include planning (noise calibration).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def images(models: list[str], n: int, seeds: int) -> None:
    from tests import peers
    from vault.train import TrainConfig, TrainData
    from vault.train.engine import train

    x, y = peers.small_digits(n)
    data = TrainData.from_records("image", [str(i) for i in range(10)], x, y)
    ratios: dict[str, list[float]] = {model: [] for model in models}
    for seed in range(1, seeds + 1):  # the seed draws the held-out split; the noise is fresh
        default = 0.0
        for model in ["scatternet", *models]:
            started = time.perf_counter()
            outcome = train(data, TrainConfig(model=model, epsilon=3.0, seed=seed))
            default = default or outcome.accuracy
            ratio = outcome.accuracy / default
            if model != "scatternet":
                ratios[model].append(ratio)
            print(
                f"  digits {n} 16x16, DP eps 3, seed {seed}, {model:>10}: accuracy {outcome.accuracy:.4f} "
                f"({ratio:.2f}x the default), lr {outcome.hyperparameters['lr']:.3g}, "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
    for model, values in ratios.items():
        print(
            f"  {model}: {min(values):.2f}x-{max(values):.2f}x the default over {seeds} seeds, "
            f"mean {sum(values) / len(values):.2f}x (goal: at least 0.85x)"
        )


def texts(sets: list[str], dp: bool, models: list[str]) -> None:
    import numpy as np
    import torch

    from tests import peers
    from vault.train import TrainConfig, TrainData
    from vault.train.data import split
    from vault.train.engine import train

    for spec in sets:
        name, _, count = spec.partition(":")
        texts_, labels, classes = {"sms": peers.sms, "ag": peers.ag_news, "docs": peers.python_docs}[name]()
        n = int(count) if count else len(texts_)
        texts_, labels = texts_[:n], labels[:n]
        data = TrainData("text", classes, texts_, torch.tensor(labels, dtype=torch.int64))
        held_out = split(data.y, 0.2, 0)
        tr, va = held_out.train.tolist(), held_out.val.tolist()
        started = time.perf_counter()
        predicted = peers.hashed_logistic_regression(
            [texts_[i] for i in tr], [labels[i] for i in tr], [texts_[i] for i in va], len(classes)
        )
        peer = float((predicted == np.asarray([labels[i] for i in va])).mean())
        peer_s = time.perf_counter() - started
        for model in models:
            for private in (False, True) if dp else (False,):
                started = time.perf_counter()
                outcome = train(
                    data, TrainConfig(model=model, dp=private, epsilon=3.0, val_split=0.2, seed=0)
                )
                label = "DP eps 3" if private else "no DP"
                print(
                    f"  {name} {n}, {label:>8}: {model} {outcome.accuracy:.4f} "
                    f"({time.perf_counter() - started:.1f} s, lr {outcome.hyperparameters['lr']:.3g}) vs hashed"
                    f" logistic regression {peer:.4f} ({peer_s:.1f} s): {outcome.accuracy - peer:+.4f}",
                    flush=True,
                )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", default="cnn", help="comma-separated image models beside scatternet")
    parser.add_argument("--records", type=int, default=1800)
    parser.add_argument("--seeds", type=int, default=1, help="image runs: held-out draws 1..N")
    parser.add_argument(
        "--texts", default="ag:2000,sms,docs", help="sets as name[:records], name sms, ag or docs"
    )
    parser.add_argument("--text-models", default="bow", help="comma-separated text models")
    parser.add_argument("--dp", action="store_true", help="also the DP epsilon 3 text rows")
    args = parser.parse_args()
    if not (REPO.parent / "shared" / "datasets").is_dir():
        print("skip: ../shared/datasets is absent")
        return 0
    if args.images:
        images(args.images.split(","), args.records, args.seeds)
    if args.texts:
        texts(args.texts.split(","), args.dp, args.text_models.split(","))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
