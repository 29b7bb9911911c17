"""A tiny Keras 3 transformer block on int32 token ids of variable length, and a dataset of real ids for it.

The vocabulary (50) is smaller than the ids a made-up integer input would hold, so timing with invented
inputs fails (`gather index out of bounds`); timing on the dataset's ids must not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

VOCAB = 50
LENGTH = 12


def save_transformer(path: Path, seed: int = 0) -> Path:
    import keras

    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(VOCAB, 16)(ids)
    attended = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
    x = keras.layers.LayerNormalization()(x + attended)
    x = keras.layers.LayerNormalization()(x + keras.layers.Dense(16)(keras.layers.Dense(32, activation="gelu")(x)))
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(keras.layers.GlobalAveragePooling1D()(x))
    keras.Model(ids, probs).save(path)
    return path


def token_dataset(path: Path, count: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, VOCAB, (count, LENGTH)).astype(np.int32), y=rng.integers(0, 3, count))
    return path
