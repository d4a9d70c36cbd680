"""Ingest on the public datasets in ../shared/datasets: counts and classes as their SOURCE.md files state.

Each test skips with the reason when the dataset is absent.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vault.errors import InputError, UsageError
from vault.ingest import ImportOptions, decode, detect

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MNIST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_idx_pair(shared) -> None:
    folder = shared("datasets", "mnist")
    options = ImportOptions(labels=folder / "t10k-labels-idx1-ubyte.gz")
    data = decode(folder / "t10k-images-idx3-ubyte.gz", options)
    assert data.fmt == "idx" and data.samples == 10_000 and data.shape == (1, 28, 28)
    assert data.classes == [str(d) for d in range(10)]
    assert list(data.counts.values()) == MNIST_COUNTS
    assert data.images.mean() == pytest.approx(33.79, abs=0.01)  # as SOURCE.md measured
    header = struct.pack(">4I", 2051, 10_000, 28, 28)
    assert hashlib.md5(header + data.images.tobytes()).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    preview = detect(folder / "t10k-images-idx3-ubyte.gz", options)
    assert preview.counts == data.counts and preview.samples == 10_000


def test_mnist_with_the_training_labels_is_refused(shared) -> None:
    folder = shared("datasets", "mnist")
    with pytest.raises(InputError, match="IDX counts differ: .* 10000 images, .* 60000 labels"):
        decode(
            folder / "t10k-images-idx3-ubyte.gz", ImportOptions(labels=folder / "train-labels-idx1-ubyte.gz")
        )
    with pytest.raises(UsageError, match="need a labels file"):
        decode(folder / "t10k-images-idx3-ubyte.gz")


def test_sms_spam_tsv(shared) -> None:
    path = shared("datasets", "sms_spam_collection", "SMSSpamCollection")
    data = decode(path, ImportOptions(header=False))  # two columns: label and text are told apart
    assert data.fmt == "tsv" and data.samples == 5574
    assert data.counts == {"ham": 4827, "spam": 747}
    named = decode(path, ImportOptions(header=False, text_column=1, label_column=0))
    assert named.texts == data.texts
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    assert data.texts == [line.split("\t", 1)[1] for line in lines]  # quotes kept, as in the file
    assert max(map(len, data.texts)) == 910


def test_ag_news_csv(shared) -> None:
    path = shared("datasets", "ag_news", "test.csv")
    options = ImportOptions(header=False, text_column="1,2", label_column=0)
    data = decode(path, options)
    assert data.fmt == "csv" and data.samples == 7600
    assert data.counts == {"1": 1900, "2": 1900, "3": 1900, "4": 1900}
    assert data.texts[0].startswith("Fears for T N pension after talks Unions representing workers")
    assert detect(path, options).counts == data.counts
    with pytest.raises(UsageError, match="cannot tell which column"):
        decode(path, ImportOptions(header=False))


@pytest.mark.parametrize(("split", "per_class"), [("train", 300), ("test", 100)])
def test_cifar_jpeg_folders(shared, split: str, per_class: int) -> None:
    root = shared("datasets", "cifar10_jpg_subset", split)
    preview = detect(root)
    data = decode(root)
    assert data.classes == CIFAR_CLASSES == preview.classes
    assert data.counts == {c: per_class for c in CIFAR_CLASSES} == preview.counts
    assert data.shape == (3, 32, 32) == preview.shape
    first = np.asarray(Image.open(root / "airplane" / "0000.jpg").convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(data.images[0], first)
    last = np.asarray(Image.open(root / "truck" / f"{per_class - 1:04d}.jpg").convert("RGB")).transpose(
        2, 0, 1
    )
    np.testing.assert_array_equal(data.images[-1], last)


def test_cifar_root_with_split_folders_is_refused(shared) -> None:
    root = shared("datasets", "cifar10_jpg_subset")
    with pytest.raises(InputError, match=r"holds split folders \(test, train\)") as caught:
        detect(root)
    assert caught.value.hint.endswith(str(Path(root, "train")))


def test_cifar_parallel_and_serial_agree(shared) -> None:
    root = shared("datasets", "cifar10_jpg_subset", "test")
    serial = decode(root, ImportOptions(workers=1))
    parallel = decode(root, ImportOptions(workers=2, image_size=24))
    assert parallel.shape == (3, 24, 24)
    resized = decode(root, ImportOptions(workers=1, image_size=24))
    np.testing.assert_array_equal(parallel.images, resized.images)
    assert serial.images.shape == (1000, 3, 32, 32)
