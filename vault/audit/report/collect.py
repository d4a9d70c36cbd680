"""The access report's content, gathered from the log's entries in one pass: per dataset, per person,
what left the room, refusals, blocked network attempts and sessions below the policy's isolation.

Every figure keeps the sequence numbers of the entries behind it, so a reader can go from the
report to the entries (`strongroom audit show`). Metadata only: the log holds no record content.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from vault.vocabulary import ISOLATION_LEVELS

# Actions that touch a dataset, and where its name is (the entry's subject unless said otherwise).
DATASET_ACTIONS = (
    "dataset.import",
    "dataset.read",
    "dataset.delete",
    "train.start",
    "train.end",
    "model.evaluate",
)


# A table longer than this is shown grouped by day, person and these fields, each group naming its
# entries; the JSON report always lists every row.
LISTED = 200
GROUPED_BY: dict[str, tuple[str, ...]] = {
    "reads": ("purpose", "version"),
    "trainings": ("model", "dp", "outcome"),
    "evaluations": ("model",),
    "refusals": ("action", "rule"),
    "network_blocked": ("destination", "library", "drill"),
    "sessions_below_isolation": ("mode", "policy_requires", "waived"),
    "privacy_spent": (),
    "imports": ("format", "sensitivity", "outcome"),
    "role_changes": ("change", "role"),
    "exports": ("model", "dataset"),
    "deletions": (),
}

# A group as it is gathered: its first row, its entries' seqs, the records they read, its last row.
Group = list[Any]


_NAMED = {kind: ("time", "actor", *fields) for kind, fields in GROUPED_BY.items()}
_PICK = {kind: itemgetter(*named) for kind, named in _NAMED.items()}


def _group_into(
    groups: dict[tuple[Any, ...], Group],
    named: tuple[str, ...],
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]],
    row: Mapping[str, Any],
) -> None:
    """Add one row to its group, keyed by (day, person, the kind's fields): a million rows and more,
    so kept to the fewest steps."""
    try:
        values = pick(row)
    except KeyError:
        values = tuple(map(row.get, named))
    key = (str(values[0])[:10], *values[1:])
    try:
        group = groups.get(key)
    except TypeError:  # a value that cannot be a key (a list): grouped by its text
        key = (key[0], *map(str, values[1:]))
        group = groups.get(key)
    if group is None:
        groups[key] = [row, [row["seq"]], count(row.get("records")), row]
    else:
        group[1].append(row["seq"])
        group[2] += count(row.get("records"))
        group[3] = row


def group_rows(kind: str, rows: Iterable[Mapping[str, Any]], groups: dict[tuple[Any, ...], Group]) -> None:
    """Add `rows` to `groups`, keyed by (day, person, GROUPED_BY[kind])."""
    named, pick = _NAMED[kind], _PICK[kind]
    for row in rows:
        _group_into(groups, named, pick, row)


class Table(list[dict[str, Any]]):
    """A table's rows (a list, as the JSON report writes it) with its groups kept up to date as rows
    are added by `add`: grouped while each row is at hand, not read again from memory at the end."""

    __slots__ = ("kind", "groups", "grouped", "_named", "_pick")

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.groups: dict[tuple[Any, ...], Group] = {}
        self.grouped = 0  # rows in `groups`: all of them, unless one was added another way
        self._named, self._pick = _NAMED[kind], _PICK[kind]

    def add(self, row: dict[str, Any]) -> None:
        self.append(row)
        _group_into(self.groups, self._named, self._pick, row)
        self.grouped += 1

    def groups_of(self, kind: str) -> dict[tuple[Any, ...], Group] | None:
        """The groups as kept, when they hold every row for this kind of table; else None."""
        return self.groups if kind == self.kind and self.grouped == len(self) else None


def _table(kind: str) -> Any:
    return field(default_factory=lambda: Table(kind))


@dataclass(frozen=True)
class Scope:
    """What the report covers: a period (inclusive, UTC), one dataset, one person; None: all."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    dataset: str | None = None
    user: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "dataset": self.dataset,
            "user": self.user,
        }


