"""Tiny SavedModels whose batch is not on axis 0: stand-ins for published models that nobody here wrote.

- `time_major`: a CTC-style recognizer (as onnx2tf exports them) whose output is `[T, batch, classes]`;
- `state_input`: an LSTM-like step (as Silero VAD's) whose recurrent state input and output are `[2, batch, H]`.
Both are plain tf.functions with seeded weights, small enough to convert in a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TIME, FEATURES, CLASSES, HIDDEN = 6, 4, 5, 8


def time_major(path: Path) -> Path:
    """Input `x` [batch, T, F]; output `logits` [T, batch, C] (softmax over classes)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w = tf.Variable(rng.normal(size=(FEATURES, CLASSES)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, TIME, FEATURES], tf.float32, name="x")])
    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = tf.nn.softmax(tf.einsum("btf,fc->btc", x, module.w), axis=-1)
        return {"logits": tf.transpose(logits, [1, 0, 2])}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def state_input(path: Path) -> Path:
    """Inputs `audio` [batch, T, F] and `state` [2, batch, H]; outputs `prob` [batch, 1] and `state_out`
    [2, batch, H]: one gated recurrent step over the frames, the state carried as (h, c)."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    module = tf.Module()
    module.wx = tf.Variable(rng.normal(scale=0.5, size=(FEATURES, 4 * HIDDEN)).astype(np.float32))
    module.wh = tf.Variable(rng.normal(scale=0.5, size=(HIDDEN, 4 * HIDDEN)).astype(np.float32))
    module.wo = tf.Variable(rng.normal(scale=0.5, size=(HIDDEN, 1)).astype(np.float32))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, TIME, FEATURES], tf.float32, name="audio"),
            tf.TensorSpec([2, None, HIDDEN], tf.float32, name="state"),
        ]
    )
    def serve(audio: tf.Tensor, state: tf.Tensor) -> dict[str, tf.Tensor]:
        h, c = state[0], state[1]
        for t in range(TIME):  # unrolled: fixed T, plain ops every converter road takes
            gates = tf.matmul(audio[:, t], module.wx) + tf.matmul(h, module.wh)
            i, f, g, o = tf.split(gates, 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
        return {"prob": tf.sigmoid(tf.matmul(h, module.wo)), "state_out": tf.stack([h, c])}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def ctc_fixed_batch(path: Path) -> Path:
    """As onnx2tf exports a CTC recognizer: input `image` [1, H, None, 1] (batch fixed at 1, width open) and
    output `ctc` [None, 1, C] (time-major, T = width), whose only unknown dim is the time, not the batch."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    module = tf.Module()
    module.w = tf.Variable(rng.normal(size=(FEATURES, CLASSES)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, FEATURES, None, 1], tf.float32, name="image")])
    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        columns = tf.transpose(image[:, :, :, 0], [2, 0, 1])  # [W, 1, H]
        return {"ctc": tf.nn.softmax(tf.einsum("wbh,hc->wbc", columns, module.w), axis=-1)}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


def time_major_open(path: Path) -> Path:
    """Input `x` [batch, None, F]; output `logits` [T, batch, C] whose signature says [None, None, C]: only a
    probe can tell the batch from the time."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    module = tf.Module()
    module.w = tf.Variable(rng.normal(size=(FEATURES, CLASSES)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, FEATURES], tf.float32, name="x")])
    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": tf.transpose(tf.einsum("btf,fc->btc", x, module.w), [1, 0, 2])}

    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path
