"""The Policy: a validated policy file that decides requests and explains each decision.

Semantics follow Cedar: deny by default, an explicit forbid overrides any permit, and a rule that
fails to evaluate denies. Every decision names the deciding rule and gives the numbers.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from vault.errors import InputError, NotFound
from vault.policy.checks import to_utc
from vault.policy.request import Decision, Request
from vault.policy.schema import ForbidRule, PolicySpec, PolicyTest, parse_policy
from vault.policy.vocabulary import (
    ACTIONS,
    RAW_EXPORT_ACTION,
    RECORD_ACTIONS,
    REQUIRED_FACTS,
    ROLES,
    SENSITIVITIES,
    isolation_rank,
)

BUILTIN_NAMES = ("default", "strict", "research")
PRIVACY_ACTIONS = frozenset({"train", "model.export"})

# A check returns None when it does not apply, else (passes, text): the text is the denial reason
# when it fails and a note for the allowed reason when it passes.
Verdict = tuple[bool, str] | None


def builtin_policy_text(name: str) -> str:
    """Text of a shipped policy: the repository's policies/ first, then the installed package copy."""
    if name not in BUILTIN_NAMES:
        raise NotFound(f"no shipped policy named {name!r}", f"choose one of: {', '.join(BUILTIN_NAMES)}")
    repo_file = Path(__file__).resolve().parents[2] / "policies" / f"{name}.toml"
    if repo_file.is_file():
        return repo_file.read_text(encoding="utf-8")
    packaged = resources.files("vault.policy").joinpath("builtin", f"{name}.toml")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    raise NotFound(
        f"shipped policy {name!r} is missing from this installation",
        "reinstall strongroom, or pass a policy file explicitly",
    )


@dataclass(frozen=True)
class TestResult:
    name: str
    index: int
    passed: bool
    expected: str
    expected_rule: str | None
    decision: Decision
    problem: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "passed": self.passed,
            "expected": self.expected,
            "expected_rule": self.expected_rule,
            "got": self.decision.outcome,
            "rule": self.decision.rule,
            "reason": self.decision.reason,
            **({"problem": self.problem} if self.problem else {}),
        }


