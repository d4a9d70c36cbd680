"""Two CPU processes under gloo against one, same recipe: MNIST 8k/2k at epsilon 3 through the real
command (`strongroom train --nproc 2` inside the sandbox's loopback level, and `--nproc 1`).

Prints, for both runs, held-out accuracy, epsilon, steps, noise, training seconds, the ledger's
charges and the ratios. Goal (issue 17): accuracy within 1 point, epsilon identical, the ledger
charged once per run. Records are the first N of MNIST's t10k file (../shared/datasets/mnist);
`--records 2500` is the reduced size for a loaded machine (8k/2k is --records 10000).

    python bench/bench_dist_cpu.py [--records 10000] [--epochs 8] [--nproc 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.peers import mnist_idx  # noqa: E402

MNIST = REPO.parent / "shared" / "datasets" / "mnist"
PASSPHRASE = "bench passphrase, not a secret"
LOOPBACK = "namespace+seccomp-loopback"


def strongroom(vault: Path, *args: str) -> str:
    """The real command (isolated as any command is), with the passphrase from the environment."""
    env = dict(os.environ, STRONGROOM_VAULT=str(vault), STRONGROOM_PASSPHRASE=PASSPHRASE)
    proc = subprocess.run(
        [sys.executable, "-m", "vault.cli", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(
            f"strongroom {' '.join(args[:3])} failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return proc.stdout


def make_vault(folder: Path, records: int) -> Path:
    policy = (REPO / "policies" / "default.toml").read_text()
    policy = policy.replace('required = "namespace+seccomp"', f'required = "{LOOPBACK}"')
    policy = policy.replace('allowed = ["cnn", "resnet18"', 'allowed = ["scatternet", "cnn", "resnet18"')
    (folder / "policy.toml").write_text(policy)
    vault = folder / "vault"
    images, labels = mnist_idx(folder, records)
    strongroom(vault, "init", "--policy", str(folder / "policy.toml"))
    strongroom(vault, "import", str(images), "--labels", str(labels), "--name", "mnist")
    return vault


def train(vault: Path, nproc: int, epochs: int) -> dict:
    recipe = ["--epsilon", "3", "--val-split", "0.2", "--seed", "11", "--reproducible"]
    return json.loads(
        strongroom(vault, "train", "mnist", *recipe, "--epochs", str(epochs), "--nproc", str(nproc), "--json")
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000, help="records (80%% train, 20%% held out)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    if not MNIST.is_dir():
        print(f"skip: {MNIST} is absent")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as folder:
        vault = make_vault(Path(folder), args.records)
        one = train(vault, 1, args.epochs)
        many = train(vault, args.nproc, args.epochs)
        (ledger,) = json.loads(strongroom(vault, "budget", "mnist", "--json"))
    runs = {r["run"]: r for r in ledger["runs"]}
    print(
        f"MNIST {one['split']['train']}/{one['split']['val']}, {one['architecture']}, epsilon 3, "
        f"{args.epochs} epochs, {one['device']}; --nproc 1 against --nproc {args.nproc} (gloo)"
    )
    for name, result in (("1 process", one), (f"{args.nproc} processes", many)):
        charge = runs[result["run"]]
        print(
            f"  {name:>11} (world size {result['world_size']}): accuracy {result['accuracy']:.4f}, "
            f"macro-F1 {result['macro_f1']:.4f}, epsilon {result['epsilon']:.6f}, "
            f"steps {result['steps']}, noise {result['noise_multiplier']:.6f}, sample rate "
            f"{result['sample_rate']:.6f}, train {result['timings']['train_s']:.1f} s, "
            f"ledger charge {charge['epsilon']:.6f} ({charge['outcome']})"
        )
    gap = abs(many["accuracy"] - one["accuracy"]) * 100
    print(
        f"  accuracy gap {gap:.2f} points (goal <= 1); epsilon equal: {many['epsilon'] == one['epsilon']}; "
        f"charges in the ledger: {len(runs)} for 2 runs; time ratio {args.nproc}p/1p "
        f"{many['timings']['train_s'] / one['timings']['train_s']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
