"""What every `strongroom` subcommand shares: the options (declared once, as argparse parents that the
CLI and the TUI's launcher both use), the vault's path, passphrases, JSON and progress output.

Passphrases come from a no-echo prompt, `STRONGROOM_PASSPHRASE` (`STRONGROOM_NEW_PASSPHRASE` for a
new one), or `--passphrase-file`; never from argv.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault.errors import UsageError
from vault.storage.layout import default_vault_path
from vault.terminal import json_safe_dumps, safe

if TYPE_CHECKING:
    from vault.door import Vault


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


VAULT_PATH = _parent()
VAULT_PATH.add_argument(
    "--vault",
    metavar="PATH",
    help="vault directory (default: $STRONGROOM_VAULT, else ~/.local/share/strongroom/vault)",
)
USER = _parent()
USER.add_argument("--user", metavar="NAME", help="key slot to open (default: $STRONGROOM_USER, else admin)")
PASSPHRASE_FILE = _parent()
PASSPHRASE_FILE.add_argument(
    "--passphrase-file",
    metavar="FILE",
    type=Path,
    help="read the passphrase from the first line of FILE instead of prompting",
)
JSON = _parent()
JSON.add_argument("--json", action="store_true", help="print JSON for scripts")

# The options of a command that opens the vault with a passphrase.
VAULT = [VAULT_PATH, USER, PASSPHRASE_FILE]


def vault_path(args: argparse.Namespace) -> Path:
    return Path(args.vault).expanduser() if getattr(args, "vault", None) else default_vault_path()


def user(args: argparse.Namespace) -> str:
    return getattr(args, "user", None) or os.environ.get("STRONGROOM_USER") or "admin"


def _read_passphrase_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read passphrase file {path}: {exc.strerror}", "check the path and its permissions"
        ) from None
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise UsageError(f"passphrase file {path} is empty", "put the passphrase on its first line")
    return line


def passphrase(
    args: argparse.Namespace,
    *,
    prompt: str = "Passphrase",
    env: str = "STRONGROOM_PASSPHRASE",
    file_attr: str = "passphrase_file",
    confirm: bool = False,
) -> bytes:
    """The passphrase from --passphrase-file, the environment, or a no-echo prompt."""
    path = getattr(args, file_attr, None)
    if path:
        return _read_passphrase_file(Path(path))
    value = os.environ.get(env)
    if value:
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        flag = "--" + file_attr.replace("_", "-")
        raise UsageError(
            f"no passphrase given and no terminal to ask on ({prompt.lower()})", f"set {env} or use {flag}"
        )
    first = getpass.getpass(f"{prompt}: ")
    if confirm:
        again = getpass.getpass(f"{prompt} (again): ")
        if first != again:
            raise UsageError("the two passphrases differ", "type the same passphrase twice")
    return first.encode("utf-8")


def new_passphrase(args: argparse.Namespace, prompt: str = "New passphrase") -> bytes:
    return passphrase(
        args, prompt=prompt, env="STRONGROOM_NEW_PASSPHRASE", file_attr="new_passphrase_file", confirm=True
    )


def open_vault(args: argparse.Namespace) -> Vault:
    """Open the vault named by args with the user's passphrase (isolation already reached by main)."""
    from vault.door import Vault

    return Vault.open(vault_path(args), user=user(args), passphrase=passphrase(args))


def emit_json(obj: Any) -> None:
    """JSON keeps the exact data; control characters and bidi overrides are written as \\u escapes."""
    sys.stdout.write(json_safe_dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


class Progress:
    """A plain progress bar on stderr, redrawn at most 10 times a second; silent when not a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        done = getattr(event, "done", None) or getattr(event, "step", None)
        total = getattr(event, "total", None) or getattr(event, "total_steps", None)
        now = time.monotonic()
        if done is None or not total or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        width = 30
        filled = int(width * done / total)
        stage = getattr(event, "stage", type(event).__name__)
        extra = ""
        if getattr(event, "loss", None) is not None:
            extra += f" loss {event.loss:.3f}"
        if getattr(event, "epsilon_so_far", None) is not None:
            extra += f" ε {event.epsilon_so_far:.2f}"
        sys.stderr.write(f"\r{stage:>8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{extra}   ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def progress(args: argparse.Namespace) -> Progress:
    return Progress(not getattr(args, "json", False))


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Aligned columns; every cell escaped for the terminal first (vault.terminal.safe)."""
    rows = [[safe(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