class Policy:
    """A loaded policy. Keeps the exact text and its SHA-256 so the vault can store and cite it."""

    def __init__(self, spec: PolicySpec, text: str, source: str) -> None:
        self.spec = spec
        self.text = text
        self.source = source
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()

    # construction ---------------------------------------------------------------------------

    @classmethod
    def load(cls, text: str, *, source: str = "<policy>") -> Policy:
        """Validate `text`; raises InputError naming the key path and the problem."""
        if not isinstance(text, str):
            raise InputError(
                f"policy {source}: expected text, got {type(text).__name__}",
                "pass the policy file's content as a string",
            )
        return _load_cached(text, source)

    @classmethod
    def from_file(cls, path: Path | str) -> Policy:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(f"policy file {file} does not exist", "check the path") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"policy file {file} cannot be read: {exc}", "pass a UTF-8 TOML file") from None
        return cls.load(text, source=str(file))

    @classmethod
    def builtin(cls, name: str) -> Policy:
        return cls.load(builtin_policy_text(name), source=f"policies/{name}.toml")

    @classmethod
    def default(cls) -> Policy:
        """The shipped policies/default.toml, used when a vault is created without a policy."""
        return cls.builtin("default")

    # what the rest of the vault asks -------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def required_isolation(self) -> str:
        return self.spec.isolation_required

    @property
    def accountant(self) -> str:
        return self.spec.privacy.accountant

    @property
    def approvals_required(self) -> int:
        return self.spec.export.approvals_required

    def dp_required(self, sensitivity: str) -> bool:
        return sensitivity in self.spec.privacy.dp_required_for

    def lifetime_epsilon_cap(self, sensitivity: str) -> float | None:
        """The lifetime cap that applies to a dataset of this sensitivity (None: none applies)."""
        return self.spec.privacy.max_lifetime_epsilon if self.dp_required(sensitivity) else None

    def permits(self, role: str, action: str) -> bool:
        """Whether `[roles]` grants the action (forbids and caps are not considered)."""
        return action in self.spec.roles.get(role, ())

    def rules(self) -> list[dict[str, str]]:
        """Every rule of this policy with its id, effect and what it says, in evaluation order."""
        spec = self.spec
        privacy = spec.privacy
        out = [{"id": "export.raw_data", "effect": "forbid", "text": "raw records are never exported"}]
        out += [{"id": rule.rule_id, "effect": "forbid", "text": rule.summary()} for rule in spec.forbids]
        for role in ROLES:
            granted = spec.roles.get(role, ())
            out.append(
                {
                    "id": f"roles.{role}",
                    "effect": "permit",
                    "text": f"{role} may: {', '.join(granted)}" if granted else f"{role} may do nothing",
                }
            )
        required = ", ".join(s for s in SENSITIVITIES if s in privacy.dp_required_for) or "no sensitivity"
        out.append(
            {
                "id": "isolation.required",
                "effect": "forbid",
                "text": f"sessions below {spec.isolation_required} isolation are refused",
            }
        )
        if spec.max_dataset_age_days is not None:
            out.append(
                {
                    "id": "retention.max_dataset_age_days",
                    "effect": "forbid",
                    "text": f"records older than {spec.max_dataset_age_days} days are not used",
                }
            )
        out.append(
            {
                "id": "privacy.dp_required",
                "effect": "forbid",
                "text": f"training without DP is refused for: {required}",
            }
        )
        for key, label in (
            ("max_epsilon_per_run", "epsilon per run"),
            ("max_delta", "delta"),
            ("max_lifetime_epsilon", "lifetime epsilon per dataset"),
        ):
            cap = getattr(privacy, key)
            if cap is not None:
                out.append(
                    {
                        "id": f"privacy.{key}",
                        "effect": "forbid",
                        "text": f"{label} above {cap:g} is refused for: {required}",
                    }
                )
        out.append(
            {
                "id": "privacy.accountant",
                "effect": "forbid",
                "text": f"DP runs are accounted with {privacy.accountant}",
            }
        )
        out.append(
            {
                "id": "models.allowed",
                "effect": "forbid",
                "text": f"models other than {', '.join(spec.models_allowed) or '(none)'} are refused",
            }
        )
        out.append(
            {
                "id": "export.approver_is_requester",
                "effect": "forbid",
                "text": "nobody approves their own export",
            }
        )
        out.append(
            {
                "id": "export.approvals_required",
                "effect": "forbid",
                "text": f"a model export needs {spec.export.approvals_required} approval(s) from another "
                f"{' or '.join(spec.export.approver_roles)}",
            }
        )
        return out

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        privacy = spec.privacy
        return {
            "name": spec.name,
            "version": spec.version,
            "description": spec.description,
            "sha256": self.sha256,
            "source": self.source,
            "roles": {role: list(spec.roles.get(role, ())) for role in ROLES},
            "privacy": {
                "dp_required_for": [s for s in SENSITIVITIES if s in privacy.dp_required_for],
                "max_epsilon_per_run": privacy.max_epsilon_per_run,
                "max_lifetime_epsilon": privacy.max_lifetime_epsilon,
                "max_delta": privacy.max_delta,
                "accountant": privacy.accountant,
            },
            "models": {"allowed": list(spec.models_allowed)},
            "export": {
                "raw_data": False,
                "approvals_required": spec.export.approvals_required,
                "approver_roles": list(spec.export.approver_roles),
            },
            "isolation": {"required": spec.isolation_required},
            "retention": {"max_dataset_age_days": spec.max_dataset_age_days},
            "rules": self.rules(),
            "tests": len(spec.tests),
        }

    # deciding -----------------------------------------------------------------------------

    def decide(self, request: Request) -> Decision:
        """Decide one request. Never raises for a bad request: it is denied and says why."""
        facts: dict[str, Any] = {"policy": self.spec.name, "policy_sha256": self.sha256}
        try:
            invalid = _request_problem(request)
        except Exception as exc:
            invalid = f"malformed request: {exc}"
        try:
            facts.update(request.facts())
        except Exception as exc:  # a request whose facts cannot even be listed
            invalid = invalid or f"malformed request: {exc}"
        if invalid:
            return Decision(False, "request.invalid", invalid, facts)
        missing = _missing_facts(request)
        if missing and request.action != RAW_EXPORT_ACTION:  # raw export is refused whatever the facts
            return Decision(
                False,
                "request.incomplete",
                f"{request.action} needs {', '.join(missing)}, which the request lacks",
                facts,
            )

        denials: list[tuple[str, str]] = []
        notes: list[str] = []
        checked: list[str] = []

        def run(rule_id: str, check: Callable[[Request], Verdict]) -> None:
            try:
                verdict = check(request)
            except Exception as exc:  # Cedar: a rule that errors denies
                verdict = (False, f"rule could not be evaluated ({exc}); a rule that errors denies")
            if verdict is None:
                return
            checked.append(rule_id)
            passes, text = verdict
            if passes:
                if text:
                    notes.append(text)
            else:
                denials.append((rule_id, text))

        run("export.raw_data", _raw_data)
        for forbid in self.spec.forbids:
            run(forbid.rule_id, functools.partial(_forbid_verdict, forbid))
        role_rule = f"roles.{request.role}"
        granted = self.permits(request.role, request.action)
        if not granted:
            denials.append(
                (role_rule, f"role {request.role} is not granted {request.action} (deny by default)")
            )
        for rule_id, check in self._constraints():
            run(rule_id, check)
        facts["rules_checked"] = [*checked, role_rule]
        if denials:
            rule, reason = denials[0]
            if len(denials) > 1:
                facts["also_denied_by"] = [{"rule": r, "reason": why} for r, why in denials[1:]]
            return Decision(False, rule, reason, facts)
        detail = f" ({'; '.join(notes)})" if notes else ""
        return Decision(True, role_rule, f"role {request.role} may {request.action}{detail}", facts)

    def _constraints(self) -> list[tuple[str, Callable[[Request], Verdict]]]:
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
            this_run = f" (this run: epsilon {request.epsilon:g})" if request.epsilon is not None else ""
            return False, (
                f"dataset {name!r} would reach lifetime epsilon {projected:.4g}{this_run}, "
                f"above the cap of {cap:g}"
            )
        return True, f"lifetime epsilon {projected:.4g} <= {cap:g}"

    def _accountant(self, request: Request) -> Verdict:
        if request.action != "train" or request.dp is not True or request.accountant is None:
            return None
        wanted = self.spec.privacy.accountant
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

    # policy tests -------------------------------------------------------------------------

    def run_tests(self) -> list[TestResult]:
        """Run the file's own `[[test]]` cases (OPA style)."""
        return [self._run_test(case) for case in self.spec.tests]

    def _run_test(self, case: PolicyTest) -> TestResult:
        decision = self.decide(case.request)
        expected = "allowed" if case.expect_allowed else "denied"
        problems = []
        if decision.allowed != case.expect_allowed:
            problems.append(
                f"expected {expected}, got {decision.outcome} by {decision.rule}: {decision.reason}"
            )
        if case.rule is not None and decision.rule != case.rule:
            problems.append(f"expected rule {case.rule}, got {decision.rule}")
        if case.reason_contains is not None and case.reason_contains not in decision.reason:
            problems.append(f"reason {decision.reason!r} lacks {case.reason_contains!r}")
        return TestResult(
            case.name, case.index, not problems, expected, case.rule, decision, "; ".join(problems)
        )


