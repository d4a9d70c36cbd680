"""`python -m tui`: the terminal UI, as `strongroom tui` starts it (in its own process, so the
core never imports the screen).

The process isolates itself from the network first, before anything (numpy, Textual's input
thread) starts a thread; the vault named by --vault stays reachable inside the private mounts.
Textual loads next and torch only when a screen needs it, so the unlock screen appears quickly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="strongroom tui",
        description="Open the terminal UI. The passphrase is "
        "asked on the unlock screen, never on the command line.",
    )
    p.add_argument(
        "--vault",
        metavar="PATH",
        help="vault directory (default: $STRONGROOM_VAULT, else ~/.local/share/strongroom/vault)",
    )
    p.add_argument("--user", metavar="NAME", help="user to unlock as (default: $STRONGROOM_USER, else admin)")
    p.add_argument(
        "--auditor", action="store_true", help="open only the Audit area, read-only, without a passphrase"
    )
    p.add_argument(
        "--high-contrast", action="store_true", help="start with the high-contrast theme (f2 toggles)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from vault import cli_common as common
    from vault.errors import StrongroomError

    try:
        if not args.auditor:
            from vault import netguard

            keep = [Path(args.vault).expanduser().resolve()] if args.vault else []
            netguard.isolate_session(keep=keep)
        path = common.vault_path(args)
        from tui.app import StrongroomApp

        app = StrongroomApp(
            path, user=common.user(args), auditor=args.auditor, high_contrast=args.high_contrast
        )
        app.run()
        return int(app.return_code or 0)
    except StrongroomError as exc:
        sys.stderr.write(f"strongroom: {exc.title}" + (f" (hint: {exc.hint})" if exc.hint else "") + "\n")
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
