"""`repair_budget` counts rebuilds, not ops: the converter keeps every op without a 16x8 rule in float in one
rebuild, so int16x8 on a model with more kernel-less ops than the former default of 4 (PaddleOCR's direction
classifier: HARD_SWISH x18 + RELU_0_TO_1 x9) is repaired by default and every op moved is listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.result import StageError
from tests.unit.convert.test_repair_missing_kernels import _convert, _outputs, _upstream

BLOCKS = 6


def _hard_swish_stack(path: Path) -> None:
    """Six conv -> hard_swish blocks (six HARD_SWISH ops, a quarter of the model's ops), pooled, softmax."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="x")
    x = inputs
    for _ in range(BLOCKS):
        x = keras.layers.Activation("hard_swish")(keras.layers.Conv2D(4, 3, padding="same")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x)).save(path)


@pytest.fixture(scope="module")
def stacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hs_stack") / "hs6.keras"
    _hard_swish_stack(path)
    return path


def test_int16x8_repairs_more_than_four_kernel_less_ops_in_one_rebuild_by_default(
    stacked: Path, tmp_path: Path
) -> None:
    up = _upstream(stacked, tmp_path)
    repaired = _convert(up, tmp_path, "int16x8", mode="int16x8")  # the default budget
    quantization = repaired.meta["quantization"]
    assert [m["op"] for m in quantization["repaired"]] == ["HARD_SWISH"] * BLOCKS
    assert quantization["repair"]["rebuilds"] == 1 and quantization["repair"]["budget"] >= 24
    assert repaired.meta["contents"]["float_ops"] == {"HARD_SWISH": BLOCKS}  # every other op still int16
    fp32 = _convert(up, tmp_path, "fp32", mode="fp32")
    assert np.abs(_outputs(repaired, up) - _outputs(fp32, up)).max() < 0.02


def test_a_repair_leaving_most_of_the_model_in_float_is_refused(tmp_path: Path) -> None:
    """Five HARD_SWISH in a row after one conv: more than half the model's ops would stay float, so the variant
    fails naming them (a float model is not int16x8) unless allow_float_ops says so."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="x")
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    for _ in range(5):
        x = keras.layers.Activation("hard_swish")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x)).save(tmp_path / "hs.keras")
    up = _upstream(tmp_path / "hs.keras", tmp_path)
    with pytest.raises(StageError, match=r"keep 5 of the model's \d+ ops in float \(HARD_SWISH\), more than 50%"):
        _convert(up, tmp_path, "int16x8", mode="int16x8")
    allowed = _convert(up, tmp_path, "allowed", mode="int16x8", allow_float_ops=True)
    assert len(allowed.meta["quantization"]["repaired"]) == 5
