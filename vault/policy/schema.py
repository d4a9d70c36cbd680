"""The policy file schema: parse TOML into frozen rule tables, refusing anything unclear.

Unknown keys, wrong types, non-positive caps, unknown roles or actions, raw-data export and a policy
that locks every admin out are all refused here, before a policy can decide anything.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from vault.errors import InputError
from vault.policy.checks import (
    Problems,
    check_keys,
    read_bool,
    read_int,
    read_positive,
    read_str,
    read_str_list,
    read_table,
)
from vault.policy.request import Request, request_from_facts
from vault.vocabulary import (
    ACCOUNTANTS,
    ACTIONS,
    ADMIN_ESSENTIAL,
    CARD_METRICS_MODES,
    DEFAULT_APPROVER_ROLES,
    DEFAULT_CARD_METRICS,
    RAW_EXPORT_ACTION,
    RECORD_ACTIONS,
    REQUIRABLE_ISOLATION,
    ROLES,
    SENSITIVITIES,
)

SECTIONS = ("policy", "roles", "privacy", "models", "export", "isolation", "retention", "forbid", "test")
REQUIRED_SECTIONS = ("policy", "roles", "privacy", "models", "export", "isolation")
FORBID_MATCHERS = ("actions", "roles", "users", "datasets", "sensitivity", "models", "dp")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_APPROVALS = 1  # the export command authenticates one approver


@dataclass(frozen=True)
class PrivacyRules:
    dp_required_for: frozenset[str]
    max_epsilon_per_run: float | None
    max_lifetime_epsilon: float | None
    max_delta: float | None
    accountant: str
    card_metrics: str = DEFAULT_CARD_METRICS  # what a card publishes of its held-out figures
    card_metrics_epsilon: float = 0.5  # a "noised" card's budget per run, charged to the ledger


@dataclass(frozen=True)
class ExportRules:
    approvals_required: int
    approver_roles: tuple[str, ...]


@dataclass(frozen=True)
class ForbidRule:
    """An explicit forbid: it matches a request when every matcher it sets matches.

    A matcher over a fact the request does not carry (e.g. `datasets` for `policy.set`) does not match.
    """

    id: str
    reason: str
    actions: frozenset[str] | None = None
    roles: frozenset[str] | None = None
    users: frozenset[str] | None = None
    datasets: frozenset[str] | None = None
    sensitivity: frozenset[str] | None = None
    models: frozenset[str] | None = None
    dp: bool | None = None

    @property
    def rule_id(self) -> str:
        return f"forbid.{self.id}"

    def matches(self, request: Request) -> bool:
        dataset = request.dataset or {}
        checks: list[tuple[frozenset[str] | None, object]] = [
            (self.actions, request.action),
            (self.roles, request.role),
            (self.users, request.actor),
            (self.datasets, dataset.get("name")),
            (self.sensitivity, dataset.get("sensitivity")),
            (self.models, request.model),
        ]
        for allowed, value in checks:
            if allowed is not None and value not in allowed:
                return False
        return self.dp is None or request.dp is self.dp

    def is_unconditional_for(self, role: str, action: str) -> bool:
        """True when this forbid refuses every user of `role` doing `action`, whatever the facts."""
        if self.actions is not None and action not in self.actions:
            return False
        if self.roles is not None and role not in self.roles:
            return False
        return all(
            getattr(self, name) is None for name in ("users", "datasets", "sensitivity", "models", "dp")
        )

    def summary(self) -> str:
        parts = []
        for name in FORBID_MATCHERS:
            value = getattr(self, name)
            if value is None:
                continue
            shown = str(value).lower() if isinstance(value, bool) else ", ".join(sorted(value))
            parts.append(f"{name} in [{shown}]" if not isinstance(value, bool) else f"dp = {shown}")
        return f"forbid when {' and '.join(parts)}: {self.reason}"


@dataclass(frozen=True)
class PolicyTest:
    """One `[[test]]` case: input facts and the decision (and optionally rule) they must produce."""

    index: int
    name: str
    request: Request
    expect_allowed: bool
    rule: str | None
    reason_contains: str | None


@dataclass(frozen=True)
class PolicySpec:
    name: str
    version: int
    description: str
    roles: Mapping[str, tuple[str, ...]]
    privacy: PrivacyRules
    models_allowed: tuple[str, ...]
    export: ExportRules
    isolation_required: str
    max_dataset_age_days: int | None
    forbids: tuple[ForbidRule, ...]
    tests: tuple[PolicyTest, ...]


MAX_POLICY_BYTES = 1 << 20  # a policy is a short file; anything larger is refused unread


def parse_policy(text: str, source: str) -> PolicySpec:
    """Parse and validate a policy file's text; raises InputError naming every bad key."""
    problems = Problems(source)
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise InputError(
            f"policy {source} is larger than {MAX_POLICY_BYTES // 2**20} MiB",
            "a policy is a short TOML file: check that this is the right file",
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.add("(file)", f"not valid TOML: {exc}")
        problems.raise_if_any()
        raise AssertionError("unreachable") from exc
    except RecursionError:
        raise InputError(
            f"policy {source}: its arrays or tables nest too deeply to read",
            "a policy's values nest a level or two: check that this is the right file",
        ) from None
    check_keys(problems, "", data, SECTIONS)
    for section in REQUIRED_SECTIONS:
        if section not in data:
            problems.add(section, f"missing section [{section}]")
    problems.raise_if_any()

    header = read_table(problems, "policy", data["policy"]) or {}
    check_keys(problems, "policy", header, ("name", "version", "description"))
    name = read_str(problems, "policy.name", header.get("name"))
    version = read_int(problems, "policy.version", header.get("version"), minimum=1)
    description = ""
    if "description" in header:
        description = read_str(problems, "policy.description", header["description"]) or ""

    roles = _parse_roles(problems, data["roles"])
    privacy = _parse_privacy(problems, data["privacy"])
    models_table = read_table(problems, "models", data["models"]) or {}
    check_keys(problems, "models", models_table, ("allowed",))
    models_allowed = read_str_list(problems, "models.allowed", models_table.get("allowed")) or ()
    export = _parse_export(problems, data["export"])
    isolation_table = read_table(problems, "isolation", data["isolation"]) or {}
    check_keys(problems, "isolation", isolation_table, ("required",))
    isolation = read_str(
        problems, "isolation.required", isolation_table.get("required"), choices=REQUIRABLE_ISOLATION
    )
    max_age: int | None = None
    if "retention" in data:
        retention = read_table(problems, "retention", data["retention"]) or {}
        check_keys(problems, "retention", retention, ("max_dataset_age_days",))
        if "max_dataset_age_days" in retention:
            max_age = read_int(
                problems, "retention.max_dataset_age_days", retention["max_dataset_age_days"], minimum=1
            )
    forbids = _parse_forbids(problems, data.get("forbid", []))
    _check_admin_reach(problems, roles, forbids)
    problems.raise_if_any()
    tests = _parse_tests(problems, data.get("test", []), isolation or "none")
    problems.raise_if_any()
    assert name is not None and version is not None and isolation is not None
    return PolicySpec(
        name=name,
        version=version,
        description=description,
        roles=MappingProxyType(roles),
        privacy=privacy,
        models_allowed=models_allowed,
        export=export,
        isolation_required=isolation,
        max_dataset_age_days=max_age,
        forbids=forbids,
        tests=tests,
    )


def _parse_roles(problems: Problems, value: object) -> dict[str, tuple[str, ...]]:
    table = read_table(problems, "roles", value) or {}
    roles: dict[str, tuple[str, ...]] = {}
    for role, actions in table.items():
        path = f"roles.{role}"
        if role not in ROLES:
            problems.add(path, f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")
            continue
        granted = read_str_list(problems, path, actions, choices=ACTIONS)
        if granted is None:
            continue
        if RAW_EXPORT_ACTION in granted:
            problems.add(path, f"{RAW_EXPORT_ACTION} may not be granted: raw records can never be exported")
            continue
        if role == "auditor":
            decrypting = sorted(RECORD_ACTIONS.intersection(granted))
            if decrypting:
                problems.add(path, f"auditors never decrypt records; remove {', '.join(decrypting)}")
                continue
        roles[role] = granted
    return roles


def _parse_privacy(problems: Problems, value: object) -> PrivacyRules:
    table = read_table(problems, "privacy", value) or {}
    check_keys(
        problems,
        "privacy",
        table,
        (
            "dp_required_for",
            "max_epsilon_per_run",
            "max_lifetime_epsilon",
            "max_delta",
            "accountant",
            "card_metrics",
            "card_metrics_epsilon",
        ),
    )
    if "dp_required_for" not in table:
        problems.add("privacy.dp_required_for", "missing; list the sensitivities that need DP ([] for none)")
    required = (
        read_str_list(
            problems, "privacy.dp_required_for", table.get("dp_required_for", []), choices=SENSITIVITIES
        )
        or ()
    )

    def cap(key: str, below: float | None = None) -> float | None:
        return read_positive(problems, f"privacy.{key}", table[key], below=below) if key in table else None

    per_run = cap("max_epsilon_per_run")
    lifetime = cap("max_lifetime_epsilon")
    if per_run is not None and lifetime is not None and per_run > lifetime:
        problems.add(
            "privacy.max_epsilon_per_run",
            f"{per_run:g} is above max_lifetime_epsilon {lifetime:g}; no run could use it",
        )
    accountant = "prv"
    if "accountant" in table:
        accountant = (
            read_str(problems, "privacy.accountant", table["accountant"], choices=ACCOUNTANTS) or "prv"
        )
    card_metrics = DEFAULT_CARD_METRICS
    if "card_metrics" in table:
        card_metrics = (
            read_str(problems, "privacy.card_metrics", table["card_metrics"], choices=CARD_METRICS_MODES)
            or DEFAULT_CARD_METRICS
        )
    metrics_epsilon = cap("card_metrics_epsilon") if "card_metrics_epsilon" in table else None
    return PrivacyRules(
        dp_required_for=frozenset(required),
        max_epsilon_per_run=per_run,
        max_lifetime_epsilon=lifetime,
        max_delta=cap("max_delta", below=1.0),
        accountant=accountant,
        card_metrics=card_metrics,
        card_metrics_epsilon=metrics_epsilon or 0.5,
    )


def _parse_export(problems: Problems, value: object) -> ExportRules:
    table = read_table(problems, "export", value) or {}
    check_keys(problems, "export", table, ("raw_data", "approvals_required", "approver_roles"))
    if "raw_data" not in table:
        problems.add("export.raw_data", "missing; it must be present and false")
    else:
        raw = read_bool(problems, "export.raw_data", table["raw_data"])
        if raw is True:
            problems.add("export.raw_data", "must be false: raw records can never be exported")
    approvals = 0
    if "approvals_required" not in table:
        problems.add(
            "export.approvals_required", "missing; 0 (one person exports) or 1 (a second person approves)"
        )
    else:
        approvals = (
            read_int(
                problems,
                "export.approvals_required",
                table["approvals_required"],
                minimum=0,
                maximum=MAX_APPROVALS,
            )
            or 0
        )
    approver_roles = DEFAULT_APPROVER_ROLES
    if "approver_roles" in table:
        approver_roles = (
            read_str_list(problems, "export.approver_roles", table["approver_roles"], choices=ROLES)
            or DEFAULT_APPROVER_ROLES
        )
        if not table["approver_roles"]:
            problems.add("export.approver_roles", "must name at least one role")
    return ExportRules(approvals_required=approvals, approver_roles=tuple(approver_roles))


def _parse_forbids(problems: Problems, value: object) -> tuple[ForbidRule, ...]:
    if not isinstance(value, list):
        problems.add("forbid", "must be an array of tables: write each rule as [[forbid]]")
        return ()
    rules: list[ForbidRule] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        path = f"forbid[{index}]"
        table = read_table(problems, path, item)
        if table is None:
            continue
        check_keys(problems, path, table, ("id", "reason", *FORBID_MATCHERS))
        rule_id = read_str(problems, f"{path}.id", table.get("id"))
        if rule_id is not None and not RULE_ID.match(rule_id):
            problems.add(
                f"{path}.id", f"{rule_id!r} must be lowercase letters, digits, '-' or '_' (at most 63)"
            )
            rule_id = None
        if rule_id is not None and rule_id in seen:
            problems.add(f"{path}.id", f"{rule_id!r} is used by an earlier forbid rule")
            rule_id = None
        reason = read_str(problems, f"{path}.reason", table.get("reason"))
        choices: dict[str, tuple[str, ...] | None] = {
            "actions": ACTIONS,
            "roles": ROLES,
            "users": None,
            "datasets": None,
            "sensitivity": SENSITIVITIES,
            "models": None,
        }
        matchers: dict[str, Any] = {}
        ok = rule_id is not None and reason is not None
        for key, options in choices.items():
            if key in table:
                listed = read_str_list(problems, f"{path}.{key}", table[key], choices=options)
                if listed is None:
                    ok = False
                elif not listed:
                    problems.add(f"{path}.{key}", "must list at least one value (leave it out to match any)")
                    ok = False
                else:
                    matchers[key] = frozenset(listed)
        if "dp" in table:
            dp = read_bool(problems, f"{path}.dp", table["dp"])
            ok = ok and dp is not None
            matchers["dp"] = dp
        if not any(key in table for key in FORBID_MATCHERS):
            problems.add(path, f"sets no matcher; give at least one of: {', '.join(FORBID_MATCHERS)}")
            ok = False
        if ok:
            assert rule_id is not None and reason is not None
            seen.add(rule_id)
            rules.append(ForbidRule(id=rule_id, reason=reason, **matchers))
    return tuple(rules)


def _check_admin_reach(
    problems: Problems, roles: Mapping[str, tuple[str, ...]], forbids: tuple[ForbidRule, ...]
) -> None:
    """Refuse a policy under which no admin could unlock, manage keys or change the policy."""
    granted = roles.get("admin", ())
    for action in ADMIN_ESSENTIAL:
        if action not in granted:
            problems.add(
                "roles.admin", f"must include {action!r}: without it every admin is locked out of the vault"
            )
            continue
        for rule in forbids:
            if rule.is_unconditional_for("admin", action):
                problems.add(
                    f"forbid[{forbids.index(rule)}]",
                    f"forbids every admin {action!r}: that locks every admin out of the vault",
                )


def _parse_tests(problems: Problems, value: object, required_isolation: str) -> tuple[PolicyTest, ...]:
    if not isinstance(value, list):
        problems.add("test", "must be an array of tables: write each case as [[test]]")
        return ()
    tests: list[PolicyTest] = []
    for index, item in enumerate(value):
        path = f"test[{index}]"
        table = read_table(problems, path, item)
        if table is None:
            continue
        check_keys(problems, path, table, ("name", "input", "expect", "rule", "reason_contains"))
        name = read_str(problems, f"{path}.name", table.get("name"))
        expect = read_str(problems, f"{path}.expect", table.get("expect"), choices=("allowed", "denied"))
        rule = read_str(problems, f"{path}.rule", table["rule"]) if "rule" in table else None
        contains = (
            read_str(problems, f"{path}.reason_contains", table["reason_contains"])
            if "reason_contains" in table
            else None
        )
        facts = read_table(problems, f"{path}.input", table.get("input"))
        request = None
        if facts is not None:
            facts = dict(facts)
            facts.setdefault("isolation", required_isolation)
            request = request_from_facts(facts, problems, f"{path}.input")
            if (
                request is not None
                and request.now is None
                and request.dataset
                and request.dataset.get("created")
            ):
                request = replace(request, now=request.dataset["created"])
        if name is not None and expect is not None and request is not None:
            tests.append(
                PolicyTest(
                    index=index,
                    name=name,
                    request=request,
                    expect_allowed=expect == "allowed",
                    rule=rule,
                    reason_contains=contains,
                )
            )
    return tuple(tests)
