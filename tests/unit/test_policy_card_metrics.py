"""The policy's `card_metrics` setting: what a model card publishes of its held-out figures."""

from __future__ import annotations

import pytest

from tests.support import REPO
from vault.errors import InputError
from vault.policy import Policy

DEFAULT_TEXT = (REPO / "policies" / "default.toml").read_text("utf-8")


def with_privacy(lines: str) -> str:
    """The default policy with `lines` as its only card_metrics settings."""
    text = "\n".join(line for line in DEFAULT_TEXT.splitlines() if not line.startswith("card_metrics"))
    return text.replace('accountant = "prv"\n', f'accountant = "prv"\n{lines}\n', 1)


@pytest.mark.parametrize(
    ("name", "mode"), [("default", "marked"), ("research", "marked"), ("strict", "noised")]
)
def test_shipped_policies_choose_their_mode(name: str, mode: str) -> None:
    policy = Policy.builtin(name)
    assert policy.card_metrics == mode
    assert policy.to_json()["privacy"]["card_metrics"] == mode
    assert policy.card_metrics_epsilon == pytest.approx(0.5)


def test_a_policy_that_omits_it_marks_exact_figures() -> None:
    text = "\n".join(line for line in DEFAULT_TEXT.splitlines() if not line.startswith("card_metrics"))
    assert "card_metrics" not in text
    policy = Policy.load(text)
    assert policy.card_metrics == "marked" and policy.card_metrics_epsilon == pytest.approx(0.5)


def test_noised_with_its_own_budget() -> None:
    text = with_privacy('card_metrics = "noised"\ncard_metrics_epsilon = 1.25')
    policy = Policy.load(text)
    assert policy.card_metrics == "noised" and policy.card_metrics_epsilon == 1.25
    assert policy.to_json()["privacy"]["card_metrics_epsilon"] == 1.25


@pytest.mark.parametrize(
    ("line", "key", "problem"),
    [
        ('card_metrics = "hidden"', "privacy.card_metrics", "expected one of: noised, marked"),
        ("card_metrics = true", "privacy.card_metrics", "non-empty string"),
        ("card_metrics_epsilon = 0", "privacy.card_metrics_epsilon", "greater than 0"),
        ('card_metrics_epsilon = "half"', "privacy.card_metrics_epsilon", "must be a number"),
        ("card_metrics_epsilon = nan", "privacy.card_metrics_epsilon", "finite"),
    ],
)
def test_bad_values_are_refused_naming_the_setting_and_the_choices(line: str, key: str, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        Policy.load(with_privacy(line), source="test.toml")
    problems = [(item["key"], item["problem"]) for item in caught.value.detail["errors"]]
    assert any(k == key and problem in message for k, message in problems), problems
    assert caught.value.exit_code == 1 and caught.value.hint
