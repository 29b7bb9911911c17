"""A keras.applications model as benchmarks/keras_applications.py and keras_self_consistency.py build it: random
weights (weights=None, seeded), 10 classes, and 24 random images (12 calibration, 12 evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np


def build(name: str, size: int = 96, bn_stats: str = "data") -> tuple[Any, np.ndarray]:
    """(model, images). `bn_stats="data"` sets BatchNorm statistics from images like the benchmark's, as
    training leaves them; `"init"` keeps the initial mean 0, variance 1.

    Why: at init, a deep random network's activations grow block by block (EfficientNetV2M's logits reach
    44,000 and Keras disagrees with itself about them). One training-mode pass, with momentum 0 and dropout
    off, sets every moving mean and variance from the batch. The batch is 64 other random images (seed 1): a
    random network spreads images apart, so statistics from the 12 calibration images alone do not hold for
    the 12 evaluation images (EfficientNetV2B0's last BatchNorm then gives them a standard deviation of 1.4)."""
    import keras

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    images = np.random.default_rng(0).integers(0, 256, (24, size, size, 3)).astype("float32")
    if bn_stats == "data":
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.0
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        population = np.random.default_rng(1).integers(0, 256, (64, size, size, 3)).astype("float32")
        model(population, training=True)
    return model, images


def build_and_save(name: str, size: str, model_path: str, data_path: str, bn_stats: str) -> None:
    model, images = build(name, int(size), bn_stats)
    model.save(model_path)
    np.savez(data_path, x=images)
