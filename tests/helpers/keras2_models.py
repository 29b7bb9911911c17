"""Tiny stand-ins for published files that Keras 3 cannot read, built on the fly (nothing is downloaded).

- a MobileNet-style `.h5` saved by tf.keras 2.x (the `tf_keras` package): DepthwiseConv2D's `groups` key;
- an EfficientNet-style `.h5` (qubvel's `efficientnet`): a `FixedDropout` layer and a swish-like activation,
  written in a module of their own so that `model.custom_objects` can name it;
- a functional model calling TF ops directly (`TFOpLambda` layers, as keras-cv-attention-models' MobileViT);
- a Keras 2 SavedModel directory (tf.keras 2.x `model.save(dir)`);
- a SavedModel whose graph uses an op this TensorFlow does not register (a TF Decision Forests model's
  `SimpleMLInferenceOpWithHandle`, or any custom op).
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

CUSTOM_MODULE = '''"""The EfficientNet stand-in's custom objects, written for tf_keras (Keras 2)."""
import tensorflow as tf
import tf_keras


class FixedDropout(tf_keras.layers.Dropout):
    """qubvel's efficientnet: a Dropout whose noise shape keeps its unknown dims."""

    def _get_noise_shape(self, inputs):
        return self.noise_shape


def swishlike(x):
    return x * tf.sigmoid(x)
'''


def write_custom_module(folder: Path, name: str = "k2_custom_layers") -> str:
    """Write the custom objects' module into `folder` (put on sys.path) and return its name."""
    (folder / f"{name}.py").write_text(CUSTOM_MODULE)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    return name


def _inputs() -> object:
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    return tf_keras.Input((8, 8, 3), name="image")


def mobilenet_h5(path: Path) -> Path:
    import tf_keras

    inputs = _inputs()
    x = tf_keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = tf_keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = tf_keras.layers.ReLU(6.0)(x)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf_keras.layers.Dense(3, activation="softmax", name="probs")(x)
    tf_keras.Model(inputs, outputs).save(path)
    return path


def tfop_h5(path: Path) -> Path:
    import tensorflow as tf
    import tf_keras

    inputs = _inputs()
    x = tf_keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = tf.nn.relu6(x)  # a TFOpLambda layer in the saved config
    x = tf.reduce_mean(x, axis=[1, 2])
    outputs = tf_keras.layers.Dense(3, name="logits")(x)
    tf_keras.Model(inputs, outputs).save(path)
    return path


def keras2_saved_model(path: Path) -> Path:
    import tf_keras

    inputs = _inputs()
    x = tf_keras.layers.DepthwiseConv2D(3, padding="same")(inputs)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf_keras.layers.Dense(3, name="logits")(x)
    tf_keras.Model(inputs, outputs).save(path, save_format="tf")
    return path


def custom_h5(path: Path, module: str) -> Path:
    """FixedDropout, the swish-like activation and a DepthwiseConv2D, as files from tf.keras <= 2.12 store them:
    the activation by its bare name (tf_keras 2.21 would write a `{'class_name': 'function', ...}` dict, which
    tf_keras itself then cannot read back)."""
    import h5py
    import tf_keras

    layers = importlib.import_module(module)
    inputs = _inputs()
    x = tf_keras.layers.Conv2D(4, 3, padding="same", activation=layers.swishlike)(inputs)
    x = tf_keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.FixedDropout(0.2)(x)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf_keras.layers.Dense(3, name="logits")(x)
    tf_keras.Model(inputs, outputs).save(path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        for layer in config["config"]["layers"]:
            activation = layer["config"].get("activation")
            if isinstance(activation, dict) and activation.get("class_name") == "function":
                layer["config"]["activation"] = activation["config"]
        h5.attrs["model_config"] = json.dumps(config)
    return path


def unknown_op_saved_model(path: Path, op: str = "SimpleMLInferenceOpWithHandle") -> Path:
    """A SavedModel whose Relu is renamed to `op`, as a TF-DF model's graph holds ops only its package registers."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    class Model(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(tf.ones([4, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.nn.relu(tf.matmul(x, self.w))}

    model = Model()
    shutil.rmtree(path, ignore_errors=True)
    tf.saved_model.save(model, str(path), signatures=model.__call__)
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((path / "saved_model.pb").read_bytes())
    renamed = 0
    for graph in saved.meta_graphs:
        for function in graph.graph_def.library.function:
            for node in function.node_def:
                if node.op == "Relu":
                    node.op, renamed = op, renamed + 1
    assert renamed, "the stand-in's graph has no Relu to rename"
    (path / "saved_model.pb").write_bytes(saved.SerializeToString())
    return path
