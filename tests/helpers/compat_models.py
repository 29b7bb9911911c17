"""Tiny models for the compatibility matrix (tests/e2e/test_compat_matrix.py), each reproducing a trap real models
set, plus an .npz dataset for each. Built on the fly: no downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _child_id(graph: Any, node_id: int, name: str) -> int:
    return next(c.node_id for c in graph.nodes[node_id].children if c.local_name == name)


def unrevivable_saved_model(path: str) -> dict[str, np.ndarray]:
    """A SavedModel whose object graph cannot be revived, like TF 2.4-era Keras files trained with Adam.

    The object graph records an optimizer slot variable on an object TF revives as a plain `_UserObject`
    (the optimizer's class is gone), so `tf.saved_model.load` fails with "'_UserObject' object has no attribute
    'add_slot'"; the MetaGraph's signature is intact. Dynamic batch and three named outputs. Returns data.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.normal(size=(6, 8)).astype("float32"))
            self.optimizer = tf.Module()
            self.optimizer.m = tf.Variable(tf.zeros((6, 8)))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def serve(self, x: Any) -> dict[str, Any]:
            h = tf.matmul(x, self.w)
            return {"embedding": h, "scores": tf.nn.sigmoid(h), "logits": tf.reduce_sum(h, -1, keepdims=True)}

    net = Net()
    tf.saved_model.save(net, path, signatures={"serving_default": net.serve})
    pb = Path(path) / "saved_model.pb"
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(pb.read_bytes())
    graph = proto.meta_graphs[0].object_graph_def
    opt = _child_id(graph, 0, "optimizer")
    slot = graph.nodes[opt].slot_variables.add()
    slot.original_variable_node_id = _child_id(graph, 0, "w")
    slot.slot_variable_node_id = _child_id(graph, opt, "m")
    slot.slot_name = "m"
    pb.write_bytes(proto.SerializeToString())
    return {"x": np.random.default_rng(1).normal(size=(40, 6)).astype("float32")}


def _seed() -> None:
    import keras

    keras.utils.set_random_seed(0)


def dynamic_spatial_saved_model(path: str) -> dict[str, np.ndarray]:
    """A fully convolutional SavedModel with input [None, None, None, 3] (like a face-proposal net)."""
    import keras

    _seed()
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Conv2D(2, 1, activation="sigmoid", name="heatmap")(x)
    keras.Model(inputs, outputs).export(path, verbose=False)
    return {"x": np.random.default_rng(1).random((40, 24, 24, 3), dtype=np.float32)}


def recurrent_keras(path: str, kind: str = "lstm") -> dict[str, np.ndarray]:
    """Embedding -> LSTM or GRU -> Dense on int32 token ids of any length (a Keras 3 text classifier)."""
    import keras

    _seed()
    inputs = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(50, 32)(inputs)  # weights of >= 1024 elements, so `dynamic` quantizes them
    x = (keras.layers.LSTM if kind == "lstm" else keras.layers.GRU)(32)(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    keras.Model(inputs, outputs).save(path)
    rng = np.random.default_rng(1)
    return {"x": rng.integers(0, 50, (40, 12)).astype("int32"), "y": rng.integers(0, 3, 40)}


def token_transformer_keras(path: str) -> dict[str, np.ndarray]:
    """A BERT-style block on int32 token ids and padding mask of shape [None, None]."""
    import keras

    _seed()
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    x = keras.layers.Embedding(60, 16)(tokens)
    attention = keras.layers.MultiHeadAttention(2, 8)(x, x, attention_mask=keras.ops.cast(mask, "bool")[:, None, :])
    x = keras.layers.LayerNormalization()(x + attention)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probs")(x)
    keras.Model([tokens, mask], outputs).save(path)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 60, (40, 10)).astype("int32")
    pad = (np.arange(10)[None, :] < rng.integers(4, 11, (40, 1))).astype("int32")
    return {"token_ids": ids * pad, "padding_mask": pad}


def two_signatures_saved_model(path: str) -> dict[str, np.ndarray]:
    """A SavedModel with `serving_default` and `embed`; `model.signature=embed` picks the second."""
    import tensorflow as tf

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(0).normal(size=(5, 4)).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
        def classify(self, x: Any) -> dict[str, Any]:
            return {"probs": tf.nn.softmax(tf.matmul(x, self.w))}

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
        def embed(self, x: Any) -> dict[str, Any]:
            return {"embedding": tf.nn.relu(tf.matmul(x, self.w)), "norm": tf.norm(x, axis=-1, keepdims=True)}

    net = Net()
    tf.saved_model.save(net, path, signatures={"serving_default": net.classify, "embed": net.embed})
    return {"x": np.random.default_rng(1).normal(size=(40, 5)).astype("float32")}


def efficientnet_style_keras(path: str) -> dict[str, np.ndarray]:
    """In-graph Rescaling + Normalization, swish (a custom gradient) and squeeze-excite, like EfficientNet."""
    import keras

    _seed()
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.050, 0.051])(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="swish")(x)
    squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    squeeze = keras.layers.Conv2D(2, 1, activation="swish")(squeeze)
    squeeze = keras.layers.Conv2D(8, 1, activation="sigmoid")(squeeze)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Multiply()([x, squeeze]))
    outputs = keras.layers.Dense(4, activation="softmax", name="probs")(x)
    keras.Model(inputs, outputs).save(path)
    return {"x": np.random.default_rng(1).integers(0, 256, (40, 16, 16, 3)).astype("float32")}


