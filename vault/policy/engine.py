"""The Policy: a validated policy file that decides requests and explains each decision.

Semantics follow Cedar: deny by default, an explicit forbid overrides any permit, and a rule that
fails to evaluate denies. Every decision names the deciding rule and gives the numbers.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from vault.errors import InputError, NotFound
from vault.policy.constraints import (
    Constraints,
    Verdict,
    forbid_verdict,
    missing_facts,
    raw_data,
    request_problem,
)
from vault.policy.request import Decision, Request
from vault.policy.schema import MAX_POLICY_BYTES, PolicySpec, PolicyTest, parse_policy
from vault.vocabulary import RAW_EXPORT_ACTION, ROLES, SENSITIVITIES

BUILTIN_NAMES = ("default", "strict", "research")
PRIVACY_ACTIONS = frozenset({"train", "model.export"})


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
            text = read_policy_text(file)
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
    def card_metrics(self) -> str:
        """What a model card publishes of its held-out figures: "noised" or "marked"."""
        return self.spec.privacy.card_metrics

    @property
    def card_metrics_epsilon(self) -> float:
        """A "noised" card's metrics budget per run (the Gaussian mechanism's epsilon)."""
        return self.spec.privacy.card_metrics_epsilon

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
                "card_metrics": privacy.card_metrics,
                "card_metrics_epsilon": privacy.card_metrics_epsilon,
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
            invalid = request_problem(request)
        except Exception as exc:
            invalid = f"malformed request: {exc}"
        try:
            facts.update(request.facts())
        except Exception as exc:  # a request whose facts cannot even be listed
            invalid = invalid or f"malformed request: {exc}"
        if invalid:
            return Decision(False, "request.invalid", invalid, facts)
        missing = missing_facts(request)
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

        run("export.raw_data", raw_data)
        for forbid in self.spec.forbids:
            run(forbid.rule_id, functools.partial(forbid_verdict, forbid))
        role_rule = f"roles.{request.role}"
        granted = self.permits(request.role, request.action)
        if not granted:
            denials.append(
                (role_rule, f"role {request.role} is not granted {request.action} (deny by default)")
            )
        for rule_id, check in Constraints(self.spec).checks():
            run(rule_id, check)
        facts["rules_checked"] = [*checked, role_rule]
        if denials:
            rule, reason = denials[0]
            if len(denials) > 1:
                facts["also_denied_by"] = [{"rule": r, "reason": why} for r, why in denials[1:]]
            return Decision(False, rule, reason, facts)
        detail = f" ({'; '.join(notes)})" if notes else ""
        return Decision(True, role_rule, f"role {request.role} may {request.action}{detail}", facts)

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


def read_policy_text(path: Path) -> str:
    """A policy file's text, read no further than MAX_POLICY_BYTES (+1 to know it is larger): a
    device or a huge file is refused without filling memory. OSError and UnicodeDecodeError pass on."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_POLICY_BYTES + 1)
    if len(data) > MAX_POLICY_BYTES:
        raise InputError(
            f"policy file {path} is larger than {MAX_POLICY_BYTES // 2**20} MiB",
            "a policy is a short TOML file: check that this is the right file",
        )
    return data.decode("utf-8")
