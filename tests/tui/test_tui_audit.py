"""The Audit area: background verification in words and glyphs, tampering found, filters,
saving the checkpoint, and a log view that draws only the rows on screen."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import Input  # noqa: E402

from tests.support import PASSPHRASE, SIZE, settle, text_of  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402
from tui.screens.dialogs import InputDialog  # noqa: E402
from tui.widgets.log_view import AuditLogView, entry_matches, parse_filter  # noqa: E402

ACTORS = ("ann", "bob", "cyd")
ACTIONS = ("dataset.read", "policy.decision", "train.start")


@pytest.fixture
def busy_vault(tmp_path: Path) -> Path:
    """A vault whose log holds 600 more entries from three actors, appended through its AuditLog."""
    from vault.door import Vault

    path = tmp_path / "vault"
    with Vault.create(path, passphrase=PASSPHRASE.encode()) as vault:
        for index in range(600):
            vault.audit.append(
                ACTORS[index % 3],
                "operator",
                ACTIONS[index % 3],
                f"set-{index % 7}",
                "denied" if index % 50 == 0 else "ok",
                {"n": index},
            )
    return path


async def test_auditor_sees_the_verdict_and_filters_by_actor_and_action(busy_vault: Path) -> None:
    from vault.audit import AuditLog

    total = len(AuditLog(busy_vault / "audit").entries())
    app = StrongroomApp(busy_vault, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        verdict = text_of(app, "#audit-verdict")
        assert verdict.startswith(f"✓ verified: {total:,} entries")
        log = app.screen.query_one("#audit-log", AuditLogView)
        assert log.total == total and log.cursor == total - 1  # opens at the newest entry
        await pilot.press("slash", *"actor:bob action:train")
        assert log.shown == 0
        log_filter = app.screen.query_one("#filter", Input)
        log_filter.value = "actor:bob action:policy"
        await pilot.pause()
        assert log.shown == 200
        assert all(log._entries[i]["actor"] == "bob" for i in log._visible)
        assert "200 of" in text_of(app, "#audit-count")
        log_filter.value = "outcome:denied"
        await pilot.pause()
        assert log.shown == 12
        await pilot.press("escape")
        assert log.shown == total and log.has_focus
        await pilot.press("g")
        assert log.cursor == 0
        await pilot.press("j", "j", "k")
        assert log.cursor == 1
        assert "#1 " in text_of(app, "#audit-detail")


async def test_a_tampered_entry_is_reported_with_its_sequence_number(busy_vault: Path) -> None:
    app = StrongroomApp(busy_vault, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert text_of(app, "#audit-verdict").startswith("✓ verified")
        log_file = busy_vault / "audit" / "log.jsonl"
        lines = log_file.read_bytes().split(b"\n")
        lines[100] = lines[100].replace(b'"n":', b'"m":', 1)
        log_file.write_bytes(b"\n".join(lines))
        await pilot.press("v")
        await settle(pilot)
        verdict = text_of(app, "#audit-verdict")
        assert (
            verdict.startswith("✗ NOT verified") and "✗ seq 101: prev" in verdict and "entry 100" in verdict
        )


async def test_c_saves_the_signed_checkpoint_to_a_file(busy_vault: Path, tmp_path: Path) -> None:
    from vault.audit import AuditLog

    target = tmp_path / "saved-checkpoint.txt"
    app = StrongroomApp(busy_vault, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, InputDialog)
        app.screen.query_one("#value", Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
    assert target.read_text() == AuditLog(busy_vault / "audit").latest_checkpoint()


def test_filter_words() -> None:
    fields, words = parse_filter("actor:ann since:2025-01-02 until:2025-02 spam")
    entry = {"actor": "ann", "time": "2025-02-28T10:00:00Z", "action": "dataset.read", "subject": "spam-set"}
    assert fields == {"actor": "ann", "since": "2025-01-02", "until": "2025-02"} and words == ["spam"]
    assert entry_matches(entry, fields, words)
    assert not entry_matches({**entry, "time": "2025-03-01T00:00:00Z"}, fields, words)
    assert not entry_matches({**entry, "time": "2025-01-01T23:59:59Z"}, fields, words)


class CountingLogView(AuditLogView):
    lines_drawn = 0

    def render_line(self, y: int):  # counts, then draws as usual
        CountingLogView.lines_drawn += 1
        return super().render_line(y)


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield CountingLogView(id="log")


async def test_the_log_view_draws_only_visible_rows_of_100000() -> None:
    entries = [
        {
            "seq": i,
            "time": f"2025-01-01T00:00:{i % 60:02d}Z",
            "actor": ACTORS[i % 3],
            "role": "operator",
            "action": ACTIONS[i % 3],
            "subject": f"s{i}",
            "outcome": "ok",
        }
        for i in range(100_000)
    ]
    app = LogApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(CountingLogView)
        view.focus()
        view.set_entries(entries)
        await pilot.pause()
        CountingLogView.lines_drawn = 0
        await pilot.press("g")
        await pilot.pause()
        assert view.cursor == 0
        assert 0 < CountingLogView.lines_drawn <= 3 * SIZE[1]
        CountingLogView.lines_drawn = 0
        await pilot.press("pagedown", "pagedown", "j")
        await pilot.pause()
        assert view.cursor == 2 * (SIZE[1] - 2) + 1
        assert CountingLogView.lines_drawn <= 6 * SIZE[1]


async def test_a_log_line_that_is_not_json_is_explained_by_verification(busy_vault: Path) -> None:
    from tui.screens.dialogs import ErrorDialog

    log_file = busy_vault / "audit" / "log.jsonl"
    lines = log_file.read_bytes().split(b"\n")
    lines[50] = b"this is not json"
    log_file.write_bytes(b"\n".join(lines))
    app = StrongroomApp(busy_vault, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        await pilot.press("escape")
        await pilot.pause()
        assert text_of(app, "#audit-count").startswith("✗ the log could not be read")
        assert text_of(app, "#audit-verdict").startswith("✗ NOT verified")


async def test_auditor_cosigns_as_a_witness_and_sees_the_last_cosigned_size(
    busy_vault: Path, tmp_path: Path
) -> None:
    from vault.audit import AuditLog
    from vault.audit.witness import keygen

    key = tmp_path / "media" / "witness.key"
    key.parent.mkdir()
    keygen(key, "witness.example/aaron")
    app = StrongroomApp(busy_vault, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "no witness has cosigned this log" in text_of(app, "#audit-verdict")
        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.screen, InputDialog)
        app.screen.query_one(Input).value = str(key)
        await pilot.press("enter")
        await settle(pilot)
        size = len(AuditLog(busy_vault / "audit").entries())
        verdict = text_of(app, "#audit-verdict")
        assert f"witness witness.example/aaron cosigned {size:,} entries on" in verdict, verdict
    assert Path(f"{key}.checkpoint").read_text().split("\n")[1] == str(size)


async def test_a_hand_written_line_is_shown_unsealed(busy_vault: Path) -> None:
    import json

    from vault.audit import AuditLog, merkle

    log_path = busy_vault / "audit" / "log.jsonl"
    lines = log_path.read_bytes().split(b"\n")[:-1]
    entry = {**json.loads(lines[-1]), "seq": len(lines), "action": "dataset.read", "subject": "clinic"}
    entry.pop("seal")
    entry["prev"] = merkle.root([merkle.leaf_hash(x) for x in lines]).hex()
    with open(log_path, "ab") as f:
        f.write(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    app = StrongroomApp(busy_vault, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert f"seq {len(lines)}: unsealed" in text_of(app, "#audit-verdict")
        view = app.screen.query_one("#audit-log", AuditLogView)
        assert view.unsealed == {len(lines)}
        assert view._cells(view._entries[len(lines)], 80, len(lines))[-1] == "✗ UNSEALED"
        assert view._cells(view._entries[len(lines) - 1], 80, len(lines) - 1)[-1] != "✗ UNSEALED"
    assert AuditLog(busy_vault / "audit").unsealed() == {len(lines)}


async def test_a_hand_written_line_that_borrows_a_seq_is_shown_unsealed_by_its_place(
    busy_vault: Path,
) -> None:
    """The view marked unsealed entries by their `seq` field, which the insider writes: a forged line
    copying an earlier seq was drawn sealed, and a seq that is an object stopped the TUI."""
    import json

    log_path = busy_vault / "audit" / "log.jsonl"
    lines = log_path.read_bytes().split(b"\n")[:-1]
    with open(log_path, "ab") as f:
        for seq in (3, {"not": "a number"}):
            entry = {**json.loads(lines[-1]), "seq": seq, "action": "dataset.read", "subject": "clinic"}
            entry.pop("seal")
            f.write(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    app = StrongroomApp(busy_vault, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.screen.query_one("#audit-log", AuditLogView)
        assert view.unsealed == {len(lines), len(lines) + 1}
        assert [view._cells(view._entries[i], 80, i)[-1] for i in (len(lines), len(lines) + 1)] == [
            "✗ UNSEALED",
            "✗ UNSEALED",
        ]
        assert view._cells(view._entries[3], 80, 3)[-1] != "✗ UNSEALED"
        await pilot.press("end")
        await settle(pilot)
        drawn = "".join(seg.text for y in range(view.size.height) for seg in view.render_line(y))
        assert drawn.count("✗ UNSEALED") == 2  # the rows are drawn, the object seq escaped