def nested_batchnorm_export(path: str) -> dict[str, np.ndarray]:
    """BatchNormalization inside a nested Sequential, exported with `model.export` (DeepLab-style)."""
    import keras

    _seed()
    block = keras.Sequential(
        [keras.layers.Conv2D(8, 3, padding="same"), keras.layers.BatchNormalization(name="bn_projection")],
        name="projection",
    )
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.ReLU()(block(inputs))
    outputs = keras.layers.Conv2D(3, 1, activation="softmax", name="segmentation")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    model.compile("adam", "mse")  # moving statistics away from their initial values
    model.fit(rng.random((16, 16, 16, 3)), rng.random((16, 16, 16, 3)), epochs=1, verbose=0)
    model.export(path, verbose=False)
    return {"x": rng.random((40, 16, 16, 3), dtype=np.float32)}


def stateful_saved_model(path: str) -> dict[str, np.ndarray]:
    """A SavedModel whose serving function assigns a variable (a call counter): TF runs it, freezing fails."""
    import tensorflow as tf

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.random.default_rng(0).normal(size=(6, 3)).astype("float32"))
            self.calls = tf.Variable(0.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            self.calls.assign_add(1.0)
            return {"scores": tf.nn.softmax(tf.matmul(x, self.w))}

    net = Net()
    tf.saved_model.save(net, path, signatures={"serving_default": net.serve})
    return {"x": np.random.default_rng(1).normal(size=(40, 6)).astype("float32")}


BUILDERS = {
    "unrevivable": ("saved_model", unrevivable_saved_model),
    "dynamic_spatial": ("saved_model", dynamic_spatial_saved_model),
    "lstm": ("keras", lambda p: recurrent_keras(p, "lstm")),
    "gru": ("keras", lambda p: recurrent_keras(p, "gru")),
    "token_transformer": ("keras", token_transformer_keras),
    "two_signatures": ("saved_model", two_signatures_saved_model),
    "efficientnet_style": ("keras", efficientnet_style_keras),
    "nested_batchnorm": ("saved_model", nested_batchnorm_export),
    "stateful": ("saved_model", stateful_saved_model),
}


def build(case: str, directory: Path) -> tuple[str, Path, Path]:
    """(format, model path, dataset .npz path) for a matrix case, built under `directory`."""
    fmt, builder = BUILDERS[case]
    model = directory / (f"{case}.keras" if fmt == "keras" else case)
    data = builder(str(model))
    dataset = directory / f"{case}.npz"
    np.savez(dataset, **data)
    return fmt, model, dataset
