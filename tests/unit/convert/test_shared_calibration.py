"""One calibration per run (stages/convert/calibrated.py): every full-integer variant quantized from it is the
converter's own model, tensor for tensor, and a run calibrates once for all of them and the debugger."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stages.result import StageResult
from tests.helpers.stage_chain import keras_model, load_split_calibrate

FULL_INTEGER = {
    "int8": {"mode": "int8", "io_dtype": "float32"},
    "int8_io": {"mode": "int8", "io_dtype": "int8"},
    "uint8_io": {"mode": "int8", "io_dtype": "uint8"},
    "int8_float_ops": {"mode": "int8", "io_dtype": "float32", "allow_float_ops": True},
    "int16x8": {"mode": "int16x8", "io_dtype": "float32"},
    "int16x8_io": {"mode": "int16x8", "io_dtype": "int16"},
    "int16x8_float_ops": {"mode": "int16x8", "io_dtype": "float32", "allow_float_ops": True},
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StageResult]:
    """A small CNN with the ops whose quantization differs per channel and per precision (conv, depthwise conv,
    batch norm, add, pooling, dense, softmax), loaded and calibrated on digits."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    root = tmp_path_factory.mktemp("shared-calibration")
    keras.Model(inputs, outputs).save(root / "cnn.keras")
    cal_cfg = {"dataset": {"kind": "digits"}, "num_samples": 24, "seed": 0}
    return load_split_calibrate(root, keras_model(root / "cnn.keras"), cal_cfg)


def _contents(model: bytes) -> dict[str, Any]:
    """Everything that makes the model compute what it computes, plus the optimization mode it records."""
    from tensorflow.lite.python.util import get_conversion_metadata
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.convert_bytearray_to_object(model)
    metadata_buffers = {m.buffer for m in tree.metadata or []}
    codes = [c.builtinCode for c in tree.operatorCodes]

    def quantization(q: Any) -> tuple[Any, ...]:
        if q is None:
            return ()
        return tuple(None if v is None else np.asarray(v).tolist() for v in (q.scale, q.zeroPoint, q.min, q.max))

    graphs = [
        (
            [(t.name, t.type, np.asarray(t.shape).tolist(), t.buffer, quantization(t.quantization)) for t in g.tensors],
            [
                (codes[o.opcodeIndex], np.asarray(o.inputs).tolist(), np.asarray(o.outputs).tolist())
                for o in g.operators
            ],
        )
        for g in tree.subgraphs
        for ops in [g.operators]
    ]
    weights = [
        b"" if i in metadata_buffers or b.data is None else np.asarray(b.data).tobytes()
        for i, b in enumerate(tree.buffers)
    ]
    metadata = get_conversion_metadata(model)
    return {"graphs": graphs, "weights": weights, "modes": list(metadata.options.modelOptimizationModes)}


def test_each_full_integer_variant_is_the_converters_own_model_from_one_calibration(
    chain: dict[str, StageResult],
) -> None:
    from stages import run_memo
    from stages.convert.calibrated import _is_calibrated, converted
    from stages.convert.converter_settings import make_converter
    from stages.load.model.access import deployed_handle
    from stages.samples import load_samples

    handle = deployed_handle(chain["load"], chain["split"])
    calib, _ = load_samples(chain["calibrate"].path("calib"))
    with run_memo.run_memo() as memo:
        for name, settings in FULL_INTEGER.items():
            variant = {"name": name, **settings}
            ours = converted(handle, variant, calib)
            theirs = bytes(make_converter(handle, variant, calib).convert())
            assert _contents(ours) == _contents(theirs), name
        # All quantize one calibration: I/O types, the integer precision and float ops allowed come after it.
        (entry,) = memo.glob("calibrated-*.bin")
        # What tells a calibrated float model from one the converter quantized already (fake-quant training).
        assert _is_calibrated(entry.read_bytes()) and not _is_calibrated(ours)


def test_the_debugger_reads_the_runs_calibration_instead_of_calibrating_again(
    chain: dict[str, StageResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within a run the debugger quantizes the variant's calibration; its table is the one QuantizationDebugger
    makes when it calibrates on its own."""
    import tensorflow as tf

    from stages import run_memo
    from stages.convert import calibrated
    from stages.convert.calibrated import converted
    from stages.convert.quantization import debugger
    from stages.load.model.access import deployed_handle
    from stages.samples import load_samples

    handle = deployed_handle(chain["load"], chain["split"])
    calib, _ = load_samples(chain["calibrate"].path("calib"))
    variant = {"name": "int8", **FULL_INTEGER["int8"]}
    samples = debugger.DebugSamples(handle, calib, 6, None)
    made, calibrations = calibrated.make_converter, []

    def counted(*args: Any) -> Any:
        calibrations.append(args[1]["name"])
        return made(*args)

    monkeypatch.setattr(calibrated, "make_converter", counted)
    with run_memo.run_memo():
        converted(handle, variant, calib)
        shared = debugger.layer_table(debugger.open_debugger(handle, variant, calib, samples), "int8")
    assert calibrations == ["int8"]  # the variant's calibration only
    own = tf.lite.experimental.QuantizationDebugger(converter=made(handle, variant, calib), debug_dataset=samples)
    alone = debugger.layer_table(own, "int8")
    assert [(r["name"], r["rmse"], r["scale"]) for r in shared] == [(r["name"], r["rmse"], r["scale"]) for r in alone]
