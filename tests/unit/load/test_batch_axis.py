"""Batch on another axis: each input's and output's batch axis is found at load, every sample array
stays batch-first inside the pipeline, and the model's own layout is used only when calling it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages.calibrate.layout import batch_first
from stages.load.batch_axis import UNKNOWN, input_axis, output_axis
from stages.load.shapes import batch_one, fixed_shapes
from stages.result import InputError, StageError
from tests.helpers.batch_axis_models import (
    CLASSES,
    FEATURES,
    HIDDEN,
    TIME,
    ctc_fixed_batch,
    state_input,
    time_major,
    time_major_open,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batch_axis")
    return {
        "time_major": time_major(root / "time_major"),
        "state": state_input(root / "state"),
        "ctc": ctc_fixed_batch(root / "ctc"),
        "open": time_major_open(root / "open"),
    }


def _load(path: Path, out: Path) -> tuple[Any, dict[str, Any]]:
    """The load stage's meta, and the handle a later stage gets from it (another process would load the same)."""
    from stages.load.model import load_handle
    from stages.load.stage import load

    meta = load({"model": {"format": "saved_model", "path": str(path)}}, str(out)).meta
    return load_handle(meta["model"]), meta


def _axes(meta: dict[str, Any], role: str) -> dict[str, int | None]:
    return {t["name"]: t["batch_axis"] for t in meta["model"][role]}


def test_axes_from_the_signature() -> None:
    assert input_axis([None, 6, 4]) == 0
    assert input_axis([1, 64, None, 1]) == 0  # exported with batch 1, width open: the width is not the batch
    assert input_axis([2, None, 128]) == 1  # Silero's state
    assert input_axis([2, 1, 128]) == 1  # the same exported with batch 1
    assert input_axis([]) is None
    assert output_axis([6, None, 5], None) == 1  # time-major
    assert output_axis([None, 1, 8210], 1) == 1  # onnx2tf's CTC output, batch fixed at 1, time open
    assert output_axis([None, None, 5], None) == UNKNOWN  # a probe decides
    assert output_axis([7, 5], 1) is None  # a fixed-batch output without batch axis
    assert output_axis([], None) == 0  # a frozen graph's output of unknown rank: batch-first, as always


def test_time_major_output_runs_batch_first(models: dict[str, Path], tmp_path: Path) -> None:
    import tensorflow as tf

    handle, meta = _load(models["time_major"], tmp_path)
    assert _axes(meta, "outputs") == {"logits": 1}
    x = np.random.default_rng(0).random((70, TIME, FEATURES), dtype=np.float32)  # more than one chunk of 64
    got = handle.run({"x": x})["logits"]
    signature = tf.saved_model.load(str(models["time_major"])).signatures["serving_default"]
    direct = signature(x=tf.constant(x))["logits"].numpy()
    assert direct.shape == (TIME, 70, CLASSES) and got.shape == (70, TIME, CLASSES)
    np.testing.assert_allclose(got, np.moveaxis(direct, 1, 0), rtol=1e-5, atol=1e-6)


