"""`python -m tui`: the terminal UI, as `strongroom tui` starts it (in its own process, so the
core never imports the screen).

The process starts its trainer launcher (`tui.launcher`, for runs across several processes) and
then isolates itself from the network, before anything (numpy, Textual's input thread) starts a
thread; the vault named by --vault stays reachable inside the private mounts.
Textual loads next and torch only when a screen needs it, so the unlock screen appears quickly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    from vault.cli.tui import DESCRIPTION, PARENTS

    return argparse.ArgumentParser(prog="strongroom tui", description=DESCRIPTION, parents=PARENTS)


def ui_writable(args: argparse.Namespace) -> list[Path]:
    """The vault, and the folder the UI started in (where its export dialog writes by default) unless
    that folder holds Python, the source or the system: `/`, a prefix, the virtual environment."""
    paths = [Path(args.vault).expanduser().resolve()] if args.vault else []
    cwd = Path.cwd().resolve()
    guarded = [sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).resolve().parents[1])]
    guarded += ["/etc", "/usr", "/bin", "/sbin", "/lib", "/boot", "/var", "/opt", "/tmp", "/run", "/dev"]
    if not any(Path(p).resolve() == cwd or cwd in Path(p).resolve().parents for p in guarded):
        paths.append(cwd)
    return paths


def ui_readable() -> list[Path]:
    """Where the UI's import dialog may read folders from (named at runtime, so named here broadly)."""
    return [Path.home(), *(Path(p) for p in ("/media", "/mnt", "/srv", "/data"))]


def main(argv: list[str] | None = None) -> int:
    from vault.netguard import hardening

    hardening.harden()  # no core dumps, passphrases out of the environment: before anything else
    args = parser().parse_args(argv)
    from vault.cli import options as common
    from vault.errors import StrongroomError

    try:
        if not args.auditor:
            from tui import launcher
            from vault import netguard

            # Before this process's sandbox, whose filter no child can loosen: the process that
            # starts the trainers of runs across several processes, at the loopback level.
            launcher.use(launcher.Launcher.start(common.vault_path(args)))
            netguard.isolate_session(keep=ui_writable(args), readable=ui_readable())
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
