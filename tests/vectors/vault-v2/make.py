"""How tests/vectors/vault-v2 was made: by format 2's code, with cheap key derivation switched on in
this process (`use_test_kdf()`), so that a reader written from docs/FORMAT.md has a vault to open:

    .venv/bin/python tests/vectors/vault-v2/make.py [OUT]

OUT defaults to this folder; it gets `vault/` and `EXPECTED.json`. The vault has three users (admin,
operator olivia, auditor aaron), an image dataset of 60 MNIST digits from vault/demo_data in three
shards, a text dataset of six records in three shards, and one model trained on the digits. Shards
are cut at a few kilobytes here instead of 32 MiB so the datasets have several shards while the
vector stays small: the format does not fix a shard's size, the catalog records each one. The
image shards and the weights are longer than one 16 KiB chunk, so they have chunk boundaries.

tests/vectors/test_format_reader.py runs this script into a temporary folder (a fresh vault made by
the current code) as well as reading the checked-in one.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import struct
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from vault.crypto import keys  # noqa: E402
from vault.netguard import state as isolation_state  # noqa: E402
from vault.storage import shards  # noqa: E402

USERS = {
    "admin": ("admin", "known-answer passphrase"),
    "olivia": ("operator", "olivia's known passphrase"),
    "aaron": ("auditor", "aaron's known passphrase"),
}
DIGITS = 60
IMAGE_SHARD_BYTES = 20_000  # 25 images of 28 x 28 per shard: shards of 25, 25 and 10
TEXT_SHARD_BYTES = 30  # a shard closes once its records reach 30 UTF-8 bytes: three of two
TEXT_ROWS = [
    ("ham", "see you at noon"),
    ("spam", "WIN a prize, call now"),
    ("ham", "naïve café, 10 €"),
    ("spam ✉", "free entry: text WIN 😀"),
    ("ham", "running late"),
    ("spam ✉", 'claim it: "now" \\ today'),
]


def _idx(path: Path, dims: tuple[int, ...], payload: bytes) -> None:
    head = bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    path.write_bytes(head + payload)


def _digits(folder: Path) -> tuple[Path, Path, bytes, list[int]]:
    """The first DIGITS images and labels of the bundled MNIST sample, as raw IDX files."""
    demo = REPO / "vault" / "demo_data"
    pixels = gzip.decompress((demo / "mnist-1000-images-idx3-ubyte.gz").read_bytes())[16 : 16 + DIGITS * 784]
    labels = gzip.decompress((demo / "mnist-1000-labels-idx1-ubyte.gz").read_bytes())[8 : 8 + DIGITS]
    _idx(folder / "images-idx3-ubyte", (DIGITS, 28, 28), pixels)
    _idx(folder / "labels-idx1-ubyte", (DIGITS,), labels)
    return folder / "images-idx3-ubyte", folder / "labels-idx1-ubyte", pixels, list(labels)


def make(out: Path) -> dict:
    import torch

    from vault.door import Vault
    from vault.ingest import ImportOptions
    from vault.train.weights import weights_from_bytes

    keys.use_test_kdf()
    isolation_state.waive_for_tests()
    shutil.rmtree(out / "vault", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        images, labels, pixels, digit_labels = _digits(Path(tmp))
        text = Path(tmp) / "notes.tsv"
        text.write_text("label\ttext\n" + "".join(f"{label}\t{t}\n" for label, t in TEXT_ROWS), "utf-8")
        with Vault.create(out / "vault", passphrase=USERS["admin"][1].encode()) as v:
            for user, (role, passphrase) in USERS.items():
                if user != "admin":
                    v.keys_add(user, role, passphrase.encode())
            shards.SHARD_BYTES = IMAGE_SHARD_BYTES
            options = ImportOptions(labels=labels)
            digits = v.import_dataset(images, name="digits", sensitivity="low", options=options)
            shards.SHARD_BYTES = TEXT_SHARD_BYTES
            notes = v.import_dataset(text, name="notes", sensitivity="low")
            model_id = v.train(
                {"dataset": "digits", "model": "scatternet", "dp": False, "epochs": 1, "seed": 1}
            )["model"]
            catalog = v._session.read_catalog()
            model = catalog["models"][model_id]
            weights = v._session.get_object(model["objects"]["model.safetensors"])
    (out / "vault" / "lock").unlink(missing_ok=True)
    dtypes = {torch.float32: "F32", torch.int64: "I64", torch.uint8: "U8"}

    def shards_of(name: str) -> dict[str, list]:
        refs = catalog["datasets"][name]["versions"][0]["shards"]
        return {"shards": [[s["start"], s["stop"]] for s in refs], "objects": [s["id"] for s in refs]}

    expected = {
        "users": {user: {"role": role, "passphrase": p} for user, (role, p) in USERS.items()},
        "vault_id": catalog["vault_id"],
        "datasets": {
            "digits": {
                "kind": "image",
                "samples": DIGITS,
                **shards_of("digits"),
                "labels": [str(d) for d in digit_labels],
                "images_sha256": hashlib.sha256(pixels).hexdigest(),
                "digest": digits["digest"],
            },
            "notes": {
                "kind": "text",
                "samples": len(TEXT_ROWS),
                **shards_of("notes"),
                "labels": [label for label, _ in TEXT_ROWS],
                "texts": [t for _, t in TEXT_ROWS],
                "digest": notes["digest"],
            },
        },
        "models": {
            model_id: {
                "model": "scatternet",
                "dataset": "digits",
                "parts": {part: ref["size"] for part, ref in sorted(model["objects"].items())},
                "weights_sha256": hashlib.sha256(weights).hexdigest(),
                "tensors": {
                    name: {"dtype": dtypes[t.dtype], "shape": list(t.shape)}
                    for name, t in sorted(weights_from_bytes(weights).items())
                },
                "metadata": {
                    "format": "strongroom-weights-1",
                    "model_config": json.dumps(model["config"], sort_keys=True),
                },
                "card": {"model.id": model_id, "dataset.digest": digits["digest"]},
            }
        },
    }
    (out / "EXPECTED.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return expected


if __name__ == "__main__":
    print(json.dumps(make(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE), indent=2, ensure_ascii=False))
