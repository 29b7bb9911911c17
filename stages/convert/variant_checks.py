"""What the converter actually produced, and whether it is the kind of model the variant asked for.

The converter can silently hand back something else (a float model from an int8 request whose calibration
was useless, or ops left in float); these checks turn that into an error that names the ops, says why they
stayed in float and what to use instead.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stages.convert.schemes import scheme
from stages.result import StageError

if TYPE_CHECKING:
    from stages.litert_runtime import SignatureModel

# In a full-integer model (a scheme with `compute` dtypes) only these touch floats, at the float I/O.
_CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")
# Float ops common models leave behind, and where they come from (the converter has no integer rule for them).
_ORIGINS = {
    "NEG": "exact GELU (erf) and LayerNorm's mean subtraction",
    "ERF": "exact GELU",
    "RSQRT": "LayerNorm/normalization statistics",
    "POW": "LayerNorm variance or polynomial activations",
    "SQUARED_DIFFERENCE": "LayerNorm variance",
    "EXP": "softmax written by hand or exponential activations",
    "DIV": "normalization by a computed value",
    "CAST": "integer <-> float conversions inside the model",
}


def explain_float_ops(float_ops: dict[str, int]) -> str:
    """'NEG x23 (from exact GELU ...)' for every op type left in float."""
    parts = []
    for op, count in sorted(float_ops.items()):
        origin = _ORIGINS.get(op)
        parts.append(f"{op} x{count}" + (f" (typically {origin})" if origin else ""))
    return ", ".join(parts)


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
    model: SignatureModel | None = None,
) -> None:
    """Raise StageError when the converted model is not the kind of model the variant asked for.

    The converter does not fail when calibration is useless (empty, all-NaN): it returns a float model while
    logging INT8. So the model itself is inspected: I/O dtypes, weight dtypes and the dtype every op
    computes in. `model` (the converted SignatureModel) lets an input or output left in float name the op
    that keeps it there.
    """
    mode, name = variant["mode"], variant["name"]
    compute = scheme(mode).compute
    want_io = variant.get("io_dtype", "float32") if compute else "float32"
    weights, float_ops = contents.get("weight_dtypes", {}), contents.get("float_ops", {})
    # Ops the quantizer has no rule for also leave int8_io's I/O in float: name them, not the I/O dtype.
    if compute and any(weights.get(d) for d in compute) and float_ops and not variant.get("allow_float_ops"):
        _refuse_float_ops(name, mode, float_ops)
    for role in ("inputs", "outputs"):
        for tensor, detail in io[role].items():
            got = detail["dtype"]
            if got == want_io or (want_io == "float32" and np.dtype(got).kind == "f") or np.dtype(got).kind == "b":
                continue
            if np.dtype(got).kind in "iu" and got == (source_dtypes or {}).get(tensor):
                continue  # an integer input of the original model (token ids, indices) stays integer
            cause = float_io_cause(model, role, tensor) if model is not None and np.dtype(got).kind == "f" else ""
            if cause:
                raise StageError(
                    f"Variant '{name}' asked for {want_io} {role} but {role[:-1]} '{tensor}' came back {got}. "
                    f"{cause} The converter gives an {role[:-1]} an integer type only where the op at that end "
                    "computes in integer, and its quantizer left this one in float. Use a variant with float "
                    f"{role} for this model (`{mode}` with `io_dtype: float32`: the same integer ops inside)."
                )
            raise StageError(
                f"Variant '{name}' asked for {want_io} {role} but {role[:-1]} '{tensor}' came back {got}"
                + (": the converter did not produce a full-integer model." if np.dtype(got).kind == "f" else ".")
                + f" Check `variants.{name}.io_dtype`."
            )
    if compute:
        if not any(weights.get(d) for d in compute):
            raise StageError(
                f"Variant '{name}' asked for a full-integer {mode} model but the converter returned one that still "
                f"computes in float, with no integer weights at all (weight dtypes {weights}). The converter does "
                "this silently when the calibration data is empty, constant or non-finite: check the dataset, or "
                "use `dynamic` for weight-only quantization."
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


def float_io_cause(model: SignatureModel, role: str, name: str) -> str:
    """Which op keeps a signature input or output float in an integer-I/O model, in a sentence: for an output,
    the op that writes it and the float tensor it reads (a DEQUANTIZE'd copy of an integer tensor, typically);
    for an input, the ops that read it. Empty when the graph does not say."""
    details = model.input_details if role == "inputs" else model.output_details
    detail = details.get(model.key(name))
    if detail is None:
        return ""
    interpreter = model.interpreter
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    writer = {int(o): op for op in ops for o in op["outputs"]}
    label = lambda i: str(tensors[i]["name"]).split(";")[-1]  # noqa: E731 - fused names: the last is the op's own
    dtype = lambda i: np.dtype(tensors[i]["dtype"]).name  # noqa: E731
    index = int(detail["index"])
    if role == "inputs":
        readers = sorted({op["op_name"] for op in ops if index in {int(i) for i in op["inputs"]}})
        return f"The ops that read it ({', '.join(readers)}) compute in float." if readers else ""
    op = writer.get(index)
    if op is None:
        return ""
    reads = [int(i) for i in op["inputs"] if int(i) in tensors and np.dtype(tensors[int(i)]["dtype"]).kind == "f"]
    if not reads:
        return f"The op that writes it, {op['op_name']}, computes in float."
    source = writer.get(reads[0])
    if source is not None and source["op_name"] == "DEQUANTIZE" and len(source["inputs"]):
        copied = int(source["inputs"][0])
        what = f"a float copy (DEQUANTIZE) of the {dtype(copied)} tensor '{label(copied)}'"
    else:
        what = f"the float tensor '{label(reads[0])}'"
    return f"The op that writes it, {op['op_name']}, computes in float: it reads {what}."


def _refuse_float_ops(name: str, mode: str, float_ops: dict[str, int]) -> None:
    raise StageError(
        f"Variant '{name}' asked for a full-integer {mode} model, but the converter left these ops in "
        f"float: {explain_float_ops(float_ops)}. TFLite's quantizer has no {mode} rule for them, so they "
        "cannot be full-integer; the calibration data is not the cause. Use `dynamic` (int8 weights, float "
        "compute)"
        + (", `int16x8`" if mode == "int8" else "")
        + f", or let those ops stay in float with `variants.{name}.allow_float_ops=true` (they then run "
        "in float between quantize/dequantize ops)."
    )


def check_calibration(variant: dict[str, Any], calib: dict[str, np.ndarray]) -> None:
    """Full-integer conversion needs varying, finite calibration samples; the converter would not complain."""
    if scheme(variant["mode"]).compute:
        check_samples(variant, calib)


def check_samples(variant: dict[str, Any], calib: dict[str, np.ndarray]) -> None:
    """Raise StageError unless every input has calibration samples that vary (a zero range is silent garbage)."""
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
