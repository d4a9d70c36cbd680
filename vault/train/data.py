"""Records in memory -> training tensors: the seeded held-out split and batch-indexable datasets.

Nothing here computes statistics of the records: image scaling uses fixed constants and text is
tokenised by hashing (see models.py and text.py), so the only thing that touches the records'
content under DP is DP-SGD itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

from vault.errors import InputError

MIN_RECORDS = 10


@dataclass(frozen=True)
class TrainData:
    """A decoded dataset: images uint8 (N, C, H, W) or a list of texts, labels int64 (N,)."""

    kind: str  # "image" | "text"
    classes: Sequence[str]
    x: torch.Tensor | Sequence[str]
    y: torch.Tensor
    name: str = ""
    version: int | None = None
    digest: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_records(
        cls, kind: str, classes: Sequence[str], records: Any, labels: Any, **identity: Any
    ) -> TrainData:
        """From numpy arrays or tensors (images uint8 (N, C, H, W), labels int64) or a list of texts."""
        x = torch.as_tensor(records) if kind == "image" else list(records)
        return cls(kind, list(classes), x, torch.as_tensor(labels, dtype=torch.int64), **identity)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def input_shape(self) -> list[int] | None:
        if self.kind == "image" and isinstance(self.x, torch.Tensor):
            return [int(v) for v in self.x.shape[1:]]
        return None


def check_data(data: TrainData) -> None:
    """Raises InputError when the records cannot be trained on as given."""
    if data.kind not in ("image", "text"):
        raise InputError(f"unknown dataset kind {data.kind!r}", "a dataset holds either images or texts")
    n = len(data)
    if data.y.dtype != torch.int64 or data.y.dim() != 1:
        raise InputError("labels must be a 1-D int64 tensor", "decode the dataset through vault.ingest")
    if data.kind == "image":
        if not isinstance(data.x, torch.Tensor) or data.x.dtype != torch.uint8 or data.x.dim() != 4:
            raise InputError(
                "images must be a uint8 tensor (N, C, H, W)", "decode the dataset through vault.ingest"
            )
    elif isinstance(data.x, torch.Tensor) or not all(isinstance(t, str) for t in data.x):
        raise InputError("texts must be a list of strings", "decode the dataset through vault.ingest")
    if len(data.x) != n:
        raise InputError(f"{len(data.x)} records but {n} labels", "re-import the dataset")
    if len(data.classes) < 2:
        raise InputError(
            "a classifier needs at least two classes", "import a dataset with two or more labels"
        )
    if n and (int(data.y.min()) < 0 or int(data.y.max()) >= len(data.classes)):
        raise InputError("a label is outside the class list", "re-import the dataset")


@dataclass(frozen=True)
class Split:
    """Held-out split drawn from the seed: stratified, so every class with two or more records is
    represented on both sides."""

    train: torch.Tensor
    val: torch.Tensor
    seed: int
    fraction: float

    def to_json(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.val.sort().values.numpy().astype("<i8").tobytes()).hexdigest()
        return {
            "seed": self.seed,
            "val_fraction": self.fraction,
            "train": int(self.train.numel()),
            "val": int(self.val.numel()),
            "val_indices_sha256": digest,
            "stratified": True,
        }


def split(labels: torch.Tensor, fraction: float, seed: int) -> Split:
    """Stratified held-out split of indices, fixed by `seed`. `fraction` 0 keeps everything for
    training (no held-out metrics). Raises InputError when the dataset is too small to split."""
    n = int(labels.numel())
    if n < MIN_RECORDS:
        raise InputError(
            f"the dataset has {n} records; training needs at least {MIN_RECORDS}",
            "import more records",
        )
    generator = torch.Generator().manual_seed(seed)
    if fraction <= 0:
        return Split(torch.randperm(n, generator=generator), torch.zeros(0, dtype=torch.int64), seed, 0.0)
    train_parts, val_parts = [], []
    for label in torch.unique(labels).tolist():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(members.numel(), generator=generator)]
        take = int(round(members.numel() * fraction))
        if members.numel() >= 2:
            take = min(max(take, 1), members.numel() - 1)
        else:
            take = 0
        val_parts.append(members[:take])
        train_parts.append(members[take:])
    train_idx, val_idx = torch.cat(train_parts), torch.cat(val_parts)
    if val_idx.numel() == 0 or train_idx.numel() < 2:
        raise InputError(
            f"the dataset ({n} records) is too small to hold out {fraction:.0%} for validation",
            "import more records or lower --val-split",
        )
    train_idx = train_idx[torch.randperm(train_idx.numel(), generator=generator)]
    return Split(train_idx, val_idx.sort().values, seed, fraction)


IGNORE = -100  # cross-entropy's ignore_index: a padding row's label


class BatchDataset(Dataset):
    """Tensors indexable a whole batch at a time (`__getitems__`), so a Poisson batch is one gather
    instead of one Python call per record.

    With `pad_to` > 1 a batch is padded, in the same gather, to a multiple of `pad_to` rows by
    repeating its first record labelled IGNORE: a padding row has loss 0 and so no gradient."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, pad_to: int = 1) -> None:
        self.x, self.y, self.pad_to = x, y, pad_to

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(indices)
        padding = -n % self.pad_to if n else 0
        index = torch.as_tensor(indices + indices[:1] * padding, dtype=torch.int64, device=self.y.device)
        labels = self.y[index]
        if padding:
            labels[n:] = IGNORE
        return self.x[index], labels


def collate_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collation for BatchDataset: its batches are already stacked."""
    return batch


def select(records: torch.Tensor | Sequence[str], index: torch.Tensor) -> torch.Tensor | list[str]:
    if isinstance(records, torch.Tensor):
        return records[index]
    return [records[i] for i in index.tolist()]


@torch.no_grad()
def prepare_all(
    model: torch.nn.Module, records: torch.Tensor | Sequence[str], device: torch.device, chunk: int = 128
) -> torch.Tensor:
    """Runs the model's fixed per-record `prepare` over all records in chunks (bounded memory);
    the result stays on `device`. Chunks of 128: a second-order scattering's intermediate maps then
    stay in the CPU's caches (2,000 MNIST digits: 0.3-0.56 s, against 0.68-1.03 s in chunks of 1,024)."""
    parts = []
    for start in range(0, len(records), chunk):
        part = records[start : start + chunk]
        if isinstance(part, torch.Tensor):
            part = part.to(device)
        parts.append(model.prepare(part).to(device))
    return torch.cat(parts)
