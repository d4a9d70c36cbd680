"""`strongroom policy ...` end to end, in real subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import REPO

POLICIES = REPO / "policies"


@pytest.mark.parametrize("name", ["default", "strict", "research"])
def test_policy_test_passes_on_each_shipped_file(cli, name: str) -> None:
    result = cli("policy", "test", str(POLICIES / f"{name}.toml"), "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["ok"] and report["failed"] == 0 and report["passed"] >= 8
    assert report["policy"] == name and len(report["sha256"]) == 64
    text = cli("policy", "test", str(POLICIES / f"{name}.toml"))
    assert text.code == 0 and f"policy {name} passed" in text.out


def test_policy_test_fails_with_the_failing_case(cli, tmp_path: Path) -> None:
    file = tmp_path / "broken.toml"
    file.write_text(
        (POLICIES / "strict.toml")
        .read_text("utf-8")
        .replace('rule = "forbid.no-browsing-high"', 'rule = "roles.admin"'),
        "utf-8",
    )
    result = cli("policy", "test", str(file))
    assert result.code == 1
    assert "✗ FAIL  even an admin may not browse high-sensitivity records" in result.out
    assert "expected rule roles.admin, got forbid.no-browsing-high" in result.out


def test_policy_test_on_an_invalid_file_names_the_key(cli, tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(
        (POLICIES / "default.toml")
        .read_text("utf-8")
        .replace("max_lifetime_epsilon = 20.0", "max_lifetime_epsilon = -20.0"),
        "utf-8",
    )
    result = cli("policy", "test", str(file))
    assert result.code == 1
    assert result.err.startswith("strongroom: policy ")
    assert "privacy.max_lifetime_epsilon: must be greater than 0" in result.err
    missing = cli("policy", "test", "policies/absent.toml")
    assert missing.code == 1 and "policies/absent.toml does not exist" in missing.err
    folder = cli("policy", "test", "policies")
    assert folder.code == 1 and "is a directory" in folder.err


def test_show_set_check_through_the_cli(cli) -> None:
    assert cli("init", "--policy", str(POLICIES / "strict.toml")).code == 0
    shown = cli("policy", "show", "--json")
    assert shown.code == 0, shown.err
    doc = shown.json()
    assert doc["name"] == "strict" and len(doc["sha256"]) == 64 and doc["rules"]
    assert "roles.operator" in cli("policy", "show").out

    check = cli("policy", "check", "train", "--no-dp", "--model", "cnn", "--json")
    assert check.code == 3  # no dataset: the request is incomplete, refused
    assert check.json()["rule"] == "request.incomplete"

    assert (
        cli(
            "keys",
            "add",
            "olivia",
            "--role",
            "operator",
            env={"STRONGROOM_NEW_PASSPHRASE": "olivia's long passphrase"},
        ).code
        == 0
    )
    as_olivia = cli("policy", "check", "keys.manage", "--as-user", "olivia", "--json")
    assert as_olivia.code == 3 and as_olivia.json()["rule"] == "roles.operator"
    refused = cli(
        "policy",
        "set",
        str(POLICIES / "default.toml"),
        env={"STRONGROOM_USER": "olivia", "STRONGROOM_PASSPHRASE": "olivia's long passphrase"},
    )
    assert refused.code == 3 and "roles.operator" in refused.err

    changed = cli("policy", "set", str(POLICIES / "default.toml"), "--json")
    assert changed.code == 0, changed.err
    result = changed.json()
    assert result["changed"] and result["old_sha256"] == doc["sha256"] and result["name"] == "default"
    allowed = cli("policy", "check", "policy.show", "--json")
    assert allowed.code == 0 and allowed.json()["allowed"] and allowed.json()["dry_run"]
