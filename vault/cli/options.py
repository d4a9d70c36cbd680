"""What every `strongroom` subcommand shares: the options (declared once, as argparse parents that the
CLI and the TUI's launcher both use), the vault's path, passphrases, JSON and progress output.

Passphrases come from a no-echo prompt, `STRONGROOM_PASSPHRASE` (`STRONGROOM_NEW_PASSPHRASE` for a
new one), or `--passphrase-file`; never from argv.
"""

from __future__ import annotations

import argparse
import getpass
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault.errors import UsageError
from vault.netguard import hardening
from vault.storage.layout import default_vault_path
from vault.terminal import json_safe_dumps, safe

if TYPE_CHECKING:
    from vault.door import Vault


def whole(low: int = 1, high: int | None = None, *, example: str | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`), else a usage error naming the range
    (and, given one, an example of the option used well)."""
    wanted = (
        f"a whole number between {low} and {high}" if high is not None else f"a whole number, at least {low}"
    )
    if example:
        wanted += f"; use e.g. {example}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{safe(text)!r} is not {wanted}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {wanted}")
        return value

    parse.__name__ = "whole number"
    return parse


def number(
    *, above: float = 0.0, below: float | None = None, example: str | None = None
) -> Callable[[str], float]:
    """An argparse type: a finite number above `above` (and below `below`); NaN and infinity refused."""
    wanted = (
        f"a number between {above:g} and {below:g} (both excluded)"
        if below is not None
        else (f"a number above {above:g}")
    )
    if example:
        wanted += f"; use e.g. {example}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{safe(text)!r} is not {wanted}") from None
        if not math.isfinite(value) or value <= above or (below is not None and value >= below):
            raise argparse.ArgumentTypeError(f"{safe(text)} is out of range: give {wanted}")
        return value

    parse.__name__ = "number"
    return parse


_SIZE = re.compile(r"\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30})
_UNITS.update({"t": 2**40, "tib": 2**40})


def size(text: str) -> int:
    """An argparse type: a size in bytes, e.g. 1500, 500MB, 20GiB (K, M, G, T alone are binary)."""
    match = _SIZE.fullmatch(text)
    if match is None or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(
            f"{safe(text)!r} is not a size: give a size of at least 1 byte, e.g. 500MB or 20GiB"
        )
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def human_size(value: int) -> str:
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= factor and value % factor == 0:
            return f"{value // factor} {unit}"
    return f"{value} bytes"


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


PASSPHRASE_FILE_READ = 1 << 16  # the first line must end within this many bytes


def _read_passphrase_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:  # bounded: /dev/zero or a huge file must not fill memory
            data = handle.read(PASSPHRASE_FILE_READ)
    except OSError as exc:
        raise UsageError(
            f"cannot read passphrase file {path}: {exc.strerror}", "check the path and its permissions"
        ) from None
    if b"\n" not in data and len(data) == PASSPHRASE_FILE_READ:
        raise UsageError(
            f"passphrase file {safe(path)} has no line end in its first {PASSPHRASE_FILE_READ // 1024} KiB",
            "put the passphrase on its first line",
        )
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
    value = hardening.secret(env)  # taken out of the environment at start; children never see it
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


def recorded_drill(
    args: argparse.Namespace,
    drill: Callable[[list[Path], Callable[[], Any] | None], dict[str, Any]],
    recorder: Callable[[Vault], Any],
) -> dict[str, Any]:
    """Run a drill (netcheck, sandbox-check) as `drill(keep, inside)`: with a vault named and no
    --no-record, the vault is opened inside the isolation and `recorder(vault)` records the result
    through the door; the vault is closed whatever happens."""
    record = not args.no_record and bool(args.vault or os.environ.get("STRONGROOM_VAULT"))
    opened: list[Vault] = []

    def inside() -> Any:
        vault = open_vault(args)
        opened.append(vault)
        return recorder(vault)

    try:
        return drill([vault_path(args)] if record else [], inside if record else None)
    finally:
        for vault in opened:
            vault.close()
