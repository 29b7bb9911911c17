"""Tiny models with one op that has no kernel at some quantized precision (per-op repair's test cases)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def sqrt_saved_model(path: Path) -> None:
    """conv -> sqrt(|x| + 1) -> mean -> softmax, as a SavedModel (a Keras Lambda would not reload)."""
    import tensorflow as tf

    class Model(tf.Module):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.normal(size=(3, 3, 3, 4)).astype(np.float32) * 0.3)
            self.d = tf.Variable(rng.normal(size=(4, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32, name="x")])
        def __call__(self, x: Any) -> Any:
            h = tf.sqrt(tf.abs(tf.nn.conv2d(x, self.w, 1, "SAME")) + 1.0)
            return {"probs": tf.nn.softmax(tf.matmul(tf.reduce_mean(h, axis=[1, 2]), self.d))}

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.__call__})


def hard_swish_keras(path: Path) -> None:
    """A MobileNetV3-style block: conv -> hard_swish -> pooled -> softmax."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="x")
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Activation("hard_swish")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x)).save(path)


def tiny_activation_depthwise_keras(path: Path) -> None:
    """A depthwise conv + ReLU6 whose activations stay below 1e-5, as in a random-init MobileNetV2's deeper
    blocks: at int16 its output scale is so small that LiteRT's ReLU6 bound overflows int32 and the model is
    refused (`no_integer_overflow_from_quantization`); the next conv scales the signal back up."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="x")
    x = keras.layers.Conv2D(4, 1)(inputs)
    depthwise = keras.layers.DepthwiseConv2D(3, padding="same")
    x = keras.layers.ReLU(max_value=6.0)(depthwise(x))
    post = keras.layers.Conv2D(4, 1)
    x = keras.layers.GlobalAveragePooling2D()(post(x))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))
    kernel, bias = depthwise.get_weights()
    depthwise.set_weights([kernel * 1e-6, np.zeros_like(bias)])
    kernel, bias = post.get_weights()
    post.set_weights([kernel * 1e6, bias])
    model.save(path)
