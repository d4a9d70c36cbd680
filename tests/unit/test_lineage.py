"""Keyed per-record hashes: independent of order, labels and file format, dependent on the key; and
the carry rule's arithmetic on real accountant histories."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest

from vault.privacy import ledger, lineage

KEY = bytes(range(32))


def test_hashes_ignore_order_and_duplicates() -> None:
    images = np.random.default_rng(0).integers(0, 256, (50, 1, 8, 8), dtype=np.uint8)
    a = lineage.record_hashes(KEY, "image", images=images)
    b = lineage.record_hashes(KEY, "image", images=np.concatenate([images[::-1], images[:5]]))
    assert a == b and lineage.count(a) == 50


def test_an_image_hash_is_hmac_sha256_of_its_shape_and_pixels() -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(1, 1, 3, 4)
    expected = hmac.new(KEY, b"strongroom/record/image\x001x3x4\x00" + bytes(range(12)), hashlib.sha256)
    assert lineage.record_hashes(KEY, "image", images=pixels) == expected.digest()


def test_the_same_bytes_in_another_shape_are_another_record() -> None:
    flat = np.arange(12, dtype=np.uint8)
    assert lineage.record_hashes(KEY, "image", images=flat.reshape(1, 1, 3, 4)) != lineage.record_hashes(
        KEY, "image", images=flat.reshape(1, 1, 4, 3)
    )


def test_another_key_gives_unrelated_hashes() -> None:
    texts = ["a", "b"]
    other = bytes(32)
    assert lineage.as_set(lineage.record_hashes(KEY, "text", texts=texts)).isdisjoint(
        lineage.as_set(lineage.record_hashes(other, "text", texts=texts))
    )


def test_text_is_compared_in_canonical_form() -> None:
    composed, decomposed = "caf\u00e9  au\tlait ", "cafe\u0301 au lait"
    assert lineage.canonical_text(composed) == lineage.canonical_text(decomposed) == "café au lait"
    assert lineage.record_hashes(KEY, "text", texts=[composed]) == lineage.record_hashes(
        KEY, "text", texts=[decomposed]
    )
    assert lineage.record_hashes(KEY, "text", texts=["Spam"]) != lineage.record_hashes(
        KEY, "text", texts=["spam"]
    )


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        lineage.record_hashes(b"short", "text", texts=["a"])


def _section(history_a, history_b) -> dict:
    section: dict = {}
    for lid, history in (("A", history_a), ("B", history_b)):
        charge = ledger.Charge(
            run=f"run-{lid}", dataset_digest=lid, history=ledger.normalise(history), dp=True
        )
        ledger.add_charge(section, charge, delta=1e-5)
    return section


def test_a_linked_lineage_carries_its_own_composed_spend() -> None:
    section = _section([(1.2, 0.05, 200)], [(0.9, 0.05, 100)])
    own_a = ledger.own_epsilon(section, "A", 1e-5)
    own_b = ledger.own_epsilon(section, "B", 1e-5)
    row = ledger.summary(section, "A", default_delta=1e-5, linked=["B"])
    assert row["epsilon_own"] == pytest.approx(own_a)
    assert row["epsilon_carried"] == pytest.approx(own_b)
    assert row["epsilon_spent"] == pytest.approx(own_a + own_b)
    assert row["delta_with_overlaps"] == pytest.approx(2e-5)
    alone = ledger.summary(section, "A", default_delta=1e-5)
    assert alone["epsilon_spent"] == pytest.approx(own_a)


def test_a_projection_checks_every_lineage_that_shares_records() -> None:
    """A run on A is refused when it pushes B (linked to A and to C) past the cap, even if A fits."""
    section = _section([(2.0, 0.05, 50)], [(0.8, 0.05, 300)])
    ledger.add_charge(
        section,
        ledger.Charge(run="run-C", dataset_digest="C", history=((0.8, 0.05, 300),), dp=True),
        delta=1e-5,
    )
    links = {"A": {"B"}, "B": {"A", "C"}, "C": {"B"}}
    planned = [(1.5, 0.05, 100)]
    a_after = ledger.projected(ledger.charges_of(section, "A"), planned, 1e-5)
    b_total = a_after + ledger.own_epsilon(section, "B", 1e-5) + ledger.own_epsilon(section, "C", 1e-5)
    assert ledger.projected_with_links(section, "A", planned, 1e-5, links) == pytest.approx(b_total)
    assert b_total > a_after + ledger.own_epsilon(section, "B", 1e-5)
