"""`strongroom audit show|verify|checkpoint` through the real command, without any passphrase."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import PASSPHRASE, REPO, launcher
from vault.audit import AuditLog
from vault.cli import audit as cli_audit
from vault.crypto.signing import SigningKey

NO_PASSPHRASE = {"STRONGROOM_PASSPHRASE": None}  # the cli fixture drops variables set to None
FIELDS = {"v", "seq", "time", "actor", "role", "action", "subject", "outcome", "detail", "prev"}


@pytest.fixture(scope="module")
def template_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One vault, made once through the real command (init, then a session), copied for each test."""
    root = tmp_path_factory.mktemp("template") / "vault"
    env = dict(os.environ, STRONGROOM_VAULT=str(root), STRONGROOM_PASSPHRASE=PASSPHRASE)
    for command in (["init"], ["datasets"]):
        proc = subprocess.run([*launcher(), *command], env=env, cwd=REPO, capture_output=True)
        assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def vault_with_history(template_vault: Path, vault_path: Path) -> Path:
    shutil.copytree(template_vault, vault_path)
    return vault_path


def lines_of(vault: Path) -> list[bytes]:
    return (vault / "audit" / "log.jsonl").read_bytes().split(b"\n")[:-1]


def write_lines(vault: Path, lines: list[bytes]) -> None:
    (vault / "audit" / "log.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))


def test_show_json_lists_entries_in_seq_order(cli, vault_with_history: Path) -> None:
    result = cli("audit", "show", "--json", env=NO_PASSPHRASE)
    assert result.code == 0, result.err
    entries = result.json()
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    assert all(FIELDS <= set(e) for e in entries)
    assert [e["action"] for e in entries[:2]] == ["audit.epoch", "vault.init"]  # epoch 0 seals vault.init
    assert entries[0]["detail"]["epoch"] == 0 and all(e["sealed"] for e in entries)
    assert "session.unlock" in [e["action"] for e in entries]


def test_show_filters_and_text(cli, vault_with_history: Path) -> None:
    only = cli("audit", "show", "--json", "--action", "session", env=NO_PASSPHRASE).json()
    assert only and all(e["action"].startswith("session.") for e in only)
    assert cli("audit", "show", "--json", "--actor", "nobody", env=NO_PASSPHRASE).json() == []
    assert cli("audit", "show", "--json", "--since", "2999-01-01T00:00:00Z", env=NO_PASSPHRASE).json() == []
    text = cli("audit", "show", env=NO_PASSPHRASE)
    assert text.code == 0 and "vault.init" in text.out and text.out.startswith("SEQ")
    bad = cli("audit", "show", "--since", "last tuesday", env=NO_PASSPHRASE)
    assert bad.code == 2 and "not a time" in bad.err


def test_verify_intact_and_checkpoint_round_trip(cli, vault_with_history: Path, tmp_path: Path) -> None:
    saved = cli("audit", "checkpoint", env=NO_PASSPHRASE)
    assert saved.code == 0 and saved.out.startswith("strongroom.local/vault/")
    (tmp_path / "cp.txt").write_text(saved.out)
    pub = tmp_path / "pub.pem"
    shutil.copy(vault_with_history / "audit" / "pubkey.pem", pub)
    assert cli("datasets").code == 0  # the log grows after the checkpoint was saved
    result = cli(
        "audit", "verify", "--checkpoint", str(tmp_path / "cp.txt"), "--pubkey", str(pub), env=NO_PASSPHRASE
    )
    assert result.code == 0, result.out + result.err
    assert "intact" in result.out and "ruled out" in result.out
    plain = cli("audit", "verify", env=NO_PASSPHRASE)
    assert plain.code == 0 and "cannot be ruled out" in plain.out
    report = cli("audit", "verify", "--json", env=NO_PASSPHRASE).json()
    assert report["ok"] is True and report["findings"] == [] and report["truncation_ruled_out"] is False
    as_json = cli("audit", "checkpoint", "--json", env=NO_PASSPHRASE).json()
    assert as_json["verified"] is True and as_json["size"] == report["entries"]


def test_verify_exits_4_with_one_line_per_finding(cli, vault_with_history: Path) -> None:
    lines = lines_of(vault_with_history)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(vault_with_history, lines)
    result = cli("audit", "verify", env=NO_PASSPHRASE)
    assert result.code == 4
    finding_lines = [x for x in result.out.splitlines() if x.startswith("\u2717 seq ")]
    assert "\u2717 seq 1: seq: expected seq 1; found seq 2" in finding_lines[0]
    report = cli("audit", "verify", "--json", env=NO_PASSPHRASE)
    assert report.code == 4
    findings = report.json()["findings"]
    assert {"seq", "kind", "expected", "found", "message"} <= set(findings[0])


def test_verify_catches_a_modified_entry(cli, vault_with_history: Path) -> None:
    lines = lines_of(vault_with_history)
    lines[0] = lines[0].replace(b'"actor":"admin"', b'"actor":"eve"')
    write_lines(vault_with_history, lines)
    assert cli("audit", "verify", env=NO_PASSPHRASE).code == 4


def test_verify_catches_truncation_given_the_saved_checkpoint(
    cli, vault_with_history: Path, tmp_path: Path
) -> None:
    assert cli("datasets").code == 0
    (tmp_path / "cp.txt").write_text(cli("audit", "checkpoint").out)
    audit = vault_with_history / "audit"
    size = len(lines_of(vault_with_history))
    keep = sorted(int(p.stem) for p in (audit / "checkpoints").glob("*.txt"))[0]
    write_lines(vault_with_history, lines_of(vault_with_history)[:keep])
    for p in (audit / "checkpoints").glob("*.txt"):
        if int(p.stem) > keep:
            p.unlink()
    shutil.copy(audit / "checkpoints" / f"{keep}.txt", audit / "checkpoint")
    assert keep < size
    assert cli("audit", "verify", env=NO_PASSPHRASE).code == 0  # indistinguishable without a saved checkpoint
    result = cli("audit", "verify", "--checkpoint", str(tmp_path / "cp.txt"), env=NO_PASSPHRASE)
    assert result.code == 4 and "checkpoint_newer" in result.out


def test_verify_catches_a_replaced_public_key(cli, vault_with_history: Path, tmp_path: Path) -> None:
    pub = tmp_path / "pub.pem"
    shutil.copy(vault_with_history / "audit" / "pubkey.pem", pub)
    (vault_with_history / "audit" / "pubkey.pem").write_bytes(SigningKey.generate().public_pem())
    result = cli("audit", "verify", "--pubkey", str(pub), env=NO_PASSPHRASE)
    assert result.code == 4 and "pubkey_replaced" in result.out


def test_checkpoint_that_does_not_verify_exits_4(cli, vault_with_history: Path) -> None:
    path = vault_with_history / "audit" / "checkpoint"
    lines = path.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1)
    path.write_text("\n".join(lines))
    result = cli("audit", "checkpoint", env=NO_PASSPHRASE)
    assert result.code == 4 and "does not verify" in result.err


