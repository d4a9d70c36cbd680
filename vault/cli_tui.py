"""`strongroom tui [--auditor]`: open the terminal UI on a vault.

The UI runs as `python -m tui` in place of this process (exec), so the core never imports the
screen; that process isolates itself before anything starts a thread.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def register(subparsers: Any, common: Any) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="open the terminal UI (keyboard-driven; f1 lists every key)",
        description="Open the terminal UI. The passphrase is asked on the unlock screen, never on the "
        "command line. --auditor opens only the audit log, read-only, without a passphrase.",
    )
    parser.add_argument(
        "--vault",
        metavar="PATH",
        help="vault directory (default: $STRONGROOM_VAULT, else ~/.local/share/strongroom/vault)",
    )
    parser.add_argument(
        "--user", metavar="NAME", help="user to unlock as (default: $STRONGROOM_USER, else admin)"
    )
    parser.add_argument(
        "--auditor", action="store_true", help="open only the Audit area, read-only, without a passphrase"
    )
    parser.add_argument(
        "--high-contrast", action="store_true", help="start with the high-contrast theme (f2 toggles)"
    )
    parser.set_defaults(func=run_tui)


def tui_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "tui"]
    if args.vault:
        argv += ["--vault", str(args.vault)]
    if args.user:
        argv += ["--user", args.user]
    if args.auditor:
        argv.append("--auditor")
    if args.high_contrast:
        argv.append("--high-contrast")
    return argv


def run_tui(args: argparse.Namespace) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, tui_argv(args))
    return 0  # not reached
