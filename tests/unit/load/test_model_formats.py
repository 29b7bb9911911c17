"""The model formats users bring, converted and checked by output name; silent quantization failures caught.

Each model is built here (seconds), with outputs of different shapes whose sorted, declared and TFLite orders
differ, so a positional mix-up fails the 1e-4 comparison instead of passing by luck.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages.convert.stage import convert
from stages.convert.variant_checks import check_variant, inspect_tflite
from stages.litert_runtime import SignatureModel
from stages.load.model import load_handle
from stages.result import InputError, StageError
from stages.samples import load_samples
from tests.helpers.stage_chain import load_split_calibrate, run_stage
from tests.helpers.two_inputs import save_two_input_model, two_input_data

SPLIT_NONE = {"split": {"mode": "none", "outputs": None, "postprocess": None}}


def _pipeline(tmp: Path, model: dict[str, Any], data: dict[str, np.ndarray], variant: dict[str, Any]) -> dict:
    """load -> split -> calibrate (npz) -> convert; returns everything a test needs."""
    np.savez(tmp / "data.npz", **data)
    dataset = {
        "kind": "npz",
        "path": str(tmp / "data.npz"),
        "eval_fraction": 0.5,
        "max_eval_samples": 100,
        "seed": 0,
    }
    up = load_split_calibrate(tmp, model, {"dataset": dataset, "num_samples": 32, "seed": 0}, split=SPLIT_NONE["split"])
    converted = run_stage(
        convert, tmp, f"convert-{variant['name']}", {"variant": variant}, up["load"], up["split"], up["calibrate"]
    )
    return {"load": up["load"], "calibrate": up["calibrate"], "convert": converted}


def _check_fp32_by_name(tmp: Path, model: dict[str, Any], data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """fp32 TFLite outputs equal the original model's to 1e-4, output by output, matched by name."""
    stages = _pipeline(tmp, model, data, {"name": "fp32", "mode": "fp32", "gates": {}})
    handle = load_handle(stages["load"].meta["model"])
    feeds, _ = load_samples(stages["calibrate"].path("eval"))
    expected = handle.run(feeds)
    got = SignatureModel(stages["convert"].path("tflite"), stages["convert"].meta["names"])(feeds)
    assert sorted(got) == sorted(expected)
    for name, ref in expected.items():
        assert got[name].shape == ref.shape, name
        np.testing.assert_allclose(got[name], ref, atol=1e-4, err_msg=name)
    return expected


