"""The ledger follows the records: a re-import of records a spent dataset holds (shuffled, a subset,
a superset, relabelled, another file format, after deletion) carries that dataset's spend, and the
cap refuses training on it. One real DP run on 'clinic' (200 MNIST digits), copied per test."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support import PASSPHRASE, REPO, SHARED
from vault.door import Vault
from vault.errors import PolicyDenied
from vault.ingest import ImportOptions

CAP = 3.0
COUNT = 200


def policy(lifetime: float) -> str:
    text = (REPO / "policies" / "default.toml").read_text()
    text = text.replace("max_epsilon_per_run = 10.0", f"max_epsilon_per_run = {lifetime}")
    return text.replace("max_lifetime_epsilon = 20.0", f"max_lifetime_epsilon = {lifetime}")


def mnist(count: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    folder = SHARED / "datasets" / "mnist"
    if not folder.is_dir():
        pytest.skip("../shared/datasets/mnist absent: the MNIST files live beside the repo")
    images = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    x = np.frombuffer(images, np.uint8, count * 784, 16 + offset * 784).reshape(count, 28, 28)
    y = np.frombuffer(labels, np.uint8, count, 8 + offset)
    return x.copy(), y.copy()


def write_idx(folder: Path, tag: str, x: np.ndarray, y: np.ndarray) -> tuple[Path, Path]:
    images, labels = folder / f"{tag}-images-idx3-ubyte", folder / f"{tag}-labels-idx1-ubyte"
    images.write_bytes(struct.pack(">IIII", 2051, len(x), 28, 28) + x.tobytes())
    labels.write_bytes(struct.pack(">II", 2049, len(y)) + y.tobytes())
    return images, labels


def import_idx(v: Vault, folder: Path, name: str, x: np.ndarray, y: np.ndarray) -> dict:
    images, labels = write_idx(folder, name, x, y)
    return dict(v.import_dataset(images, name=name, options=ImportOptions(labels=labels)))


@pytest.fixture(scope="module")
def spent_vault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vault whose 'clinic' has spent most of its cap in one real DP run (its catalog from before
    the run kept beside it, as `catalog-before-training.sealed`)."""
    root = tmp_path_factory.mktemp("spent")
    with Vault.create(root / "vault", passphrase=PASSPHRASE.encode(), policy_text=policy(CAP)) as v:
        x, y = mnist(COUNT)
        import_idx(v, root, "clinic", x, y)
        shutil.copy(root / "vault" / "catalog.sealed", root / "catalog-before-training.sealed")
        v.train({"dataset": "clinic", "epsilon": 2.9, "seed": 1, "epochs": 1, "model": "cnn"})
    return root / "vault"


@pytest.fixture
def vault(spent_vault: Path, tmp_path: Path):
    shutil.copytree(spent_vault, tmp_path / "vault")
    v = Vault.open(tmp_path / "vault", user="admin", passphrase=PASSPHRASE.encode())
    yield v
    v.close()


def budget_of(v: Vault, name: str) -> dict:
    return dict(v.budget(name)[0])


def refused(v: Vault, name: str) -> None:
    with pytest.raises(PolicyDenied) as caught:
        v.train({"dataset": name, "epsilon": 2.0, "seed": 1, "epochs": 1, "model": "cnn"})
    assert caught.value.detail["rule"] == "privacy.max_lifetime_epsilon"


def clinic_spent(v: Vault) -> float:
    spent = budget_of(v, "clinic")["epsilon_spent"]
    assert 2.0 < spent <= CAP
    return float(spent)


def test_shuffled_reimport_carries_the_spend_and_the_cap_refuses(vault: Vault, tmp_path: Path) -> None:
    spent = clinic_spent(vault)
    x, y = mnist(COUNT)
    order = np.random.default_rng(7).permutation(COUNT)
    info = import_idx(vault, tmp_path, "clinic-again", x[order], y[order])
    assert [(o["dataset"], o["records"], o["of"]) for o in info["overlaps"]] == [("clinic", COUNT, COUNT)]
    assert info["overlaps"][0]["message"] == (
        f"overlaps 'clinic' ({COUNT} of {COUNT} records): ε {spent:.2f} spent carries over"
    )
    row = budget_of(vault, "clinic-again")
    assert row["epsilon_spent"] == pytest.approx(spent)
    assert row["overlaps"][0]["dataset"] == "clinic" and row["overlaps"][0]["records"] == COUNT
    refused(vault, "clinic-again")


def test_subset_reimport_carries_the_spend(vault: Vault, tmp_path: Path) -> None:
    spent = clinic_spent(vault)
    x, y = mnist(COUNT)
    pick = np.random.default_rng(3).permutation(COUNT)[:120]
    info = import_idx(vault, tmp_path, "part", x[pick], y[pick])
    assert [(o["dataset"], o["records"], o["of"]) for o in info["overlaps"]] == [("clinic", 120, 120)]
    row = budget_of(vault, "part")
    assert row["epsilon_spent"] == pytest.approx(spent) and row["epsilon_carried"] == pytest.approx(spent)
    refused(vault, "part")


def test_superset_with_new_records_carries_the_spend(vault: Vault, tmp_path: Path) -> None:
    spent = clinic_spent(vault)
    x, y = mnist(COUNT + 100)
    order = np.random.default_rng(5).permutation(COUNT + 100)
    info = import_idx(vault, tmp_path, "more", x[order], y[order])
    assert [(o["dataset"], o["records"]) for o in info["overlaps"]] == [("clinic", COUNT)]
    assert budget_of(vault, "more")["epsilon_spent"] == pytest.approx(spent)
    refused(vault, "more")


