"""The `strongroom` command: a thin face over `vault.Vault`, one module per command group.

Exit codes: 0 ok, 1 error, 2 usage, 3 refused by policy, 4 integrity failure, 5 authentication
failed, 6 network isolation unavailable. Errors go to stderr as one line with a hint.

To add a command: write `vault/cli/<group>.py` with `register(subparsers)` and its handlers
(taking the parsed arguments, returning the exit code), and list the module in COMMAND_GROUPS.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
from pathlib import Path
from typing import Any

from vault import __version__
from vault.cli import audit, datasets, export, keys, net, policy, sandbox, selftest, train, tui, vaults
from vault.cli.options import vault_path
from vault.errors import StrongroomError
from vault.netguard import hardening
from vault.terminal import SafeStream, safe

COMMAND_GROUPS = (vaults, datasets, keys, audit, net, sandbox, train, policy, export, selftest, tui)
# Commands that never touch the vault's secrets or that must see the host as it is.
NO_ISOLATION = {"audit", "netcheck", "sandbox-check", "selftest", "tui", None}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors: one line with a hint, exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"strongroom: {safe(message)} (hint: `{self.prog} --help` shows the options)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="strongroom",
        description="Strongroom: an encrypted vault for sensitive records; "
        "private training on this host; models out, never data.",
    )
    parser.add_argument("--version", action="version", version=f"strongroom {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def paths_to_keep(args: argparse.Namespace) -> list[Path]:
    """Paths the command reads or writes, kept reachable inside the private /tmp and /run."""
    paths = [vault_path(args)]
    outputs = {"out"}  # may not exist yet: kept (created) so what is written there survives
    for name, value in vars(args).items():
        if name == "policy" and isinstance(value, str):
            value = Path(value)
        if isinstance(value, Path):
            given, real = value.expanduser().absolute(), value.expanduser().resolve()
            if real.exists() or name in outputs:
                paths.append(real)
                if given != real:  # reached through a symbolic link: keep the name the command uses too
                    paths.append(given)
    return paths


def writable_paths(args: argparse.Namespace) -> list[Path]:
    """The paths a command writes: the vault and an export's --out; everything else stays read-only.
    A vault being created and an export folder are made here (empty) so that they can be kept."""
    paths = [vault_path(args).expanduser().absolute()]
    out = getattr(args, "out", None)
    if isinstance(out, Path):
        paths.append(out.expanduser().absolute())
    made = paths[1:] + (paths[:1] if args.command == "init" else [])
    for path in made:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            pass  # the command itself reports what is wrong with the path
    return paths


def report_error(exc: StrongroomError) -> None:
    """One line on stderr: names and paths in the title and hint are escaped (see vault.terminal)."""
    hint = f" (hint: {safe(exc.hint)})" if exc.hint else ""
    sys.stderr.write(f"strongroom: {safe(exc.title)}{hint}\n")


def main(argv: list[str] | None = None) -> int:
    """Run one command. Its output passes through vault.terminal.SafeStream, so no escape sequence
    from records, names or the log reaches the terminal, whichever line printed it."""
    argv = sys.argv[1:] if argv is None else argv
    hardening.harden()  # passphrases out of the environment, no core dumps: before parsing anything
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(streams[0]), SafeStream(streams[1])
    try:
        return _run(argv)
    finally:
        sys.stdout, sys.stderr = streams


def run(argv: list[str] | None = None) -> None:
    """The `strongroom` executable: `main()`, then leave without the interpreter's teardown.

    After a command that loaded torch, Python's finalization (module teardown, the garbage
    collector over torch's objects, torch's native destructors and thread pools) takes most of a
    second, and nothing in it is the command's: every file a command writes is written, flushed and
    synced before `main` returns. So once it returns, the process does what a normal exit does
    that matters (joins its own threads, runs the atexit handlers, flushes the standard streams)
    and leaves with `os._exit`. A failed flush of stdout exits 120, as Python does. An exception out
    of `main` (argparse's exit among them) takes the normal way out."""
    code = main(argv)
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120
    os._exit(code)


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command not in NO_ISOLATION:
            from vault import netguard

            writable = writable_paths(args)
            readable = [p for p in paths_to_keep(args) if p not in writable]
            netguard.isolate_session(keep=writable, readable=readable, loopback=train.wants_loopback(args))
        return int(args.func(args) or 0)
    except StrongroomError as exc:
        report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(
            "strongroom: interrupted (hint: the vault is as it was before the command, or after it)\n"
        )
        return 130
