"""Small pieces every functional family uses."""
from __future__ import annotations

EPSILON = 1e-7  # keras.backend.epsilon()


def divide_no_nan(numerator, denominator, xp):
    """numerator / denominator, and 0 where the denominator is 0 (Keras' ``divide_no_nan``), elementwise."""
    safe = xp.where(denominator == 0, xp.ones_like(denominator), denominator)
    return xp.where(denominator == 0, xp.zeros_like(numerator), numerator / safe)

