"""A Keras model with two named inputs and two named outputs, and data for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_two_input_model(path: Path) -> None:
    """Inputs image (4x4x2) and meta (3), outputs scores (4 classes) and offset: two of each, named."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((4, 4, 2), name="image")
    meta = keras.Input((3,), name="meta")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
    hidden = keras.layers.Dense(64, activation="relu")(joined)
    scores = keras.layers.Dense(4, activation="softmax", name="scores")(hidden)
    offset = keras.layers.Dense(1, name="offset")(meta)
    keras.Model([image, meta], [scores, offset]).save(path)


def two_input_data(count: int = 60) -> dict[str, np.ndarray]:
    """Random samples for both inputs, with labels for the 4 classes."""
    rng = np.random.default_rng(5)
    return {
        "image": rng.random((count, 4, 4, 2), dtype=np.float32),
        "meta": rng.random((count, 3), dtype=np.float32),
        "y": rng.integers(0, 4, count),
    }
