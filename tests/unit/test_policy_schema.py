"""Policy files: loading, hashing, and every bad input refused with the key path and the problem."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support import REPO
from vault.errors import InputError, NotFound
from vault.policy import BUILTIN_NAMES, RULES, Policy

DEFAULT_TEXT = (REPO / "policies" / "default.toml").read_text("utf-8")


def edited(old: str, new: str, text: str = DEFAULT_TEXT) -> str:
    assert old in text, f"fixture text lacks {old!r}"
    return text.replace(old, new, 1)


def load_error(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        Policy.load(text, source="test.toml")
    return caught.value


ADMIN_LINE = '"init", "unlock", "keys.manage", "policy.set", "policy.show",'

BAD_INPUTS = {
    "unknown section": (DEFAULT_TEXT + "\n[extras]\nfoo = 1\n", "extras", "unknown key"),
    "unknown key": (
        edited("max_delta = 1e-5", "max_delta = 1e-5\nmax_epsilon = 3"),
        "privacy.max_epsilon",
        "unknown key",
    ),
    "unknown key in header": (
        edited('name = "default"', 'name = "default"\nowner = "x"'),
        "policy.owner",
        "unknown key",
    ),
    "cap of the wrong type": (
        edited("max_epsilon_per_run = 10.0", 'max_epsilon_per_run = "ten"'),
        "privacy.max_epsilon_per_run",
        "must be a number, got string",
    ),
    "boolean cap": (
        edited("max_epsilon_per_run = 10.0", "max_epsilon_per_run = true"),
        "privacy.max_epsilon_per_run",
        "must be a number, got boolean",
    ),
    "negative cap": (
        edited("max_epsilon_per_run = 10.0", "max_epsilon_per_run = -1.0"),
        "privacy.max_epsilon_per_run",
        "greater than 0",
    ),
    "zero cap": (
        edited("max_lifetime_epsilon = 20.0", "max_lifetime_epsilon = 0"),
        "privacy.max_lifetime_epsilon",
        "greater than 0",
    ),
    "infinite cap": (
        edited("max_epsilon_per_run = 10.0", "max_epsilon_per_run = inf"),
        "privacy.max_epsilon_per_run",
        "finite",
    ),
    "delta of 1 or more": (edited("max_delta = 1e-5", "max_delta = 1.5"), "privacy.max_delta", "less than 1"),
    "zero delta": (edited("max_delta = 1e-5", "max_delta = 0.0"), "privacy.max_delta", "greater than 0"),
    "per-run cap above lifetime cap": (
        edited("max_epsilon_per_run = 10.0", "max_epsilon_per_run = 30.0"),
        "privacy.max_epsilon_per_run",
        "above max_lifetime_epsilon",
    ),
    "unknown sensitivity": (
        edited('dp_required_for = ["high"]', 'dp_required_for = ["secret"]'),
        "privacy.dp_required_for[0]",
        "unknown value 'secret'",
    ),
    "dp_required_for missing": (
        edited('dp_required_for = ["high"]\n', ""),
        "privacy.dp_required_for",
        "missing",
    ),
    "unknown accountant": (
        edited('accountant = "prv"', 'accountant = "moments"'),
        "privacy.accountant",
        "unknown value",
    ),
    "unknown role": (
        edited("[roles]\n", '[roles]\nsuperuser = ["unlock"]\n'),
        "roles.superuser",
        "unknown role",
    ),
    "unknown action": (
        edited(
            '"budget.read", "netcheck", "verify",\n]\nauditor',
            '"budget.read", "netcheck", "verify", "dataset.steal",\n]\nauditor',
        ),
        "roles.operator[11]",
        "unknown value 'dataset.steal'",
    ),
    "action listed twice": (
        edited(
            '"budget.read", "netcheck", "verify",\n]\nauditor',
            '"budget.read", "netcheck", "verify", "verify",\n]\nauditor',
        ),
        "roles.operator[11]",
        "listed twice",
    ),
    "role actions not a list": (
        edited("operator = [", 'operator = "train"\nunused = ['),
        "roles.operator",
        "must be an array",
    ),
    "raw data export granted": (
        edited(
            '"audit.read", "budget.read", "netcheck", "verify",\n]\noperator',
            '"audit.read", "budget.read", "netcheck", "verify", "dataset.export",\n]\noperator',
        ),
        "roles.admin",
        "raw records can never be exported",
    ),
    "auditor granted decryption": (
        edited(
            '"dataset.read_metadata", "model.read_metadata",\n    "audit.read"',
            '"dataset.read_metadata", "model.read_metadata", "train",\n    "audit.read"',
        ),
        "roles.auditor",
        "auditors never decrypt records",
    ),
    "admin cannot set policy": (
        edited(ADMIN_LINE, '"init", "unlock", "keys.manage", "policy.show",'),
        "roles.admin",
        "locked out",
    ),
    "admin cannot manage keys": (
        edited(ADMIN_LINE, '"init", "unlock", "policy.set", "policy.show",'),
        "roles.admin",
        "locked out",
    ),
    "no admin role at all": (edited("admin = [", "unused_admin = ["), "roles.admin", "locked out"),
    "forbid locks every admin out": (
        DEFAULT_TEXT.replace(
            "[[test]]",
            '[[forbid]]\nid = "no-policy-changes"\nactions = ["policy.set"]\nreason = "frozen"\n\n[[test]]',
            1,
        ),
        "forbid[0]",
        "locks every admin out",
    ),
    "raw_data true": (edited("raw_data = false", "raw_data = true"), "export.raw_data", "must be false"),
    "raw_data missing": (edited("raw_data = false\n", ""), "export.raw_data", "missing"),
    "two approvals": (
        edited("approvals_required = 0", "approvals_required = 2"),
        "export.approvals_required",
        "at most 1",
    ),
    "negative approvals": (
        edited("approvals_required = 0", "approvals_required = -1"),
        "export.approvals_required",
        "at least 0",
    ),
    "approvals as boolean": (
        edited("approvals_required = 0", "approvals_required = true"),
        "export.approvals_required",
        "must be an integer",
    ),
    "unknown approver role": (
        edited("approvals_required = 0", 'approvals_required = 0\napprover_roles = ["boss"]'),
        "export.approver_roles[0]",
        "unknown value",
    ),
    "unknown isolation": (
        edited('required = "namespace+seccomp"', 'required = "vpn"'),
        "isolation.required",
        "unknown value 'vpn'",
    ),
    "zero retention": (
        DEFAULT_TEXT + "\n[retention]\nmax_dataset_age_days = 0\n",
        "retention.max_dataset_age_days",
        "at least 1",
    ),
    "fractional retention": (
        DEFAULT_TEXT + "\n[retention]\nmax_dataset_age_days = 1.5\n",
        "retention.max_dataset_age_days",
        "must be an integer",
    ),
    "missing section": (
        edited("[export]\nraw_data = false\napprovals_required = 0\n", ""),
        "export",
        "missing section",
    ),
    "version zero": (edited("version = 1", "version = 0"), "policy.version", "at least 1"),
    "version as text": (edited("version = 1", 'version = "1"'), "policy.version", "must be an integer"),
    "empty name": (edited('name = "default"', 'name = ""'), "policy.name", "non-empty string"),
    "models not a list": (
        edited('allowed = ["scatternet", "cnn", "resnet18", "bow", "transformer"]', 'allowed = "cnn"'),
        "models.allowed",
        "must be an array",
    ),
    "forbid without matchers": (
        DEFAULT_TEXT + '\n[[forbid]]\nid = "vague"\nreason = "r"\n',
        "forbid[0]",
        "sets no matcher",
    ),
    "forbid without reason": (
        DEFAULT_TEXT + '\n[[forbid]]\nid = "terse"\nactions = ["train"]\n',
        "forbid[0].reason",
        "non-empty string",
    ),
    "forbid with a bad id": (
        DEFAULT_TEXT + '\n[[forbid]]\nid = "No Spaces"\nactions = ["train"]\nreason = "r"\n',
        "forbid[0].id",
        "lowercase",
    ),
    "forbid ids repeat": (
        DEFAULT_TEXT + '\n[[forbid]]\nid = "a"\nactions = ["train"]\nreason = "r"\n'
        '\n[[forbid]]\nid = "a"\nactions = ["evaluate"]\nreason = "r"\n',
        "forbid[1].id",
        "used by an earlier",
    ),
    "forbid with unknown action": (
        DEFAULT_TEXT + '\n[[forbid]]\nid = "x"\nactions = ["fly"]\nreason = "r"\n',
        "forbid[0].actions[0]",
        "unknown value 'fly'",
    ),
    "forbid with empty matcher": (
        DEFAULT_TEXT + '\n[[forbid]]\nid = "x"\nactions = []\nreason = "r"\n',
        "forbid[0].actions",
        "at least one value",
    ),
    "forbid with unknown key": (
        DEFAULT_TEXT + '\n[[forbid]]\nid = "x"\nactions = ["train"]\nreason = "r"\nwhen = "night"\n',
        "forbid[0].when",
        "unknown key",
    ),
    "forbid as a plain table": (DEFAULT_TEXT + '\n[forbid]\nid = "x"\n', "forbid", "array of tables"),
    "test input with an unknown fact": (
        edited(
            'epsilon = 3.0\ndelta = 1e-5\nmodel = "cnn"\nprojected',
            'epsilonn = 3.0\ndelta = 1e-5\nmodel = "cnn"\nprojected',
        ),
        "test[0].input.epsilonn",
        "unknown key",
    ),
    "test with an unknown expectation": (
        edited('expect = "allowed"', 'expect = "maybe"'),
        "test[0].expect",
        "unknown value 'maybe'",
    ),
    "test input with a negative epsilon": (
        edited("epsilon = 12.0", "epsilon = -12.0"),
        "test[2].input.epsilon",
        "greater than 0",
    ),
    "test input with a bad date": (
        edited("created = 2025-03-01T09:00:00Z", 'created = "yesterday"'),
        "test[0].input.dataset.created",
        "ISO 8601",
    ),
    "not TOML": ("[policy\nname = 1", "(file)", "not valid TOML"),
}


@pytest.mark.parametrize("text,key,problem", BAD_INPUTS.values(), ids=list(BAD_INPUTS))
def test_bad_policy_is_refused_naming_key_and_problem(text: str, key: str, problem: str) -> None:
    error = load_error(text)
    assert error.exit_code == 1
    keys = [item["key"] for item in error.detail["errors"]]
    messages = [item["problem"] for item in error.detail["errors"]]
    assert key in keys, error.detail
    assert any(problem in message for k, message in zip(keys, messages, strict=True) if k == key), (
        error.detail
    )
    assert error.title.startswith("policy test.toml: ")
    assert error.hint


def test_every_problem_is_listed_and_the_title_counts_them() -> None:
    text = edited("max_delta = 1e-5", "max_delta = -1.0", edited("raw_data = false", "raw_data = true"))
    error = load_error(text)
    assert {item["key"] for item in error.detail["errors"]} == {"privacy.max_delta", "export.raw_data"}
    assert "(and 1 more)" in error.title


def test_a_forbid_on_one_admin_is_not_a_lockout() -> None:
    text = (
        DEFAULT_TEXT + '\n[[forbid]]\nid = "not-mallory"\nusers = ["mallory"]\nactions = ["policy.set"]\n'
        'reason = "mallory is on leave"\n'
    )
    policy = Policy.load(text)
    assert policy.rules()[1]["id"] == "forbid.not-mallory"


def test_load_keeps_exact_text_and_its_sha256() -> None:
    text = DEFAULT_TEXT + "\n# a trailing comment changes the hash, not the meaning\n"
    policy = Policy.load(text, source="x.toml")
    assert policy.text == text
    assert policy.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert policy.sha256 != Policy.load(DEFAULT_TEXT).sha256
    assert policy.source == "x.toml"


def test_default_is_the_shipped_file() -> None:
    policy = Policy.default()
    assert policy.name == "default"
    assert policy.text == DEFAULT_TEXT
    assert policy.sha256 == hashlib.sha256(DEFAULT_TEXT.encode()).hexdigest()


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_policies_load(name: str) -> None:
    assert Policy.builtin(name).name == name


def test_unknown_builtin_and_missing_file() -> None:
    with pytest.raises(NotFound):
        Policy.builtin("lenient")
    with pytest.raises(NotFound):
        Policy.from_file(REPO / "policies" / "absent.toml")


def test_from_file_reads_a_file(tmp_path: Path) -> None:
    file = tmp_path / "mine.toml"
    file.write_text(edited('name = "default"', 'name = "mine"'), "utf-8")
    policy = Policy.from_file(file)
    assert policy.name == "mine" and policy.source == str(file)
    file.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(InputError):
        Policy.from_file(file)


def test_to_json_names_every_rule() -> None:
    doc = Policy.builtin("strict").to_json()
    assert doc["name"] == "strict" and len(doc["sha256"]) == 64
    ids = [rule["id"] for rule in doc["rules"]]
    assert "forbid.no-browsing-high" in ids and "roles.operator" in ids
    builtin = set(RULES) - {"request.invalid", "request.incomplete"}
    assert builtin <= set(ids)
    assert all(rule["effect"] in {"permit", "forbid"} and rule["text"] for rule in doc["rules"])
