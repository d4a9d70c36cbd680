"""What the TUI tests share: the screen size, a fresh vault, waiting for workers, unlocking."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import PASSPHRASE

SIZE = (80, 24)
DEMO = Path(__file__).resolve().parents[1] / "vault" / "demo_data"

__all__ = ["DEMO", "PASSPHRASE", "SIZE", "fresh_vault", "settle", "text_of", "unlock"]


def fresh_vault(tmp_path: Path) -> Path:
    """An empty vault (cheap key derivation through the test switch) at tmp_path/vault."""
    from vault.door import Vault

    path = tmp_path / "vault"
    Vault.create(path, passphrase=PASSPHRASE.encode()).close()
    return path


async def settle(pilot) -> None:
    """Until no worker runs (a finished worker may start the next, e.g. unlock -> area load)."""
    for _ in range(10):
        await pilot.pause()
        if not any(worker.is_running for worker in pilot.app.workers):
            break
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def unlock(pilot, passphrase: str = PASSPHRASE) -> None:
    from textual.widgets import Input

    await pilot.pause()
    field = pilot.app.screen.query_one("#passphrase", Input)
    field.focus()
    field.value = passphrase
    await pilot.press("enter")
    await settle(pilot)


def text_of(app, selector: str) -> str:
    from textual.widgets import Static

    return str(app.screen.query_one(selector, Static).render())
