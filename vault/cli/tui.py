"""`strongroom tui [--auditor]`: open the terminal UI on a vault.

The UI runs as `python -I -m tui` in place of this process (exec), so the core never imports the
screen; that process isolates itself before anything starts a thread. Isolated mode (-I) keeps the
working directory, user site-packages and PYTHON* variables out: a module planted where the operator
starts the UI is never imported.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from vault.cli import options

DESCRIPTION = (
    "Open the terminal UI. The passphrase is asked on the unlock screen, never on the "
    "command line. --auditor opens only the audit log, read-only, without a passphrase."
)
# The UI's own options; `python -m tui` takes exactly these (and the vault's path and user).
UI = argparse.ArgumentParser(add_help=False)
UI.add_argument(
    "--auditor", action="store_true", help="open only the Audit area, read-only, without a passphrase"
)
UI.add_argument(
    "--high-contrast", action="store_true", help="start with the high-contrast theme (f2 toggles)"
)
PARENTS = [options.VAULT_PATH, options.USER, UI]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="open the terminal UI (keyboard-driven; f1 lists every key)",
        description=DESCRIPTION,
        parents=PARENTS,
    )
    parser.set_defaults(func=run_tui)


def tui_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-I", "-m", "tui"]  # isolated mode: never the working directory on sys.path
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