def test_relabelled_records_are_the_same_records(vault: Vault, tmp_path: Path) -> None:
    spent = clinic_spent(vault)
    x, y = mnist(COUNT)
    info = import_idx(vault, tmp_path, "relabelled", x, (y + 1) % 10)
    assert [(o["dataset"], o["records"]) for o in info["overlaps"]] == [("clinic", COUNT)]
    assert budget_of(vault, "relabelled")["epsilon_spent"] == pytest.approx(spent)


def test_the_same_pixels_as_a_png_folder_carry_the_spend(vault: Vault, tmp_path: Path) -> None:
    spent = clinic_spent(vault)
    x, y = mnist(COUNT)
    folder = tmp_path / "pngs"
    for i, (pixels, label) in enumerate(zip(x, y, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / str(label) / f"{i:04d}.png")
    info = dict(vault.import_dataset(folder, name="clinic-png"))
    assert info["format"] == "image-folder"
    assert [(o["dataset"], o["records"]) for o in info["overlaps"]] == [("clinic", COUNT)]
    assert budget_of(vault, "clinic-png")["epsilon_spent"] == pytest.approx(spent)
    refused(vault, "clinic-png")


def test_deleting_and_reimporting_does_not_reset_the_spend(vault: Vault, tmp_path: Path) -> None:
    spent = clinic_spent(vault)
    vault.delete_dataset("clinic")
    x, y = mnist(COUNT)
    order = np.random.default_rng(11).permutation(COUNT)
    info = import_idx(vault, tmp_path, "fresh", x[order], y[order])
    assert info["overlaps"][0]["deleted"] and info["overlaps"][0]["dataset"] == "clinic"
    assert budget_of(vault, "fresh")["epsilon_spent"] == pytest.approx(spent)
    refused(vault, "fresh")


def test_unrelated_records_carry_nothing(vault: Vault, tmp_path: Path) -> None:
    x, y = mnist(100, offset=COUNT)
    info = import_idx(vault, tmp_path, "other", x, y)
    assert info["overlaps"] == []
    assert budget_of(vault, "other")["epsilon_spent"] == 0.0
    assert budget_of(vault, "other")["overlaps"] == []


def test_training_a_subset_charges_the_original_too(vault: Vault, tmp_path: Path) -> None:
    """Overlap is symmetric: a run on shared records spends the original's records again."""
    before = clinic_spent(vault)
    x, y = mnist(COUNT + 100)
    info = import_idx(vault, tmp_path, "grown", x[COUNT - 20 :], y[COUNT - 20 :])
    assert [(o["dataset"], o["records"]) for o in info["overlaps"]] == [("clinic", 20)]
    clinic = budget_of(vault, "clinic")
    assert clinic["overlaps"][0]["dataset"] == "grown" and clinic["epsilon_spent"] == pytest.approx(before)
    refused(vault, "grown")  # clinic would pass its cap


def test_an_auditor_sees_the_overlaps_without_any_record_key(vault: Vault, tmp_path: Path) -> None:
    spent = clinic_spent(vault)
    x, y = mnist(COUNT)
    import_idx(vault, tmp_path, "copy", x[::-1], y[::-1])
    vault.keys_add("audrey", "auditor", b"auditor passphrase 1")
    with Vault.open(vault.path, user="audrey", passphrase=b"auditor passphrase 1") as auditor:
        row = budget_of(auditor, "copy")
    assert row["epsilon_spent"] == pytest.approx(spent) and row["overlaps"][0]["dataset"] == "clinic"


@pytest.mark.parametrize(("first", "second"), [("csv", "tsv"), ("tsv", "jsonl")])
def test_the_same_texts_in_another_format_are_the_same_records(
    new_vault, tmp_path: Path, first: str, second: str
) -> None:
    import json

    rows = [
        ("spam" if i % 5 == 0 else "ham", f"message {i}: see you at {i % 12} o'clock") for i in range(120)
    ]

    def write(fmt: str, ordered: list[tuple[str, str]]) -> Path:
        path = tmp_path / f"texts.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps({"label": lab, "text": t}) + "\n" for lab, t in ordered))
        else:
            sep = "," if fmt == "csv" else "\t"
            path.write_text(f"label{sep}text\n" + "".join(f'{lab}{sep}"{t}"\n' for lab, t in ordered))
        return path

    v = new_vault()
    v.import_dataset(write(first, rows), name="sms")
    info = dict(v.import_dataset(write(second, rows[::-1]), name="sms-again"))
    assert info["format"] == second
    assert [(o["dataset"], o["records"], o["of"]) for o in info["overlaps"]] == [("sms", 120, 120)]
    assert budget_of(v, "sms-again")["overlaps"][0]["dataset"] == "sms"


def test_the_command_line_says_what_carries_over(new_vault, cli, tmp_path: Path) -> None:
    from tests.support import DEMO

    new_vault().close()
    sms = DEMO / "sms-600.tsv"
    lines = sms.read_text(encoding="utf-8").splitlines()
    (tmp_path / "again.tsv").write_text("\n".join(lines[::-1]) + "\n", encoding="utf-8")
    flags = ["--format", "tsv", "--no-header", "--text-column", "1", "--label-column", "0"]
    first = cli("import", str(sms), "--name", "sms", *flags)
    assert first.code == 0, first.err
    second = cli("import", str(tmp_path / "again.tsv"), "--name", "sms-again", *flags)
    assert second.code == 0, second.err
    budget = cli("budget", "--json").json()
    row = next(r for r in budget if r["dataset"] == "sms-again")
    (overlap,) = row["overlaps"]
    assert overlap["dataset"] == "sms" and overlap["records"] == overlap["of"] > 500
    assert f"overlaps 'sms' ({overlap['records']} of {overlap['of']} records): ε 0.00 spent carries over" in (
        second.out
    )
