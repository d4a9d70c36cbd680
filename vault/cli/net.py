"""`strongroom netcheck`: the auditors' fire drill, run from inside the isolation and recorded.

It isolates itself (cli.py leaves netcheck out of its own isolation step) so that it can first
start a sentinel on the host side: listeners on 127.0.0.1 and under /tmp that count what arrives.
"""

from __future__ import annotations

import argparse
from typing import Any

from vault.cli import options
from vault.netguard.probe import exit_code, format_text, isolated_drill


def register(subparsers: Any) -> None:
    help_text = "fire drill: try every way to the network from inside the isolation (exit 0: all blocked)"
    p = subparsers.add_parser(
        "netcheck",
        help=help_text,
        description=help_text + ". Without --probe and "
        "--unix-socket, a sentinel on the host listens and counts what arrives. With a "
        "vault named (--vault or $STRONGROOM_VAULT) the drill is recorded in its audit log.",
        parents=[*options.VAULT, options.JSON],
    )

    p.add_argument(
        "--probe",
        metavar="HOST:PORT",
        help="a TCP listener of yours on the host to aim at (default: the sentinel's, on 127.0.0.1)",
    )
    p.add_argument(
        "--unix-socket",
        metavar="PATH",
        help="a Unix socket a host process listens on (default: the sentinel's, under /tmp)",
    )
    p.add_argument("--no-record", action="store_true", help="do not open the vault or write to its audit log")
    p.add_argument(
        "--timeout", type=options.number(), default=2.0, metavar="SECONDS", help="per attempt (default 2)"
    )
    p.set_defaults(func=cmd_netcheck)


def cmd_netcheck(args: argparse.Namespace) -> int:
    result = options.recorded_drill(
        args,
        lambda keep, inside: isolated_drill(
            args.probe, unix_socket=args.unix_socket, keep=keep, timeout=args.timeout, inside=inside
        ),
        lambda vault: vault.netcheck,
    )
    if args.json:
        options.emit_json(result)
    else:
        print(format_text(result))
    return exit_code(result)
