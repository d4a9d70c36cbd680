"""What a request must be before a policy decides it: each malformed fact denied as request.invalid
with a reason that names it (never raised), and the facts every decision records."""

from __future__ import annotations

import math

import pytest

from tests.unit.test_policy_decide import DEFAULT, XRAYS, train


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"actor": ""}, "the request names no actor"),
        ({"dataset": ["xrays"]}, "dataset must be a table of facts"),
        (
            {"dataset": {**XRAYS, "sensitivity": "secret"}},
            "unknown sensitivity 'secret'; expected one of: low, medium, high",
        ),
        # a fact that is absent does not stop the ones after it being checked
        ({"epsilon": None, "delta": -1.0}, "delta must be a finite number greater than 0, got -1.0"),
        ({"epsilon": math.inf}, "epsilon must be a finite number greater than 0, got inf"),
        (
            {"projected_lifetime_epsilon": math.nan},
            "projected_lifetime_epsilon must be a finite number greater than 0, got nan",
        ),
        ({"epsilon": True}, "epsilon must be a finite number greater than 0, got True"),
        ({"epsilon": "2"}, "epsilon must be a finite number greater than 0, got '2'"),
        ({"approvals": (("", "admin"),)}, "each approval must be (user, role), got ('', 'admin')"),
        ({"approvals": ((1, "admin"),)}, "each approval must be (user, role), got (1, 'admin')"),
        ({"approvals": (5,)}, "malformed request: object of type 'int' has no len()"),
    ],
)
def test_a_malformed_fact_is_denied_as_invalid_naming_it(changes: dict, reason: str) -> None:
    decision = DEFAULT.decide(train(**changes))
    assert (decision.allowed, decision.rule, decision.reason) == (False, "request.invalid", reason)


def test_an_unbounded_projection_is_the_only_infinity_a_request_may_carry() -> None:
    assert DEFAULT.decide(train(projected_lifetime_epsilon=math.inf)).rule == "privacy.max_lifetime_epsilon"
    assert DEFAULT.decide(train(metrics_epsilon=math.inf)).rule == "request.invalid"


def test_every_decision_records_the_policy_and_a_role_outside_the_tables_is_granted_nothing() -> None:
    decision = DEFAULT.decide(train())
    assert (decision.facts["policy"], decision.facts["policy_sha256"]) == ("default", DEFAULT.sha256)
    assert DEFAULT.decide(train(actor="")).facts["policy"] == "default", "an invalid request too"
    assert DEFAULT.permits("operator", "train") and not DEFAULT.permits("guest", "train")


def test_a_decision_records_the_rules_it_checked_and_each_further_denial() -> None:
    two = DEFAULT.decide(train(model="vit", epsilon=12.0))
    assert two.rule == "privacy.max_epsilon_per_run"
    assert two.facts["also_denied_by"] == [
        {
            "rule": "models.allowed",
            "reason": "model 'vit' is not allowed; allowed: scatternet, cnn, resnet18, bow, transformer",
        }
    ]
    assert two.facts["rules_checked"] == [
        "isolation.required",
        "privacy.dp_required",
        "privacy.max_epsilon_per_run",
        "privacy.max_delta",
        "privacy.max_lifetime_epsilon",
        "models.allowed",
        "roles.operator",
    ]
    plain = DEFAULT.decide(train(dataset={**XRAYS, "sensitivity": "low"}, dp=False))
    assert (plain.allowed, plain.reason) == (True, "role operator may train"), "no notes, no brackets"
    assert plain.facts["rules_checked"] == ["isolation.required", "models.allowed", "roles.operator"]
    incomplete = DEFAULT.decide(train(model=None))
    assert (incomplete.allowed, incomplete.rule, incomplete.reason) == (
        False,
        "request.incomplete",
        "train needs model, which the request lacks",
    )
