"""The Vault's policy methods: show the stored policy, replace it (admin only), and dry-run a decision.

The vault keeps its policy's exact text and hash in the encrypted catalog; the file it came from is
never read again, so editing that file later changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from vault import netguard_state
from vault.errors import InputError, NotFound, UsageError
from vault.policy import Decision, Policy, Request
from vault.policy.request import REQUEST_FACTS
from vault.store import utc_now

CHECKABLE_FACTS = frozenset(REQUEST_FACTS) - {"actor", "role", "action", "dataset", "isolation", "now"}


def policy_record(
    policy: Policy, *, set_by: str, when: str, history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The catalog's "policy" section for `policy` (the text is the source of truth)."""
    return {
        "text": policy.text,
        "sha256": policy.sha256,
        "name": policy.name,
        "source": policy.source,
        "set": when,
        "set_by": set_by,
        "history": list(history or []),
    }


class PolicyMixin:
    """Vault methods for the policy (mixed into `vault.Vault`; uses its `_record`, `_decide`, `_writing`)."""

    user: str
    role: str
    isolation: dict[str, Any]
    policy: Policy
    _record: Callable[..., dict[str, Any]]
    _decide: Callable[..., Decision]
    _read_catalog: Callable[[], dict[str, Any]]
    _writing: Callable[[], AbstractContextManager[dict[str, Any]]]

    def policy_show(self) -> dict[str, Any]:
        """The stored policy: name, sha256, rules, settings, its exact text, who set it and when, history."""
        self._decide("policy.show")
        stored = self._read_catalog()["policy"]
        policy = self.policy
        return {
            **policy.to_json(),
            "text": policy.text,
            "set": stored.get("set"),
            "set_by": stored.get("set_by"),
            "history": list(stored.get("history", [])),
        }

    def policy_set(self, text: str, *, source: str = "<policy set>") -> dict[str, Any]:
        """Replace the vault's policy with `text` (admin only under the current policy).

        The new text must load, keep every admin able to get in, pass its own [[test]] cases and be
        reachable by this host's isolation; otherwise nothing changes. Audited with old and new hash.
        """
        new = Policy.load(text, source=source)
        self._decide("policy.set", target=new.name)
        failed = [result for result in new.run_tests() if not result.passed]
        if failed:
            raise InputError(
                f"policy {source}: {len(failed)} of its own {len(new.spec.tests)} test case(s) fail "
                f"(first: {failed[0].name!r}: {failed[0].problem})",
                f"run `strongroom policy test {source}` and fix the policy or its tests; nothing was changed",
                detail={"failed": [result.to_json() for result in failed]},
            )
        if not netguard_state.meets(self.isolation, new.required_isolation):
            raise InputError(
                f"policy {source} requires {new.required_isolation!r} isolation, which this host does not reach "
                f"(this session: {self.isolation.get('mode')!r}); setting it would lock every user out",
                "set it on a host where namespaces and seccomp work, or require 'guard'; nothing was changed",
            )
        when = utc_now()
        with self._writing() as catalog:
            old = catalog["policy"]
            changed = old["sha256"] != new.sha256
            if changed:
                history = list(old.get("history", []))
                history.append(
                    {
                        "sha256": old["sha256"],
                        "name": old.get("name") or Policy.load(old["text"]).name,
                        "source": old.get("source"),
                        "set": old.get("set"),
                        "set_by": old.get("set_by"),
                        "replaced": when,
                    }
                )
                catalog["policy"] = policy_record(new, set_by=self.user, when=when, history=history)
            old_name = old.get("name") or Policy.load(old["text"]).name
            self._record(
                "policy.set",
                new.name,
                "ok" if changed else "unchanged",
                old_sha256=old["sha256"],
                new_sha256=new.sha256,
                old_name=old_name,
                new_name=new.name,
                source=source,
            )
        return {
            "changed": changed,
            "name": new.name,
            "sha256": new.sha256,
            "old_name": old_name,
            "old_sha256": old["sha256"],
            "set": when if changed else old.get("set"),
            "set_by": self.user if changed else old.get("set_by"),
        }

    def policy_check(
        self,
        action: str,
        *,
        dataset: str | Mapping[str, Any] | None = None,
        as_user: str | None = None,
        approved_by: Sequence[str] = (),
        **facts: Any,
    ) -> Decision:
        """A dry run: what would the policy decide for `action`? Changes nothing; audited as a dry run.

        dataset may be a dataset's name (its facts are looked up) or a table of facts; approved_by
        names users who would approve an export (their roles are looked up; a dry run does not
        authenticate them). For a DP training run without a projected lifetime epsilon, the ledger
        projects it when the Vault offers `_projected_lifetime_epsilon(dataset_facts, epsilon=, delta=)`.
        """
        unknown = sorted(set(facts) - CHECKABLE_FACTS)
        if unknown:
            raise UsageError(
                f"policy check got unknown fact(s): {', '.join(unknown)}",
                f"facts a policy decides on: {', '.join(sorted(CHECKABLE_FACTS))}",
            )
        policy = self.policy
        actor, role = self.user, self.role
        if as_user is not None and as_user != self.user:
            actor, role = as_user, self._role_of(as_user)
        own_view = policy.decide(self._request("policy.show", self.user, self.role, {}))
        if not own_view.allowed:
            self._decide("policy.show", target="policy check")  # records the denial and raises
        if approved_by:
            facts["approvals"] = [(user, self._role_of(user)) for user in approved_by]
        dataset_facts = self._dataset_facts_for(dataset)
        if dataset_facts is not None:
            facts["dataset"] = dataset_facts
        if facts.get("dp") is not True:
            for key in ("epsilon", "delta"):
                if facts.get(key) is None:
                    facts.pop(key, None)
        if action == "train" and dataset_facts is not None:
            self._fill_training_defaults(dataset_facts, facts)
        if (
            action == "train"
            and facts.get("dp") is True
            and dataset_facts is not None
            and "projected_lifetime_epsilon" not in facts
        ):
            facts["projected_lifetime_epsilon"] = self._projection(dataset_facts, facts)
        decision = policy.decide(self._request(action, actor, role, facts))
        subject = (dataset_facts or {}).get("name") or facts.get("target") or facts.get("model") or action
        self._record(
            "policy.decision",
            str(subject),
            decision.outcome,
            request_action=action,
            rule=decision.rule,
            reason=decision.reason,
            dry_run=True,
            policy_sha256=policy.sha256,
            **({"as_user": actor, "as_role": role} if actor != self.user else {}),
        )
        return decision

    # helpers ---------------------------------------------------------------------------------

    def _request(self, action: str, actor: str, role: str, facts: Mapping[str, Any]) -> Request:
        waived = self.isolation.get("waived_by_test_switch")
        approvals = tuple(tuple(pair) for pair in facts.get("approvals", ()))
        rest = {k: v for k, v in facts.items() if k != "approvals"}
        return Request(
            actor=actor,
            role=role,
            action=action,
            approvals=approvals,  # type: ignore[arg-type]
            isolation=None if waived else self.isolation.get("mode"),
            now=dt.datetime.now(dt.UTC),
            **rest,
        )

    def _role_of(self, user: str) -> str:
        keys_list: Callable[[], list[dict[str, Any]]] | None = getattr(self, "keys_list", None)
        slots = keys_list() if keys_list is not None else []
        for slot in slots:
            if slot.get("user") == user:
                return str(slot["role"])
        raise NotFound(f"no user {user!r} in this vault", "`strongroom keys list` shows the users")

    def _dataset_facts_for(self, dataset: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
        if dataset is None:
            return None
        if isinstance(dataset, Mapping):
            return dict(dataset)
        lookup: Callable[[str], dict[str, Any]] | None = getattr(self, "dataset_facts", None)
        if lookup is None:
            raise NotFound(f"cannot look up dataset {dataset!r} here", "pass the dataset's facts instead")
        return lookup(dataset)

    @staticmethod
    def _fill_training_defaults(dataset_facts: Mapping[str, Any], facts: dict[str, Any]) -> None:
        """What `train` itself would use when the check leaves it out: the default model and delta."""
        if facts.get("dp") is None:
            facts["dp"] = True
        if not facts.get("model") and dataset_facts.get("kind"):
            from vault.train.config import default_model

            facts["model"] = default_model(str(dataset_facts["kind"]), bool(facts["dp"]))
        if facts["dp"] and facts.get("delta") is None and dataset_facts.get("samples"):
            from vault.train.privacy import default_delta

            facts["delta"] = default_delta(int(dataset_facts["samples"]))
        if facts["dp"] and facts.get("epsilon") is None:
            from vault.train.config import TrainConfig

            facts["epsilon"] = TrainConfig().epsilon

    def _projection(self, dataset_facts: Mapping[str, Any], facts: Mapping[str, Any]) -> float | None:
        project: Callable[..., float | None] | None = getattr(self, "_projected_lifetime_epsilon", None)
        if project is None or facts.get("epsilon") is None:
            return None
        return project(
            dict(dataset_facts),
            epsilon=facts.get("epsilon"),
            delta=facts.get("delta"),
            model=facts.get("model"),
        )


def iter_history(show: Mapping[str, Any]) -> Iterator[str]:
    """Lines describing a policy's history, newest first (for `policy show`)."""
    for entry in reversed(show.get("history") or []):
        yield (
            f"  replaced {entry.get('replaced')}: {entry.get('name')} {str(entry.get('sha256'))[:16]} "
            f"(set {entry.get('set')} by {entry.get('set_by') or 'init'})"
        )
