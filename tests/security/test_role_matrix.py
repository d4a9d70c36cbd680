"""Role x action, through every face: the door, the TUI's backend and the real command give the same
answer for each role, and the answer is the default policy's (admins everything, operators no
sampling and no key or policy changes, auditors no records and no changes)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import PASSPHRASE
from tui.backend import Backend
from vault.door import Vault
from vault.errors import StrongroomError

USERS = {"admin": PASSPHRASE.encode(), "olivia": b"olivia's passphrase", "aaron": b"aaron's passphrase"}
ROLE = {"admin": "admin", "olivia": "operator", "aaron": "auditor"}
ROWS = [("ham", f"see you at {h} o'clock") for h in range(12)] + [("spam", f"WIN {p} now") for p in range(12)]
TRAIN = {"dataset": "msgs", "dp": False, "epochs": 1, "val_split": 0.25, "seed": 1}

# action: (roles allowed by the default policy, door call, TUI call or None, CLI arguments or None)
Door = Callable[[Any, dict[str, Any]], Any]
ACTIONS: dict[str, tuple[set[str], Door, Door | None, list[str] | None]] = {
    "list datasets": (
        {"admin", "operator", "auditor"},
        lambda v, c: v.datasets(),
        lambda b, c: b.datasets(),
        ["datasets", "--json"],
    ),
    "sample records": (
        {"admin"},
        lambda v, c: v.sample("msgs", 2),
        lambda b, c: b.sample("msgs", 2),
        ["show", "msgs", "--sample", "2", "--json"],
    ),
    "train": (
        {"admin", "operator"},
        lambda v, c: v.train(dict(TRAIN)),
        lambda b, c: b.train(dict(TRAIN), on_event=None, cancel=c["cancel"]),
        None,
    ),
    "export a model": (
        {"admin", "operator"},
        lambda v, c: v.export(c["model"], c["tmp"] / "door-out"),
        lambda b, c: b.export(c["model"], c["tmp"] / "tui-out"),
        None,  # the CLI's export: below, with an output path per role
    ),
    "add a user": (
        {"admin"},
        lambda v, c: v.keys_add("peter", "operator", b"peter's passphrase"),
        None,
        ["keys", "add", "peter", "--role", "operator", "--json"],
    ),
    "set the policy": ({"admin"}, lambda v, c: v.policy_set(v.policy.text + "\n"), None, None),
    "read the budget": (
        {"admin", "operator", "auditor"},
        lambda v, c: v.budget(),
        lambda b, c: b.budget(),
        ["budget", "--json"],
    ),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("matrix")
    source = root / "msgs.tsv"
    source.write_text("label\ttext\n" + "".join(f"{a}\t{b}\n" for a, b in ROWS), "utf-8")
    with Vault.create(root / "vault", passphrase=PASSPHRASE.encode()) as v:
        v.keys_add("olivia", "operator", USERS["olivia"])
        v.keys_add("aaron", "auditor", USERS["aaron"])
        v.import_dataset(source, name="msgs", sensitivity="medium")
        model = v.train(dict(TRAIN))["model"]
    return {"root": root, "model": model}


def fresh(prepared: dict[str, Any], tmp_path: Path) -> Path:
    return shutil.copytree(prepared["root"] / "vault", tmp_path / "vault")


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except StrongroomError as error:
        return "refused" if error.exit_code == 3 else f"error {error.exit_code}: {error.title}"
    return "done"


@pytest.mark.parametrize("user", sorted(USERS))
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_the_door_and_the_tui_agree_with_the_policy(user: str, action: str, prepared, tmp_path: Path) -> None:
    import threading

    allowed, door, tui, _ = ACTIONS[action]
    expected = "done" if ROLE[user] in allowed else "refused"
    context = {"model": prepared["model"], "tmp": tmp_path, "cancel": threading.Event()}
    with Vault.open(fresh(prepared, tmp_path), user=user, passphrase=USERS[user]) as v:
        assert outcome(lambda: door(v, context)) == expected
    if tui is not None:
        backend = Backend.unlock(fresh(prepared, tmp_path / "tui"), user=user, passphrase=USERS[user])
        try:
            assert outcome(lambda: tui(backend, context)) == expected
        finally:
            backend.close()


@pytest.mark.parametrize("user", sorted(USERS))
def test_the_command_line_agrees_with_the_policy(user: str, prepared, tmp_path: Path, cli) -> None:
    path = fresh(prepared, tmp_path)
    env = {
        "STRONGROOM_VAULT": str(path),
        "STRONGROOM_USER": user,
        "STRONGROOM_PASSPHRASE": USERS[user].decode(),
        "STRONGROOM_NEW_PASSPHRASE": "peter's passphrase",
    }
    for action, (allowed, _, _, argv) in ACTIONS.items():
        if argv is None:
            continue
        result = cli(*argv, env=env)
        expected = 0 if ROLE[user] in allowed else 3
        assert result.code == expected, (action, result.err)
    exported = cli("export", prepared["model"], "--out", str(tmp_path / "cli-out"), "--json", env=env)
    assert exported.code == (0 if ROLE[user] in ACTIONS["export a model"][0] else 3), exported.err
