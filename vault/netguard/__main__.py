"""`python -m vault.netguard`: the fire drill and the isolation report without a vault.

python -m vault.netguard netcheck [--probe HOST:PORT] [--unix-socket PATH] [--json]
python -m vault.netguard report [--require LEVEL] [--keep PATH ...]
"""

from __future__ import annotations

import argparse
import json
import sys

from vault.errors import StrongroomError
from vault.netguard.isolation import isolate
from vault.netguard.probe import exit_code, format_text, isolated_drill
from vault.vocabulary import ISOLATION_LEVELS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vault.netguard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("netcheck", help="isolate, then try every way out")
    check.add_argument("--probe", metavar="HOST:PORT", help="TCP target (default: a sentinel on 127.0.0.1)")
    check.add_argument(
        "--unix-socket", metavar="PATH", help="a host Unix socket (default: a sentinel's under /tmp)"
    )
    check.add_argument("--json", action="store_true")
    show = sub.add_parser("report", help="isolate and print the evidence")
    show.add_argument("--require", choices=ISOLATION_LEVELS, default="namespace+seccomp")
    show.add_argument("--keep", action="append", default=[], metavar="PATH")
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            print(json.dumps(isolate(args.require, keep=args.keep).to_json(), indent=2))
            return 0
        result = isolated_drill(args.probe, unix_socket=args.unix_socket)
    except StrongroomError as exc:
        sys.stderr.write(f"strongroom: {exc.title}" + (f" (hint: {exc.hint})" if exc.hint else "") + "\n")
        return exc.exit_code
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return exit_code(result)


if __name__ == "__main__":
    raise SystemExit(main())
