"""Convert stage: one TFLite variant of the (head of the) model, then check it is what was asked for.

The converter can silently hand back something else (a float model from an int8 request whose calibration
was useless); the checks after conversion turn that into an error with an explanation.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from stages.calibrate import load_samples
from stages.result import StageError, StageResult

# Full-integer modes and the dtypes their weights/activations use; QUANTIZE/DEQUANTIZE sit at float I/O.
_INTEGER_COMPUTE = {"int8": ("int8",), "int16x8": ("int16", "int8")}
_CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")


def _representative(feeds: dict[str, np.ndarray], keys: dict[str, str]) -> Any:
    count = len(next(iter(feeds.values())))

    def generate() -> Any:
        for i in range(count):
            yield {keys[name]: array[i : i + 1] for name, array in feeds.items()}

    return generate


def make_converter(handle: Any, variant: dict[str, Any], calib: dict[str, np.ndarray]) -> Any:
    """A TFLiteConverter configured for the variant (fp32, fp16, dynamic, int8, int16x8)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([handle.fn], tf.Module())
    mode = variant["mode"]
    if mode == "fp32":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode in _INTEGER_COMPUTE:
        converter.representative_dataset = _representative(calib, {i.name: i.key for i in handle.inputs})
        if mode == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
        io = variant.get("io_dtype", "float32")
        if io != "float32":
            allowed = {"int8": ("int8", "uint8"), "int16x8": ("int16",)}[mode]
            if io not in allowed:
                raise StageError(
                    f"Variant '{variant['name']}' asks for {io} input/output, but {mode} supports "
                    f"{allowed} or "
                    f"float32. Set `variants.{variant['name']}.io_dtype` to one of those."
                )
            converter.inference_input_type = getattr(tf, io)
            converter.inference_output_type = getattr(tf, io)
    return converter


def inspect_tflite(path: Path) -> dict[str, Any]:
    """What the converter actually produced: op counts, tensor dtypes, weight dtypes and float compute ops.

    Weights are the constant tensors ops read (not produced by any op and not a model input). A compute op is
    "float" when any tensor it reads or writes is floating point; in a full-integer model only the
    QUANTIZE and DEQUANTIZE ops at the float I/O boundary may touch floats, whatever the tensor counts say.
    """
    from stages.litert_runtime import open_interpreter

    interpreter = open_interpreter(path)
    tensors = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    ops_details = interpreter._get_ops_details()
    produced = {int(i) for op in ops_details for i in op["outputs"]}
    model_inputs = {d["index"] for d in interpreter.get_input_details()}
    weights: Counter[str] = Counter()
    float_ops: Counter[str] = Counter()
    for op in ops_details:
        ins = [int(i) for i in op["inputs"] if i >= 0]
        weights.update(tensors[i] for i in ins if i not in produced and i not in model_inputs and i in tensors)
        if op["op_name"] in _CONVERSION_OPS:
            continue
        touched = [tensors[i] for i in [*ins, *(int(o) for o in op["outputs"])] if i in tensors]
        if any(np.dtype(d).kind == "f" for d in touched):
            float_ops[op["op_name"]] += 1
    return {
        "ops": dict(sorted(Counter(op["op_name"] for op in ops_details).items())),
        "tensor_dtypes": dict(sorted(Counter(tensors.values()).items())),
        "weight_dtypes": dict(sorted(weights.items())),
        "float_ops": dict(sorted(float_ops.items())),
    }


