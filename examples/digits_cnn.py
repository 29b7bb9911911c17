"""The bundled default example: a small CNN trained on scikit-learn's digits, deterministic with a seed.

Run directly to write it somewhere: `python -m examples.digits_cnn out.keras`.
"""

from __future__ import annotations

import sys


def build(path: str, seed: int = 0, epochs: int = 30) -> None:
    """Train the CNN on the digits training split and save it as a .keras file at `path`."""
    import keras
    import tensorflow as tf

    from stages.calibrate.datasets import digits_split

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train, _, _ = digits_split(seed=0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    model.save(path)


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "digits_cnn.keras")
