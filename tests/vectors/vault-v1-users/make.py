"""How tests/vectors/vault-v1-users was made: once, by the release that wrote format 1 (this build
reads format 1 but writes format 2), with that release's cheap test key derivation:

    STRONGROOM_TEST_KDF=cheap STRONGROOM_TEST_ISOLATION=waive python make.py OUT

A format 1 vault with three users (admin, operator olivia, auditor aaron) and one text dataset,
kept so the upgrade to format 2 is tested on users other than the admin who upgrades it.
"""

import json
import shutil
import sys
from pathlib import Path

from vault.door import Vault

out = Path(sys.argv[1])
shutil.rmtree(out, ignore_errors=True)
rows = [
    ("ham", "see you at noon"),
    ("spam", "WIN a prize, call now"),
    ("ham", "ok, thanks!"),
    ("spam", "free entry: text WIN"),
    ("ham", "running late"),
    ("ham", "dinner?"),
]
src = out.parent / "kat.tsv"
src.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in rows))
with Vault.create(out / "vault", passphrase=b"known-answer passphrase") as v:
    v.keys_add("olivia", "operator", b"olivia's known passphrase")
    v.keys_add("aaron", "auditor", b"aaron's known passphrase")
    v.import_dataset(src, name="kat", sensitivity="low")
expected = {
    "users": {
        "admin": "known-answer passphrase",
        "olivia": "olivia's known passphrase",
        "aaron": "aaron's known passphrase",
    },
    "dataset": "kat",
    "texts": [text for _, text in rows],
    "labels": [label for label, _ in rows],
}
(out / "EXPECTED.json").write_text(json.dumps(expected, indent=2) + "\n")
