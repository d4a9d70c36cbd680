"""`strongroom train | models | evaluate | budget`: training inside the vault and its privacy ledger.

  strongroom train DATASET --dp --epsilon 3          # the default recipe for the dataset's kind
  strongroom train reviews --model transformer --epochs 5 --json
  strongroom models --json
  strongroom evaluate MODEL DATASET --json
  strongroom budget [DATASET] --json

Ctrl-C cancels a run between steps: no model is written, and the steps taken are charged to the
dataset's privacy ledger. `--nproc 2` trains in two processes with the same privacy accounting.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from vault.cli import options
from vault.errors import UsageError
from vault.privacy.release import text_marker
from vault.train.config import (
    CLIPPING,
    DEVICES,
    MODEL_KINDS,
    TUNE_RANGE,
    TrainConfig,
    parse_nproc,
    resolve_nproc,
)
from vault.vocabulary import ACCOUNTANTS

MODEL_CHOICES = ("auto", *MODEL_KINDS)
DEFAULTS = TrainConfig()  # the one source of training defaults; the TUI's form reads it too


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The training request `train` sends to the door."""
    return {
        "dataset": args.dataset,
        "name": args.name,
        "version": args.dataset_version,
        "model": args.model,
        "dp": args.dp,
        "epsilon": args.epsilon if args.dp else None,
        "delta": args.delta if args.dp else None,
        "max_grad_norm": args.max_grad_norm,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "physical_batch_size": args.physical_batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "device": args.device,
        "val_split": args.val_split,
        "accountant": args.accountant,
        "reproducible": args.reproducible,
        "clipping": args.clipping,
        "nproc": resolve_nproc(args.nproc, args.device),
        "tune": args.tune,
    }


