"""What is asked (`Request`) and what the policy answers (`Decision`).

A request carries only facts (who, which action, which dataset, which privacy parameters); the
policy turns them into a decision that names its deciding rule and explains itself with numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vault.errors import PolicyDenied
from vault.policy.checks import (
    Problems,
    check_keys,
    read_bool,
    read_instant,
    read_int,
    read_positive,
    read_str,
    read_table,
    type_name,
)

DATASET_FACTS = ("name", "sensitivity", "created", "digest", "kind", "samples", "ledger_id")

REQUEST_FACTS = (
    "actor",
    "role",
    "action",
    "target",
    "dataset",
    "dp",
    "epsilon",
    "delta",
    "model",
    "projected_lifetime_epsilon",
    "lifetime_delta",
    "accountant",
    "tune",
    "metrics_epsilon",
    "approvals",
    "isolation",
    "now",
)


@dataclass(frozen=True)
class Request:
    """Facts about one action someone wants to take.

    target: what the action is about when that is not a dataset (a user for keys.manage, a model id).
    dataset: {name, sensitivity, created, digest, ...} of the dataset the action touches (for a
        model export: the dataset the model was trained on).
    dp/epsilon/delta: the run's DP parameters (for a model export: the model's).
    projected_lifetime_epsilon: the dataset's composed epsilon after this run, from the ledger;
        None means unbounded (a run without DP was or would be charged).
    lifetime_delta: the delta at which the ledger composes (None: not reported).
    metrics_epsilon: the epsilon of the run's noised card metrics (privacy.card_metrics = "noised"),
        charged beside the training and included in projected_lifetime_epsilon.
    approvals: (user, role) of each authenticated approver of an export.
    isolation: the isolation mode the session reached (None: not reported; the session layer
        enforces the required level before the vault opens).
    now: the decision time (None: the current time).
    """

    actor: str
    role: str
    action: str
    target: str | None = None
    dataset: Mapping[str, Any] | None = None
    dp: bool | None = None
    epsilon: float | None = None
    delta: float | None = None
    model: str | None = None
    projected_lifetime_epsilon: float | None = None
    lifetime_delta: float | None = None
    accountant: str | None = None
    tune: int | None = None  # `train --tune K`: candidates on average (a random-stopping run)
    metrics_epsilon: float | None = None  # a noised card's metrics release, in the projection too
    approvals: tuple[tuple[str, str], ...] = field(default=())
    isolation: str | None = None
    now: datetime | None = None

    def facts(self) -> dict[str, Any]:
        """JSON-ready facts for decisions and audit entries (never record content)."""
        out: dict[str, Any] = {"actor": self.actor, "role": self.role, "action": self.action}
        if self.target is not None:
            out["target"] = self.target
        if self.dataset is not None:
            out["dataset"] = {
                key: (value.isoformat() if isinstance(value, datetime) else value)
                for key, value in self.dataset.items()
                if key in DATASET_FACTS
            }
        for name in (
            "dp",
            "epsilon",
            "delta",
            "model",
            "lifetime_delta",
            "accountant",
            "tune",
            "metrics_epsilon",
            "isolation",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.action == "train" and self.dp is not None:
            out["projected_lifetime_epsilon"] = self.projected_lifetime_epsilon
        if self.approvals:
            out["approvals"] = [{"user": user, "role": role} for user, role in self.approvals]
        return out


RULE_HINTS: dict[str, str] = {
    "request.invalid": "the caller sent a malformed request; check the action, role and facts",
    "request.incomplete": "give the missing fact (see docs/POLICIES.md, 'Facts each action needs')",
    "export.raw_data": "raw records never leave the vault; export a model trained on them instead",
    "isolation.required": "run where the required isolation is available; `strongroom netcheck` shows it",
    "retention.max_dataset_age_days": "the records are past retention: delete the dataset or import fresh records",
    "privacy.dp_required": "train with --dp and an --epsilon within the policy's cap",
    "privacy.max_epsilon_per_run": "ask for a smaller --epsilon (the cap is in the reason)",
    "privacy.max_delta": "ask for a smaller --delta (the cap is in the reason)",
    "privacy.max_lifetime_epsilon": "this dataset's privacy budget cannot pay for the run; `strongroom budget` shows what is left",
    "privacy.accountant": "use the accountant the policy names (`strongroom policy show`)",
    "models.allowed": "choose a model the policy allows (`strongroom policy show`)",
    "export.approver_is_requester": "the approver must be another user than the one who exports",
    "export.approvals_required": "have another operator or admin approve: --approver NAME with "
    "STRONGROOM_APPROVER_PASSPHRASE",
}


def hint_for(rule: str) -> str:
    if rule in RULE_HINTS:
        return RULE_HINTS[rule]
    if rule.startswith("forbid."):
        return "an explicit forbid rule of the vault's policy refuses this; `strongroom policy show` lists it"
    if rule.startswith("roles."):
        return "ask a user whose role may do this, or an admin to change the policy (`strongroom policy set`)"
    return "see `strongroom policy show`"


@dataclass(frozen=True)
class Decision:
    """The answer to a request: allowed or not, the deciding rule, a reason with the numbers.

    facts holds the request's facts, the policy's name and hash, the caps that applied, and
    `also_denied_by` (other rules that would deny too, so one refusal shows every problem).
    """

    allowed: bool
    rule: str
    reason: str
    facts: Mapping[str, Any]

    @property
    def outcome(self) -> str:
        return "allowed" if self.allowed else "denied"

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "outcome": self.outcome,
            "rule": self.rule,
            "reason": self.reason,
            "facts": dict(self.facts),
        }

    def to_error(self) -> PolicyDenied:
        """The PolicyDenied (exit 3) for a denied decision."""
        return PolicyDenied(
            f"refused by policy rule {self.rule}: {self.reason}",
            hint_for(self.rule),
            detail={"rule": self.rule, "reason": self.reason, "facts": dict(self.facts)},
        )

    def raise_if_denied(self) -> Decision:
        if not self.allowed:
            raise self.to_error()
        return self


def request_from_facts(
    facts: Mapping[str, Any], problems: Problems, path: str, *, default_actor: str = "tester"
) -> Request | None:
    """Build a Request from a table of facts (policy tests, `policy check`); problems name keys."""
    check_keys(problems, path, facts, REQUEST_FACTS)
    before = len(problems.items)

    def optional_number(key: str) -> float | None:
        return read_positive(problems, f"{path}.{key}", facts[key]) if key in facts else None

    def optional_str(key: str) -> str | None:
        return read_str(problems, f"{path}.{key}", facts[key]) if key in facts else None

    role = read_str(problems, f"{path}.role", facts.get("role"))
    action = read_str(problems, f"{path}.action", facts.get("action"))
    actor = optional_str("actor") or default_actor
    dataset: dict[str, Any] | None = None
    if "dataset" in facts:
        table = read_table(problems, f"{path}.dataset", facts["dataset"])
        if table is not None:
            check_keys(problems, f"{path}.dataset", table, DATASET_FACTS)
            dataset = {}
            for key in ("name", "sensitivity", "digest", "kind", "ledger_id"):
                if key in table:
                    dataset[key] = read_str(problems, f"{path}.dataset.{key}", table[key])
            if "samples" in table:
                dataset["samples"] = read_int(
                    problems, f"{path}.dataset.samples", table["samples"], minimum=0
                )
            if "created" in table:
                dataset["created"] = read_instant(problems, f"{path}.dataset.created", table["created"])
    dp = read_bool(problems, f"{path}.dp", facts["dp"]) if "dp" in facts else None
    approvals: list[tuple[str, str]] = []
    raw_approvals = facts.get("approvals", [])
    if not isinstance(raw_approvals, Sequence) or isinstance(raw_approvals, str):
        problems.add(
            f"{path}.approvals", f"must be an array of {{user, role}} tables, got {type_name(raw_approvals)}"
        )
    else:
        for index, item in enumerate(raw_approvals):
            where = f"{path}.approvals[{index}]"
            if isinstance(item, Mapping):
                check_keys(problems, where, item, ("user", "role"))
                user = read_str(problems, f"{where}.user", item.get("user"))
                approver_role = read_str(problems, f"{where}.role", item.get("role"))
            elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
                user = read_str(problems, f"{where}[0]", item[0])
                approver_role = read_str(problems, f"{where}[1]", item[1])
            else:
                problems.add(where, f"must be a {{user, role}} table, got {type_name(item)}")
                continue
            if user is not None and approver_role is not None:
                approvals.append((user, approver_role))
    now = read_instant(problems, f"{path}.now", facts["now"]) if "now" in facts else None
    request = Request(
        actor=actor,
        role=role or "",
        action=action or "",
        target=optional_str("target"),
        dataset=dataset,
        dp=dp,
        epsilon=optional_number("epsilon"),
        delta=optional_number("delta"),
        model=optional_str("model"),
        projected_lifetime_epsilon=optional_number("projected_lifetime_epsilon"),
        lifetime_delta=optional_number("lifetime_delta"),
        accountant=optional_str("accountant"),
        tune=int(tune) if (tune := optional_number("tune")) is not None else None,
        metrics_epsilon=optional_number("metrics_epsilon"),
        approvals=tuple(approvals),
        isolation=optional_str("isolation"),
        now=now,
    )
    return request if len(problems.items) == before else None
