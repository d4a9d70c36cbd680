"""`make run`: create (once) a demo vault from the small real datasets bundled in vault/demo_data,
print its passphrase and datasets, then open the terminal UI on it.

Every step goes through the real `strongroom` command, as an operator would type it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "demo_data"
DEMO_PASSPHRASE = "strongroom-demo-passphrase"
DEMO_USER = "admin"


def strongroom(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-m", "vault.cli", *args], env=env, text=True, capture_output=True
    )


def run_step(what: str, *args: str, env: dict[str, str]) -> str:
    print(f"  {what} ...", flush=True)
    proc = strongroom(*args, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"demo: `strongroom {' '.join(args)}` failed with exit code {proc.returncode}")
    return proc.stdout


def ensure_demo_vault(path: Path, env: dict[str, str]) -> None:
    if (path / "vault.json").exists():
        print(f"demo vault already exists at {path}")
        return
    print(f"creating demo vault at {path}")
    run_step("strongroom init", "init", "--vault", str(path), env=env)
    run_step(
        "strongroom import mnist-demo (1,000 handwritten digits, IDX)",
        "import",
        str(DATA / "mnist-1000-images-idx3-ubyte.gz"),
        "--labels",
        str(DATA / "mnist-1000-labels-idx1-ubyte.gz"),
        "--name",
        "mnist-demo",
        "--sensitivity",
        "medium",
        "--vault",
        str(path),
        env=env,
    )
    run_step(
        "strongroom import sms-demo (600 SMS messages, ham/spam, TSV)",
        "import",
        str(DATA / "sms-600.tsv"),
        "--format",
        "tsv",
        "--no-header",
        "--label-column",
        "0",
        "--text-column",
        "1",
        "--name",
        "sms-demo",
        "--sensitivity",
        "medium",
        "--vault",
        str(path),
        env=env,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vault.demo", description=__doc__)
    parser.add_argument("--vault", type=Path, default=Path("demo-vault"), help="where the demo vault lives")
    parser.add_argument("--open", action="store_true", help="open the terminal UI on it afterwards")
    args = parser.parse_args(argv)
    path = args.vault.resolve()
    env = dict(os.environ, STRONGROOM_PASSPHRASE=DEMO_PASSPHRASE, STRONGROOM_USER=DEMO_USER)
    ensure_demo_vault(path, env)
    print(run_step("strongroom datasets", "datasets", "--vault", str(path), env=env))
    print(f"demo vault: {path}\n  user:       {DEMO_USER}\n  passphrase: {DEMO_PASSPHRASE}\n")
    if args.open and sys.stdin.isatty() and sys.stdout.isatty():
        os.execv(sys.executable, [sys.executable, "-I", "-m", "vault.cli", "tui", "--vault", str(path)])
    if args.open:
        print(
            "(no terminal attached: not opening the terminal UI; run `.venv/bin/strongroom tui --vault "
            f"{path}` in a terminal)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
