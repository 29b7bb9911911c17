"""Keras 2 files (saved by tf.keras 2.x, the `tf_keras` package): loaded by tf_keras when Keras 3 cannot, converted
through the usual roads with fp32 matching the original by output name; custom objects given as modules or
as a mapping; a missing one named with the fix, and the real Keras error never cut off."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from stages.load.config import ModelConfig
from stages.load.model import load_handle
from stages.load.model.conversion_roads import plain_converter, roads
from stages.load.model.custom_objects import missing_names, resolve
from stages.result import InputError
from stages.settings import BadSetting
from tests.helpers.keras2_models import (
    custom_h5,
    keras2_saved_model,
    mobilenet_h5,
    tfop_h5,
    write_custom_module,
)

SAMPLES = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)


def _load(path: Path, **model: Any) -> Any:
    return load_handle({"format": "keras", "path": str(path), "safe_mode": True, **model})


def _fp32_error(handle: Any) -> dict[str, float]:
    """Max abs error of the fp32 .tflite against the original, per output name, on the frozen function's road and
    the model's own SavedModel (tf_keras's export); the last road, our SavedModel of the function, is Keras 3's too."""
    from ai_edge_litert.interpreter import Interpreter

    expected = handle.run({"image": SAMPLES})
    errors: dict[str, float] = {}
    for via in [r for r in roads(handle) if r != "saved_model"]:
        runner = Interpreter(model_content=plain_converter(handle, via=via).convert()).get_signature_runner()
        got = [runner(image=SAMPLES[i : i + 1]) for i in range(len(SAMPLES))]
        for out in handle.outputs:
            error = float(np.abs(np.concatenate([g[out.key] for g in got]) - expected[out.name]).max())
            errors[f"{via}:{out.name}"] = error
    return errors


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
@pytest.mark.parametrize(
    ("build", "name", "why"),
    [
        (mobilenet_h5, "mobilenet.h5", "Unrecognized keyword arguments passed to DepthwiseConv2D: {'groups': 1}"),
        (tfop_h5, "tfop.h5", "Unknown layer: 'TFOpLambda'"),
        (keras2_saved_model, "keras2_savedmodel", "a Keras 2 SavedModel directory"),
    ],
)
def test_keras2_files_load_with_tf_keras_and_fp32_matches(
    tmp_path: Path, build: Callable[[Path], Path], name: str, why: str
) -> None:
    handle = _load(build(tmp_path / name))
    assert handle.load_path == "tf_keras"
    assert any("tf_keras" in note and why in note for note in handle.notes), handle.notes
    errors = _fp32_error(handle)
    assert {e.split(":")[0] for e in errors} >= {"concrete_function", "keras_export"}
    assert max(errors.values()) < 1e-5, errors


def test_a_keras3_file_still_loads_with_keras3(tiny_keras: Path) -> None:
    handle = _load(tiny_keras)
    assert handle.load_path == "keras" and not handle.notes


@pytest.fixture
def custom_model(tmp_path: Path) -> tuple[Path, str]:
    module = write_custom_module(tmp_path)
    return custom_h5(tmp_path / "efficientnet_like.h5", module), module


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
def test_custom_objects_as_a_module_and_as_a_mapping_both_load(custom_model: tuple[Path, str]) -> None:
    path, module = custom_model
    mapping = {"FixedDropout": f"{module}.FixedDropout", "swishlike": f"{module}.swishlike"}
    for given in ([module], mapping):
        handle = _load(path, custom_objects=given)
        assert handle.load_path == "tf_keras"
        errors = _fp32_error(handle)
        assert max(errors.values()) < 1e-5, (given, errors)


def test_a_missing_custom_class_is_named_with_the_fix(custom_model: tuple[Path, str]) -> None:
    path, module = custom_model
    with pytest.raises(InputError) as caught:
        _load(path, custom_objects={"swishlike": f"{module}.swishlike"})
    message = str(caught.value)
    assert "'FixedDropout'" in message and "\n" not in message
    assert "model.custom_objects=[my_pkg.layers]" in message
    assert "model.custom_objects={FixedDropout: my_pkg.layers.FixedDropout}" in message
    assert "truncated" not in message and "please report" not in message
    assert "provided swishlike, not that name" in message  # what was given, beside what is missing
    with pytest.raises(InputError, match="uses 'swishlike'"):  # nothing given: the first name Keras met
        _load(path)
    # a module that defines nothing of its own (a package that registers its objects when imported) is named so
    (path.parent / "k2_registers_only.py").write_text("import tf_keras\nfrom tf_keras.layers import Dropout\n")
    with pytest.raises(InputError, match=r"\(\['k2_registers_only'\]\) provided no class or function"):
        _load(path, custom_objects=["k2_registers_only"])


