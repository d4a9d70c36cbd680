"""Decisions: Cedar semantics, bad requests, approvals, retention, and the files' own [[test]] cases."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import REPO
from vault.errors import PolicyDenied
from vault.policy import ACTIONS, BUILTIN_NAMES, ROLES, SENSITIVITIES, Policy, Request
from vault.policy.request import REQUEST_FACTS

STRICT = Policy.builtin("strict")
DEFAULT = Policy.default()
RESEARCH = Policy.builtin("research")
NOW = datetime(2026, 1, 15, tzinfo=UTC)
XRAYS = {"name": "xrays", "sensitivity": "high", "created": "2025-12-01T00:00:00Z", "digest": "ab" * 32}


def train(**changes: object) -> Request:
    base = Request(
        actor="olivia",
        role="operator",
        action="train",
        dataset=XRAYS,
        dp=True,
        epsilon=2.0,
        delta=1e-5,
        model="cnn",
        projected_lifetime_epsilon=4.0,
        isolation="namespace+seccomp",
        now=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def export(**changes: object) -> Request:
    return replace(train(action="model.export", target="model-1", projected_lifetime_epsilon=None), **changes)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the files' own tests


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_shipped_policy_passes_its_own_tests(name: str) -> None:
    policy = Policy.builtin(name)
    results = policy.run_tests()
    assert len(results) >= 8
    failed = [r.to_json() for r in results if not r.passed]
    assert not failed, json.dumps(failed, indent=2)


def test_policy_test_reports_a_case_that_fails() -> None:
    text = (REPO / "policies" / "default.toml").read_text("utf-8")
    text = text.replace(
        'reason_contains = "epsilon 12 per run is above the cap of 10"',
        'reason_contains = "epsilon 12 per run is above the cap of 11"',
    )
    text = text.replace(
        'name = "delta above 1e-5 is refused"\nexpect = "denied"',
        'name = "delta above 1e-5 is refused"\nexpect = "allowed"',
    )
    results = {r.name: r for r in Policy.load(text).run_tests()}
    cap = results["a run above 10 epsilon is refused with the numbers"]
    assert not cap.passed and "lacks 'epsilon 12 per run is above the cap of 11'" in cap.problem
    delta = results["delta above 1e-5 is refused"]
    assert not delta.passed and delta.to_json()["got"] == "denied" and "expected allowed" in delta.problem
    assert sum(not r.passed for r in results.values()) == 2


def test_policy_test_checks_the_rule_too() -> None:
    text = (REPO / "policies" / "strict.toml").read_text("utf-8")
    text = text.replace('rule = "forbid.no-browsing-high"', 'rule = "roles.admin"')
    failed = [r for r in Policy.load(text).run_tests() if not r.passed]
    assert [r.expected_rule for r in failed] == ["roles.admin"]
    assert "got forbid.no-browsing-high" in failed[0].problem


# ----------------------------------------------------------------------------- semantics


def test_deny_by_default_names_the_role_table() -> None:
    decision = DEFAULT.decide(Request(actor="carol", role="auditor", action="dataset.delete", dataset=XRAYS))
    assert not decision.allowed
    assert decision.rule == "roles.auditor"
    assert "not granted dataset.delete" in decision.reason


def test_allowed_decision_explains_the_numbers() -> None:
    decision = DEFAULT.decide(train(epsilon=3.0, projected_lifetime_epsilon=7.5))
    assert decision.allowed and decision.rule == "roles.operator"
    assert "epsilon 3 <= 10 per run" in decision.reason and "lifetime epsilon 7.5 <= 20" in decision.reason
    doc = decision.to_json()
    assert doc["outcome"] == "allowed" and doc["facts"]["policy_sha256"] == DEFAULT.sha256
    assert doc["facts"]["dataset"]["name"] == "xrays"
    json.dumps(doc)


def test_a_refusal_lists_every_rule_that_denies() -> None:
    decision = STRICT.decide(train(epsilon=5.0, delta=1e-3, projected_lifetime_epsilon=9.0, model="gpt"))
    assert decision.rule == "privacy.max_epsilon_per_run"
    others = [d["rule"] for d in decision.facts["also_denied_by"]]
    assert others == ["privacy.max_delta", "privacy.max_lifetime_epsilon", "models.allowed"]


def test_denial_becomes_policy_denied_exit_3_with_rule_and_numbers() -> None:
    decision = DEFAULT.decide(train(epsilon=4.0, projected_lifetime_epsilon=21.25))
    assert decision.rule == "privacy.max_lifetime_epsilon"
    with pytest.raises(PolicyDenied) as caught:
        decision.raise_if_denied()
    error = caught.value
    assert error.exit_code == 3
    assert error.detail["rule"] == "privacy.max_lifetime_epsilon"
    assert "21.25" in error.title and "cap of 20" in error.title and "epsilon 4" in error.title
    assert "strongroom budget" in error.hint
    assert DEFAULT.decide(train()).raise_if_denied().allowed


def test_a_rule_that_errors_denies() -> None:
    no_epsilon = DEFAULT.decide(train(epsilon=None))
    assert not no_epsilon.allowed and no_epsilon.rule == "privacy.max_epsilon_per_run"
    assert "could not be evaluated" in no_epsilon.reason
    no_created = STRICT.decide(train(dataset={"name": "xrays", "sensitivity": "high"}))
    assert not no_created.allowed and no_created.rule == "retention.max_dataset_age_days"
    assert "no creation time" in no_created.reason


def test_caps_protect_only_sensitivities_that_need_dp() -> None:
    low = {**XRAYS, "sensitivity": "low"}
    assert DEFAULT.decide(train(dataset=low, epsilon=50.0, projected_lifetime_epsilon=None)).allowed
    assert DEFAULT.decide(train(dataset=low, dp=False, epsilon=None, delta=None)).allowed


def test_accountant_must_match_when_the_run_names_one() -> None:
    assert DEFAULT.decide(train(accountant="prv")).allowed
    decision = DEFAULT.decide(train(accountant="rdp"))
    assert decision.rule == "privacy.accountant" and "requires prv" in decision.reason


def test_ledger_delta_above_the_cap_is_refused() -> None:
    decision = DEFAULT.decide(train(lifetime_delta=1e-4))
    assert decision.rule == "privacy.max_delta" and "ledger composes at delta 0.0001" in decision.reason


def test_isolation_is_checked_when_reported() -> None:
    assert STRICT.decide(train(isolation="namespace+seccomp")).allowed
    # one ranking of levels for the whole product: a level it does not know is refused, never guessed
    unknown = STRICT.decide(train(isolation="namespace+seccomp+landlock"))
    assert unknown.rule == "request.invalid" and "unknown isolation mode" in unknown.reason
    assert STRICT.decide(train(isolation=None)).allowed  # enforced by the session before the vault opens
    assert STRICT.decide(train(isolation="guard")).rule == "isolation.required"
    assert RESEARCH.decide(train(isolation="guard", dp=False)).allowed
    assert RESEARCH.decide(train(isolation="none")).rule == "isolation.required"


def test_the_loopback_level_trains_only_where_the_policy_names_it() -> None:
    loopback = "namespace+seccomp-loopback"
    # strict and default keep the plain level: a run across processes is refused with the rule
    for policy in (STRICT, DEFAULT):
        decision = policy.decide(train(isolation=loopback))
        assert decision.rule == "isolation.required" and loopback in decision.reason
    assert RESEARCH.decide(train(isolation=loopback, dp=False)).allowed  # research requires 'guard'
    text = (REPO / "policies" / "default.toml").read_text()
    named = Policy.load(text.replace('required = "namespace+seccomp"', f'required = "{loopback}"'))
    assert named.decide(train(isolation=loopback)).allowed
    assert named.decide(train(isolation="guard")).rule == "isolation.required"


# ----------------------------------------------------------------------------- approvals


def test_an_approver_who_is_the_requester_is_refused_in_every_policy() -> None:
    for policy in (DEFAULT, STRICT, RESEARCH):
        decision = policy.decide(export(approvals=(("olivia", "operator"),)))
        assert not decision.allowed and decision.rule == "export.approver_is_requester", policy.name
    # another approver beside the requester does not make self-approval acceptable
    decision = STRICT.decide(export(approvals=(("olivia", "operator"), ("bob", "admin"))))
    assert decision.rule == "export.approver_is_requester"


def test_two_person_export() -> None:
    alone = STRICT.decide(export())
    assert alone.rule == "export.approvals_required" and "got 0" in alone.reason
    by_admin = STRICT.decide(export(approvals=(("alice", "admin"),)))
    assert by_admin.allowed and "approved by alice" in by_admin.reason
    by_auditor = STRICT.decide(export(approvals=(("carol", "auditor"),)))
    assert by_auditor.rule == "export.approvals_required"
    assert DEFAULT.decide(export()).allowed


def test_exporting_a_model_checks_how_it_was_trained() -> None:
    assert DEFAULT.decide(export(dp=False, epsilon=None, delta=None)).rule == "privacy.dp_required"
    decision = STRICT.decide(export(epsilon=8.0, approvals=(("bob", "operator"),)))
    assert decision.rule == "privacy.max_epsilon_per_run"


# ----------------------------------------------------------------------------- retention


def test_expired_dataset_is_refused_with_its_age() -> None:
    old = {**XRAYS, "created": (NOW - timedelta(days=400)).isoformat()}
    for action in ("train", "evaluate", "dataset.sample"):
        decision = STRICT.decide(train(action=action, dataset=old))
        assert decision.rule in {"retention.max_dataset_age_days", "forbid.no-browsing-high"}
        if action != "dataset.sample":
            assert decision.rule == "retention.max_dataset_age_days"
            assert "400.0 days ago" in decision.reason and "365 days" in decision.reason
    # metadata and deletion of expired records stay possible
    assert STRICT.decide(
        Request(actor="a", role="admin", action="dataset.delete", dataset=old, now=NOW)
    ).allowed
    assert STRICT.decide(
        Request(actor="c", role="auditor", action="dataset.read_metadata", dataset=old, now=NOW)
    ).allowed
    fresh = {**XRAYS, "created": (NOW - timedelta(days=364)).isoformat()}
    assert STRICT.decide(train(dataset=fresh)).allowed


# ----------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    "changes,rule,words",
    [
        ({"action": "fly"}, "request.invalid", "unknown action"),
        ({"role": "root"}, "request.invalid", "unknown role"),
        ({"dataset": {**XRAYS, "sensitivity": "secret"}}, "request.invalid", "unknown sensitivity"),
        ({"epsilon": -1.0}, "request.invalid", "epsilon must be"),
        ({"epsilon": 0.0}, "request.invalid", "epsilon must be"),
        ({"epsilon": math.nan}, "request.invalid", "epsilon must be"),
        ({"delta": 1.0}, "request.invalid", "delta must be below 1"),
        ({"dp": "yes"}, "request.invalid", "dp must be"),
        ({"isolation": "vpn"}, "request.invalid", "unknown isolation"),
        ({"approvals": (("bob",),)}, "request.invalid", "(user, role)"),
        ({"actor": ""}, "request.invalid", "no actor"),
        ({"dataset": None}, "request.incomplete", "train needs dataset"),
        ({"model": None, "dp": None}, "request.incomplete", "dp, model"),
        ({"dataset": {"name": "xrays"}}, "request.incomplete", "dataset.sensitivity"),
    ],
)
def test_bad_request_is_denied_not_raised(changes: dict[str, object], rule: str, words: str) -> None:
    decision = DEFAULT.decide(train(**changes))
    assert not decision.allowed
    assert decision.rule == rule
    assert words in decision.reason


def test_unbounded_projection_as_infinity() -> None:
    decision = DEFAULT.decide(train(projected_lifetime_epsilon=math.inf))
    assert decision.rule == "privacy.max_lifetime_epsilon" and "unbounded" in decision.reason


# ----------------------------------------------------------------------------- properties

actors = st.sampled_from(["alice", "bob", "olivia", "carol", "dave"])
requests = st.builds(
    Request,
    actor=actors,
    role=st.sampled_from(ROLES),
    action=st.sampled_from(ACTIONS),
    target=st.none() | st.just("model-1"),
    dataset=st.none()
    | st.fixed_dictionaries(
        {
            "name": st.sampled_from(["xrays", "claims", "sms"]),
            "sensitivity": st.sampled_from(SENSITIVITIES),
            "created": st.just("2025-12-01T00:00:00Z"),
        }
    ),
    dp=st.none() | st.booleans(),
    epsilon=st.none() | st.floats(0.1, 30),
    delta=st.none() | st.sampled_from([1e-7, 1e-5, 1e-3]),
    model=st.none() | st.sampled_from(["cnn", "bow", "gpt"]),
    projected_lifetime_epsilon=st.none() | st.floats(0.1, 40),
    approvals=st.lists(st.tuples(actors, st.sampled_from(ROLES)), max_size=2).map(tuple),
    isolation=st.none() | st.sampled_from(["none", "guard", "namespace+seccomp"]),
    now=st.just(NOW),
)

MATCHERS = ("actions", "roles", "datasets", "sensitivity", "models", "dp")


def request_values(request: Request) -> dict[str, object]:
    dataset = request.dataset or {}
    return {
        "actions": request.action,
        "roles": request.role,
        "datasets": dataset.get("name"),
        "sensitivity": dataset.get("sensitivity"),
        "models": request.model,
        "dp": request.dp,
    }


def forbid_text(values: dict[str, object], actor: str) -> str:
    lines = ["[[forbid]]", 'id = "generated"', 'reason = "the property under test"', f'users = ["{actor}"]']
    for key, value in values.items():
        lines.append(f"{key} = {str(value).lower()}" if isinstance(value, bool) else f'{key} = ["{value}"]')
    return "\n" + "\n".join(lines) + "\n"


BASE_TEXTS = {
    name: (REPO / "policies" / f"{name}.toml").read_text("utf-8") for name in ("research", "strict")
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request=requests, chosen=st.sets(st.sampled_from(MATCHERS)), base_name=st.sampled_from(sorted(BASE_TEXTS))
)
def test_a_matching_forbid_always_wins(request: Request, chosen: set[str], base_name: str) -> None:
    base = BASE_TEXTS[base_name]
    values = {k: v for k, v in request_values(request).items() if k in chosen and v is not None}
    with_forbid = Policy.load(base + forbid_text(values, request.actor))
    without = Policy.load(base).decide(request)
    decision = with_forbid.decide(request)
    assert not decision.allowed
    if without.rule.startswith("forbid."):
        assert decision.rule.startswith("forbid.")  # the file's own forbid comes first
    elif without.rule not in {"request.invalid", "request.incomplete", "export.raw_data"}:
        assert decision.rule == "forbid.generated"


@settings(max_examples=200, deadline=None)
@given(request=requests, base_name=st.sampled_from(sorted(BASE_TEXTS)))
def test_a_forbid_that_does_not_match_changes_nothing(request: Request, base_name: str) -> None:
    base = BASE_TEXTS[base_name]
    other_actor = "zed"  # never generated
    decision = Policy.load(base + forbid_text({"actions": request.action}, other_actor)).decide(request)
    without = Policy.load(base).decide(request)
    assert (decision.allowed, decision.rule, decision.reason) == (
        without.allowed,
        without.rule,
        without.reason,
    )


@settings(max_examples=300, deadline=None)
@given(request=requests, name=st.sampled_from(BUILTIN_NAMES))
def test_every_decision_names_a_known_rule_and_never_raises(request: Request, name: str) -> None:
    policy = Policy.builtin(name)
    decision = policy.decide(request)
    ids = {rule["id"] for rule in policy.rules()} | {"request.invalid", "request.incomplete"}
    assert decision.rule in ids
    assert decision.reason
    json.dumps(decision.to_json())
    if decision.allowed:
        assert policy.permits(request.role, request.action)
        assert decision.rule == f"roles.{request.role}"


junk = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=True)
    | st.text(max_size=5)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={name: junk for name in REQUEST_FACTS if name not in ("actor", "role", "action")},
    ),
    role=junk | st.sampled_from(ROLES),
    action=junk | st.sampled_from(ACTIONS),
)
def test_junk_requests_are_denied_never_raised(
    fields: dict[str, object], role: object, action: object
) -> None:
    request = Request(actor="alice", role=role, action=action, **fields)  # type: ignore[arg-type]
    decision = STRICT.decide(request)
    assert decision.rule and decision.reason
    if decision.allowed:
        assert STRICT.permits(str(role), str(action))


def test_raw_export_is_refused_whatever_the_facts() -> None:
    for policy in (DEFAULT, STRICT, RESEARCH):
        decision = policy.decide(Request(actor="alice", role="admin", action="dataset.export"))
        assert decision.rule == "export.raw_data" and "never be exported" in decision.reason


def test_a_policy_test_result_names_its_case_and_joins_every_problem() -> None:
    text = (REPO / "policies" / "default.toml").read_text("utf-8")
    text = text.replace(
        'name = "training on high-sensitivity records without DP is refused"\nexpect = "denied"\n'
        'rule = "privacy.dp_required"',
        'name = "training on high-sensitivity records without DP is refused"\nexpect = "allowed"\n'
        'rule = "roles.operator"',
    )
    results = Policy.load(text).run_tests()
    assert [r.index for r in results] == list(range(len(results)))
    (failed,) = [r for r in results if not r.passed]
    assert failed.index == 1 and failed.expected == "allowed"
    assert failed.problem == (
        f"expected allowed, got denied by privacy.dp_required: {failed.decision.reason}; "
        "expected rule roles.operator, got privacy.dp_required"
    )
    denied = next(r for r in results if r.passed and not r.decision.allowed)
    assert denied.expected == "denied" and denied.to_json()["expected"] == "denied"
    assert "problem" not in denied.to_json()


def test_an_allowed_reason_lists_each_rule_that_passed_with_its_numbers_and_nothing_else() -> None:
    assert STRICT.decide(train()).reason == (
        "role operator may train (dataset age 45.0 <= 365 days; DP on for high sensitivity; "
        "epsilon 2 <= 3 per run; delta 1e-05 <= 1e-05; lifetime epsilon 4 <= 6)"
    )
    no_created = STRICT.decide(train(dataset={"name": "xrays", "sensitivity": "high"}))
    assert "dataset 'xrays' has no creation time" in no_created.reason


def test_retention_counts_whole_days_from_the_request_time_or_now_and_names_the_dataset() -> None:
    old = {**XRAYS, "created": (NOW - timedelta(days=400)).isoformat()}
    assert STRICT.decide(train(dataset=old)).reason == (
        "dataset 'xrays' was created 2024-12-11, 400.0 days ago; records older than 365 days may not be used"
    )
    at_limit = {**XRAYS, "created": (NOW - timedelta(days=365)).isoformat()}
    assert STRICT.decide(train(dataset=at_limit)).allowed, "exactly the limit is still allowed"
    past = {**XRAYS, "created": (NOW - timedelta(days=365, seconds=30)).isoformat()}
    assert STRICT.decide(train(dataset=past)).rule == "retention.max_dataset_age_days"
    recent = {**XRAYS, "created": (datetime.now(UTC) - timedelta(days=10)).isoformat()}
    assert STRICT.decide(train(dataset=recent, now=None)).allowed, "no request time: the clock's"
    assert not STRICT.decide(train(dataset=old, now=None)).allowed


def test_a_dp_denial_names_the_dataset_its_sensitivity_and_what_lacked_dp() -> None:
    run = DEFAULT.decide(train(dp=False))
    assert (run.rule, run.reason) == (
        "privacy.dp_required",
        "dataset 'xrays' is high sensitivity, which requires DP, and the run is without DP",
    )
    model = DEFAULT.decide(export(dp=False, role="admin"))
    assert model.reason == (
        "dataset 'xrays' is high sensitivity, which requires DP, and the model was trained without DP"
    )


def test_each_privacy_cap_holds_at_exactly_its_value_and_a_missing_number_denies_naming_it() -> None:
    assert DEFAULT.decide(train(projected_lifetime_epsilon=20.0)).allowed, "exactly the lifetime cap"
    assert DEFAULT.decide(train(lifetime_delta=1e-5)).allowed, "a ledger at exactly the delta cap"
    assert DEFAULT.decide(train(lifetime_delta=2e-5)).rule == "privacy.max_delta"
    no_epsilon = DEFAULT.decide(train(epsilon=None))
    assert (no_epsilon.rule, no_epsilon.reason) == (
        "privacy.max_epsilon_per_run",
        "rule could not be evaluated (a DP run without an epsilon cannot be checked against the per-run cap);"
        " a rule that errors denies",
    )
    no_delta = DEFAULT.decide(train(delta=None))
    assert (no_delta.rule, no_delta.reason) == (
        "privacy.max_delta",
        "rule could not be evaluated (a DP run without a delta cannot be checked against the delta cap);"
        " a rule that errors denies",
    )


def test_a_lifetime_denial_names_the_dataset_and_what_this_run_costs() -> None:
    def lifetime_reason(**changes: object) -> str:
        decision = DEFAULT.decide(train(projected_lifetime_epsilon=25.0, **changes))
        found = [decision.reason] if decision.rule == "privacy.max_lifetime_epsilon" else []
        also = decision.facts.get("also_denied_by", [])  # after the per-run cap's denial, when no epsilon
        found += [d["reason"] for d in also if d["rule"] == "privacy.max_lifetime_epsilon"]
        (reason,) = found
        return reason

    cap = "above the cap of 20"
    assert (
        lifetime_reason() == f"dataset 'xrays' would reach lifetime epsilon 25 (this run: epsilon 2), {cap}"
    )
    assert lifetime_reason(metrics_epsilon=0.5) == (
        "dataset 'xrays' would reach lifetime epsilon 25 (this run: epsilon 2, and epsilon 0.5 for the noised "
        f"metrics of its card), {cap}"
    )
    assert lifetime_reason(epsilon=None) == f"dataset 'xrays' would reach lifetime epsilon 25, {cap}"
    assert lifetime_reason(epsilon=None, metrics_epsilon=0.5) == (
        "dataset 'xrays' would reach lifetime epsilon 25 (this run: epsilon 0.5 for the noised metrics "
        f"of its card), {cap}"
    )
    unbounded = DEFAULT.decide(train(projected_lifetime_epsilon=math.inf)).reason
    assert unbounded.startswith("dataset 'xrays' has no bounded lifetime epsilon to hold to the cap of 20")


def test_the_lifetime_cap_applies_to_the_sensitivities_that_need_dp() -> None:
    assert DEFAULT.dp_required("high") and not DEFAULT.dp_required("low")
    assert DEFAULT.lifetime_epsilon_cap("high") == 20.0 and DEFAULT.lifetime_epsilon_cap("low") is None


def test_a_tuned_run_may_use_rdp_and_only_a_dp_training_run_is_held_to_the_accountant() -> None:
    tuned = DEFAULT.decide(train(accountant="rdp", tune=4))
    assert tuned.allowed and tuned.reason.endswith(
        "; a tuned run is accounted in RDP: its random-stopping bound is an RDP bound)"
    )
    assert DEFAULT.decide(train(accountant="prv", tune=4)).allowed, "or the policy's own accountant"
    assert DEFAULT.decide(train(accountant="moments", tune=4)).rule == "privacy.accountant"
    named = DEFAULT.decide(train(accountant="prv"))
    assert named.reason == (
        "role operator may train (DP on for high sensitivity; epsilon 2 <= 10 per run; delta 1e-05 <= 1e-05; "
        "lifetime epsilon 4 <= 20)"
    ), "a matching accountant adds no note"
    low = {**XRAYS, "sensitivity": "low"}
    assert DEFAULT.decide(train(dataset=low, dp=False, accountant="rdp")).allowed, "no DP: no accountant"


def test_a_model_refusal_lists_the_allowed_models() -> None:
    decision = DEFAULT.decide(train(model="vit"))
    assert (decision.rule, decision.reason) == (
        "models.allowed",
        "model 'vit' is not allowed; allowed: scatternet, cnn, resnet18, bow, transformer",
    )


def test_an_export_refusal_names_the_approver_roles_and_the_approvals_it_ignored() -> None:
    assert (
        STRICT.decide(export()).reason
        == "a model export needs 1 approval(s) from another operator or admin, got 0"
    )
    by_auditors = STRICT.decide(export(approvals=(("carol", "auditor"), ("dave", "auditor"))))
    assert by_auditors.reason == (
        "a model export needs 1 approval(s) from another operator or admin, got 0; ignored: "
        "carol (auditor: role may not approve), dave (auditor: role may not approve)"
    )
    by_admin = STRICT.decide(export(approvals=(("alice", "admin"),)))
    assert by_admin.reason == (
        "role operator may model.export (DP on for high sensitivity; epsilon 2 <= 3 per run; "
        "delta 1e-05 <= 1e-05; approved by alice)"
    )
    # the requester's own approval, listed first, is refused by its own rule; the other still counts
    mixed = STRICT.decide(export(approvals=(("olivia", "operator"), ("bob", "admin"))))
    assert mixed.rule == "export.approver_is_requester" and "also_denied_by" not in mixed.facts
    # with no approvals there is no self-approval to check
    assert "export.approver_is_requester" not in DEFAULT.decide(export()).facts["rules_checked"]


def test_an_allowed_export_says_who_approved_it_or_that_none_was_needed() -> None:
    privacy = "DP on for high sensitivity; epsilon 2 <= 10 per run; delta 1e-05 <= 1e-05"
    assert (
        DEFAULT.decide(export()).reason == f"role operator may model.export ({privacy}; no approval required)"
    )
    two = STRICT.decide(export(approvals=(("bob", "operator"), ("alice", "admin"))))
    assert two.allowed and two.reason.endswith("; approved by alice, bob)")
    raw = DEFAULT.decide(export(action="dataset.export"))
    assert raw.reason == "raw records can never be exported (export.raw_data = false in every policy)"
