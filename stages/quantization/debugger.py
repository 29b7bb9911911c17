"""Per-layer quantization error from tf.lite.experimental.QuantizationDebugger, on a bounded calibration sample.

The debugger calibrates once and then quantizes the calibrated model as often as asked (`mlir_quantize`), so the
same object also serves the int8_mixed search: each trial is a re-quantization with other ops denylisted, not a
new conversion. Rows are sorted by RMSE / scale (the debugger's usual ranking) but carry the activation range,
which catches what that ranking misses: one outlier channel stretching a tensor's scale (docs/quantization.md).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

# Columns of the per-layer table (report.json, layers.csv, the worst-layers plot).
LAYER_COLUMNS = (
    "name",
    "op",
    "rmse",
    "scale",
    "rmse_over_scale",
    "max_abs_error",
    "range_min",
    "range_max",
    "num_elements",
)
_INTEGER_RANGE = {"int8": (-128, 127), "int16x8": (-32767, 32767)}


def debug_dataset(handle: Any, calib: dict[str, np.ndarray], samples: int) -> Any:
    """The first `samples` calibration samples, one at a time, in the model's input order."""
    names = [i.name for i in handle.inputs]
    count = min(int(samples), len(next(iter(calib.values()))))

    def generate() -> Any:
        for i in range(count):
            yield [calib[name][i : i + 1] for name in names]

    return generate


def open_debugger(handle: Any, variant: dict[str, Any], calib: dict[str, np.ndarray], samples: int) -> Any:
    """A QuantizationDebugger for the variant's converter settings; it calibrates on the whole calibration set.

    int16x8 needs int16 activations in the instrumented model, which the debugger's converter path does not ask
    for, so its debug model is quantized here with the converter's own `mlir_quantize` and handed over as content.
    """
    import tensorflow as tf

    from stages.convert import make_converter

    converter = make_converter(handle, {**variant, "io_dtype": "float32"}, calib)
    dataset = debug_dataset(handle, calib, samples)
    if variant["mode"] == "int8":
        return tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset)
    from tensorflow.compiler.mlir.lite import types_pb2
    from tensorflow.lite.python import convert as lite_convert

    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    content = lite_convert.mlir_quantize(
        calibrated, inference_type=types_pb2.QUANTIZED_INT16, enable_numeric_verify=True
    )
    return tf.lite.experimental.QuantizationDebugger(quant_debug_model_content=content, debug_dataset=dataset)


def layer_table(debugger: Any, mode: str) -> list[dict[str, Any]]:
    """One row per quantized op's output: the debugger's own CSV dump plus RMSE/scale and the activation range."""
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    low, high = _INTEGER_RANGE.get(mode, _INTEGER_RANGE["int8"])
    rows = []
    for raw in csv.DictReader(io.StringIO(buffer.getvalue())):
        scale, zero_point = float(raw["scale"]), float(raw["zero_point"])
        rmse = math.sqrt(max(float(raw["mean_squared_error"]), 0.0))
        rows.append(
            {
                "name": raw["tensor_name"],
                "op": raw["op_name"],
                "rmse": _round(rmse),
                "scale": _round(scale),
                "rmse_over_scale": _round(rmse / scale) if scale else None,
                "max_abs_error": _round(float(raw["max_abs_error"])),
                "range_min": _round((low - zero_point) * scale),
                "range_max": _round((high - zero_point) * scale),
                "num_elements": int(float(raw["num_elements"])),
            }
        )
    return sorted(rows, key=lambda r: -(r["rmse_over_scale"] or 0.0))


def _round(value: float) -> float | None:
    return float(f"{value:.6g}") if math.isfinite(value) else None


def write_csv(rows: list[dict[str, Any]], path: Any) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, LAYER_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def record_layers(
    handle: Any, variant: dict[str, Any], calib: dict[str, np.ndarray], settings: dict[str, Any], out_dir: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """`quantization` metadata and files for an integer variant; a debugger failure is noted, never fatal."""
    samples = int(settings.get("debug_samples", 32))
    if not settings.get("debugger", True):
        return {"layers": None, "debugger": "disabled (quantization.debugger=false)"}, {}
    try:
        rows = layer_table(open_debugger(handle, variant, calib, samples), variant["mode"])
    except Exception as err:  # noqa: BLE001 - the debugger is a diagnostic; the variant itself converted
        return {"layers": None, "debugger": f"failed: {type(err).__name__}: {str(err)[:300]}"}, {}
    from pathlib import Path

    write_csv(rows, Path(out_dir) / "layers.csv")
    info = {"layers": rows, "debugger": f"{min(samples, len(next(iter(calib.values()))))} calibration samples"}
    return info, {"layers": "layers.csv"}
