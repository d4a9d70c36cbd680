"""`python -m vault.cli`: the `strongroom` command."""

from vault.cli import run

run()
