"""Policies: declarative rules that decide, at the vault's one door, who may do what, and why.

Glossary:
  policy file   TOML in policies/ (schema in docs/POLICIES.md), validated on load.
  request       facts about one action: actor, role, action, dataset, DP parameters, approvals.
  decision      allowed or denied, the deciding rule id (e.g. `privacy.max_epsilon_per_run`), a reason.
  rule id       `roles.<role>` permits; `forbid.<id>` and the built-in constraints deny.
Semantics follow Cedar: deny by default, a forbid overrides any permit, a rule that errors denies.
"""

from vault.policy.constraints import RULES
from vault.policy.engine import BUILTIN_NAMES, Policy, TestResult, builtin_policy_text
from vault.policy.request import Decision, Request
from vault.vocabulary import ACTIONS, ISOLATION_LEVELS, ROLES, SENSITIVITIES

__all__ = [
    "ACTIONS",
    "BUILTIN_NAMES",
    "ISOLATION_LEVELS",
    "ROLES",
    "RULES",
    "SENSITIVITIES",
    "Decision",
    "Policy",
    "Request",
    "TestResult",
    "builtin_policy_text",
]
