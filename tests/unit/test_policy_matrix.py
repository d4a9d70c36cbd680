"""Decision matrix for each shipped policy: role x action x sensitivity x DP parameters.

The expected outcome is written here from the issue's own words (who may do what, which
sensitivities need DP, the caps, the approvals), independently of the engine's code.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from vault.policy import ACTIONS, ROLES, SENSITIVITIES, Policy, Request

EVERYTHING = set(ACTIONS) - {"dataset.export"}
METADATA = {
    "unlock",
    "policy.show",
    "dataset.read_metadata",
    "model.read_metadata",
    "budget.read",
    "netcheck",
    "verify",
}
OPERATOR = METADATA | {"dataset.import", "train", "evaluate", "model.export"}
AUDITOR = METADATA | {"audit.read"}


@dataclass(frozen=True)
class Expected:
    grants: dict[str, set[str]]
    dp_required_for: set[str]
    per_run: float | None
    lifetime: float | None
    max_delta: float | None
    approvals: int


SHIPPED = {
    "default": Expected(
        {"admin": EVERYTHING, "operator": OPERATOR, "auditor": AUDITOR}, {"high"}, 10.0, 20.0, 1e-5, 0
    ),
    "strict": Expected(
        {"admin": EVERYTHING, "operator": OPERATOR, "auditor": AUDITOR}, {"medium", "high"}, 3.0, 6.0, 1e-5, 1
    ),
    "research": Expected(
        {
            "admin": EVERYTHING,
            "operator": OPERATOR | {"dataset.sample", "dataset.delete", "audit.read"},
            "auditor": AUDITOR,
        },
        set(),
        None,
        None,
        None,
        0,
    ),
}


@dataclass(frozen=True)
class Params:
    """DP parameters of a run, relative to the policy's caps."""

    label: str
    dp: bool
    epsilon_of_cap: float = 0.5  # epsilon as a fraction of the per-run cap
    delta_of_cap: float = 1.0
    lifetime_of_cap: float | None = 0.9  # projected lifetime as a fraction of the cap; None: unbounded


PARAMS = [
    Params("no-dp", dp=False),
    Params("dp-within", dp=True),
    Params("dp-at-caps", dp=True, epsilon_of_cap=1.0, lifetime_of_cap=1.0),
    Params("dp-epsilon-over", dp=True, epsilon_of_cap=1.5, lifetime_of_cap=0.9),
    Params("dp-delta-over", dp=True, delta_of_cap=10.0),
    Params("dp-lifetime-over", dp=True, lifetime_of_cap=1.2),
    Params("dp-lifetime-unbounded", dp=True, lifetime_of_cap=None),
]


def build_request(
    policy_name: str, role: str, action: str, sensitivity: str, params: Params, approved: bool
) -> Request:
    exp = SHIPPED[policy_name]
    per_run = exp.per_run or 8.0
    lifetime = exp.lifetime or 16.0
    delta_cap = exp.max_delta or 1e-5
    return Request(
        actor="requester",
        role=role,
        action=action,
        # created now: strict's 365-day retention rule is tested on its own elsewhere
        dataset={"name": "records", "sensitivity": sensitivity, "created": datetime.now(UTC).isoformat()},
        dp=params.dp,
        epsilon=per_run * params.epsilon_of_cap if params.dp else None,
        delta=delta_cap * params.delta_of_cap if params.dp else None,
        model="cnn",
        projected_lifetime_epsilon=(
            lifetime * params.lifetime_of_cap if params.dp and params.lifetime_of_cap is not None else None
        ),
        approvals=(("second", "operator"),) if approved else (),
        isolation="namespace+seccomp",
        now=None,
    )


def expected_outcome(
    policy_name: str, role: str, action: str, sensitivity: str, params: Params, approved: bool
) -> tuple[bool, set[str]]:
    """(allowed, acceptable deciding rules) from the issue's statements."""
    exp = SHIPPED[policy_name]
    if action == "dataset.export":
        return False, {"export.raw_data"}
    if policy_name == "strict":
        if action == "dataset.sample" and sensitivity == "high":
            return False, {"forbid.no-browsing-high"}
        if action == "model.export" and not params.dp:
            return False, {"forbid.only-dp-models-leave"}
    if action not in exp.grants[role]:
        return False, {f"roles.{role}"}
    denials: list[str] = []
    privacy_action = action in {"train", "model.export"}
    needs_dp = sensitivity in exp.dp_required_for
    if privacy_action and needs_dp and not params.dp:
        denials.append("privacy.dp_required")
    if privacy_action and needs_dp and params.dp:
        if exp.per_run is not None and params.epsilon_of_cap > 1:
            denials.append("privacy.max_epsilon_per_run")
        if exp.max_delta is not None and params.delta_of_cap > 1:
            denials.append("privacy.max_delta")
        if (
            action == "train"
            and exp.lifetime is not None
            and (params.lifetime_of_cap is None or params.lifetime_of_cap > 1)
        ):
            denials.append("privacy.max_lifetime_epsilon")
    if action == "model.export" and exp.approvals and not approved:
        denials.append("export.approvals_required")
    if denials:
        return False, {denials[0]}
    return True, {f"roles.{role}"}


