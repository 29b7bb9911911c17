"""Moves the int8_mixed search can make, and the backends that apply them.

A move is one change to the full-integer model, named by the tensor it is about; a backend lists the moves it
can make from the per-layer table and builds a model for any set of its moves. The search only sees moves,
sizes and end metrics, so a second backend (e.g. AI Edge Quantizer: "this op's activations to int16") plugs in
by implementing `Backend` without touching the search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

# Ops that move data around without weights or arithmetic worth keeping in float on their own.
_PLUMBING = {"QUANTIZE", "DEQUANTIZE", "SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


@dataclass(frozen=True)
class Move:
    """Keep `target` (an op's output tensor) out of integer arithmetic: `ops` are the op outputs it denylists."""

    backend: str
    kind: str
    target: str
    ops: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "kind": self.kind, "target": self.target, "ops": list(self.ops)}


class Backend(Protocol):
    name: str

    def moves(self, layers: list[dict[str, Any]]) -> list[Move]: ...

    def build(self, moves: tuple[Move, ...]) -> bytes: ...

    def float_weights(self, moves: tuple[Move, ...]) -> float: ...


def op_graph(flatbuffer: bytes) -> tuple[dict[str, str], dict[str, list[str]], dict[str, int]]:
    """(op type by op, consumer ops by tensor, weight elements by op) of a model; ops are named by first output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    produced = {int(o) for op in ops for o in op["outputs"]}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    kinds: dict[str, str] = {}
    consumers: dict[str, list[str]] = {}
    weights: dict[str, int] = {}
    for op in ops:
        if not len(op["outputs"]) or int(op["outputs"][0]) not in details:
            continue
        name = details[int(op["outputs"][0])]["name"]
        kinds[name] = op["op_name"]
        weights[name] = 0
        for i in (int(i) for i in op["inputs"] if i >= 0 and i in details):
            if i in produced or i in inputs:
                consumers.setdefault(details[i]["name"], []).append(name)
            else:
                weights[name] += int(np.prod(details[i]["shape"]))
    return kinds, consumers, weights


def tensor_moves(
    backend: str,
    kinds: tuple[str, ...],
    layers: list[dict[str, Any]],
    op_kinds: dict[str, str],
    consumers: dict[str, list[str]],
) -> list[Move]:
    """One move per kind for each tensor of the per-layer table: its writer plus the compute ops that read it
    (a tensor kept out of int8 on one side only would be requantized on the other)."""
    found = []
    for row in layers:
        if row["name"] not in op_kinds:
            continue
        readers = [c for c in consumers.get(row["name"], []) if op_kinds.get(c) not in _PLUMBING]
        ops = tuple(dict.fromkeys([row["name"], *readers]))
        found += [Move(backend, kind, row["name"], ops) for kind in kinds]
    return found


class ConverterBackend:
    """The TFLite converter's selective quantization: `QuantizationDebugOptions(denylisted_nodes=...)`.

    Keeping a tensor in float means denylisting the op that writes it and the compute ops that read it: with only
    the writer in float, a QUANTIZE op before each reader would lose the same precision (an outlier channel's
    tensor needs both convolutions around it in float).
    """

    name = "converter"

    def __init__(self, debugger: Any, int8_model: bytes) -> None:
        self.debugger = debugger
        self.kinds, self.consumers, self.weights = op_graph(int8_model)
        self.total_weights = max(sum(self.weights.values()), 1)

    def moves(self, layers: list[dict[str, Any]]) -> list[Move]:
        return tensor_moves(self.name, ("float",), layers, self.kinds, self.consumers)

    def denylist(self, moves: tuple[Move, ...]) -> list[str]:
        return sorted({op for move in moves for op in move.ops})

    def float_weights(self, moves: tuple[Move, ...]) -> float:
        """Fraction of the model's weight elements that stay float."""
        return sum(self.weights.get(op, 0) for op in self.denylist(moves)) / self.total_weights

    def build(self, moves: tuple[Move, ...]) -> bytes:
        import tensorflow as tf

        self.debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=self.denylist(moves))
        return bytes(self.debugger.get_nondebug_quantized_model())
