"""Text classification at epsilon 3 beside the same recipe without DP: SMS Spam Collection and
AG News (test split), each split 80/20 by a fixed seed, Strongroom's engine in this process.

Both datasets are read with small standard-library readers (tab-separated; RFC 4180 CSV). The
model is the text default (`bow`: hashed word n-grams, no vocabulary from the records).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
sys.path.insert(0, str(REPO))


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
    from tests.peers import ag_news, sms

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
