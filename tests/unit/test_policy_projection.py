"""A dry-run `policy check train` projects the ledger the way the real run does, and both refuse past the cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import REPO
from vault.errors import PolicyDenied

ROWS = [("ham", f"see you at {h} o'clock, ok?") for h in range(1, 21)] + [
    ("spam", f"WIN a {p} prize now, txt CLAIM to 8{p}") for p in range(100, 120)
]


def capped_policy(lifetime: float) -> str:
    text = (REPO / "policies" / "default.toml").read_text()
    return text.replace("max_lifetime_epsilon = 20.0", f"max_lifetime_epsilon = {lifetime}").replace(
        "max_epsilon_per_run = 10.0", f"max_epsilon_per_run = {lifetime}"
    )


def test_dry_run_projection_matches_the_run(new_vault, tmp_path: Path):
    v = new_vault(policy_text=capped_policy(2.5))
    src = tmp_path / "m.tsv"
    src.write_text("label\ttext\n" + "".join(f"{a}\t{b}\n" for a, b in ROWS))
    v.import_dataset(src, name="msgs", sensitivity="high")
    before = v.policy_check("train", dataset="msgs", dp=True, epsilon=2.0)
    assert before.allowed, before.reason
    assert before.facts["model"] == "bow" and before.facts["delta"] == pytest.approx(1e-5)
    request = {"dataset": "msgs", "model": "bow", "dp": True, "epsilon": 2.0}
    request |= {"epochs": 1, "batch_size": 8, "val_split": 0.25, "seed": 3}
    v.train(request)
    after = v.policy_check("train", dataset="msgs", dp=True, epsilon=2.0, model="bow")
    assert not after.allowed and after.rule == "privacy.max_lifetime_epsilon"
    projected = after.facts["projected_lifetime_epsilon"]
    assert 2.5 < projected < 4.0  # over the cap, and composed: tighter than 2 + 2
    with pytest.raises(PolicyDenied) as refused:
        v.train(request)
    assert refused.value.detail["rule"] == "privacy.max_lifetime_epsilon"
    # The real run (its own epochs and batch) projects its own total; it too is over the cap, and says so.
    real = refused.value.detail["facts"]["projected_lifetime_epsilon"]
    assert 2.5 < real < 4.0
    assert "2.5" in refused.value.title