@functools.lru_cache(maxsize=16)
def _load_cached(text: str, source: str) -> Policy:
    """Policies are immutable, and the vault reloads its stored text on every decision."""
    return Policy(parse_policy(text, source), text, source)


def _forbid_verdict(rule: ForbidRule, request: Request) -> Verdict:
    return (False, rule.reason) if rule.matches(request) else None


def _raw_data(request: Request) -> Verdict:
    if request.action != RAW_EXPORT_ACTION:
        return None
    return False, "raw records can never be exported (export.raw_data = false in every policy)"


def _request_problem(request: Request) -> str | None:
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
    for key in ("epsilon", "delta", "projected_lifetime_epsilon", "lifetime_delta"):
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
    if request.isolation is not None:
        try:
            isolation_rank(request.isolation)
        except (ValueError, AttributeError):
            return f"unknown isolation mode {request.isolation!r}"
    return None


def _missing_facts(request: Request) -> list[str]:
    missing = []
    for fact in REQUIRED_FACTS.get(request.action, ()):
        if getattr(request, fact) is None:
            missing.append(fact)
    if request.dataset is not None and request.action in REQUIRED_FACTS:
        for key in ("name", "sensitivity") if "dataset" in REQUIRED_FACTS[request.action] else ():
            if not request.dataset.get(key):
                missing.append(f"dataset.{key}")
    return missing
