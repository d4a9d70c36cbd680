"""Text classification at epsilon 3 beside the same recipe without DP: SMS Spam Collection and
AG News (test split), each split 80/20 by a fixed seed, Strongroom's engine in this process.

Both datasets are read with small standard-library readers (tab-separated; RFC 4180 CSV). The
model is the text default (`bow`: hashed word n-grams, no vocabulary from the records).
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def sms() -> tuple[list[str], list[int], list[str]]:
    texts, labels = [], []
    for line in (DATASETS / "sms_spam_collection" / "SMSSpamCollection").read_text("utf-8").splitlines():
        label, text = line.split("\t", 1)
        texts.append(text)
        labels.append(1 if label == "spam" else 0)
    return texts, labels, ["ham", "spam"]


def ag_news() -> tuple[list[str], list[int], list[str]]:
    texts, labels = [], []
    for row in csv.reader(io.StringIO((DATASETS / "ag_news" / "test.csv").read_text("utf-8"))):
        labels.append(int(row[0]) - 1)
        texts.append(f"{row[1]} {row[2]}".replace("\\n", " "))
    return texts, labels, ["World", "Sports", "Business", "Sci/Tech"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="bow", choices=("bow", "transformer"))
    parser.add_argument("--epsilon", type=float, default=3.0)
    args = parser.parse_args()
    if not DATASETS.is_dir():
        print(f"skip: {DATASETS} is absent")
        return 0
    import torch

    from vault.train import TrainConfig, TrainData
    from vault.train.engine import train

    print(f"text at epsilon {args.epsilon} vs no DP, model {args.model}, 80/20 split (seed 0)")
    for name, load in (("SMS spam", sms), ("AG News", ag_news)):
        texts, labels, classes = load()
        data = TrainData("text", classes, texts, torch.tensor(labels, dtype=torch.int64))
        row = []
        for dp in (True, False):
            started = time.perf_counter()
            outcome = train(
                data, TrainConfig(model=args.model, dp=dp, epsilon=args.epsilon, val_split=0.2, seed=0)
            )
            seconds = time.perf_counter() - started
            label = f"DP eps {outcome.dp.epsilon:.2f}" if dp else "no DP"
            row.append(
                f"{label}: accuracy {outcome.accuracy:.4f}, macro-F1 {outcome.metrics['macro_f1']:.4f} "
                f"({seconds:.0f} s)"
            )
        print(f"  {name:>8} ({len(texts)} records): " + " | ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
