"""A quantization-sensitive model: the outlier-channel construction.

A small digits CNN whose first convolution's output channels 0-1 are scaled up 1000x and the next convolution's
matching input weights scaled back, so the float function is unchanged but one per-tensor int8 range must cover
both tiny and huge activations. And a user's AEQ recipe that keeps such a tensor in int16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OUTLIER = 1000.0


def a8w8_with_int16_on(regex: str) -> list[dict[str, Any]]:
    """A user's recipe: static int8 everywhere, int16 activations on the ops matching `regex`."""
    from stages.convert.quantization.aeq import builtin_recipe

    int16 = builtin_recipe("a16w8")[0]
    return builtin_recipe("a8w8") + [{**int16, "regex": regex}]


def build_sensitive(path: Path, epochs: int = 15) -> None:
    """Digits CNN with outlier channels after conv1 (float function unchanged), saved as .keras."""
    import keras

    from stages.calibrate.datasets import digits_split

    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = digits_split(seed=0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="sensitive_cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train.reshape(-1, 8, 8, 1), y_train, epochs=epochs, batch_size=64, verbose=0)
    scale = np.ones(16, np.float32)
    scale[:2] = OUTLIER
    k1, b1 = model.get_layer("conv1").get_weights()
    k2, b2 = model.get_layer("conv2").get_weights()
    model.get_layer("conv1").set_weights([k1 * scale, b1 * scale])  # relu(s x) = s relu(x) for s > 0
    model.get_layer("conv2").set_weights([k2 / scale[None, None, :, None], b2])
    model.save(path)
