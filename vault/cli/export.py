"""`strongroom export MODEL --out DIR`: a model (safetensors, and ONNX with preprocess.json and
predict.py to run it without Strongroom), its card and a signed manifest; never records.

Where policy asks for a second approver, the approver authenticates in the same command:
`--approver NAME` (or STRONGROOM_APPROVER) with STRONGROOM_APPROVER_PASSPHRASE or a prompt.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from vault.cli import options


def cmd_export(args: argparse.Namespace) -> int:
    approver = args.approver or os.environ.get("STRONGROOM_APPROVER") or None
    approver_pw = None
    if approver:
        approver_pw = options.passphrase(
            args,
            prompt=f"Passphrase of approver {approver}",
            env="STRONGROOM_APPROVER_PASSPHRASE",
            file_attr="approver_passphrase_file",
        )
    with options.open_vault(args) as v:
        result = v.export(args.model, args.out, approver=approver, approver_passphrase=approver_pw)
    if args.json:
        options.emit_json(result)
    else:
        approved = ", ".join(f"{a['user']} ({a['role']})" for a in result["approvals"]) or "none required"
        print(
            f"exported {result['model']} to {result['out']}: {', '.join(result['files'])}; approvals: {approved}"
        )
        print(
            f"check: cd {result['out']} && sha256sum -c MANIFEST.sha256 && openssl pkeyutl -verify -pubin "
            "-inkey signer.pub.pem -rawin -in MANIFEST.sha256 -sigfile MANIFEST.sig"
        )
        print(
            f"run: python {result['out']}/predict.py --bundle {result['out']} INPUT... (see docs/EXPORT.md)"
        )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a model with its card and a signed manifest (never records)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[*options.VAULT, options.JSON],
    )
    p.add_argument("model", help="model id (see `strongroom models`)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="new or empty directory to write")
    p.add_argument("--approver", metavar="NAME", help="second person approving the export (if policy asks)")
    p.add_argument(
        "--approver-passphrase-file",
        type=Path,
        metavar="FILE",
        help="read the approver's passphrase from FILE",
    )
    p.set_defaults(func=cmd_export)
