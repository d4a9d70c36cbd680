"""`python -m tui`: the terminal UI, as `strongroom tui` starts it (in its own process, so the
core never imports the screen).

The process isolates itself from the network first, before anything (numpy, Textual's input
thread) starts a thread; the vault named by --vault stays reachable inside the private mounts.
Textual loads next and torch only when a screen needs it, so the unlock screen appears quickly.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    from vault.cli.tui import DESCRIPTION, PARENTS

    return argparse.ArgumentParser(prog="strongroom tui", description=DESCRIPTION, parents=PARENTS)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from vault.cli import options as common
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
        from vault.cli import report_error

        report_error(exc)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
