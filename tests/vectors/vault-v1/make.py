"""How tests/vectors/vault-v1 was made: once, by the release that wrote format 1 (this build reads
format 1, upgrades it at an admin's unlock, and writes format 2); the vault it wrote is checked in
and must keep opening. That release's cheap test key derivation was switched on by its environment:

    STRONGROOM_TEST_KDF=cheap STRONGROOM_TEST_ISOLATION=waive python tests/vectors/vault-v1/make.py
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from vault.door import Vault  # noqa: E402

PASSPHRASE = "known-answer passphrase"
ROWS = [
    ("ham", "Ok lar... Joking wif u oni..."),
    ("spam", "Free entry in 2 a wkly comp"),
    ("ham", "U dun say so early hor"),
    ("spam", "WINNER!! claim your prize"),
    ("ham", "Nah I don't think he goes"),
]

if __name__ == "__main__":
    shutil.rmtree(HERE / "vault", ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kat.tsv"
        src.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in ROWS), "utf-8")
        with Vault.create(HERE / "vault", passphrase=PASSPHRASE.encode()) as v:
            info = v.import_dataset(src, name="kat", sensitivity="low")
    (HERE / "vault" / "lock").unlink(missing_ok=True)
    expected = {
        "user": "admin",
        "passphrase": PASSPHRASE,
        "dataset": "kat",
        "texts": [t for _, t in ROWS],
        "labels": [label for label, _ in ROWS],
        "digest": info["digest"],
    }
    (HERE / "EXPECTED.json").write_text(json.dumps(expected, indent=2) + "\n")