def check_variant(
    variant: dict[str, Any],
    io: dict[str, Any],
    contents: dict[str, Any],
    source_dtypes: dict[str, str] | None = None,
) -> None:
    """Raise StageError when the converted model is not the kind of model the variant asked for.

    The converter does not fail when calibration is useless (empty, all-NaN): it returns a float model while
    logging INT8. So the model itself is inspected: I/O dtypes, weight dtypes and the dtype every op
    computes in.
    """
    mode, name = variant["mode"], variant["name"]
    want_io = variant.get("io_dtype", "float32") if mode in _INTEGER_COMPUTE else "float32"
    for role in ("inputs", "outputs"):
        for tensor, detail in io[role].items():
            got = detail["dtype"]
            if got == want_io or (want_io == "float32" and np.dtype(got).kind == "f") or np.dtype(got).kind == "b":
                continue
            if np.dtype(got).kind in "iu" and got == (source_dtypes or {}).get(tensor):
                continue  # an integer input of the original model (token ids, indices) stays integer
            raise StageError(
                f"Variant '{name}' asked for {want_io} {role} but {role[:-1]} '{tensor}' came back {got}"
                + (": the converter did not produce a full-integer model." if np.dtype(got).kind == "f" else ".")
                + f" Check `variants.{name}.io_dtype`."
            )
    weights, float_ops = contents.get("weight_dtypes", {}), contents.get("float_ops", {})
    if mode in _INTEGER_COMPUTE:
        if float_ops or not any(weights.get(d) for d in _INTEGER_COMPUTE[mode]):
            raise StageError(
                f"Variant '{name}' asked for a full-integer {mode} model but the converter returned "
                "one that still "
                f"computes in float (ops on float tensors: {float_ops or 'all'}; weight dtypes "
                f"{weights}). The "
                "converter does this silently when the calibration data is empty, constant, "
                "non-finite or not "
                "representative of real inputs: check the dataset, or use `dynamic` for weight-only "
                "quantization."
            )
    elif mode == "dynamic" and not weights.get("int8"):
        raise StageError(
            f"Variant '{name}' asked for dynamic-range int8 weights but the model has no int8 weights "
            "(weight "
            f"dtypes {weights}): its weight tensors may be too small to quantize (the converter skips "
            "tensors "
            "under 1024 elements). Use fp16 or int8 for this model instead."
        )
    elif mode == "fp16" and not weights.get("float16"):
        raise StageError(
            f"Variant '{name}' asked for float16 weights but the model has none (weight dtypes {weights}). "
            "This happens when the model has no float weights to shrink; fp32 is the same model here."
        )
    elif mode == "fp32" and any(weights.get(d) for d in ("int8", "int16", "float16")):
        raise StageError(f"Variant '{name}' asked for a plain float32 model but it has quantized weights {weights}.")


def check_calibration(variant: dict[str, Any], calib: dict[str, np.ndarray]) -> None:
    """Full-integer conversion needs varying, finite calibration samples; the converter would not complain."""
    if variant["mode"] not in _INTEGER_COMPUTE:
        return
    for name, array in calib.items():
        if len(array) == 0:
            raise StageError(
                f"Variant '{variant['name']}' needs calibration samples but input '{name}' has none. "
                "Give a dataset with more samples or raise `calibrate.num_samples`."
            )
        if array.dtype.kind == "f" and array.size and float(np.ptp(array)) == 0.0:
            raise StageError(
                f"Variant '{variant['name']}': the calibration data of input '{name}' is constant "
                "(every value is "
                f"{float(array.flat[0])}), so full-integer quantization would get a zero range and garbage "
                "outputs. Calibrate with real, varying samples (`dataset=npz dataset.path=...`)."
            )


def convert(
    cfg: dict[str, Any], out_dir: str, load: StageResult, split: StageResult, calibrate: StageResult
) -> StageResult:
    from stages.litert_runtime import SignatureModel, describe_io
    from stages.split import head_handle

    variant = cfg["variant"]
    if variant.get("backend") == "aeq":  # LiteRT's AI Edge Quantizer: fp32 conversion, then a recipe
        from stages.quantization.aeq import convert_aeq

        return convert_aeq(variant, out_dir, load, split, calibrate)
    if variant.get("search"):  # int8_mixed: a search over ops to keep in float (stages/quantization/)
        from stages.quantization.stage import convert_mixed

        return convert_mixed(cfg, out_dir, load, split, calibrate)
    handle = head_handle(load, split)
    calib, _ = load_samples(calibrate.path("calib"))
    check_calibration(variant, calib)
    converter = make_converter(handle, variant, calib)
    started = time.perf_counter()
    try:
        flatbuffer = converter.convert()
    except Exception as err:  # noqa: BLE001 - ConverterError and friends
        lines = [line for line in str(err).splitlines() if "error" in line.lower()] or str(err).splitlines()
        raise StageError(f"The TFLite converter failed for variant '{variant['name']}': {lines[0][:400]}") from None
    convert_s = time.perf_counter() - started
    path = Path(out_dir) / "model.tflite"
    path.write_bytes(flatbuffer)
    names = {i.key: i.name for i in [*handle.inputs, *handle.outputs]}
    io = describe_io(SignatureModel(path, names))
    contents = inspect_tflite(path)
    check_variant(variant, io, contents, {i.name: i.dtype for i in [*handle.inputs, *handle.outputs]})
    meta = {"variant": variant, "io": io, "contents": contents, "names": names}
    metrics = {"size_bytes": len(flatbuffer), "convert_s": round(convert_s, 3)}
    files = {"tflite": "model.tflite"}
    if variant["mode"] in _INTEGER_COMPUTE:  # per-layer debugger table, calibration stability (stages/quantization/)
        from stages.quantization.stage import integer_info

        meta["quantization"], extra = integer_info(cfg, out_dir, load, split, calibrate, path)
        files.update(extra)
    return StageResult(files=files, meta=meta, metrics=metrics)
