"""Run a .tflite file with the LiteRT interpreter through its signature runner, by input and output name.

Integer inputs are quantized, and integer outputs dequantized, with the model's own (scale, zero_point), so
callers always feed and receive float arrays keyed by the original model's tensor names, batch-first: each
tensor's batch axis (stages/load/batch_axis.py, as the load stage recorded it) is moved there and back here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from stages.load.batch_axis import to_model, to_samples


def open_interpreter(model_path: str | Path, num_threads: int = 1, use_xnnpack: bool = True) -> Any:
    """The interpreter, loaded from memory: opening a truncated file by path can segfault, bytes raise."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(
        model_content=Path(model_path).read_bytes(),
        num_threads=num_threads,
        experimental_op_resolver_type=resolver,
    )


# LiteRT's refusal of an op for its tensor type, e.g. "SquaredDifference only supports FLOAT32 and INT32 now, got 7.
# Node number 14 (SQUARED_DIFFERENCE) failed to invoke." (the number is a TfLiteType).
_NO_KERNEL_FOR_TYPE = re.compile(r"only supports (.+?)(?: now)?, got (\d+)\.\s*Node number \d+ \((\w+)\) failed to")
_TFLITE_TYPES = {1: "float32", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8", 10: "float16"}


def runtime_refusal(variant: dict[str, Any], error: str) -> str:
    """One paragraph for a converted model LiteRT will not run: the op and the type it was given, when LiteRT
    names them. The converter's quantization rules and LiteRT's kernels do not always agree: TF 2.21 quantizes a
    LayerNorm's SQUARED_DIFFERENCE to int16 under int16x8, which LiteRT 2.3 has no kernel for."""
    name, said = variant["name"], " ".join(error.split())[:300]
    found = _NO_KERNEL_FOR_TYPE.search(error)
    if not found:
        return (
            f"Variant '{name}' converted, but LiteRT cannot run it ({said}). Drop this variant "
            "(`'variants=[...]'`) or report the model and this message."
        )
    supported, code, op = found.groups()
    given = _TFLITE_TYPES.get(int(code), f"TfLiteType {code}")
    return (
        f"Variant '{name}' converted, but LiteRT cannot run it: the converter made its {op} op {given}, and "
        f"LiteRT's {op} kernel supports only {supported.lower()}. The converter's {variant.get('mode')} rules "
        "and LiteRT's kernels disagree on this op (a LayerNorm's variance is one under int16x8). Drop this "
        "variant (`'variants=[...]'`), or quantize at this precision with AI Edge Quantizer instead "
        f"(`aeq_a16w8` for int16x8: LiteRT runs its LayerNorm models). LiteRT: {said}"
    )


def quantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """float -> the tensor's integer dtype with q = round(x / scale) + zero_point, saturated."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """integer tensor -> float with x = (q - zero_point) * scale; float tensors pass through."""
    if np.dtype(detail["dtype"]).kind == "f":
        return values.astype(np.float32, copy=False)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


class SignatureModel:
    """A .tflite model called with {input name: array} and returning {output name: float array}."""

    def __init__(
        self,
        model_path: str | Path,
        names: dict[str, str] | None = None,
        num_threads: int = 1,
        use_xnnpack: bool = True,
        axes: dict[str, int | None] | None = None,
    ) -> None:
        self.interpreter = open_interpreter(model_path, num_threads, use_xnnpack)
        signatures = self.interpreter.get_signature_list()
        self.runner = self.interpreter.get_signature_runner(next(iter(signatures)) if signatures else None)
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()
        # signature key -> original tensor name (identity when the keys already are the names)
        self.names = names or {}
        # original tensor name -> batch axis (stages/load/batch_axis.py); absent names are batch-first
        self.axes = axes or {}

    def name(self, key: str) -> str:
        return self.names.get(key, key)

    def key(self, name: str) -> str:
        reverse = {v: k for k, v in self.names.items()}
        return reverse.get(name, name)

    def quantized_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: quantize(feeds[self.name(key)], d) for key, d in self.input_details.items()}

    def invoke_raw(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner(**raw)

    def _axes(self) -> dict[str, int | None]:
        return {key: self.axes.get(self.name(key), 0) for key in [*self.input_details, *self.output_details]}

    def samples_per_call(self, batch_size: int = 64) -> int:
        """Samples one invoke takes: `batch_size` when the batch dimension is dynamic, else the fixed batch (one
        for a tensor without batch axis)."""
        axes = self._axes()
        key, first = next(iter(self.input_details.items()))
        axis = axes[key]
        if axis is None or any(axes[k] is None for k in self.output_details) or not len(first["shape"]):
            return 1
        if len(first["shape_signature"]) > axis and first["shape_signature"][axis] == -1:
            return batch_size
        return max(1, int(first["shape"][axis]))

    def __call__(self, feeds: dict[str, np.ndarray], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Run all samples (batch-first), in batches when the model's batch dimension is dynamic, else as many
        at a time as its fixed batch holds (one sample per call for a tensor without batch axis)."""
        raw = self.quantized_feeds(feeds)
        count = len(next(iter(raw.values())))
        axes = self._axes()
        step = self.samples_per_call(batch_size)
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, count, step):
            out = self.runner(**{k: to_model(v[start : start + step], axes[k]) for k, v in raw.items()})
            for key, value in out.items():
                dequantized = dequantize(np.array(value), self.output_details[key])
                parts.setdefault(key, []).append(to_samples(dequantized, axes[key]))
        return {self.name(key): np.concatenate(chunks) for key, chunks in parts.items()}


def describe_io(model: SignatureModel) -> dict[str, dict[str, Any]]:
    """Each input's and output's dtype, shape and quantization parameters, keyed by original name."""

    def one(detail: dict[str, Any]) -> dict[str, Any]:
        scale, zero_point = detail["quantization"]
        return {
            "dtype": np.dtype(detail["dtype"]).name,
            "shape": [int(d) for d in detail["shape_signature"]],
            "scale": float(scale),
            "zero_point": int(zero_point),
        }

    return {
        "inputs": {model.name(k): one(d) for k, d in model.input_details.items()},
        "outputs": {model.name(k): one(d) for k, d in model.output_details.items()},
    }
