"""The rules a policy applies beyond its role tables: each a check that returns None when it does not
apply, else (passes, text), where the text is the denial's reason or a note for the allowed reason.

RULES names every built-in rule id a decision can cite; REQUIRED_FACTS the facts each action needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from vault.policy.checks import to_utc
from vault.policy.request import Request
from vault.policy.schema import ForbidRule, PolicySpec
from vault.vocabulary import (
    ACTIONS,
    ISOLATION_LEVELS,
    RAW_EXPORT_ACTION,
    RECORD_ACTIONS,
    ROLES,
    SENSITIVITIES,
    isolation_rank,
)

Verdict = tuple[bool, str] | None
PRIVACY_ACTIONS = frozenset({"train", "model.export"})

# Facts a request must carry for an action to be decided; missing ones deny (request.incomplete).
REQUIRED_FACTS: dict[str, tuple[str, ...]] = {
    "dataset.import": ("dataset",),
    "dataset.sample": ("dataset",),
    "dataset.delete": ("dataset",),
    "dataset.export": ("dataset",),
    "train": ("dataset", "dp", "model"),
    "evaluate": ("dataset",),
    "model.export": ("dataset", "dp", "model"),
}

# Built-in rule ids and what each one checks. Explicit rules add `forbid.<id>`, and every
# role adds `roles.<role>` (which permits its listed actions; anything unlisted is denied by default
# and the denial names `roles.<role>`, the table to change).
RULES: dict[str, str] = {
    "request.invalid": "the request names an unknown action, role, sensitivity or malformed fact",
    "request.incomplete": "the request lacks a fact the action needs (e.g. train needs dataset, dp, model)",
    "export.raw_data": "raw records are never exported, whatever the roles say",
    "isolation.required": "the session's isolation level must reach [isolation] required",
    "retention.max_dataset_age_days": "records older than the limit may not be sampled, trained on or evaluated",
    "privacy.dp_required": "training on (or exporting a model of) a listed sensitivity needs DP",
    "privacy.max_epsilon_per_run": "a DP run's epsilon may not exceed the per-run cap",
    "privacy.max_delta": "a DP run's delta (and the ledger's) may not exceed the cap",
    "privacy.max_lifetime_epsilon": "the dataset's composed epsilon after the run may not exceed the lifetime cap",
    "privacy.accountant": "DP runs use the accountant the policy names",
    "models.allowed": "only listed model architectures may be trained",
    "export.approver_is_requester": "an export's approver must be someone other than the requester",
    "export.approvals_required": "a model export needs this many approvals from other users of approver roles",
}


class Constraints:
    """The constraint checks of one policy."""

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec

    def checks(self) -> list[tuple[str, Callable[[Request], Verdict]]]:
        """Each constraint with its rule id, in the order decisions report them."""
        return [
            ("isolation.required", self._isolation),
            ("retention.max_dataset_age_days", self._retention),
            ("privacy.dp_required", self._dp_required),
            ("privacy.max_epsilon_per_run", self._epsilon_per_run),
            ("privacy.max_delta", self._delta),
            ("privacy.max_lifetime_epsilon", self._lifetime),
            ("privacy.accountant", self._accountant),
            ("models.allowed", self._models),
            ("export.approver_is_requester", self._self_approval),
            ("export.approvals_required", self._approvals),
        ]

    def _isolation(self, request: Request) -> Verdict:
        if request.isolation is None:
            return None
        required = self.spec.isolation_required
        if isolation_rank(request.isolation) < isolation_rank(required):
            return (
                False,
                f"the session's isolation {request.isolation!r} is weaker than the required {required!r}",
            )
        return True, ""

    def _retention(self, request: Request) -> Verdict:
        limit = self.spec.max_dataset_age_days
        if limit is None or request.action not in RECORD_ACTIONS:
            return None
        dataset = request.dataset or {}
        if dataset.get("created") is None:
            raise ValueError(
                f"dataset {dataset.get('name')!r} has no creation time to check retention against"
            )
        created = to_utc(dataset["created"])
        now = to_utc(request.now) if request.now is not None else datetime.now(UTC)
        age = (now - created).total_seconds() / 86400
        if age > limit:
            return False, (
                f"dataset {dataset.get('name')!r} was created {created.date().isoformat()}, "
                f"{age:.1f} days ago; records older than {limit} days may not be used"
            )
        return True, f"dataset age {age:.1f} <= {limit} days"

    def _sensitivity_needs_dp(self, request: Request) -> bool:
        return (request.dataset or {}).get("sensitivity") in self.spec.privacy.dp_required_for

    def _dp_required(self, request: Request) -> Verdict:
        if request.action not in PRIVACY_ACTIONS or not self._sensitivity_needs_dp(request):
            return None
        sensitivity = (request.dataset or {}).get("sensitivity")
        if request.dp is not True:
            what = "the run is" if request.action == "train" else "the model was trained"
            return False, (
                f"dataset {(request.dataset or {}).get('name')!r} is {sensitivity} sensitivity, "
                f"which requires DP, and {what} without DP"
            )
        return True, f"DP on for {sensitivity} sensitivity"

    def _privacy_applies(self, request: Request) -> bool:
        return (
            request.action in PRIVACY_ACTIONS and request.dp is True and self._sensitivity_needs_dp(request)
        )

    def _epsilon_per_run(self, request: Request) -> Verdict:
        cap = self.spec.privacy.max_epsilon_per_run
        if cap is None or not self._privacy_applies(request):
            return None
        if request.epsilon is None:
            raise ValueError("a DP run without an epsilon cannot be checked against the per-run cap")
        if request.epsilon > cap:
            return False, f"epsilon {request.epsilon:g} per run is above the cap of {cap:g}"
        return True, f"epsilon {request.epsilon:g} <= {cap:g} per run"

    def _delta(self, request: Request) -> Verdict:
        cap = self.spec.privacy.max_delta
        if cap is None or not self._privacy_applies(request):
            return None
        if request.delta is None:
            raise ValueError("a DP run without a delta cannot be checked against the delta cap")
        if request.delta > cap:
            return False, f"delta {request.delta:g} is above the cap of {cap:g}"
        if request.lifetime_delta is not None and request.lifetime_delta > cap:
            return False, f"the ledger composes at delta {request.lifetime_delta:g}, above the cap of {cap:g}"
        return True, f"delta {request.delta:g} <= {cap:g}"

    def _lifetime(self, request: Request) -> Verdict:
        cap = self.spec.privacy.max_lifetime_epsilon
        if cap is None or request.action != "train" or not self._privacy_applies(request):
            return None
        name = (request.dataset or {}).get("name")
        projected = request.projected_lifetime_epsilon
        if projected is None or math.isinf(projected):
            return False, (
                f"dataset {name!r} has no bounded lifetime epsilon to hold to the cap of {cap:g}: "
                f"unbounded (a run without DP was charged to it) or not projected by the ledger"
            )
        if projected > cap:
            this_run = f" (this run: epsilon {request.epsilon:g}" if request.epsilon is not None else ""
            if request.metrics_epsilon is not None:
                this_run += (
                    f"{', and' if this_run else ' (this run:'} epsilon {request.metrics_epsilon:g} "
                    "for the noised metrics of its card"
                )
            this_run += ")" if this_run else ""
            return False, (
                f"dataset {name!r} would reach lifetime epsilon {projected:.4g}{this_run}, "
                f"above the cap of {cap:g}"
            )
        return True, f"lifetime epsilon {projected:.4g} <= {cap:g}"

    def _accountant(self, request: Request) -> Verdict:
        if request.action != "train" or request.dp is not True or request.accountant is None:
            return None
        wanted = self.spec.privacy.accountant
        if request.tune is not None and request.accountant == "rdp":
            return True, "a tuned run is accounted in RDP: its random-stopping bound is an RDP bound"
        if request.accountant != wanted:
            return (
                False,
                f"the run asks for the {request.accountant} accountant; the policy requires {wanted}",
            )
        return True, ""

    def _models(self, request: Request) -> Verdict:
        if request.action != "train":
            return None
        allowed = self.spec.models_allowed
        if request.model not in allowed:
            return False, f"model {request.model!r} is not allowed; allowed: {', '.join(allowed) or '(none)'}"
        return True, ""

    def _self_approval(self, request: Request) -> Verdict:
        if request.action != "model.export" or not request.approvals:
            return None
        if any(user == request.actor for user, _ in request.approvals):
            return False, f"{request.actor} cannot approve their own export"
        return True, ""

    def _approvals(self, request: Request) -> Verdict:
        if request.action != "model.export":
            return None
        export = self.spec.export
        valid: set[str] = set()
        ignored: list[str] = []
        for user, role in request.approvals:
            if user == request.actor:
                continue
            if role not in export.approver_roles:
                ignored.append(f"{user} ({role}: role may not approve)")
            else:
                valid.add(user)
        needed = export.approvals_required
        if len(valid) < needed:
            roles = " or ".join(export.approver_roles)
            also = f"; ignored: {', '.join(ignored)}" if ignored else ""
            return False, (
                f"a model export needs {needed} approval(s) from another {roles}, got {len(valid)}{also}"
            )
        if needed == 0:
            return True, "no approval required"
        return True, f"approved by {', '.join(sorted(valid))}"


def forbid_verdict(rule: ForbidRule, request: Request) -> Verdict:
    return (False, rule.reason) if rule.matches(request) else None


def raw_data(request: Request) -> Verdict:
    if request.action != RAW_EXPORT_ACTION:
        return None
    return False, "raw records can never be exported (export.raw_data = false in every policy)"


def request_problem(request: Request) -> str | None:
    if request.action not in ACTIONS:
        return f"unknown action {request.action!r}"
    if request.role not in ROLES:
        return f"unknown role {request.role!r}"
    if not isinstance(request.actor, str) or not request.actor:
        return "the request names no actor"
    if request.dataset is not None:
        if not isinstance(request.dataset, Mapping):
            return "dataset must be a table of facts"
        sensitivity = request.dataset.get("sensitivity")
        if sensitivity is not None and sensitivity not in SENSITIVITIES:
            return f"unknown sensitivity {sensitivity!r}; expected one of: {', '.join(SENSITIVITIES)}"
    if request.dp is not None and not isinstance(request.dp, bool):
        return f"dp must be true or false, got {request.dp!r}"
    for key in ("epsilon", "delta", "projected_lifetime_epsilon", "lifetime_delta", "metrics_epsilon"):
        value = getattr(request, key)
        if value is None:
            continue
        unbounded_ok = key == "projected_lifetime_epsilon" and value == math.inf
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value <= 0
            or not (math.isfinite(value) or unbounded_ok)
        ):
            return f"{key} must be a finite number greater than 0, got {value!r}"
    for key in ("delta", "lifetime_delta"):
        value = getattr(request, key)
        if value is not None and value >= 1:
            return f"{key} must be below 1, got {value!r}"
    for approval in request.approvals:
        if len(approval) != 2 or not all(isinstance(part, str) and part for part in approval):
            return f"each approval must be (user, role), got {approval!r}"
    if request.isolation is not None and request.isolation not in ISOLATION_LEVELS:
        return f"unknown isolation mode {request.isolation!r}"
    return None


def missing_facts(request: Request) -> list[str]:
    missing = []
    for fact in REQUIRED_FACTS.get(request.action, ()):
        if getattr(request, fact) is None:
            missing.append(fact)
    if request.dataset is not None and request.action in REQUIRED_FACTS:
        for key in ("name", "sensitivity") if "dataset" in REQUIRED_FACTS[request.action] else ():
            if not request.dataset.get(key):
                missing.append(f"dataset.{key}")
    return missing
