"""The comparison metrics: accuracy on the right output and shape, relative errors that float rounding cannot
inflate."""

from __future__ import annotations

import numpy as np


# Accuracy reads the same reshaped arrays as agreement.
def test_accuracy_on_a_three_dimensional_class_output_is_not_broadcast() -> None:
    from stages.verify.metrics import compare

    rng = np.random.default_rng(0)
    scores = rng.random((50, 1, 10)).astype(np.float32)
    labels = scores.reshape(50, 10).argmax(-1)
    metrics = compare({"probs": scores}, {"probs": scores.copy()}, labels, None)
    assert metrics["accuracy"] == 1.0
    assert metrics["argmax_agreement"] == 1.0


# dataset.label_output is honoured; without it, the output whose width fits the labels is chosen.
def test_label_output_choice_fits_the_labels() -> None:
    from stages.verify.metrics import choose_label_output

    outputs = {"embed": np.zeros((4, 16)), "probs": np.zeros((4, 10))}
    labels = np.array([0, 9, 3, 4])
    assert choose_label_output(outputs, "probs", labels)[0] == "probs"
    name, why = choose_label_output(outputs, None, labels)
    assert name == "probs" and "10" in why
    assert choose_label_output({"embed": np.zeros((4, 16))}, None, np.array([0, 20]))[0] is None


def test_a_near_constant_output_does_not_turn_float_rounding_into_a_large_relative_error() -> None:
    """A random-weight classifier's near-uniform scores (keras.applications with weights=None): fp32 must pass."""
    from stages.verify.metrics import relative_rmse

    rng = np.random.default_rng(0)
    reference = (1e-3 + 1e-9 * rng.standard_normal((8, 1000))).astype(np.float64)
    assert relative_rmse(7.5e-9, reference) < 0.001
    wide = rng.random((8, 10))
    assert relative_rmse(0.5, wide) > 1.0  # a real error on a varied output is still large