@dataclass
class DatasetReport:
    name: str
    imports: Table = _table("imports")
    reads: Table = _table("reads")
    trainings: Table = _table("trainings")
    evaluations: Table = _table("evaluations")
    deletions: Table = _table("deletions")
    spent: Table = _table("privacy_spent")  # epsilon spent after each run, in order
    readers: Counter[str] = field(default_factory=Counter)  # reads by person
    records_read: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "imports": self.imports,
            "reads": self.reads,
            "records_read": self.records_read,
            "readers": dict(sorted(self.readers.items())),
            "trainings": self.trainings,
            "evaluations": self.evaluations,
            "deletions": self.deletions,
            "privacy_spent": self.spent,
            "epsilon_spent": self.spent[-1]["epsilon"] if self.spent else None,
        }


@dataclass
class PersonReport:
    name: str
    roles: set[str] = field(default_factory=set)
    role_changes: Table = _table("role_changes")
    sessions: list[dict[str, Any]] = field(default_factory=list)
    failed_unlocks: list[int] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    refusals: Table = _table("refusals")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "roles": sorted(self.roles),
            "role_changes": self.role_changes,
            "sessions": len(self.sessions),
            "session_list": self.sessions,
            "failed_unlocks": self.failed_unlocks,
            "actions": dict(sorted(self.actions.items())),
            "refusals": self.refusals,
        }


@dataclass
class Collected:
    scope: Scope
    entries: int = 0  # entries in the scope
    first: str | None = None
    last: str | None = None
    datasets: dict[str, DatasetReport] = field(default_factory=dict)
    people: dict[str, PersonReport] = field(default_factory=dict)
    exports: Table = _table("exports")
    refusals: Table = _table("refusals")
    blocked: Table = _table("network_blocked")
    below_isolation: Table = _table("sessions_below_isolation")

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope.to_json(),
            "entries": self.entries,
            "first": self.first,
            "last": self.last,
            "datasets": [d.to_json() for _, d in sorted(self.datasets.items())],
            "people": [p.to_json() for _, p in sorted(self.people.items())],
            "exports": self.exports,
            "refusals": self.refusals,
            "network_blocked": self.blocked,
            "sessions_below_isolation": self.below_isolation,
        }


