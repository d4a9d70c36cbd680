"""Training through the door: train, models, model cards, evaluate, budget; and the model lookups that
export uses after its own decision.

A run is planned from the dataset's metadata, projected onto the dataset's privacy ledger and put
to the policy before any record is read. Every run that takes a step is charged to the ledger,
cancelled and failed ones included, for the steps it actually took. Weights are sealed in the
vault as safetensors next to the model card; nothing is written in plaintext.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vault.door import card_release, run_start, settle
from vault.door.datasets import DatasetService, LoadedDataset
from vault.door.lineage import links_by_lineage
from vault.door.results import Budget, ModelSummary
from vault.door.session import Session
from vault.errors import Cancelled, NotFound, StrongroomError, UsageError
from vault.privacy import ledger
from vault.storage.catalog import Catalog, ModelEntry
from vault.storage.files import RunMarker, utc_now
from vault.train.config import TrainConfig

EventCallback = Callable[[Any], None] | None
WEIGHTS, CARD_JSON, CARD_MD = "model.safetensors", "card.json", "card.md"
REQUEST_ONLY = ("dataset", "name", "version")


def parse_request(
    request: dict[str, Any] | TrainConfig, dataset: str | None
) -> tuple[str, str, int | None, TrainConfig]:
    """(dataset, run name, version, config) from a request dict or a TrainConfig plus a dataset name."""
    if isinstance(request, TrainConfig):
        if not dataset:
            raise UsageError("a training request needs a dataset", "name the dataset to train on")
        return dataset, "", None, request
    if not isinstance(request, dict):
        raise UsageError("a training request is a dict or a TrainConfig", "see vault/train/config.py")
    body = dict(request)
    name = body.pop("dataset", None) or dataset
    if not name:
        raise UsageError("a training request needs a dataset", "name the dataset to train on")
    run_name = str(body.pop("name", "") or "")
    version = body.pop("version", None)
    if body.get("model") is None:
        body["model"] = "auto"
    body = {k: v for k, v in body.items() if v is not None}
    return str(name), run_name, version, TrainConfig.from_json(body)


class TrainingService:
    """The door's training methods."""

    def __init__(self, session: Session, datasets: DatasetService) -> None:
        self.session = session
        self.datasets = datasets

    # ------------------------------------------------------------------ train
    def train(
        self,
        request: dict[str, Any] | TrainConfig,
        on_event: EventCallback = None,
        cancel: threading.Event | None = None,
        *,
        dataset: str | None = None,
    ) -> dict[str, Any]:
        """Train on a dataset as `request` asks (keys: dataset, name, version and TrainConfig's fields).

        Returns the run's summary (model id, DP parameters, held-out accuracy, ledger after the run).
        Raises PolicyDenied before any record is read, Cancelled after charging the steps taken."""
        from vault.privacy.accounting import default_delta, epsilon_of

        name, run_name, version, config = parse_request(request, dataset)
        self.session.check_writable()
        info = self.datasets.info(name, version, decide=False)
        counts = [int(info["counts"].get(c, 0)) for c in info["classes"]]
        pending = run_start.calibrate_meanwhile(self.session, info, config)
        run_start.load_engine()  # torch: a second or so, unless already loaded
        from vault.train import engine
        from vault.train.events import StepProgress

        if pending is not None:
            pending.collect()
        run = engine.plan(
            kind=info["kind"],
            classes=len(info["classes"]),
            counts=counts,
            input_shape=info.get("shape"),
            # a tuned run is accounted in RDP (its bound is one); PRV's calibration would go unused
            config=replace(config, accountant="rdp") if config.tune else config,
        )
        tuned = None
        if config.tune:
            from vault.train import tuning

            tuned = tuning.plan_tuned(run, config, kind=info["kind"])
            run = tuned.run
        facts = self.datasets.facts(name)
        run_id = f"run-{secrets.token_hex(5)}"
        started = utc_now()
        charge_base = {
            "run": run_id,
            "dataset_digest": info["ledger_id"],
            "dataset": name,
            "version": info["version"],
        }
        # The cap check and the charge are one step under the writer lock: the planned run is
        # charged in full before any record is read (and settled to the steps actually taken at
        # the end), so two runs started together cannot both pass a cap that only one fits
        # under, and a run that dies without a word stays charged in full.
        marker = RunMarker(self.session.path, run_id)
        marker.acquire()
        try:
            with self.session.writing() as catalog:
                section = catalog["ledger"]
                ledger_id = info["ledger_id"]
                ledger_delta = ledger.ledger_delta(
                    section, ledger_id, run.delta or default_delta(info["samples"])
                )
                card = card_release.plan(self.session.policy, run, ledger_delta)
                planned, curve = card.cost(run.history(), tuned.curve if tuned else None)
                projected = ledger.projected_with_links(
                    section,
                    ledger_id,
                    planned,
                    ledger_delta,
                    links_by_lineage(catalog),
                    dp=run.dp,
                    accountant=run.accountant,
                    planned_rdp=curve,
                )
                self.session.decide(
                    "train",
                    dataset=facts,
                    dp=run.dp,
                    epsilon=run.epsilon,
                    delta=run.delta,
                    model=run.model,
                    projected_lifetime_epsilon=projected,
                    lifetime_delta=ledger_delta,
                    accountant=run.accountant if run.dp else None,
                    **({"tune": tuned.mean} if tuned else {}),
                    **card.facts(),
                )
                reservation = ledger.Charge(
                    **charge_base,
                    history=ledger.normalise(run.history()),
                    dp=run.dp,
                    created=started,
                    outcome="running",
                    epsilon=run.epsilon,
                    rdp=tuned.curve if tuned else None,
                )
                ledger.add_charge(section, reservation, delta=ledger_delta, accountant=run.accountant)
                metrics = card.charge(charge_base, outcome="running", created=started)
                if metrics is not None:
                    ledger.add_charge(section, metrics, delta=ledger_delta, accountant=run.accountant)
            self.session.record(
                "train.start",
                name,
                "ok",
                run=run_id,
                version=info["version"],
                model=run.model,
                dp=run.dp,
                epsilon=run.epsilon,
                delta=run.delta,
                noise_multiplier=run.noise_multiplier,
                sample_rate=run.sample_rate,
                steps=run.total_steps,
                accountant=run.accountant if run.dp else None,
                **({"tune": tuned.mean} if tuned else {}),
                **card.facts(),
                device=run.device,
                world_size=run.world_size,
                projected_lifetime_epsilon=projected,
                epsilon_cap=self.session.policy.lifetime_epsilon_cap(facts["sensitivity"]),
            )
            taken = [0, 0]  # steps of the current run, and whether any run took one

            def counting(event: Any) -> None:
                if isinstance(event, StepProgress):
                    taken[0], taken[1] = event.step, 1
                if on_event is not None:
                    on_event(event)

            try:
                loaded = self.datasets.load(name, purpose="train", version=info["version"])
                data = _train_data(loaded)
                if tuned is not None:
                    outcome = tuning.train_tuned(data, config, tuned, on_event=counting, cancel=cancel)
                else:
                    outcome = engine.train(data, config, on_event=counting, cancel=cancel, run=run)
            except BaseException as error:
                # Charge what was spent whatever stopped the run: every step released a noisy update.
                steps = taken[0]
                history = ledger.normalise(
                    [(run.noise_multiplier, run.sample_rate, steps)] if run.dp and steps else []
                )
                epsilon = epsilon_of(history, ledger_delta, run.accountant) if run.dp else None
                curve = None
                if tuned is not None and taken[1]:  # random stopping's bound holds for the whole run only
                    history, curve, epsilon = (), tuned.curve, tuned.epsilon
                charge = ledger.Charge(
                    **charge_base,
                    history=history,
                    dp=run.dp or steps == 0,
                    created=utc_now(),
                    outcome="cancelled" if isinstance(error, (Cancelled, KeyboardInterrupt)) else "failed",
                    epsilon=epsilon,
                    rdp=curve,
                )
                unreleased = card.charge(
                    charge_base, outcome=charge.outcome, created=charge.created, released=False
                )
                with self.session.writing() as cat:
                    ledger.settle_charge(cat["ledger"], charge, delta=ledger_delta, accountant=run.accountant)
                    if unreleased is not None:  # the card's figures were never drawn
                        ledger.settle_charge(
                            cat["ledger"], unreleased, delta=ledger_delta, accountant=run.accountant
                        )
                    cat["runs"][run_id] = {
                        **charge_base,
                        "model": None,
                        "created": started,
                        "outcome": charge.outcome,
                        "steps": steps,
                        "user": self.session.user,
                        "name": run_name,
                    }
                self.session.record(
                    "train.end",
                    name,
                    charge.outcome,
                    run=run_id,
                    steps=steps,
                    epsilon=charge.epsilon,
                    error=error.title if isinstance(error, StrongroomError) else type(error).__name__,
                )
                raise
            try:
                return self._store_run(
                    outcome,
                    run,
                    run_id,
                    run_name,
                    started,
                    info,
                    facts,
                    charge_base,
                    ledger_delta,
                    config,
                    tuned,
                    card,
                )
            except (StrongroomError, OSError) as error:
                raise settle.store_failed(
                    self.session,
                    error,
                    outcome=outcome,
                    run=run,
                    run_id=run_id,
                    run_name=run_name,
                    started=started,
                    charge_base=charge_base,
                    ledger_delta=ledger_delta,
                    rdp=tuned.curve if tuned else None,
                    metrics=card.charge(charge_base, outcome="running", created=started),
                ) from None
        finally:
            marker.release()

    def _store_run(
        self,
        outcome: Any,
        run: Any,
        run_id: str,
        run_name: str,
        started: str,
        info: dict[str, Any],
        facts: dict[str, Any],
        charge_base: dict[str, Any],
        ledger_delta: float,
        config: TrainConfig,
        tuned: Any = None,
        release: card_release.CardRelease | None = None,
    ) -> dict[str, Any]:
        from vault.train.card import card_json, card_markdown
        from vault.train.weights import weights_to_bytes

        model_id = f"{run.model}-{secrets.token_hex(4)}"
        created = utc_now()
        release = release or card_release.CardRelease("marked", None)
        outcome, metrics_privacy = release.apply(outcome, run_id)  # what the card may publish
        dataset_card = {
            "name": info["name"],
            "version": info["version"],
            "digest": info["digest"],
            "ledger_id": info["ledger_id"],
            "records": info["samples"],
            "classes": list(info["classes"]),
            "sensitivity": info["sensitivity"],
        }
        card = card_json(
            outcome,
            model_id=model_id,
            dataset=dataset_card,
            run_name=run_name,
            created=created,
            reproducible=config.reproducible,
            metrics_privacy=metrics_privacy,
        )
        files = {
            WEIGHTS: weights_to_bytes(outcome.state_dict, outcome.model_config),
            CARD_JSON: json.dumps(card, indent=2, sort_keys=True).encode("utf-8"),
            CARD_MD: card_markdown(card).encode("utf-8"),
        }
        dp = outcome.dp
        charge = ledger.Charge(
            **charge_base,
            history=ledger.normalise(dp.history if dp else []),
            dp=dp is not None,
            created=created,
            epsilon=dp.epsilon if dp else None,
            rdp=tuned.curve if tuned else None,
        )
        with self.session.writing() as cat:
            objects = {
                fname: self.session.put_object("model", f"model={model_id}/{fname}", data)
                for fname, data in files.items()
            }
            cat["models"][model_id] = {
                "id": model_id,
                "run": run_id,
                "name": run_name,
                "model": run.model,
                "config": outcome.model_config,
                "classes": list(info["classes"]),
                "dataset": info["name"],
                "dataset_version": info["version"],
                "dataset_facts": facts,
                "dp": dp is not None,
                "epsilon": dp.epsilon if dp else None,
                "delta": dp.delta if dp else None,
                "accuracy": outcome.accuracy,
                "macro_f1": outcome.metrics.get("macro_f1"),
                "created": created,
                "user": self.session.user,
                "objects": objects,
            }
            cat["runs"][run_id] = {
                **charge_base,
                "model": model_id,
                "created": started,
                "finished": created,
                "outcome": "ok",
                "steps": dp.steps if dp else sum(1 for _ in outcome.epochs),
                "user": self.session.user,
                "name": run_name,
            }
            section = cat["ledger"]
            ledger.settle_charge(section, charge, delta=ledger_delta, accountant=run.accountant)
            metrics = release.charge(charge_base, outcome="ok", created=created)
            if metrics is not None:
                ledger.settle_charge(section, metrics, delta=ledger_delta, accountant=run.accountant)
            spent = ledger.summary(
                section,
                info["ledger_id"],
                default_delta=ledger_delta,
                linked=links_by_lineage(cat).get(info["ledger_id"], ()),
            )
        self.session.record(
            "train.end",
            info["name"],
            "ok",
            run=run_id,
            model=model_id,
            steps=dp.steps if dp else None,
            epsilon=dp.epsilon if dp else None,
            accuracy=outcome.accuracy,
            ledger_epsilon=spent["epsilon_spent"],
            ledger_unbounded=spent["unbounded"],
            weights_sha256=_sha256(files[WEIGHTS]),
        )
        return {
            "model": model_id,
            "run": run_id,
            "name": run_name,
            "dataset": info["name"],
            "version": info["version"],
            "architecture": run.model,
            "dp": dp is not None,
            "epsilon": dp.epsilon if dp else None,
            "delta": dp.delta if dp else None,
            "noise_multiplier": dp.noise_multiplier if dp else None,
            "sample_rate": run.sample_rate,
            "steps": dp.steps if dp else run.total_steps,
            "max_grad_norm": dp.max_grad_norm if dp else None,
            "accountant": dp.accountant if dp else None,
            "accuracy": outcome.accuracy,
            "macro_f1": outcome.metrics.get("macro_f1"),
            "hyperparameters": outcome.hyperparameters,
            "seed": outcome.seed,
            "split": outcome.split,
            "leakage": outcome.leakage,
            "device": outcome.device,
            "world_size": run.world_size,
            "distributed": outcome.distributed,
            "timings": outcome.timings,
            "ledger": {k: spent[k] for k in ("epsilon_spent", "unbounded", "delta")},
            **({"tuning": outcome.tuning} if outcome.tuning else {}),
            "metrics_privacy": metrics_privacy,
        }

    def projected_lifetime_epsilon(
        self,
        dataset_facts: dict[str, Any],
        *,
        epsilon: float,
        delta: float | None = None,
        model: str | None = None,
    ) -> float | None:
        """The dataset's composed epsilon if a DP run with these settings ran now (for dry-run checks)."""
        from vault.privacy.accounting import default_delta

        run_start.load_engine()
        from vault.train import engine

        info = self.datasets.info(dataset_facts["name"], None, decide=False)
        config = TrainConfig(model=model or "auto", dp=True, epsilon=epsilon, delta=delta)
        run = engine.plan(
            kind=info["kind"],
            classes=len(info["classes"]),
            counts=[int(info["counts"].get(c, 0)) for c in info["classes"]],
            input_shape=info.get("shape"),
            config=config,
        )
        catalog = self.session.read_catalog()
        section = catalog.get("ledger", {})
        ledger_delta = ledger.ledger_delta(
            section, info["ledger_id"], run.delta or default_delta(info["samples"])
        )
        planned, _ = card_release.plan(self.session.policy, run, ledger_delta).cost(run.history(), None)
        return ledger.projected_with_links(
            section,
            info["ledger_id"],
            planned,
            ledger_delta,
            links_by_lineage(catalog),
            dp=True,
            accountant=run.accountant,
        )

    # ------------------------------------------------------------------ models and cards
    @staticmethod
    def model_entry(catalog: Catalog, model_id: str) -> ModelEntry:
        model = catalog["models"].get(model_id)
        if model is None:
            known = ", ".join(sorted(catalog["models"])) or "none yet"
            raise NotFound(f"no model {model_id!r}", f"`strongroom models` lists them (known: {known})")
        return model

    def summaries(self) -> list[ModelSummary]:
        self.session.decide("model.read_metadata", target="models")
        catalog = self.session.read_catalog()
        rows = [
            {
                "id": m["id"],
                "dataset": m["dataset"],
                "version": m.get("dataset_version"),
                "model": m["model"],
                "dp": m["dp"],
                "epsilon": m["epsilon"],
                "delta": m["delta"],
                "accuracy": m["accuracy"],
                "created": m["created"],
                "name": m.get("name", ""),
            }
            for m in catalog["models"].values()
        ]
        return sorted(rows, key=lambda r: r["created"])

    def card(self, model_id: str, *, markdown: bool = False) -> dict[str, Any] | str:
        """The model card (JSON as a dict, or the Markdown text)."""
        self.session.decide("model.read_metadata", target=model_id)
        model = self.model_entry(self.session.read_catalog(), model_id)
        blob = self.session.get_object(model["objects"][CARD_MD if markdown else CARD_JSON])
        return blob.decode("utf-8") if markdown else json.loads(blob)

    def evaluate(self, model_id: str, dataset: str, *, version: int | None = None) -> dict[str, Any]:
        """Metrics of a sealed model on every record of a dataset (accuracy, macro-F1, per class,
        confusion matrix)."""
        run_start.load_engine()
        from vault.train.evaluate import evaluate as evaluate_records
        from vault.train.weights import weights_from_bytes

        catalog = self.session.read_catalog()
        model = self.model_entry(catalog, model_id)
        self.session.decide(
            "evaluate", target=model_id, model=model["model"], dataset=self.datasets.facts(dataset)
        )
        weights = weights_from_bytes(self.session.get_object(model["objects"][WEIGHTS]))
        loaded = self.datasets.load(dataset, purpose="evaluate", version=version)
        metrics = evaluate_records(
            weights, model["config"], _train_data(loaded), model_classes=model["classes"]
        )
        self.session.record(
            "model.evaluate",
            dataset,
            "ok",
            model=model_id,
            version=loaded.version,
            samples=metrics["samples"],
            accuracy=metrics["accuracy"],
        )
        return {"model": model_id, "dataset": dataset, "version": loaded.version, **metrics}

    # ------------------------------------------------------------------ budget
    def budget(self, dataset: str | None = None) -> list[Budget]:
        """Each dataset's composed privacy spend: epsilon_spent (None when unbounded), delta,
        epsilon_cap (None when the policy sets none), runs."""
        from vault.privacy.accounting import default_delta

        self.session.decide("budget.read", target=dataset or "datasets")
        catalog = self.session.read_catalog()
        names = [dataset] if dataset else sorted(catalog["datasets"])
        rows = []
        links = links_by_lineage(catalog)
        for name in names:
            info = self.datasets.info(name, None, decide=False)
            summary = ledger.summary(
                catalog["ledger"],
                info["ledger_id"],
                default_delta=default_delta(info["samples"]),
                cap=self.session.policy.lifetime_epsilon_cap(info["sensitivity"]),
                linked=links.get(info["ledger_id"], ()),
            )
            rows.append({"dataset": name, **summary, "overlaps": self.datasets.overlaps(catalog, name)})
        return rows


def _train_data(loaded: LoadedDataset) -> Any:
    from vault.train.data import TrainData

    return TrainData.from_records(
        loaded.kind,
        loaded.classes,
        loaded.x,
        loaded.y,
        name=loaded.name,
        version=loaded.version,
        digest=loaded.digest,
    )


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