def test_state_input_on_axis_1(models: dict[str, Path], tmp_path: Path) -> None:
    import tensorflow as tf

    handle, meta = _load(models["state"], tmp_path)
    assert _axes(meta, "inputs") == {"audio": 0, "state": 1}
    assert _axes(meta, "outputs") == {"prob": 0, "state_out": 1}
    rng = np.random.default_rng(0)
    audio = rng.random((5, TIME, FEATURES), dtype=np.float32)
    state = rng.normal(size=(5, 2, HIDDEN)).astype(np.float32)  # batch-first, as the pipeline stores it
    got = handle.run({"audio": audio, "state": state})
    signature = tf.saved_model.load(str(models["state"])).signatures["serving_default"]
    direct = signature(audio=tf.constant(audio), state=tf.constant(np.moveaxis(state, 0, 1)))
    np.testing.assert_allclose(got["prob"], direct["prob"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["state_out"], np.moveaxis(direct["state_out"].numpy(), 1, 0), rtol=1e-5, atol=1e-6)
    # Shapes for conversion: the state's batch stays open on axis 1, batch 1 goes there too.
    inputs = meta["model"]["inputs"]
    shapes = fixed_shapes(inputs, None, None)
    assert shapes == {"audio": [None, TIME, FEATURES], "state": [2, None, HIDDEN]}
    assert batch_one(inputs, shapes) == {"audio": [1, TIME, FEATURES], "state": [2, 1, HIDDEN]}


def test_a_shape_mismatch_inside_the_model_names_the_input(models: dict[str, Path], tmp_path: Path) -> None:
    handle, _ = _load(models["state"], tmp_path)
    audio = np.zeros((3, TIME, FEATURES), np.float32)
    with pytest.raises(InputError) as raised:
        handle.run({"audio": audio, "state": np.zeros((3, HIDDEN, 2), np.float32)})
    message = str(raised.value)
    assert "input 'state' expects [2, '?', 8] (batch on axis 1) and was given [8, 3, 2]" in message
    assert "audio" not in message.split("). ", 1)[1]  # only the suspect input is named


def test_fixed_batch_ctc_output(models: dict[str, Path], tmp_path: Path) -> None:
    handle, meta = _load(models["ctc"], tmp_path)
    assert _axes(meta, "inputs") == {"image": 0} and _axes(meta, "outputs") == {"ctc": 1}
    width = 10
    out = handle.run({"image": np.random.default_rng(0).random((4, FEATURES, width, 1), dtype=np.float32)})["ctc"]
    assert out.shape == (4, width, CLASSES)  # batch-first; before: 40 rows concatenated along the time axis


def test_open_signature_is_probed(models: dict[str, Path], tmp_path: Path) -> None:
    handle, meta = _load(models["open"], tmp_path)
    assert _axes(meta, "outputs") == {"logits": 1}
    assert any("found by a probe" in note for note in meta["load_notes"])
    out = handle.run({"x": np.zeros((3, 11, FEATURES), np.float32)})["logits"]
    assert out.shape == (3, 11, CLASSES)


def test_wrong_output_axis_is_a_clear_error(models: dict[str, Path], tmp_path: Path) -> None:
    handle, meta = _load(models["time_major"], tmp_path)
    handle.adopt_axes({"logits": 0})  # as if the model had been read batch-first
    try:
        with pytest.raises(StageError, match="output 'logits' has shape \\[6, 3, 5\\] for 3 samples"):
            handle.run({"x": np.zeros((3, TIME, FEATURES), np.float32)})
    finally:
        handle.adopt_axes({"logits": 1})


def test_npz_in_either_layout() -> None:
    inputs = [
        {"name": "audio", "shape": [None, TIME, FEATURES], "batch_axis": 0},
        {"name": "state", "shape": [2, None, HIDDEN], "batch_axis": 1},
    ]
    audio = np.zeros((5, TIME, FEATURES), np.float32)
    state = np.arange(5 * 2 * HIDDEN, dtype=np.float32).reshape(2, 5, HIDDEN)
    arrays, layouts = batch_first({"audio": audio, "state": state}, inputs, "test.npz")
    assert layouts == {"state": {"batch_axis": 1, "data_axis": 1}}
    np.testing.assert_array_equal(arrays["state"], np.moveaxis(state, 1, 0))
    first = np.moveaxis(state, 1, 0)
    arrays, layouts = batch_first({"audio": audio, "state": first}, inputs, "test.npz")
    assert layouts == {"state": {"batch_axis": 1, "data_axis": 0}}
    np.testing.assert_array_equal(arrays["state"], first)
    with pytest.raises(InputError, match=r"model's layout \[2, 'N', 8\] or samples first \['N', 2, 8\]"):
        batch_first({"audio": audio, "state": np.zeros((2, HIDDEN, 5), np.float32)}, inputs, "test.npz")