@contextlib.contextmanager
def cycles_uncollected() -> Iterator[None]:
    """Python's cycle collector paused: a report keeps a dict for nearly every entry alive, and each
    collection of the oldest generation walks them all again (a third of the time of gathering a
    million entries). What a report allocates holds no reference cycles to collect."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def count(value: Any) -> int:
    """A number of records as an entry holds it, when it is one (a whole number above 0); 0 for
    anything else a hand-written line may hold there: text, a list, a fraction, an infinity."""
    return value if type(value) is int and value > 0 else 0


def finite(value: Any) -> float | None:
    """An epsilon or a cap as an entry holds it, when it is a finite number; else None."""
    if (type(value) is int or type(value) is float) and math.isfinite(value):
        return float(value)
    return None


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _time(entry: Mapping[str, Any]) -> dt.datetime | None:
    text = entry.get("time")
    if not isinstance(text, str):
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # The log's times are UTC with a Z; a line written by hand without one is read as UTC too.
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _dataset_of(entry: Mapping[str, Any]) -> str | None:
    action = entry.get("action")
    if action in DATASET_ACTIONS:
        return str(entry.get("subject"))
    detail = entry.get("detail")
    if (
        action == "policy.decision"
        and isinstance(detail, dict)
        and detail.get("request_action")
        in (
            "train",
            "dataset.sample",
            "dataset.import",
            "dataset.delete",
            "evaluate",
        )
    ):
        return str(entry.get("subject"))
    return None


def _rank(level: Any) -> int | None:
    return ISOLATION_LEVELS.index(level) if level in ISOLATION_LEVELS else None


class Collector:
    """Feed entries in log order with `add`; `result()` is the report's content."""

    def __init__(self, scope: Scope) -> None:
        self.out = Collected(scope)
        self._runs: dict[str, dict[str, Any]] = {}
        self._models: dict[str, dict[str, Any]] = {}  # model id -> its training (for exports)
        self._open_sessions: dict[str, list[dict[str, Any]]] = {}  # actor -> sessions not yet ended
        self._filtered = scope.since is not None or scope.until is not None or scope.dataset or scope.user

    def _in_scope(self, entry: Mapping[str, Any]) -> bool:
        scope = self.out.scope
        if scope.since is not None or scope.until is not None:
            when = _time(entry)
            if when is None:
                return False
            if scope.since is not None and when < scope.since:
                return False
            if scope.until is not None and when > scope.until:
                return False
        if (
            scope.user is not None
            and entry.get("actor") != scope.user
            and not (str(entry.get("action", "")).startswith("keys.") and entry.get("subject") == scope.user)
        ):
            return False
        if scope.dataset is not None:
            dataset = _dataset_of(entry)
            if dataset != scope.dataset and not (
                entry.get("action") in ("model.export", "model.export.approval")
                and self._models.get(str(entry.get("subject")), {}).get("dataset") == scope.dataset
            ):
                return False
        return True

    def _dataset(self, name: str) -> DatasetReport:
        found = self.out.datasets.get(name)
        if found is None:
            found = self.out.datasets[name] = DatasetReport(name)
        return found

    def _person(self, name: str) -> PersonReport:
        found = self.out.people.get(name)
        if found is None:
            found = self.out.people[name] = PersonReport(name)
        return found

    def add(self, entry: Mapping[str, Any]) -> None:
        action = str(entry.get("action", ""))
        detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
        assert isinstance(detail, dict)
        if action == "train.end" and detail.get("model"):
            run = self._runs.get(str(detail.get("run")), {})
            self._models[str(detail["model"])] = {
                "dataset": str(entry.get("subject")),
                "dp": run.get("dp"),
                "epsilon": detail.get("epsilon"),
            }
        if self._filtered and not self._in_scope(entry):
            if action == "train.start":  # a run started before the period may end in it
                self._runs[str(detail.get("run"))] = {**detail, "seq": entry.get("seq")}
            return
        out = self.out
        seq, when, actor = entry.get("seq"), entry.get("time"), str(entry.get("actor"))
        out.entries += 1
        if out.first is None:
            out.first = when
        out.last = when
        person = out.people.get(actor) or self._person(actor)
        role = entry.get("role")
        if role is not None and role != "unknown":
            person.roles.add(role if type(role) is str else str(role))
        person.actions[action] += 1
        handler = _HANDLERS.get(action)
        if handler is not None:
            handler(self, entry, detail, {"seq": seq, "time": when, "actor": actor})

    # ------------------------------------------------------------------ one method per action
    def _on_dataset_import(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        self._dataset(str(entry["subject"])).imports.add(
            {
                **base,
                "outcome": entry.get("outcome"),
                "version": detail.get("version"),
                "records": detail.get("samples"),
                "format": detail.get("format"),
                "source": detail.get("source"),
                "sensitivity": detail.get("sensitivity"),
            }
        )

    def _on_dataset_read(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        dataset, samples = self._dataset(str(entry["subject"])), detail.get("samples")
        dataset.reads.add(
            {
                **base,
                "purpose": detail.get("purpose"),
                "version": detail.get("version"),
                "records": samples,
            }
        )
        dataset.readers[base["actor"]] += 1
        dataset.records_read += count(samples)

    def _on_dataset_delete(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        self._dataset(str(entry["subject"])).deletions.add(
            {
                **base,
                "versions": detail.get("versions"),
                "objects": detail.get("objects"),
                "keys_destroyed": True,
            }
        )

    def _on_train_start(self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]) -> None:
        self._runs[str(detail.get("run"))] = {**detail, "seq": entry.get("seq")}

    def _on_train_end(self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]) -> None:
        run_id = str(detail.get("run"))
        start = self._runs.pop(run_id, {})
        dataset = self._dataset(str(entry["subject"]))
        dataset.trainings.add(
            {
                **base,
                "run": run_id,
                "started_seq": start.get("seq"),
                "model": start.get("model"),
                "model_id": detail.get("model"),
                "dp": start.get("dp"),
                "epsilon": detail.get("epsilon"),
                "target_epsilon": start.get("epsilon"),
                "steps": detail.get("steps"),
                "outcome": entry.get("outcome"),
                "error": detail.get("error"),
            }
        )
        if "ledger_epsilon" in detail or detail.get("ledger_unbounded") is not None:
            dataset.spent.add(
                {
                    "seq": entry.get("seq"),
                    "time": entry.get("time"),
                    "actor": base["actor"],  # whose run spent it
                    "epsilon": None if detail.get("ledger_unbounded") else detail.get("ledger_epsilon"),
                    "unbounded": bool(detail.get("ledger_unbounded")),
                    "cap": start.get("epsilon_cap"),
                }
            )

    def _on_model_evaluate(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        self._dataset(str(entry["subject"])).evaluations.add(
            {
                **base,
                "model": detail.get("model"),
                "records": detail.get("samples"),
                "accuracy": detail.get("accuracy"),
            }
        )

    def _on_model_export(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        model = str(entry["subject"])
        trained = self._models.get(model, {})
        self.out.exports.add(
            {
                **base,
                "model": model,
                "dataset": trained.get("dataset"),
                "dp": trained.get("dp"),
                "epsilon": trained.get("epsilon"),
                "approvals": detail.get("approvals", []),
                "signers": detail.get("signers", []),
                "out": detail.get("out"),
                "files": detail.get("files", []),
            }
        )

    def _on_policy_decision(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        if entry.get("outcome") != "denied":
            return
        refusal = {
            **base,
            "action": detail.get("request_action"),
            "subject": entry.get("subject"),
            "rule": detail.get("rule"),
            "reason": detail.get("reason"),
            "dry_run": bool(detail.get("dry_run")),
        }
        self.out.refusals.add(refusal)
        self._person(base["actor"]).refusals.add(refusal)

    def _on_network_blocked(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        self.out.blocked.add(
            {
                **base,
                "destination": detail.get("destination", entry.get("subject")),
                "family": detail.get("family"),
                "library": detail.get("origin") or detail.get("module"),
                "drill": detail.get("drill"),
            }
        )

    def _on_network_isolation(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        mode, required = detail.get("mode"), detail.get("policy_requires")
        below = (
            entry.get("outcome") == "degraded"
            or bool(detail.get("waived_by_test_switch"))
            or (_rank(mode) is not None and _rank(required) is not None and _rank(mode) < _rank(required))
        )
        if below:
            self.out.below_isolation.add(
                {
                    **base,
                    "mode": mode,
                    "policy_requires": required,
                    "waived": bool(detail.get("waived_by_test_switch")),
                }
            )

    def _on_session_unlock(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        session = {**base, "pid": detail.get("pid"), "ended_seq": None}
        self._person(base["actor"]).sessions.append(session)
        self._open_sessions.setdefault(base["actor"], []).append(session)

    def _on_session_end(self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]) -> None:
        open_sessions = self._open_sessions.get(base["actor"])
        if open_sessions:
            open_sessions.pop()["ended_seq"] = base["seq"]

    def _on_session_unlock_failed(
        self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]
    ) -> None:
        self._person(base["actor"]).failed_unlocks.append(base["seq"])

    def _key_change(self, entry: Mapping[str, Any], detail: dict[str, Any], base: dict[str, Any]) -> None:
        target = self._person(str(entry.get("subject")))
        target.role_changes.add(
            {**base, "change": str(entry["action"]).split(".", 1)[1], "role": detail.get("role")}
        )
        if detail.get("role"):
            target.roles.add(str(detail["role"]))

    def result(self) -> Collected:
        return self.out


# One function per action, kept on the class rather than as bound methods on each collector: a
# collector holding its own bound methods would be a reference cycle, and the report it gathered
# (a row for most entries) would wait for the cycle collector to be freed.
_HANDLERS: dict[str, Callable[[Collector, Mapping[str, Any], dict[str, Any], dict[str, Any]], None]] = {
    "dataset.import": Collector._on_dataset_import,
    "dataset.read": Collector._on_dataset_read,
    "dataset.delete": Collector._on_dataset_delete,
    "train.start": Collector._on_train_start,
    "train.end": Collector._on_train_end,
    "model.evaluate": Collector._on_model_evaluate,
    "model.export": Collector._on_model_export,
    "policy.decision": Collector._on_policy_decision,
    "network.blocked": Collector._on_network_blocked,
    "network.isolation": Collector._on_network_isolation,
    "session.unlock": Collector._on_session_unlock,
    "session.end": Collector._on_session_end,
    "session.unlock_failed": Collector._on_session_unlock_failed,
    "keys.add": Collector._key_change,
    "keys.remove": Collector._key_change,
}


def collect(entries: Iterable[Mapping[str, Any]], scope: Scope) -> Collected:
    collector = Collector(scope)
    for entry in entries:
        collector.add(entry)
    return collector.result()
