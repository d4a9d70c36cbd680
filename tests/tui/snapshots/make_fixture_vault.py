"""Builds the checked-in vault the TUI snapshot tests open (tests/tui/snapshots/fixture-vault).

Run from the repository root when the vault format changes, then review and accept the
snapshots again (pytest tests/tui/test_tui_snapshots.py --snapshot-update, then look at each SVG):

    .venv/bin/python tests/tui/snapshots/make_fixture_vault.py

It uses the tests' switches (cheap key derivation, no isolation requirement) in its own process,
so the fixture vault opens fast in tests.

A checked-in vault keeps what the screens show (times, digests, model ids, accuracies) the same
on every run. Its data are the bundled demo subsets (vault/demo_data, real MNIST and SMS records).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIXTURE = Path(__file__).resolve().parent / "fixture-vault"
DEMO = REPO / "vault" / "demo_data"
PASSPHRASE = b"correct horse battery staple"


def main() -> int:
    sys.path.insert(0, str(REPO))
    from vault.crypto import keys
    from vault.door import Vault
    from vault.ingest import ImportOptions
    from vault.netguard import state

    keys.use_test_kdf()
    state.waive_for_tests()

    shutil.rmtree(FIXTURE, ignore_errors=True)
    with Vault.create(FIXTURE, passphrase=PASSPHRASE) as vault:
        vault.keys_add("ann", "operator", b"ann's passphrase here")
        vault.import_dataset(
            DEMO / "mnist-1000-images-idx3-ubyte.gz",
            name="digits",
            sensitivity="medium",
            options=ImportOptions(labels=DEMO / "mnist-1000-labels-idx1-ubyte.gz"),
        )
        vault.import_dataset(
            DEMO / "sms-600.tsv",
            name="sms",
            sensitivity="high",
            options=ImportOptions(fmt="tsv", header=False, text_column=1, label_column=0),
        )
        vault.train({"dataset": "digits", "model": "cnn", "dp": True, "epsilon": 2.0, "epochs": 1, "seed": 7})
        vault.train({"dataset": "sms", "model": "bow", "dp": True, "epsilon": 1.0, "epochs": 2, "seed": 7})
    print(f"wrote {FIXTURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
