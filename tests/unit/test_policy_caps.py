"""The privacy caps at their boundaries, and the words of their refusals (a cap is reached, not
passed, at equality; the refusal says which dataset, where it would end, and what this run adds)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support import REPO
from vault.policy import Policy, Request
from vault.policy.constraints import Constraints

DEFAULT = Policy.default()  # max_epsilon_per_run 10, max_lifetime_epsilon 20, max_delta 1e-5; high needs DP
XRAYS = {"name": "xrays", "sensitivity": "high", "created": "2025-12-01T00:00:00Z", "digest": "ab" * 32}


def train(**changes: object) -> Request:
    from datetime import UTC, datetime

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
        now=datetime(2026, 1, 15, tzinfo=UTC),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_lifetime_reaching_the_cap_exactly_is_allowed_and_one_past_it_is_not() -> None:
    assert DEFAULT.decide(train(projected_lifetime_epsilon=20.0)).allowed
    refused = DEFAULT.decide(train(projected_lifetime_epsilon=20.0001))
    assert not refused.allowed and refused.rule == "privacy.max_lifetime_epsilon"
    assert refused.reason == (
        "dataset 'xrays' would reach lifetime epsilon 20 (this run: epsilon 2), above the cap of 20"
    )


def test_the_refusal_names_the_noised_metrics_this_run_adds() -> None:
    refused = DEFAULT.decide(train(projected_lifetime_epsilon=21.0, metrics_epsilon=0.5))
    assert refused.reason == (
        "dataset 'xrays' would reach lifetime epsilon 21 (this run: epsilon 2, and epsilon 0.5 for the "
        "noised metrics of its card), above the cap of 20"
    )
    # a policy without a per-run cap can be asked about a run whose own epsilon is not known yet
    text = (REPO / "policies" / "default.toml").read_text("utf-8").replace("max_epsilon_per_run = 10.0\n", "")
    no_per_run = Policy.load(text, source="no-per-run.toml")
    refused = no_per_run.decide(train(epsilon=None, projected_lifetime_epsilon=21.0, metrics_epsilon=0.5))
    assert refused.reason == (
        "dataset 'xrays' would reach lifetime epsilon 21 (this run: epsilon 0.5 for the noised metrics of "
        "its card), above the cap of 20"
    )
    refused = no_per_run.decide(train(epsilon=None, projected_lifetime_epsilon=21.0))
    assert refused.reason == "dataset 'xrays' would reach lifetime epsilon 21, above the cap of 20"


def test_a_ledger_composing_at_the_delta_cap_exactly_is_allowed_and_past_it_is_not() -> None:
    assert DEFAULT.decide(train(lifetime_delta=1e-5)).allowed
    refused = DEFAULT.decide(train(lifetime_delta=1.1e-5))
    assert not refused.allowed and refused.rule == "privacy.max_delta"
    assert refused.reason == "the ledger composes at delta 1.1e-05, above the cap of 1e-05"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("epsilon", "a DP run without an epsilon cannot be checked against the per-run cap"),
        ("delta", "a DP run without a delta cannot be checked against the delta cap"),
    ],
)
def test_a_dp_run_without_its_numbers_cannot_be_checked(missing: str, message: str) -> None:
    constraints = Constraints(DEFAULT.spec)
    check = constraints._epsilon_per_run if missing == "epsilon" else constraints._delta
    with pytest.raises(ValueError) as raised:
        check(train(**{missing: None}))
    assert str(raised.value) == message


def test_which_sensitivities_need_dp_and_carry_the_lifetime_cap() -> None:
    assert DEFAULT.dp_required("high") is True
    assert DEFAULT.dp_required("low") is False
    assert DEFAULT.lifetime_epsilon_cap("high") == 20.0
    assert DEFAULT.lifetime_epsilon_cap("low") is None
