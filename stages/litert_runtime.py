"""Run a .tflite file with the LiteRT interpreter through its signature runner, by input and output name.

Integer inputs are quantized, and integer outputs dequantized, with the model's own (scale, zero_point), so
callers always feed and receive float arrays keyed by the original model's tensor names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def open_interpreter(model_path: str | Path, num_threads: int = 1, use_xnnpack: bool = True) -> Any:
    """The interpreter, loaded from memory: opening a truncated file by path can segfault, bytes raise."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(
        model_content=Path(model_path).read_bytes(),
        num_threads=num_threads,
        experimental_op_resolver_type=resolver,
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
    ) -> None:
        self.interpreter = open_interpreter(model_path, num_threads, use_xnnpack)
        signatures = self.interpreter.get_signature_list()
        self.runner = self.interpreter.get_signature_runner(next(iter(signatures)) if signatures else None)
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()
        # signature key -> original tensor name (identity when the keys already are the names)
        self.names = names or {}

    def name(self, key: str) -> str:
        return self.names.get(key, key)

    def key(self, name: str) -> str:
        reverse = {v: k for k, v in self.names.items()}
        return reverse.get(name, name)

    def quantized_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {key: quantize(feeds[self.name(key)], d) for key, d in self.input_details.items()}

    def invoke_raw(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner(**raw)

    def __call__(self, feeds: dict[str, np.ndarray], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Run all samples, in batches when the model's batch dimension is dynamic, else one at a time."""
        raw = self.quantized_feeds(feeds)
        count = len(next(iter(raw.values())))
        first = next(iter(self.input_details.values()))
        dynamic = len(first["shape_signature"]) > 0 and first["shape_signature"][0] == -1
        step = batch_size if dynamic else max(1, int(first["shape"][0]) if len(first["shape"]) else 1)
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, count, step):
            out = self.runner(**{k: v[start : start + step] for k, v in raw.items()})
            for key, value in out.items():
                parts.setdefault(key, []).append(dequantize(np.array(value), self.output_details[key]))
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
