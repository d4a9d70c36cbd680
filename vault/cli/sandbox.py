"""`strongroom sandbox-check`: the sandbox drill, run from inside the isolation and recorded.

Like netcheck it isolates itself (cli leaves it out of the common isolation step), so that a
sentinel process can first start on the host: the target of the signal and ptrace attempts.
"""

from __future__ import annotations

import argparse
from typing import Any

from vault.cli import options
from vault.netguard import sandbox


def register(subparsers: Any) -> None:
    help_text = "sandbox drill: try every escape from inside the isolation (exit 0: all blocked, else 6)"
    p = subparsers.add_parser(
        "sandbox-check",
        help=help_text,
        description=help_text + ". A sentinel process started on the host is the target of the signal "
        "and ptrace attempts; anything that gets through is undone at once. With a vault named "
        "(--vault or $STRONGROOM_VAULT) the drill is recorded in its audit log.",
        parents=[*options.VAULT, options.JSON],
    )
    p.add_argument("--no-record", action="store_true", help="do not open the vault or write to its audit log")
    p.set_defaults(func=cmd_sandbox_check)


def cmd_sandbox_check(args: argparse.Namespace) -> int:
    result = options.recorded_drill(
        args, lambda keep, inside: sandbox.drill(keep=keep, inside=inside), lambda vault: vault.sandbox_check
    )
    if args.json:
        options.emit_json(result)
    else:
        print(sandbox.format_text(result))
    return sandbox.exit_code(result)
