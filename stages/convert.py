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

FULL_INTEGER = ("int8", "int16x8")


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
    elif mode in FULL_INTEGER:
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
                    f"Variant '{variant['name']}' asks for {io} input/output, but {mode} supports {allowed} or "
                    f"float32. Set `variants.{variant['name']}.io_dtype` to one of those."
                )
            converter.inference_input_type = getattr(tf, io)
            converter.inference_output_type = getattr(tf, io)
    return converter


def inspect_tflite(path: Path) -> dict[str, Any]:
    """Op counts and tensor dtypes of a converted model (what the converter actually produced)."""
    from stages.litert_runtime import open_interpreter

    interpreter = open_interpreter(path)
    ops = Counter(op["op_name"] for op in interpreter._get_ops_details())
    dtypes = Counter(np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details())
    return {"ops": dict(sorted(ops.items())), "tensor_dtypes": dict(sorted(dtypes.items()))}


def check_variant(variant: dict[str, Any], io: dict[str, Any], contents: dict[str, Any]) -> None:
    """Raise when the converted model is not the kind of model the variant asked for."""
    mode, name = variant["mode"], variant["name"]
    dtypes = contents["tensor_dtypes"]
    want_io = variant.get("io_dtype", "float32") if mode in FULL_INTEGER else "float32"
    for role in ("inputs", "outputs"):
        for tensor, detail in io[role].items():
            if np.dtype(detail["dtype"]).kind == "f" and detail["dtype"] != want_io and want_io != "float32":
                raise StageError(
                    f"Variant '{name}' asked for {want_io} {role} but {role[:-1]} '{tensor}' came back "
                    f"{detail['dtype']}: the converter did not produce a full-integer model."
                )
    if mode in FULL_INTEGER:
        integer = "int8" if mode == "int8" else "int16"
        float_ops = [op for op in contents["ops"] if op not in ("QUANTIZE", "DEQUANTIZE")]
        if dtypes.get(integer, 0) == 0 or (dtypes.get("float32", 0) > 2 * len(io["inputs"]) + 2 * len(io["outputs"])):
            raise StageError(
                f"Variant '{name}' asked for full-integer {mode} but the converter returned a model that still "
                f"computes in float (tensor dtypes {dtypes}, ops {float_ops[:8]}). This happens when the "
                "calibration data is empty, constant or not representative: check the dataset."
            )
    if mode == "dynamic" and dtypes.get("int8", 0) == 0:
        raise StageError(
            f"Variant '{name}' asked for dynamic-range int8 weights but the model has no int8 tensors: "
            "its weights may be too small to quantize (the converter skips tensors under 1024 elements)."
        )


def convert(
    cfg: dict[str, Any], out_dir: str, load: StageResult, split: StageResult, calibrate: StageResult
) -> StageResult:
    from stages.litert_runtime import SignatureModel, describe_io
    from stages.split import head_handle

    variant = cfg["variant"]
    handle = head_handle(load, split)
    calib, _ = load_samples(calibrate.path("calib"))
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
    check_variant(variant, io, contents)
    meta = {"variant": variant, "io": io, "contents": contents, "names": names}
    metrics = {"size_bytes": len(flatbuffer), "convert_s": round(convert_s, 3)}
    return StageResult(files={"tflite": "model.tflite"}, meta=meta, metrics=metrics)
