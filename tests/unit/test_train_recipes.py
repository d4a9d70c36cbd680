"""The learning-rate rule of vault/train/recipes.py: scaled by a power of the signal-to-noise ratio
below the reference, floored, and untouched without noise or above the reference."""

from __future__ import annotations

import pytest

from vault.train.recipes import MIN_LR_SCALE, learning_rate, signal_to_noise


def test_rate_is_kept_at_or_above_the_reference_and_without_noise() -> None:
    assert learning_rate(1.0, 280.0, 560, 2.0) == 1.0
    assert learning_rate(1.0, 280.0, 600, 2.0) == 1.0
    assert learning_rate(1.0, 280.0, 64, None) == 1.0
    assert learning_rate(0.3, None, 64, 5.0) == 0.3


def test_rate_shrinks_with_the_squared_ratio_and_stops_at_the_floor() -> None:
    assert signal_to_noise(140, 1.0) == 140.0
    assert learning_rate(1.0, 280.0, 140, 1.0) == pytest.approx(0.5**1.5)
    rates = [learning_rate(1.0, 280.0, b, 2.0) for b in (8, 64, 128, 256, 512)]
    assert rates == sorted(rates)
    assert learning_rate(1.0, 280.0, 1, 10.0) == MIN_LR_SCALE
