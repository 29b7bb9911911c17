"""One calibration per run for every full-integer variant the converter makes of a model.

TFLiteConverter makes a full-integer model in two steps it keeps apart internally: a calibrate-only
conversion (the float model, each tensor's min/max over the calibration set written into it:
`_experimental_calibrate_only`), then the quantization of that model: the MLIR quantizer for int8 (`mlir_quantize`,
integer I/O included) and the older quantizer for int16x8 (`Calibrator.QuantizeModel`, which reads the
min/max already in the model when it is fed no new sample). The calibrated model does not depend on the
variant. Its tensors are the same whether the int8 or the int16x8 ops set asked for it, with or without float
ops allowed; only the recorded options differ. int8, int8 with integer I/O, int16x8, a repaired variant and the
per-layer debugger (which calibrates again whenever it is given a converter) can therefore all quantize one
calibration. Calibrating runs the float model through TFLite's calibrating interpreter, one sample at a time and
off XNNPACK: on a published audio tagger, 10-25 s each time, four times a run before this.

The first stage of a run that needs the calibration computes it (stages/run_memo.py); the others read it.
`quantize` repeats the converter's last steps (I/O types, shared read-only buffers, conversion metadata), so
each variant is the converter's own model tensor for tensor (tests/unit/convert/test_shared_calibration.py
compares them on every full-integer variant). A model the converter does not calibrate (one trained with fake
quantization) gives no calibrated model, and its variants convert the usual way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.converter_settings import make_converter
from stages.convert.schemes import scheme

CALIBRATING_MODE = "int8"  # the calibrate-only conversion's flags (int16x8's give the same tensors)


def shares_calibration(variant: dict[str, Any]) -> bool:
    """Whether the variant is a full-integer converter variant (it quantizes the run's calibration)."""
    chosen = scheme(variant["mode"])
    return chosen.backend == "converter" and chosen.ops_set is not None


def calibrated_model(
    handle: Any, variant: dict[str, Any], calib: dict[str, np.ndarray], workdir: Path | None, via: str | None
) -> bytes | None:
    """The handle's float model calibrated on `calib` along road `via` (the first road by default), computed
    once per run; None when the converter did not calibrate it (a model trained with fake quantization)."""
    from stages import run_memo
    from stages.load.model.conversion_roads import roads

    via = via or next(roads(handle))
    key = {
        "calibration": _digest(calib),
        "inputs": [i.to_json() for i in handle.inputs],
        "outputs": [o.to_json() for o in handle.outputs],
        "via": via,
    }

    def calibrate() -> bytes:
        settings = {**variant, "mode": CALIBRATING_MODE, "io_dtype": "float32", "allow_float_ops": False}
        converter = make_converter(handle, settings, calib, workdir, via)
        converter._experimental_calibrate_only = True
        model = bytes(converter.convert())
        return model if _is_calibrated(model) else b""

    return run_memo.once_bytes("calibrated", key, calibrate) or None


def converted(
    handle: Any,
    variant: dict[str, Any],
    calib: dict[str, np.ndarray],
    workdir: Path | None = None,
    via: str | None = None,
) -> bytes:
    """The variant converted along road `via`: a full-integer converter variant quantizes the run's calibration,
    any other (and a model the converter does not calibrate) takes one plain `convert()`."""
    if shares_calibration(variant):
        calibrated = calibrated_model(handle, variant, calib, workdir, via)
        if calibrated is not None:
            return quantize(calibrated, variant)
    return bytes(make_converter(handle, variant, calib, workdir, via).convert())


class CalibratedConverter:
    """What tf.lite.experimental.QuantizationDebugger reads of a TFLiteConverter (its options, its calibrate-only
    `convert()`), answered with the run's calibrated model: the debugger quantizes it without calibrating again."""

    def __init__(self, model: bytes) -> None:
        import tensorflow as tf

        self.model = model
        self.optimizations = [tf.lite.Optimize.DEFAULT]
        self.representative_dataset = _no_samples
        self._experimental_disable_per_channel = False

    def convert(self) -> bytes:
        return self.model


def quantize(calibrated: bytes, variant: dict[str, Any]) -> bytes:
    """The variant's model from the run's calibrated model: what `TFLiteConverter.convert()` gives with the
    variant's flags, without calibrating again (the converter's `_quantize` and `_optimize_tflite_model`)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert
    from tensorflow.lite.python.optimize import calibrator

    chosen = scheme(variant["mode"])
    io = getattr(tf, variant.get("io_dtype", "float32"))
    if chosen.activations == "int16":  # the converter's older quantizer (the MLIR one has no 16x8 rules)
        legacy = calibrator.Calibrator(calibrated)
        model = legacy.calibrate_and_quantize(
            _no_samples,
            io,
            io,
            bool(variant.get("allow_float_ops")),
            tf.int16,
            tf.int64,  # the converter's default bias for 16x8: no accumulator overflow
        )
        if io not in (tf.int8, tf.uint8, tf.float32):
            from tensorflow.lite.python.util import modify_model_io_type

            model = modify_model_io_type(model, io, io)
    else:
        model = convert.mlir_quantize(calibrated, False, input_data_type=io, output_data_type=io)
    return _as_converted(convert.deduplicate_readonly_buffers(model), chosen.activations)


def _no_samples() -> Any:
    """A representative dataset with no sample: the quantizer keeps the min/max the model already holds."""
    yield from ()


def _as_converted(model: bytes, activations: str | None) -> bytes:
    """The model with the conversion metadata the converter writes: the variant's optimization mode (the
    calibrate-only conversion recorded int8's) and the hash of the model as quantized."""
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as metadata_fb
    from tensorflow.lite.python import util
    from tensorflow.lite.tools import flatbuffer_utils

    metadata = util.get_conversion_metadata(model)
    if metadata is None:
        return model
    modes = metadata_fb.ModelOptimizationMode
    full = modes.PTQ_INT16 if activations == "int16" else modes.PTQ_FULL_INTEGER
    kept = [m for m in metadata.options.modelOptimizationModes or [] if m not in (modes.PTQ_FULL_INTEGER, full)]
    metadata.options.modelOptimizationModes = [full, *kept]
    tree = flatbuffer_utils.convert_bytearray_to_object(model)
    metadata.environment.modelHash = util.get_model_hash(tree)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(util.populate_conversion_metadata(tree, metadata)))


def _is_calibrated(model: bytes) -> bool:
    """Whether a calibrate-only conversion gave a float model with min/max (not one already quantized). Read from
    the flatbuffer itself: an interpreter would have to resolve every op, custom ops included."""
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAs(model, 0)
    integer = (schema.TensorType.INT8, schema.TensorType.INT16)
    for g in range(root.SubgraphsLength()):
        graph = root.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            quantization = tensor.Quantization()
            if tensor.Type() in integer and quantization is not None and quantization.ScaleLength():
                return False
    return True


def _digest(calib: dict[str, np.ndarray]) -> str:
    """What identifies a calibration set: its arrays' names, shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for name in sorted(calib):
        array = np.ascontiguousarray(calib[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()
