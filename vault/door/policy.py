"""The policy through the door: show the stored policy, replace it (admin only), and dry-run a decision.

The vault keeps its policy's exact text and hash in the encrypted catalog; the file it came from is
never read again, so editing that file later changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vault.door.datasets import DatasetService
from vault.door.keys import KeyService
from vault.door.session import Session, policy_record
from vault.errors import InputError, UsageError
from vault.netguard import state as isolation_state
from vault.policy import Decision, Policy
from vault.policy.request import REQUEST_FACTS
from vault.storage import keyring
from vault.storage.catalog import PolicyHistoryEntry
from vault.storage.files import utc_now

if TYPE_CHECKING:
    from vault.door.training import TrainingService

CHECKABLE_FACTS = frozenset(REQUEST_FACTS) - {"actor", "role", "action", "dataset", "isolation", "now"}


class PolicyService:
    """The door's policy methods."""

    def __init__(
        self, session: Session, datasets: DatasetService, keys: KeyService, training: TrainingService
    ) -> None:
        self.session = session
        self.datasets = datasets
        self.keys = keys
        self.training = training

    def show(self) -> dict[str, Any]:
        """The stored policy: name, sha256, rules, settings, its exact text, who set it and when, history."""
        self.session.decide("policy.show")
        stored = self.session.read_catalog()["policy"]
        policy = self.session.policy
        return {
            **policy.to_json(),
            "text": policy.text,
            "set": stored.get("set"),
            "set_by": stored.get("set_by"),
            "history": list(stored.get("history", [])),
        }

    def set(self, text: str, *, source: str = "<policy set>") -> dict[str, Any]:
        """Replace the vault's policy with `text` (admin only under the current policy).

        The new text must load, keep every admin able to get in, pass its own [[test]] cases and be
        reachable by this host's isolation; otherwise nothing changes. Audited with old and new hash.
        """
        new = Policy.load(text, source=source)
        self.session.decide("policy.set", target=new.name)
        failed = [result for result in new.run_tests() if not result.passed]
        if failed:
            raise InputError(
                f"policy {source}: {len(failed)} of its own {len(new.spec.tests)} test case(s) fail "
                f"(first: {failed[0].name!r}: {failed[0].problem})",
                f"run `strongroom policy test {source}` and fix the policy or its tests; nothing was changed",
                detail={"failed": [result.to_json() for result in failed]},
            )
        if not isolation_state.meets(self.session.isolation, new.required_isolation):
            raise InputError(
                f"policy {source} requires {new.required_isolation!r} isolation, which this host does not reach "
                f"(this session: {self.session.isolation.get('mode')!r}); setting it would lock every user out",
                "set it on a host where namespaces and seccomp work, or require 'guard'; nothing was changed",
            )
        when = utc_now()
        session = self.session
        session.authority()  # the header vouches for the policy: only an admin's key signs it
        session.check_writable()
        with session.lock:
            header = session.fresh_header()
            catalog = session.read_catalog()
            old = catalog["policy"]
            changed = old["sha256"] != new.sha256
            old_name = old.get("name") or Policy.load(old["text"]).name
            detail = {
                "old_sha256": old["sha256"],
                "new_sha256": new.sha256,
                "old_name": old_name,
                "new_name": new.name,
                "source": source,
            }
            if not changed:
                session.record("policy.set", new.name, "unchanged", **detail)
            else:
                history: list[PolicyHistoryEntry] = list(old.get("history", []))
                history.append(
                    {
                        "sha256": old["sha256"],
                        "name": old_name,
                        "source": old.get("source"),
                        "set": old.get("set"),
                        "set_by": old.get("set_by"),
                        "replaced": when,
                    }
                )
                catalog["policy"] = policy_record(new, set_by=session.user, when=when, history=history)
                catalog["generation"] = int(catalog.get("generation", 0)) + 1
                header["policy_sha256"] = new.sha256
                header["generation"] = int(header["generation"]) + 1
                keyring.sign_header(header, session.authority())
                session.record("policy.set", new.name, "ok", header_generation=header["generation"], **detail)
                session.commit_catalog_and_header(header, catalog)
        return {
            "changed": changed,
            "name": new.name,
            "sha256": new.sha256,
            "old_name": old_name,
            "old_sha256": old["sha256"],
            "set": when if changed else old.get("set"),
            "set_by": self.session.user if changed else old.get("set_by"),
        }

    def check(
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
        projects it as training would.
        """
        unknown = sorted(set(facts) - CHECKABLE_FACTS)
        if unknown:
            raise UsageError(
                f"policy check got unknown fact(s): {', '.join(unknown)}",
                f"facts a policy decides on: {', '.join(sorted(CHECKABLE_FACTS))}",
            )
        session = self.session
        policy = session.policy
        actor, role = session.user, session.role
        if as_user is not None and as_user != session.user:
            actor, role = as_user, self.keys.role_of(as_user)
        own_view = policy.decide(session.request("policy.show", session.user, session.role, {}))
        if not own_view.allowed:
            self.session.decide("policy.show", target="policy check")  # records the denial and raises
        if approved_by:
            facts["approvals"] = [(user, self.keys.role_of(user)) for user in approved_by]
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
        decision = policy.decide(session.request(action, actor, role, facts))
        session.record_decision(
            action,
            decision,
            facts,
            dry_run=True,
            **({"as_user": actor, "as_role": role} if actor != session.user else {}),
        )
        return decision

    # helpers ---------------------------------------------------------------------------------

    def _dataset_facts_for(self, dataset: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
        if dataset is None:
            return None
        if isinstance(dataset, Mapping):
            return dict(dataset)
        return self.datasets.facts(dataset)

    @staticmethod
    def _fill_training_defaults(dataset_facts: Mapping[str, Any], facts: dict[str, Any]) -> None:
        """What `train` itself would use when the check leaves it out: the default model and delta."""
        if facts.get("dp") is None:
            facts["dp"] = True
        if not facts.get("model") and dataset_facts.get("kind"):
            from vault.train.config import default_model

            facts["model"] = default_model(str(dataset_facts["kind"]), bool(facts["dp"]))
        if facts["dp"] and facts.get("delta") is None and dataset_facts.get("samples"):
            from vault.privacy.accounting import default_delta

            facts["delta"] = default_delta(int(dataset_facts["samples"]))
        if facts["dp"] and facts.get("epsilon") is None:
            from vault.train.config import TrainConfig

            facts["epsilon"] = TrainConfig().epsilon

    def _projection(self, dataset_facts: Mapping[str, Any], facts: Mapping[str, Any]) -> float | None:
        if facts.get("epsilon") is None:
            return None
        return self.training.projected_lifetime_epsilon(
            dict(dataset_facts),
            epsilon=facts.get("epsilon"),
            delta=facts.get("delta"),
            model=facts.get("model"),
        )