def test_saved_model_several_named_outputs(tmp_path: Path) -> None:
    import tensorflow as tf

    class Net(tf.Module):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.w1 = tf.Variable(rng.normal(size=(6, 3)).astype(np.float32))
            self.w2 = tf.Variable(rng.normal(size=(6, 5)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
            # Declared in non-alphabetical order with different shapes and scales.
            return {
                "zeta_scores": tf.nn.softmax(features @ self.w1),
                "alpha_embedding": 10.0 * (features @ self.w2),
                "mid_total": tf.reduce_sum(features, axis=1, keepdims=True) - 3.0,
            }

    net = Net()
    tf.saved_model.save(net, str(tmp_path / "sm"), signatures={"serving_default": net.serve})
    x = np.random.default_rng(1).random((40, 6), dtype=np.float32)
    expected = _check_fp32_by_name(
        tmp_path,
        {"format": "saved_model", "path": str(tmp_path / "sm"), "signature": "serving_default"},
        {"x": x},
    )
    assert sorted(expected) == ["alpha_embedding", "mid_total", "zeta_scores"]


def test_keras2_era_h5_two_outputs(tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,), name="readings")
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    first = keras.layers.Dense(7, activation="softmax", name="b_class")(hidden)
    second = keras.layers.Dense(2, name="a_regress")(hidden)
    keras.Model(inputs, [first, second]).save(tmp_path / "legacy.h5")  # the legacy HDF5 format
    assert (tmp_path / "legacy.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    x = np.random.default_rng(2).random((30, 5), dtype=np.float32)
    expected = _check_fp32_by_name(tmp_path, {"format": "keras", "path": str(tmp_path / "legacy.h5")}, {"x": x})
    assert set(expected) == {"b_class", "a_regress"}


def _frozen_graph(path: Path) -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="input")
        w = tf.constant(np.random.default_rng(3).normal(size=(4, 6)).astype(np.float32))
        h = tf.nn.relu(tf.matmul(x, w), name="hidden")
        tf.identity(tf.reduce_mean(h, axis=1, keepdims=True), name="zz_mean")
        tf.nn.softmax(h, name="aa_probs")
    path.write_bytes(graph.as_graph_def().SerializeToString())


def test_tf1_frozen_graph(tmp_path: Path) -> None:
    _frozen_graph(tmp_path / "graph.pb")
    model = {
        "format": "frozen_graph",
        "path": str(tmp_path / "graph.pb"),
        "inputs": ["input"],
        "outputs": ["zz_mean", "aa_probs"],
        "input_shapes": None,
    }
    x = np.random.default_rng(4).random((24, 4), dtype=np.float32)
    expected = _check_fp32_by_name(tmp_path, model, {"x": x})
    assert expected["zz_mean"].shape == (12, 1) and expected["aa_probs"].shape == (12, 6)


def test_two_input_model(tmp_path: Path) -> None:
    save_two_input_model(tmp_path / "two.keras")
    expected = _check_fp32_by_name(tmp_path, {"format": "keras", "path": str(tmp_path / "two.keras")}, two_input_data())
    assert set(expected) == {"scores", "offset"}


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
@pytest.mark.parametrize("io_dtype", ["int8", "uint8"])
def test_integer_io_quantized_with_models_own_params(tmp_path: Path, io_dtype: str) -> None:
    save_two_input_model(tmp_path / "two.keras")
    variant = {"name": "int8_io", "mode": "int8", "io_dtype": io_dtype, "gates": {}}
    stages = _pipeline(tmp_path, {"format": "keras", "path": str(tmp_path / "two.keras")}, two_input_data(), variant)
    io = stages["convert"].meta["io"]
    for role in ("inputs", "outputs"):
        for name, detail in io[role].items():
            assert detail["dtype"] == io_dtype, (role, name)
            assert detail["scale"] > 0
    feeds, _ = load_samples(stages["calibrate"].path("eval"))
    expected = load_handle(stages["load"].meta["model"]).run(feeds)
    got = SignatureModel(stages["convert"].path("tflite"), stages["convert"].meta["names"])(feeds)
    for name, ref in expected.items():
        scale = io["outputs"][name]["scale"]
        assert got[name].shape == ref.shape, name
        # Quantization error: a few output steps, far below a by-position mix-up or a wrong zero point.
        assert np.sqrt(np.mean((got[name] - ref) ** 2)) < 4 * scale + 0.005, name
        assert np.abs(got[name] - ref).max() < 0.1 * (np.abs(ref).max() + 1), name
    assert np.mean(got["scores"].argmax(-1) == expected["scores"].argmax(-1)) > 0.9


def test_constant_calibration_set_is_refused(tmp_path: Path) -> None:
    save_two_input_model(tmp_path / "two.keras")
    data = two_input_data()
    data["meta"] = np.zeros_like(data["meta"])
    with pytest.raises(StageError, match="calibration data of input 'meta' is constant"):
        _pipeline(
            tmp_path,
            {"format": "keras", "path": str(tmp_path / "two.keras")},
            data,
            {"name": "int8", "mode": "int8", "io_dtype": "float32", "gates": {}},
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(meta=d["meta"][:, :2]), "input 'meta' samples of shape"),
        (lambda d: d.update(image=np.where(d["image"] > 0.5, np.nan, d["image"])), "NaN or infinite values"),
        (lambda d: d.update(meta=np.full_like(d["meta"], -np.inf)), "NaN or infinite values in input 'meta'"),
        (lambda d: d.update(meta=d["meta"].astype(str)), "Store numbers"),
        (lambda d: d.update(image=d["image"][:0], meta=d["meta"][:0], y=d["y"][:0]), "is empty"),
        (lambda d: d.update(y=np.eye(4)[d["y"]]), "integer class indices"),
    ],
)
def test_wrong_calibration_data_named_before_converting(tmp_path: Path, change: Any, message: str) -> None:
    save_two_input_model(tmp_path / "two.keras")
    data = two_input_data()
    change(data)
    with pytest.raises(InputError, match=message):
        _pipeline(
            tmp_path,
            {"format": "keras", "path": str(tmp_path / "two.keras")},
            data,
            {"name": "int8", "mode": "int8", "io_dtype": "float32", "gates": {}},
        )


def test_int8_that_fell_back_to_float_is_an_error(tmp_path: Path) -> None:
    """Empty calibration makes the real converter return a float model while logging INT8: caught."""
    import tensorflow as tf

    from stages.convert.converter_settings import make_converter
    from stages.litert_runtime import describe_io

    save_two_input_model(tmp_path / "two.keras")
    handle = load_handle({"format": "keras", "path": str(tmp_path / "two.keras")})
    variant = {"name": "int8", "mode": "int8", "io_dtype": "float32"}
    empty = {"image": np.zeros((0, 4, 4, 2), np.float32), "meta": np.zeros((0, 3), np.float32)}
    flatbuffer = make_converter(handle, variant, empty).convert()
    path = tmp_path / "fallback.tflite"
    path.write_bytes(flatbuffer)
    contents = inspect_tflite(path)
    assert contents["float_ops"], contents  # the converter really did fall back to float
    io = describe_io(SignatureModel(path, {i.key: i.name for i in [*handle.inputs, *handle.outputs]}))
    with pytest.raises(StageError, match="still computes in float"):
        check_variant(variant, io, contents)
    # The same float model presented as int8_io is refused for its I/O dtypes too.
    with pytest.raises(StageError, match="asked for int8 inputs"):
        check_variant({**variant, "io_dtype": "int8"}, io, contents)
    assert tf.__version__  # the real TensorFlow converter, no mocks
