"""The op that makes each output decides its kind before its values do (stages/verify/output_ops.py): an O-Net-like
model whose landmark head (a Dense layer, no activation) returns coordinates in [0, 1] with several above 0.5 was
judged multi-label by its values; its graph says regression. A single sigmoid score per sample (Silero VAD's
speech probability) is a decision at 0.5, not a regression. Read from a Keras file and from its SavedModel
export (functions called inside functions), as the load stage opens them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.load.model import load_handle
from stages.verify.output_kinds import classify
from stages.verify.output_ops import handle_final_ops


def onet_like(tmp_path: Path) -> tuple[Path, Path]:
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((12,))
    h = keras.layers.Dense(16, activation="relu")(x)
    small = keras.initializers.RandomNormal(stddev=0.01)
    centres = keras.initializers.Constant(np.linspace(0.2, 0.9, 10))
    landmarks = keras.layers.Dense(10, kernel_initializer=small, bias_initializer=centres, name="landmarks")(h)
    tags = keras.layers.Dense(4, activation="sigmoid", name="tags")(h)
    face = keras.layers.Dense(2, activation="softmax", name="face")(h)
    speech = keras.layers.Dense(1, activation="sigmoid", name="speech")(h)  # Silero VAD's one probability
    model = keras.Model(x, [landmarks, tags, face, speech])
    path = tmp_path / "onet.keras"
    model.save(path)
    exported = tmp_path / "onet_sm"
    model.export(str(exported), format="tf_saved_model", verbose=False)
    return path, exported


def test_a_linear_head_in_unit_interval_is_regression_by_its_graph(tmp_path: Path) -> None:
    keras_file, saved_model = onet_like(tmp_path)
    feeds = np.random.default_rng(0).normal(0, 1, (32, 12)).astype(np.float32)
    for spec in ({"format": "keras", "path": str(keras_file)}, {"format": "saved_model", "path": str(saved_model)}):
        handle = load_handle(spec)
        outputs = handle.run({handle.inputs[0].name: feeds})
        ops = handle_final_ops(handle)
        landmarks, tags, face, speech = (o.name for o in handle.outputs)  # in the model's output order
        assert ops[landmarks] in ("BiasAdd", "AddV2") and ops[tags] == "Sigmoid" and ops[face] == "Softmax", ops
        assert np.all((outputs[landmarks] >= 0) & (outputs[landmarks] <= 1))
        # By values alone the coordinates read as multi-label scores (several of ten above 0.5)...
        assert classify(outputs)[landmarks]["kind"] == "multilabel"
        kinds = classify(outputs, ops=ops)
        # ... the graph says a linear layer made them; the sigmoid and softmax heads keep their kinds
        assert kinds[landmarks]["kind"] == "regression" and "linear op" in kinds[landmarks]["why"]
        assert kinds[tags]["kind"] == "multilabel" and kinds[face]["kind"] == "class_scores"
        # one sigmoid score per sample: its decision at 0.5 (regression by its shape alone)
        assert classify(outputs)[speech]["kind"] == "regression" and kinds[speech]["kind"] == "multilabel"
