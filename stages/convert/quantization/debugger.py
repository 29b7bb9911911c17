"""Per-layer quantization error from tf.lite.experimental.QuantizationDebugger, on a bounded calibration sample.

The debugger calibrates once and then quantizes the calibrated model as often as asked (`mlir_quantize`), so the
same object also serves the int8_mixed search: each trial is a re-quantization with other ops denylisted, not a
new conversion. int16x8 models cannot be instrumented (see `int16_table`). Rows are sorted by RMSE / scale (the
debugger's usual ranking) but carry the activation range, which catches what that ranking misses: one outlier
channel stretching a tensor's scale (docs/quantization.md).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.schemes import FLOAT, scheme

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


MIN_DEBUG_SAMPLES = 4


class DebugSamples:
    """The first `samples` calibration samples, one at a time, in the model's input order; with `max_seconds`, no
    new sample once that long has passed since the first (after MIN_DEBUG_SAMPLES): the consumer invokes an
    instrumented model between two samples, seconds each for a large model off XNNPACK. `used` counts them."""

    def __init__(self, handle: Any, calib: dict[str, np.ndarray], samples: int, max_seconds: float | None) -> None:
        self.handle, self.calib, self.max_seconds, self.used = handle, calib, max_seconds, 0
        self.asked = min(int(samples), len(next(iter(calib.values()))))

    def __call__(self) -> Any:
        import time

        from stages.load.batch_axis import to_model

        started = time.perf_counter()
        for n in range(self.asked):
            late = self.max_seconds is not None and time.perf_counter() - started > self.max_seconds
            if late and n >= MIN_DEBUG_SAMPLES:
                return
            self.used = max(self.used, n + 1)
            yield [to_model(self.calib[i.name][n : n + 1], i.batch_axis) for i in self.handle.inputs]

    def note(self) -> str:
        """How many samples the table holds, and why fewer than asked."""
        if self.used >= self.asked:
            return f"{self.used} calibration samples"
        return f"{self.used} of {self.asked} calibration samples (quantization.debug_max_seconds={self.max_seconds})"


def open_debugger(handle: Any, variant: dict[str, Any], calib: dict[str, np.ndarray], samples: DebugSamples) -> Any:
    """A QuantizationDebugger for the variant's int8 converter settings, on the run's calibration of the whole
    calibration set (stages/convert/calibrated.py): the debugger would otherwise calibrate once more."""
    import tensorflow as tf

    from stages.convert.calibrated import CalibratedConverter, calibrated_model
    from stages.convert.converter_settings import make_converter

    settings = {**variant, "io_dtype": "float32"}
    calibrated = calibrated_model(handle, settings, calib, None, None)
    converter = make_converter(handle, settings, calib) if calibrated is None else CalibratedConverter(calibrated)
    return tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=samples)


def int16_table(
    handle: Any, variant: dict[str, Any], calib: dict[str, np.ndarray], samples: DebugSamples, quantized: Path | None
) -> list[dict[str, Any]]:
    """int16x8 rows: each int16 tensor against the fp32 model's tensor of the same name, on the same samples.

    The converter quantizes int16x8 with its older quantizer, which cannot add the debugger's NumericVerify ops,
    so these errors accumulate along the graph instead of being isolated per layer (docs/quantization.md).
    `quantized`: the variant as converted (float I/O), read instead of quantized again.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from stages.convert.calibrated import calibrated_model, converted
    from stages.convert.converter_settings import make_converter

    settings = {**variant, "io_dtype": "float32"}
    # The run's calibrated model is a float model whose tensors carry the quantized model's names.
    reference = calibrated_model(handle, settings, calib, None, None)
    if reference is None:
        reference = make_converter(handle, {**settings, "mode": FLOAT}, calib).convert()
    models = [reference, quantized.read_bytes() if quantized is not None else converted(handle, settings, calib)]
    builtin = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES  # a delegate would not keep intermediate tensors
    ref, quant = (
        Interpreter(model_content=m, experimental_preserve_all_tensors=True, experimental_op_resolver_type=builtin)
        for m in models
    )
    ref_index = {t["name"]: t["index"] for t in ref.get_tensor_details()}
    targets = []
    for op in quant._get_ops_details():
        for index in (int(i) for i in op["outputs"]):
            detail = quant._get_tensor_details(index, 0)
            if np.dtype(detail["dtype"]) == np.int16 and detail["name"] in ref_index:
                targets.append((op["op_name"], detail))
    sums: dict[int, list[float]] = {d["index"]: [0.0, 0.0, 0.0] for _, d in targets}  # squared error, count, max
    for interpreter in (ref, quant):
        interpreter.allocate_tensors()
    for sample in samples():
        for interpreter in (ref, quant):
            for detail, array in zip(interpreter.get_input_details(), sample, strict=True):
                interpreter.set_tensor(detail["index"], array.astype(detail["dtype"]))
            interpreter.invoke()
        for _, detail in targets:
            scale, zero_point = detail["quantization"]
            got = (quant.get_tensor(detail["index"]).astype(np.float64) - zero_point) * scale
            diff = got - ref.get_tensor(ref_index[detail["name"]]).astype(np.float64).reshape(got.shape)
            acc = sums[detail["index"]]
            acc[0] += float(np.sum(diff**2))
            acc[1] += diff.size
            acc[2] = max(acc[2], float(np.max(np.abs(diff))) if diff.size else 0.0)
    rows = []
    for op, detail in targets:
        squared, count, worst = sums[detail["index"]]
        scale, zero_point = detail["quantization"]
        per_sample = count / max(samples.used, 1)
        rows.append(
            _row(detail["name"], op, squared / max(count, 1), scale, zero_point, worst, per_sample, variant["mode"])
        )
    return sorted(rows, key=lambda r: -(r["rmse_over_scale"] or 0.0))