def nproc_arg(text: str) -> int | str:
    try:
        return parse_nproc(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(f"{error.title} ({error.hint})") from None


def wants_loopback(args: argparse.Namespace) -> bool:
    """Whether the command isolates at the loopback level: `train --nproc N` with N above 1. Checked
    before isolation and before torch loads, so a request that cannot run costs nothing."""
    if getattr(args, "func", None) is not cmd_train:
        return False
    nproc = resolve_nproc(args.nproc, args.device)
    if nproc > 1 and not args.dp:
        raise UsageError(
            f"--nproc {nproc} trains with DP only (the processes share one privacy accounting)",
            "drop --no-dp, or train without DP in one process (--nproc 1)",
        )
    return nproc > 1


def cmd_train(args: argparse.Namespace) -> int:
    request = request_from_args(args)
    if request.get("dp", True) and not request.get("tune"):
        # the noise-calibration worker loads its accountants while the vault unlocks
        from vault.privacy import calibration

        calibration.prestart()
    cancel = threading.Event()

    def interrupted(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        with options.open_vault(args) as v:
            result = v.train(request, on_event=options.progress(args), cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.json:
        options.emit_json(result)
        return 0
    privacy = (
        f"DP epsilon {result['epsilon']:.3f} at delta {result['delta']:.3g} ({result['accountant']}, "
        f"noise {result['noise_multiplier']:.4g}, {result['steps']} steps)"
        if result["dp"]
        else "no DP: this dataset's privacy budget is now unbounded"
    )
    tuning = result.get("tuning")
    if tuning:
        privacy += (
            f"\n  tuned: learning rate {tuning['chosen']['lr']:.4g} chosen among {tuning['runs']} candidate run(s) "
            f"(mean {tuning['mean']}, {tuning['method']})"
        )
    ledger = result["ledger"]
    spent = "unbounded" if ledger["unbounded"] else f"{ledger['epsilon_spent']:.3f}"
    print(f"model {result['model']} ({result['architecture']}) trained on {result['dataset']}")
    released = result.get("metrics_privacy") or {}
    marker = f" ({text_marker(released)})" if released else ""
    print(f"  held-out accuracy {_fmt(result['accuracy'])}, macro-F1 {_fmt(result['macro_f1'])}{marker}")
    print(f"  {privacy}")
    leak = result["leakage"]
    if leak.get("withheld"):
        print(f"  membership check: {leak['withheld']}")
    else:
        print(f"  membership check: AUC {_fmt(leak['auc'])} (bound {_fmt(leak['bound_auc'])}){marker}")
    print(f"  dataset ledger: epsilon spent {spent} at delta {ledger['delta']:.3g}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    with options.open_vault(args) as v:
        rows = v.models()
    if args.json:
        options.emit_json(rows)
        return 0
    print(
        options.table(
            [
                [
                    r["id"],
                    r["dataset"],
                    r["model"],
                    _fmt(r["epsilon"]) if r["dp"] else "no DP",
                    _fmt(r["accuracy"]),
                    r["created"][:19],
                ]
                for r in rows
            ],
            ["id", "dataset", "model", "epsilon", "accuracy", "created"],
        )
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    with options.open_vault(args) as v:
        result = v.evaluate(args.model, args.dataset, version=args.dataset_version)
    if args.json:
        options.emit_json(result)
        return 0
    print(
        f"{result['model']} on {result['dataset']} ({result['samples']} records): accuracy "
        f"{_fmt(result['accuracy'])}, macro-F1 {_fmt(result['macro_f1'])}"
    )
    print(
        options.table(
            [
                [
                    c["class"],
                    f"{c['precision']:.3f}",
                    f"{c['recall']:.3f}",
                    f"{c['f1']:.3f}",
                    str(c["support"]),
                ]
                for c in result["per_class"]
            ],
            ["class", "precision", "recall", "f1", "support"],
        )
    )
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    with options.open_vault(args) as v:
        rows = v.budget(args.dataset)
    if args.json:
        options.emit_json(rows)
        return 0
    print(
        options.table(
            [
                [
                    r["dataset"],
                    "unbounded" if r["unbounded"] else _fmt(r["epsilon_spent"]),
                    _fmt(r["delta"]),
                    _fmt(r["epsilon_cap"]),
                    str(sum(1 for c in r["runs"] if not c.get("metrics_of"))),  # runs, not card charges
                ]
                for r in rows
            ],
            ["dataset", "epsilon spent", "delta", "cap", "runs"],
        )
    )
    for r in rows:
        for overlap in r.get("overlaps", []):
            print(f"{r['dataset']}: {overlap['message']}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a classifier on a dataset (DP-SGD through Opacus)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=options.VAULT,
    )
    p.add_argument("dataset", help="dataset name (see `strongroom datasets`)")
    p.add_argument(
        "--model",
        default=None,
        choices=MODEL_CHOICES,
        help="auto (default): scatternet for images under DP, cnn without; bow for text",
    )
    p.add_argument("--dp", dest="dp", action="store_true", default=True, help="train with DP-SGD (default)")
    p.add_argument(
        "--no-dp", dest="dp", action="store_false", help="train without DP (makes the budget unbounded)"
    )
    p.add_argument(
        "--epsilon",
        type=options.number(example="--epsilon 3"),
        default=DEFAULTS.epsilon,
        help=f"target epsilon of this run (default {DEFAULTS.epsilon:g})",
    )
    p.add_argument(
        "--delta",
        type=options.number(below=1, example="--delta 1e-5"),
        default=None,
        help="target delta (default min(1e-5, 1/(10 n)))",
    )
    p.add_argument(
        "--max-grad-norm",
        type=options.number(example="--max-grad-norm 1.0"),
        default=None,
        help="per-sample clipping norm C",
    )
    p.add_argument("--epochs", type=options.whole(1, example="--epochs 10"), default=None)
    p.add_argument(
        "--batch-size",
        type=options.whole(1, example="--batch-size 256"),
        default=None,
        help="logical batch (expected size under Poisson sampling)",
    )
    p.add_argument(
        "--physical-batch-size",
        type=options.whole(1, example="--physical-batch-size 128"),
        default=None,
        help="largest batch computed at once (memory)",
    )
    p.add_argument("--lr", type=options.number(example="--lr 0.5"), default=None, help="learning rate")
    p.add_argument(
        "--seed", type=options.whole(0), default=None, help="fixes the held-out split and initialisation"
    )
    p.add_argument(
        "--reproducible",
        action="store_true",
        help="also derive DP noise and sampling from the seed (the card says so)",
    )
    p.add_argument("--device", default=DEFAULTS.device, choices=DEVICES)
    p.add_argument(
        "--val-split",
        type=options.number(below=0.5, example="--val-split 0.1"),
        default=DEFAULTS.val_split,
        help=f"held-out fraction (default {DEFAULTS.val_split:g})",
    )
    p.add_argument("--accountant", default=DEFAULTS.accountant, choices=ACCOUNTANTS)
    p.add_argument(
        "--nproc",
        type=nproc_arg,
        default=DEFAULTS.nproc,
        metavar="N",
        help="processes for this run (torch.distributed: gloo on CPU, NCCL on GPUs); 'auto' = one per "
        "GPU, 1 on CPU. Above 1 needs a policy allowing isolation 'namespace+seccomp-loopback'",
    )
    p.add_argument(
        "--tune",
        type=options.whole(*TUNE_RANGE, example="--tune 4"),
        default=None,
        metavar="K",
        help="choose the learning rate privately among K candidate runs on average (random stopping, "
        "accounted in RDP; --epsilon is the whole run's)",
    )
    p.add_argument(
        "--clipping",
        default=None,
        choices=CLIPPING,
        help="per-sample clipping: bookkeeping (default; one backward pass) or Opacus' ghost or hooks",
    )
    p.add_argument(
        "--dataset-version",
        type=options.whole(1),
        default=None,
        help="train on this version (default: latest)",
    )
    p.add_argument("--name", default="", help="a name for the run")
    p.add_argument("--json", action="store_true", help="print JSON for scripts (no progress bar)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("models", help="list trained models", parents=[*options.VAULT, options.JSON])
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "evaluate", help="evaluate a model on a dataset", parents=[*options.VAULT, options.JSON]
    )
    p.add_argument("model", help="model id (see `strongroom models`)")
    p.add_argument("dataset", help="dataset name")
    p.add_argument("--dataset-version", type=options.whole(1), default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "budget",
        help="privacy budget spent per dataset (composed across runs)",
        parents=[*options.VAULT, options.JSON],
    )
    p.add_argument("dataset", nargs="?", default=None)
    p.set_defaults(func=cmd_budget)
