"""Peers the recipes must match, written from their definitions (no scikit-learn here), and the
public datasets they are measured on (../shared/datasets, read with the standard library).

`hashed_logistic_regression` is scikit-learn's HashingVectorizer(ngram_range=(1, 2), 2**18
features, signed hashing, l2 norm) with LogisticRegression(C=1, lbfgs): a data-independent
text classifier that takes no vocabulary from the records.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import struct
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def dataset(*parts: str) -> Path:
    """A path under ../shared/datasets. Where it is absent, a test skips with the reason
    (`tests.support.shared_path`; every loader here goes through this, so no test can forget); a
    benchmark gets the reason as an error."""
    path = DATASETS.joinpath(*parts)
    if not path.exists():
        if "pytest" in sys.modules:
            from tests.support import shared_path

            return shared_path("datasets", *parts)
        raise FileNotFoundError(f"../shared/datasets/{'/'.join(parts)} is absent")
    return path


_WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern


def sms() -> tuple[list[str], list[int], list[str]]:
    texts, labels = [], []
    for line in dataset("sms_spam_collection", "SMSSpamCollection").read_text("utf-8").splitlines():
        label, text = line.split("\t", 1)
        texts.append(text)
        labels.append(1 if label == "spam" else 0)
    return texts, labels, ["ham", "spam"]


def ag_news() -> tuple[list[str], list[int], list[str]]:
    texts, labels = [], []
    for row in csv.reader(io.StringIO(dataset("ag_news", "test.csv").read_text("utf-8"))):
        labels.append(int(row[0]) - 1)
        texts.append(f"{row[1]} {row[2]}".replace("\\n", " "))
    return texts, labels, ["World", "Sports", "Business", "Sci/Tech"]


PYTHON_DOC_TOPICS = ("asyncio", "email", "http", "importlib", "logging", "tkinter", "unittest", "xml")


def python_docs(per_topic: int = 150) -> tuple[list[str], list[int], list[str]]:
    """Technical prose in 8 topics: paragraphs (8 words or more) of the docstrings of the running
    Python's standard-library packages (PSF license), `per_topic` of each, spread evenly over
    the package's files in sorted order; the label is the package. Deterministic for a Python
    version; built on any machine with Python, no download."""
    import ast
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    texts, labels = [], []
    for label, topic in enumerate(PYTHON_DOC_TOPICS):
        paragraphs: list[str] = []
        for path in sorted((root / topic).rglob("*.py")):
            if "test" in path.relative_to(root / topic).parts:
                continue
            tree = ast.parse(path.read_text("utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    for paragraph in (ast.get_docstring(node) or "").split("\n\n"):
                        if len(paragraph.split()) >= 8 and paragraph not in paragraphs:
                            paragraphs.append(paragraph)
        step = max(1, len(paragraphs) // per_topic)
        for paragraph in paragraphs[::step][:per_topic]:
            texts.append(paragraph)
            labels.append(label)
    return texts, labels, list(PYTHON_DOC_TOPICS)


def mnist_t10k() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10,000 test images (N, 1, 28, 28) uint8 and labels."""
    folder = dataset("mnist")
    images = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    x = np.frombuffer(images, np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return x, np.frombuffer(labels, np.uint8, offset=8).astype(np.int64)


def mnist_idx(folder: Path, count: int, tag: str = "mnist") -> tuple[Path, Path]:
    """The first `count` MNIST test images and labels written as IDX files in `folder` (images,
    labels), as a user's own export would be."""
    x, y = mnist_t10k()
    image_path, label_path = folder / f"{tag}-images-idx3-ubyte", folder / f"{tag}-labels-idx1-ubyte"
    image_path.write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + x[:count].tobytes())
    label_path.write_bytes(struct.pack(">II", 2049, count) + y[:count].astype(np.uint8).tobytes())
    return image_path, label_path


def cifar_subset(part: str = "train") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The CIFAR-10 JPEG subset's `part` (train: 3,000, test: 1,000) as (N, 3, 32, 32) uint8 images,
    labels and class names (the folder names, sorted)."""
    from PIL import Image

    folder = dataset("cifar10_jpg_subset", part)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((folder / name).glob("*.jpg")):
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
            labels.append(index)
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def small_digits(n: int = 1800, side: int = 16, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A small grey digits set like the public 1,797-image one: MNIST images area-downsampled."""
    x, y = mnist_t10k()
    images = torch.from_numpy(x[start : start + n].copy()).float()
    small = torch.nn.functional.interpolate(images, size=(side, side), mode="area")
    return small.round().clamp(0, 255).to(torch.uint8), torch.from_numpy(y[start : start + n].copy())


def _hashed_rows(texts: Sequence[str], features: int) -> tuple[list[int], list[int], list[float]]:
    rows, cols, values = [], [], []
    for row, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        counts: dict[int, float] = {}
        for gram in grams:
            h = zlib.crc32(gram.encode("utf-8"))
            sign = 1.0 if h & 0x80000000 == 0 else -1.0
            counts[h % features] = counts.get(h % features, 0.0) + sign
        norm = sum(v * v for v in counts.values()) ** 0.5 or 1.0
        for col, value in counts.items():
            rows.append(row)
            cols.append(col)
            values.append(value / norm)
    return rows, cols, values


def hashed_logistic_regression(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    test_texts: Sequence[str],
    classes: int,
    *,
    features: int = 1 << 18,
    c: float = 1.0,
) -> np.ndarray:
    """Predicted labels of `test_texts`: multinomial logistic regression, L2 penalty |W|^2 / (2C)
    beside the summed log-loss (scikit-learn's objective), solved by L-BFGS on the full batch.
    Columns no training text uses keep weight 0 at the optimum, so only used columns are solved."""
    from scipy import optimize, sparse

    rows, cols, values = _hashed_rows(train_texts, features)
    used = {col: k for k, col in enumerate(sorted(set(cols)))}
    x = sparse.csr_matrix((values, (rows, [used[c] for c in cols])), shape=(len(train_texts), len(used)))
    onehot = np.eye(classes)[np.asarray(list(train_labels))]
    width = len(used) * classes

    def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weight, bias = flat[:width].reshape(len(used), classes), flat[width:]
        logits = x @ weight + bias
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        loss = -(onehot * log_p).sum() + (weight**2).sum() / (2 * c)
        residual = np.exp(log_p) - onehot
        grad_w = x.T @ residual + weight / c
        return loss, np.concatenate([grad_w.ravel(), residual.sum(0)])

    start = np.zeros(width + classes)
    solved = optimize.minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": 300})
    weight, bias = solved.x[:width].reshape(len(used), classes), solved.x[width:]
    rows, cols, values = _hashed_rows(test_texts, features)
    kept = [(r, used[c], v) for r, c, v in zip(rows, cols, values, strict=True) if c in used]
    test = sparse.csr_matrix(
        ([k[2] for k in kept], ([k[0] for k in kept], [k[1] for k in kept])),
        shape=(len(test_texts), len(used)),
    )
    return np.asarray(test @ weight + bias).argmax(1)
