"""The vault keeps its policy: show, set (admin only, audited with old and new hash), dry-run checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO
from vault.door import Vault
from vault.errors import InputError, NotFound, PolicyDenied, UsageError
from vault.policy import Policy

PASSPHRASE = b"correct horse battery staple"
STRICT_TEXT = (REPO / "policies" / "strict.toml").read_text("utf-8")
RESEARCH_TEXT = (REPO / "policies" / "research.toml").read_text("utf-8")
XRAYS = {"name": "xrays", "sensitivity": "high", "created": "2026-01-01T00:00:00Z"}

PolicyVault: type[Any] = Vault


def test_the_vault_carries_the_policy_methods() -> None:
    for method in ("policy_show", "policy_set", "policy_check"):
        assert callable(getattr(Vault, method))


@pytest.fixture
def make_vault(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    opened: list[Any] = []

    def make(policy_text: str | None = None, **kwargs: Any) -> Any:
        v = PolicyVault.create(tmp_path / "vault", passphrase=PASSPHRASE, policy_text=policy_text, **kwargs)
        opened.append(v)
        return v

    def reopen(user: str = "admin", passphrase: bytes = PASSPHRASE) -> Any:
        v = PolicyVault.open(tmp_path / "vault", user=user, passphrase=passphrase)
        opened.append(v)
        return v

    make.reopen = reopen  # type: ignore[attr-defined]
    yield make
    for v in opened:
        v.close()


def decisions(v: Any, **where: Any) -> list[dict[str, Any]]:
    entries = v.audit.entries(action="policy.decision")
    return [e for e in entries if all(e["detail"].get(k) == val for k, val in where.items())]


def test_show_returns_name_hash_rules_and_text_and_is_audited(make_vault: Callable[..., Any]) -> None:
    v = make_vault()
    shown = v.policy_show()
    default = Policy.default()
    assert shown["name"] == "default" and shown["sha256"] == default.sha256
    assert shown["text"] == default.text
    assert {"roles.admin", "privacy.max_lifetime_epsilon"} <= {rule["id"] for rule in shown["rules"]}
    assert decisions(v, request_action="policy.show")[-1]["outcome"] == "allowed"


def test_policy_file_edited_after_init_changes_nothing(
    make_vault: Callable[..., Any], tmp_path: Path
) -> None:
    file = tmp_path / "mine.toml"
    file.write_text(STRICT_TEXT, "utf-8")
    v = make_vault(policy_text=file.read_text("utf-8"), policy_source=str(file))
    before = v.policy.sha256
    v.close()
    file.write_text(STRICT_TEXT.replace("max_epsilon_per_run = 3.0", "max_epsilon_per_run = 6.0"), "utf-8")
    again = make_vault.reopen()  # type: ignore[attr-defined]
    assert again.policy.sha256 == before
    assert again.policy.spec.privacy.max_epsilon_per_run == 3.0


def test_admin_sets_policy_audited_with_old_and_new_hash(make_vault: Callable[..., Any]) -> None:
    v = make_vault()
    old = v.policy.sha256
    result = v.policy_set(STRICT_TEXT, source="policies/strict.toml")
    new = Policy.load(STRICT_TEXT).sha256
    assert result["changed"] and result["old_sha256"] == old and result["sha256"] == new
    assert v.policy.name == "strict" and v.policy.sha256 == new
    entry = v.audit.entries(action="policy.set")[-1]
    assert entry["detail"]["old_sha256"] == old and entry["detail"]["new_sha256"] == new
    assert entry["actor"] == "admin" and entry["outcome"] == "ok"
    shown = v.policy_show()
    assert shown["set_by"] == "admin" and shown["history"][-1]["sha256"] == old
    # the new policy decides from now on
    denied = v.policy_check(
        "train", dataset=XRAYS, dp=True, epsilon=5.0, delta=1e-5, model="cnn", projected_lifetime_epsilon=5.0
    )
    assert denied.rule == "privacy.max_epsilon_per_run"
    # and it survives reopening
    v.close()
    assert make_vault.reopen().policy.sha256 == new  # type: ignore[attr-defined]


def test_setting_the_same_policy_changes_nothing_but_is_audited(make_vault: Callable[..., Any]) -> None:
    v = make_vault()
    result = v.policy_set(Policy.default().text)
    assert not result["changed"]
    assert v.audit.entries(action="policy.set")[-1]["outcome"] == "unchanged"
    assert v.policy_show()["history"] == []


def test_operator_may_not_set_policy(make_vault: Callable[..., Any]) -> None:
    v = make_vault()
    v.keys_add("olivia", "operator", b"olivia's long passphrase")
    v.close()
    op = make_vault.reopen("olivia", b"olivia's long passphrase")  # type: ignore[attr-defined]
    before = op.policy.sha256
    with pytest.raises(PolicyDenied) as caught:
        op.policy_set(STRICT_TEXT)
    assert caught.value.exit_code == 3 and caught.value.detail["rule"] == "roles.operator"
    assert op.policy.sha256 == before
    assert decisions(op, request_action="policy.set")[-1]["outcome"] == "denied"
    assert op.audit.entries(action="policy.set") == []


def test_bad_policies_are_refused_and_nothing_changes(make_vault: Callable[..., Any]) -> None:
    v = make_vault()
    before = v.policy.sha256
    with pytest.raises(InputError) as bad:
        v.policy_set(STRICT_TEXT.replace("raw_data = false", "raw_data = true"), source="x.toml")
    assert "export.raw_data" in bad.value.title
    failing = STRICT_TEXT.replace(
        'reason_contains = "epsilon 4 per run is above the cap of 3"',
        'reason_contains = "a different number"',
    )
    with pytest.raises(InputError) as untested:
        v.policy_set(failing, source="x.toml")
    assert "1 of its own" in untested.value.title and untested.value.detail["failed"]
    assert v.policy.sha256 == before
    assert v.audit.entries(action="policy.set") == []


def test_a_policy_this_host_cannot_isolate_for_is_refused(make_vault: Callable[..., Any]) -> None:
    v = make_vault(policy_text=RESEARCH_TEXT)
    v._session.isolation = {
        "isolated": True,
        "mode": "guard",
        "layers": ["guard"],
    }  # a host without namespaces
    with pytest.raises(InputError) as caught:
        v.policy_set(STRICT_TEXT)
    assert "namespace+seccomp" in caught.value.title and "lock every user out" in caught.value.title
    assert v.policy.name == "research"


def test_check_is_a_dry_run_that_is_audited(make_vault: Callable[..., Any]) -> None:
    v = make_vault(policy_text=STRICT_TEXT)
    generation = v._session.read_catalog()["generation"]
    allowed = v.policy_check(
        "train", dataset=XRAYS, dp=True, epsilon=2.0, delta=1e-5, model="cnn", projected_lifetime_epsilon=4.0
    )
    assert allowed.allowed and allowed.rule == "roles.admin"
    denied = v.policy_check("train", dataset=XRAYS, dp=False, model="cnn")
    assert not denied.allowed and denied.rule == "privacy.dp_required"
    assert v._session.read_catalog()["generation"] == generation
    dry = decisions(v, dry_run=True)
    assert [(e["outcome"], e["detail"]["rule"]) for e in dry[-2:]] == [
        ("allowed", "roles.admin"),
        ("denied", "privacy.dp_required"),
    ]
    assert dry[-1]["subject"] == "xrays"


def test_check_as_another_user_and_with_an_approver(make_vault: Callable[..., Any]) -> None:
    v = make_vault(policy_text=STRICT_TEXT)
    v.keys_add("olivia", "operator", b"olivia's long passphrase")
    v.keys_add("carol", "auditor", b"carol's long passphrase")
    v.keys_add("bob", "operator", b"bob's long passphrase")
    as_auditor = v.policy_check(
        "train",
        as_user="carol",
        dataset=XRAYS,
        dp=True,
        epsilon=1.0,
        delta=1e-5,
        model="cnn",
        projected_lifetime_epsilon=1.0,
    )
    assert as_auditor.rule == "roles.auditor" and as_auditor.facts["actor"] == "carol"
    assert decisions(v, as_user="carol")[-1]["detail"]["as_role"] == "auditor"
    export_facts = {
        "dataset": XRAYS,
        "dp": True,
        "epsilon": 2.0,
        "delta": 1e-5,
        "model": "cnn",
        "target": "m1",
    }
    alone = v.policy_check("model.export", as_user="olivia", **export_facts)
    assert alone.rule == "export.approvals_required"
    approved = v.policy_check("model.export", as_user="olivia", approved_by=["bob"], **export_facts)
    assert approved.allowed and "approved by bob" in approved.reason
    own = v.policy_check("model.export", as_user="olivia", approved_by=["olivia"], **export_facts)
    assert own.rule == "export.approver_is_requester"
    with pytest.raises(NotFound):
        v.policy_check("train", as_user="nobody")


def test_check_refuses_facts_the_policy_does_not_know(make_vault: Callable[..., Any]) -> None:
    v = make_vault()
    with pytest.raises(UsageError) as caught:
        v.policy_check("train", dataset=XRAYS, dp=True, epochs=3)
    assert "epochs" in caught.value.title and "epsilon" in caught.value.hint