def test_the_real_error_is_shown_when_neither_keras_can_read_the_file(tmp_path: Path) -> None:
    path = mobilenet_h5(tmp_path / "broken.h5")
    with h5py.File(path, "r+") as h5:  # a key neither Keras knows: both refuse the DepthwiseConv2D
        config = json.loads(h5.attrs["model_config"])
        depthwise = next(la for la in config["config"]["layers"] if la["class_name"] == "DepthwiseConv2D")
        depthwise["config"]["from_the_future"] = 1
        h5.attrs["model_config"] = json.dumps(config)
    with pytest.raises(InputError) as caught:
        _load(path)
    message = str(caught.value)
    assert "Keras 3: TypeError: Unrecognized keyword arguments passed to DepthwiseConv2D" in message
    assert "'groups': 1" in message and "tf_keras (Keras 2):" in message and "from_the_future" in message
    assert "truncated" not in message


def test_a_lambda_in_a_keras2_file_is_refused_unless_trusted(tmp_path: Path) -> None:
    import tf_keras

    inputs = tf_keras.Input((4,), name="x")
    path = tmp_path / "lambda.h5"
    layer = tf_keras.layers.DepthwiseConv2D(1)(tf_keras.layers.Reshape((2, 2, 1))(inputs))
    tf_keras.Model(inputs, tf_keras.layers.Lambda(lambda t: t * 2.0)(layer)).save(path)
    with pytest.raises(InputError, match="model.safe_mode=false"):
        _load(path)
    assert _load(path, safe_mode=False).load_path == "tf_keras"


def test_custom_objects_config_is_checked_and_modules_must_import() -> None:
    assert ModelConfig(custom_objects=["pkg.layers"]).custom_objects == ["pkg.layers"]
    assert ModelConfig(custom_objects={"FixedDropout": "pkg.layers.FixedDropout"}).custom_objects
    for bad in (3, ["not a module"], {"FixedDropout": 3}):
        with pytest.raises(BadSetting, match="custom_objects"):
            ModelConfig(custom_objects=bad)
    with pytest.raises(InputError, match="'no_such_pkg.layers', which cannot be imported"):
        resolve(["no_such_pkg.layers"])


FACTORY_PACKAGE = """import tensorflow as tf


def get_dropout(layers):
    class FixedDropout(layers.Dropout):
        def _get_noise_shape(self, inputs):
            return self.noise_shape

    return FixedDropout


def get_swish(**_):
    def swishlike(x):
        return x * tf.sigmoid(x)

    return swishlike
"""
# The user's module for such a package: the objects built for tf_keras, named at its top level.
FACTORY_USER = """import tf_keras
from tf_keras.layers import Dropout
from k2_factory_pkg import get_dropout, get_swish

FixedDropout = get_dropout(tf_keras.layers)
swishlike = get_swish()
"""


def test_a_module_registers_only_what_it_defines(tmp_path: Path) -> None:
    module = write_custom_module(tmp_path, "k2_layers_only_own")
    assert set(resolve([module])) == {"FixedDropout", "swishlike"}  # not the `tf`, `tf_keras` it imports
    # qubvel's efficientnet makes its classes in factories (`get_dropout(layers=...)`): what the module builds with
    # one counts as its own (`<locals>`), what it imports (Dropout, the factories) does not
    (tmp_path / "k2_factory_pkg.py").write_text(FACTORY_PACKAGE)
    (tmp_path / "k2_factory_user.py").write_text(FACTORY_USER)
    assert set(resolve(["k2_factory_user"])) == {"FixedDropout", "swishlike"}
    handle = _load(custom_h5(tmp_path / "factory.h5", module), custom_objects=["k2_factory_user"])
    assert handle.load_path == "tf_keras"


def test_missing_names_in_keras_phrasings() -> None:
    assert missing_names("Unknown layer: 'FixedDropout'. Please ensure ...") == ["FixedDropout"]
    assert missing_names("Could not locate class 'Swish'. Make sure") == ["Swish"]
    assert missing_names("Could not interpret activation function identifier: swishlike") == ["swishlike"]
    raw = "{'config': 'mish', 'registered_name': 'function'}. Unknown activation function: 'function'"
    assert missing_names(raw) == ["mish"]
    assert missing_names("Unrecognized keyword arguments passed to DepthwiseConv2D: {'groups': 1}") == []
