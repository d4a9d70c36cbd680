"""`strongroom tui [--auditor]`: open the terminal UI on a vault.

Only argparse work happens at import; Textual loads when the command runs and torch only
when a screen needs it, so the unlock screen appears within a second.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any, common: Any) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="open the terminal UI (keyboard-driven; f1 lists every key)",
        description="Open the terminal UI. The passphrase is asked on the unlock screen, never on the "
        "command line. --auditor opens only the audit log, read-only, without a passphrase.",
    )
    parser.add_argument("--vault", metavar="PATH", help="vault directory (default: $STRONGROOM_VAULT, "
                        "else ~/.local/share/strongroom/vault)")
    parser.add_argument("--user", metavar="NAME", help="user to unlock as (default: $STRONGROOM_USER, else admin)")
    parser.add_argument("--auditor", action="store_true",
                        help="open only the Audit area, read-only, without a passphrase")
    parser.add_argument("--high-contrast", action="store_true", help="start with the high-contrast theme (f2 toggles)")
    parser.set_defaults(func=lambda args: run_tui(args, common))


def _isolate(args: argparse.Namespace) -> None:
    """Isolate from the network first, before anything (numpy, Textual's input thread) starts a
    thread; the vault named by --vault stays reachable inside the private mounts."""
    from vault import netguard

    keep = [Path(args.vault).expanduser().resolve()] if getattr(args, "vault", None) else []
    netguard.isolate_session(keep=keep)


def run_tui(args: argparse.Namespace, common: Any) -> int:
    if not args.auditor:
        _isolate(args)
    path = common.vault_path(args)
    from tui.app import StrongroomApp

    app = StrongroomApp(path, user=common.user(args), auditor=args.auditor, high_contrast=args.high_contrast)
    app.run()
    return int(app.return_code or 0)
