"""int8_mixed moves through AI Edge Quantizer (the `aeq` backend of issue 12, `stages.convert.quantization.aeq`).

AEQ quantizes the fp32 `.tflite` by recipe, so a move needs no reconversion and can be finer than the converter's:
`int16` puts one tensor's activations (its writer and readers) in int16 with int8 weights, which keeps the weights
small where keeping the ops in float would not; `float` leaves them unquantized. The base is AEQ's static a8w8.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.quantization.moves import Move, op_graph, tensor_moves
from stages.result import StageError

KINDS = ("int16", "float")


class AeqBackend:
    name = "aeq"

    def __init__(self, fp32_model: bytes, calib: dict[str, np.ndarray], keys: dict[str, str]) -> None:
        try:
            from stages.convert.quantization import aeq
        except ImportError:
            raise StageError(
                "`search.backends` includes aeq, but this checkout has no AI Edge Quantizer backend "
                "(stages/convert/quantization/aeq.py). Use `search.backends=[converter]`."
            ) from None
        self.aeq = aeq
        self.fp32_model, self.calib, self.keys = fp32_model, calib, keys
        self.kinds, self.consumers, self.weights = op_graph(fp32_model)
        self.total_weights = max(sum(self.weights.values()), 1)
        self.base = aeq.builtin_recipe("a8w8")

    def moves(self, layers: list[dict[str, Any]]) -> list[Move]:
        return tensor_moves(self.name, KINDS, layers, self.kinds, self.consumers)

    def float_weights(self, moves: tuple[Move, ...]) -> float:
        ops = {op for m in moves if m.kind == "float" for op in m.ops}
        return sum(self.weights.get(op, 0) for op in ops) / self.total_weights

    def build(self, moves: tuple[Move, ...]) -> bytes:
        recipe = self.base
        for kind in KINDS:  # float last: an op both moves touch stays float
            scopes = sorted({f"{op};" for m in moves if m.kind == kind for op in m.ops})
            if scopes:
                recipe = self.aeq.override_ops(recipe, scopes, kind)
        with tempfile.TemporaryDirectory() as scratch:
            source = Path(scratch) / "fp32.tflite"
            source.write_bytes(self.fp32_model)
            out = self.aeq.quantize_with_recipe(source, recipe, self.calib, Path(scratch) / "q.tflite", self.keys)
            return out.read_bytes()
