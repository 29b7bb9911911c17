"""A tiny CNN whose op TFLite cannot run sits in its first block ("cuts that are not
post-processing"): stem conv -> a bitwise quantisation of the activations (`tf.bitwise.bitwise_and`, not a
builtin) -> three more convs and a dense classifier. Cutting before the bitwise op would leave nearly all the
weights to the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SIZE = 16


def save_mid_network_model(path: Path, seed: int = 0) -> Path:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    stem = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")
    body = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 4)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    stem.build((None, SIZE, SIZE, 3))

    class Model(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.body = stem, body

        @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            features = self.stem(x)
            levels = tf.bitwise.bitwise_and(tf.cast(features * 64.0, tf.int32), 0x7C)  # coarse levels
            return {"probs": self.body(tf.cast(levels, tf.float32) / 64.0)}

    module = Model()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def mid_network_dataset(path: Path, count: int = 16, seed: int = 0) -> Path:
    np.savez(path, x=np.random.default_rng(seed).random((count, SIZE, SIZE, 3), dtype=np.float32))
    return path
