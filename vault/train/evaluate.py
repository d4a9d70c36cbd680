"""Evaluate trained weights on records: rebuild the model from its config, load the weights,
predict, and report the same metrics as training does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vault.errors import InputError, UsageError
from vault.train.data import TrainData, check_data, prepare_all
from vault.train.engine import predict, resolve_device
from vault.train.memory import keep_freed_memory
from vault.train.metrics import classification_metrics
from vault.train.models import build_model


def load_model(
    state_dict: dict[str, torch.Tensor], model_config: dict[str, Any], device: str = "cpu"
) -> torch.nn.Module:
    model = build_model(model_config)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise InputError(
            "the weights do not fit the model's config", "the model record is damaged"
        ) from error
    return model.to(resolve_device(device)).eval()


def evaluate(
    state_dict: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    data: TrainData,
    *,
    model_classes: Sequence[str] | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Metrics of the model on every record of `data` (accuracy, macro-F1, per class, confusion).

    `model_classes` are the class names the model was trained with; the dataset's classes must
    be the same list in the same order, or the labels would not mean the same thing."""
    check_data(data)
    if data.kind != model_config["kind"]:
        raise UsageError(
            f"the model classifies {model_config['kind']} but the dataset holds {data.kind}",
            "evaluate on a dataset of the kind the model was trained on",
        )
    if len(data.classes) != int(model_config["classes"]) or (
        model_classes is not None and list(model_classes) != list(data.classes)
    ):
        raise UsageError(
            "the dataset's classes differ from the model's",
            f"the model knows {list(model_classes) if model_classes else model_config['classes']} classes",
        )
    if data.kind == "image" and data.input_shape() != list(model_config["input_shape"]):
        raise UsageError(
            f"images are {data.input_shape()} but the model takes {model_config['input_shape']}",
            "evaluate on images of the shape the model was trained on",
        )
    target = resolve_device(device)
    keep_freed_memory()
    model = load_model(state_dict, model_config, str(target))
    inputs = prepare_all(model, data.x, target)
    logits, _ = predict(model, inputs)
    return classification_metrics(logits.argmax(1), data.y.to(target), list(data.classes))