def _row(
    name: str, op: str, mse: float, scale: float, zero_point: float, worst: float, elements: float, mode: str
) -> dict[str, Any]:
    activations = scheme(mode).activation_range
    assert activations is not None, f"{mode} has no per-layer table"  # only integer schemes reach here
    low, high = activations
    rmse = math.sqrt(max(mse, 0.0))
    return {
        "name": name,
        "op": op,
        "rmse": _round(rmse),
        "scale": _round(scale),
        "rmse_over_scale": _round(rmse / scale) if scale else None,
        "max_abs_error": _round(worst),
        "range_min": _round((low - zero_point) * scale),
        "range_max": _round((high - zero_point) * scale),
        "num_elements": int(elements),
    }


def layer_table(debugger: Any, mode: str) -> list[dict[str, Any]]:
    """One row per quantized op's output: the debugger's own CSV dump plus RMSE/scale and the activation range."""
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = [
        _row(
            raw["tensor_name"],
            raw["op_name"],
            float(raw["mean_squared_error"]),
            float(raw["scale"]),
            float(raw["zero_point"]),
            float(raw["max_abs_error"]),
            float(raw["num_elements"]),
            mode,
        )
        for raw in csv.DictReader(io.StringIO(buffer.getvalue()))
    ]
    return sorted(rows, key=lambda r: -(r["rmse_over_scale"] or 0.0))


def _round(value: float) -> float | None:
    return float(f"{value:.6g}") if math.isfinite(value) else None


def write_csv(rows: list[dict[str, Any]], path: Any) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, LAYER_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def record_layers(
    handle: Any,
    variant: dict[str, Any],
    calib: dict[str, np.ndarray],
    settings: dict[str, Any],
    out_dir: Any,
    quantized: Path | None = None,
    calibration: str | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """`quantization` metadata and files for an integer variant; a debugger failure is noted, never fatal.
    `quantized`: the variant as converted, reused by the int16x8 table when its I/O is float. `calibration`: what
    identifies the handle and calibration set within the run (the calibrate stage's file), so that variants that
    differ only in I/O dtype or name share one table (stages/run_memo.py)."""
    from stages import run_memo

    if not settings.get("debugger", True):
        return {"layers": None, "debugger": "disabled (quantization.debugger=false)"}, {}

    def table() -> dict[str, Any]:
        asked, limit = int(settings.get("debug_samples", 32)), settings.get("debug_max_seconds", 30.0)
        samples = DebugSamples(handle, calib, asked, limit)
        per_layer = scheme(variant["mode"]).debugger == "per_layer"
        try:
            if per_layer:
                rows = layer_table(open_debugger(handle, variant, calib, samples), variant["mode"])
            else:
                float_io = variant.get("io_dtype", "float32") == "float32"
                rows = int16_table(handle, variant, calib, samples, quantized if float_io else None)
        except Exception as err:  # noqa: BLE001 - the debugger is a diagnostic; the variant itself converted
            return {"layers": None, "debugger": f"failed: {type(err).__name__}: {str(err)[:300]}"}
        method = "per layer (QuantizationDebugger)" if per_layer else "accumulated (against fp32)"
        return {"layers": rows, "debugger": f"{method}, {samples.note()}"}

    if calibration is None:
        info = table()
    else:
        key = {
            "calibration": calibration,
            "mode": variant["mode"],
            "allow_float_ops": bool(variant.get("allow_float_ops")),
            "settings": {k: settings.get(k) for k in ("debug_samples", "debug_max_seconds")},
        }
        info = run_memo.once("layers", key, table)
    if info["layers"] is None:
        return info, {}
    write_csv(info["layers"], Path(out_dir) / "layers.csv")
    return info, {"layers": "layers.csv"}