CASES = [
    pytest.param(
        name,
        role,
        action,
        sensitivity,
        params,
        approved,
        id=f"{name}-{role}-{action}-{sensitivity}-{params.label}-{'approved' if approved else 'alone'}",
    )
    for name, role, action, sensitivity, params, approved in itertools.product(
        SHIPPED, ROLES, ACTIONS, SENSITIVITIES, PARAMS, (False, True)
    )
    # approvals only matter for exports; the other actions are covered once
    if approved is False or action == "model.export"
]


@pytest.fixture(scope="module")
def shipped() -> dict[str, Policy]:
    return {name: Policy.builtin(name) for name in SHIPPED}


@pytest.mark.parametrize("name,role,action,sensitivity,params,approved", CASES)
def test_decision_matrix(
    shipped: dict[str, Policy],
    name: str,
    role: str,
    action: str,
    sensitivity: str,
    params: Params,
    approved: bool,
) -> None:
    policy = shipped[name]
    request = build_request(name, role, action, sensitivity, params, approved)
    decision = policy.decide(request)
    allowed, rules = expected_outcome(name, role, action, sensitivity, params, approved)
    assert (decision.allowed, decision.rule) in {(allowed, rule) for rule in rules}, decision.to_json()
    assert decision.reason


def test_matrix_covers_every_rule_family(shipped: dict[str, Policy]) -> None:
    seen: set[str] = set()
    for case in CASES:
        _allowed, rules = expected_outcome(*case.values)
        seen |= rules
    for rule in (
        "export.raw_data",
        "forbid.no-browsing-high",
        "forbid.only-dp-models-leave",
        "roles.admin",
        "roles.operator",
        "roles.auditor",
        "privacy.dp_required",
        "privacy.max_epsilon_per_run",
        "privacy.max_delta",
        "privacy.max_lifetime_epsilon",
        "export.approvals_required",
    ):
        assert rule in seen


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_auditors_never_decrypt_records(shipped: dict[str, Policy], name: str) -> None:
    for action in ("dataset.sample", "train", "evaluate", "model.export", "dataset.export", "keys.manage"):
        request = build_request(name, "auditor", action, "low", PARAMS[1], approved=True)
        assert not shipped[name].decide(request).allowed


@pytest.mark.parametrize("name", ["default", "strict"])
def test_budget_numbers_are_in_the_refusal(shipped: dict[str, Policy], name: str) -> None:
    exp = SHIPPED[name]
    assert exp.lifetime is not None
    request = build_request(name, "operator", "train", "high", PARAMS[5], approved=False)
    error = shipped[name].decide(request).to_error()
    assert error.exit_code == 3
    assert error.detail["rule"] == "privacy.max_lifetime_epsilon"
    projected = exp.lifetime * 1.2
    assert f"{projected:.4g}" in error.title and f"{exp.lifetime:g}" in error.title


def test_shipped_policies_say_what_the_issue_says(shipped: dict[str, Policy]) -> None:
    default, strict, research = shipped["default"], shipped["strict"], shipped["research"]
    assert default.dp_required("high") and not default.dp_required("medium")
    assert default.lifetime_epsilon_cap("high") == 20.0 and default.lifetime_epsilon_cap("low") is None
    assert default.approvals_required == 0
    assert strict.dp_required("medium") and strict.dp_required("high") and not strict.dp_required("low")
    assert strict.approvals_required == 1
    assert strict.required_isolation == "namespace+seccomp"
    assert default.required_isolation == "namespace+seccomp"
    assert research.required_isolation == "guard"
    assert not any(research.dp_required(s) for s in SENSITIVITIES)
    for policy in shipped.values():
        doc: dict[str, Any] = policy.to_json()
        assert doc["export"]["raw_data"] is False
        assert not policy.permits("admin", "dataset.export")
