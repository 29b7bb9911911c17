"""A quantization-sensitive digits CNN: one outlier channel sets the first convolution's int8 output range.

The first convolution's output channel 0 is multiplied by `factor` and the second convolution's weights on that
input channel divided by it. ReLU is positively homogeneous, so the float model computes the same function, but a
per-tensor int8 scale for that activation now spans `factor` times the other channels' range: they keep only a
few quantization levels. Real models with outlier channels behave the same way (docs/quantization.md).
"""

from __future__ import annotations

import sys


def build(path: str, seed: int = 0, epochs: int = 15, factor: float = 1000.0) -> None:
    """Train a small CNN on the digits training split, plant the outlier channel, save as .keras at `path`."""
    import keras
    import numpy as np
    import tensorflow as tf

    from stages.calibrate.datasets import digits_split

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train, _, _ = digits_split(seed=0)
    inputs = keras.Input((8, 8, 1), name="image")
    first = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")
    second = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")
    x = second(first(inputs))
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="outlier_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    kernel, bias = first.get_weights()
    kernel[..., 0] *= factor
    bias[0] *= factor
    first.set_weights([kernel, bias])
    kernel2, bias2 = second.get_weights()
    kernel2[:, :, 0, :] /= factor
    second.set_weights([kernel2, bias2])
    assert np.isfinite(kernel).all()
    model.save(path)


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "outlier_cnn.keras")