def test_bad_paths(cli, tmp_path: Path) -> None:
    result = cli("audit", "verify", "--vault", str(tmp_path / "nowhere"), env=NO_PASSPHRASE)
    assert result.code == 1 and "no audit log" in result.err
    (tmp_path / "v" / "audit").mkdir(parents=True)
    empty = cli("audit", "checkpoint", "--vault", str(tmp_path / "v"), env=NO_PASSPHRASE)
    assert empty.code == 1 and "no signed checkpoint" in empty.err


def test_missing_input_files_are_usage_errors(cli, vault_with_history: Path, tmp_path: Path) -> None:
    result = cli("audit", "verify", "--pubkey", str(tmp_path / "absent.pem"), env=NO_PASSPHRASE)
    assert result.code == 2 and "cannot read the public key file" in result.err


def test_handlers_register_and_run_on_their_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = SigningKey.generate()
    log = AuditLog(tmp_path / "v" / "audit")
    log.init(key.public_pem())
    log.append("alice", "auditor", "audit.read", "log", "ok", {})
    log.write_checkpoint(key, "strongroom.local/vault/abc")
    parser = argparse.ArgumentParser()
    cli_audit.register(parser.add_subparsers(dest="command"))
    vault = ["--vault", str(tmp_path / "v")]

    def run(*argv: str) -> tuple[int, Any]:
        args = parser.parse_args([*argv, *vault])
        code = args.func(args)
        return code, json.loads(capsys.readouterr().out)

    code, report = run("audit", "verify", "--json")
    assert code == 0 and report["ok"] is True
    code, entries = run("audit", "show", "--json", "--actor", "alice")
    assert code == 0 and [e["actor"] for e in entries] == ["alice"]
    with open(log.log_path, "ab") as f:
        f.write(b"{}\n")
    code, report = run("audit", "verify", "--json")
    assert code == 4 and report["ok"] is False
