"""Per-op repair: a full-integer variant that fails for a few ops without a kernel at its precision is rebuilt
with just those ops moved to a precision that runs, and every op moved is recorded (docs/quantization.md).

Two failures are repaired, each with the mechanism its backend already uses to keep ops out of integer math:
- the converter has no integer rule for an op (int16x8 stops on `Quantization to 16x8-bit not yet supported for op:
  'SQRT'`; int8 leaves the op in float silently): rebuilt the way `allow_float_ops` does, with TFLITE_BUILTINS
  beside the integer ops set, which keeps exactly the kernel-less ops in float and every other op at the scheme's
  precision. (QuantizationDebugOptions' denylist, the int8_mixed search's mechanism, cannot: its quantizer has no
  16x8 mode and returns an all-int8 model.)
- LiteRT refuses AI Edge Quantizer's model (`no_integer_overflow_from_quantization` in one depthwise conv of an
  a16w8 MobileNetV2): the named op gets the next precision of its scheme's `repair` list through a recipe entry
  (`aeq.override_ops`, the int8_mixed search's AEQ mechanism), one op per rebuild.

`variants.<name>.repair_budget` bounds the rebuilds, each a full conversion or quantization (the cost): the
converter's road keeps every kernel-less op in float in one rebuild, AEQ's moves one op per rebuild (an a16w8
MobileNetV2 with random weights: 24). 0 turns repair off. Whatever the budget, a repair that would leave more than
`MAX_FLOAT_SHARE` of the model's ops in float is refused: that is a float model, not the variant asked for
(`allow_float_ops=true` keeps them all, knowingly).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.quantization.moves import Move
from stages.convert.schemes import scheme
from stages.result import StageError

DEFAULT_BUDGET = 32
# The share of a model's compute ops the converter's repair may leave in float (PaddleOCR's direction classifier:
# 27 HARD_SWISH and RELU_0_TO_1 of its ops); above it the "repair" would be a float model.
MAX_FLOAT_SHARE = 0.5
_CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")


@dataclass(frozen=True)
class Moved:
    """One op moved off its scheme's precision: the same `Move` the int8_mixed search records, plus why."""

    move: Move
    op: str
    source: str  # the precision it left
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "node": self.move.target,
            "from": self.source,
            "to": self.move.kind,
            "why": self.why,
            "backend": self.move.backend,
        }


def budget(variant: dict[str, Any]) -> int:
    """How many rebuilds the variant's repair may make (0: none; the scheme may allow none either)."""
    if not scheme(variant["mode"]).repair:
        return 0
    return int(variant.get("repair_budget", DEFAULT_BUDGET) or 0)


def float_nodes(path: Path) -> list[tuple[str, str]]:
    """(op type, first output tensor) of every compute op that reads or writes a float tensor, as
    `variant_checks.inspect_tflite` counts them (QUANTIZE/DEQUANTIZE at the float boundary excluded)."""
    from stages.litert_runtime import open_interpreter

    interpreter = open_interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    nodes = []
    for op in interpreter._get_ops_details():
        if op["op_name"] in _CONVERSION_OPS:
            continue
        touched = [int(i) for i in [*op["inputs"], *op["outputs"]] if int(i) >= 0 and int(i) in tensors]
        if any(np.dtype(tensors[i]["dtype"]).kind == "f" for i in touched):
            outputs = [int(o) for o in op["outputs"] if int(o) in tensors]
            nodes.append((op["op_name"], tensors[outputs[0]]["name"] if outputs else f"#{op['index']}"))
    return nodes


def compute_ops(path: Path) -> int:
    """How many compute ops the model holds (QUANTIZE/DEQUANTIZE at the float boundary excluded)."""
    from stages.litert_runtime import open_interpreter

    return sum(op["op_name"] not in _CONVERSION_OPS for op in open_interpreter(path)._get_ops_details())


def too_much_float(moved: list[Moved], ops: int) -> bool:
    """Whether the converter's repair would leave more than MAX_FLOAT_SHARE of the model's `ops` in float."""
    return bool(moved) and len(moved) > MAX_FLOAT_SHARE * max(ops, 1)


def converter_moves(variant: dict[str, Any], path: Path, refused: list[str]) -> list[Moved]:
    """The ops the converter kept in float in a model built with TFLITE_BUILTINS beside the integer ops set."""
    chosen = scheme(variant["mode"])
    source = str(chosen.activations)
    moved = []
    for op, node in float_nodes(path):
        why = (
            f"the converter has no {variant['mode']} rule for {op}"
            + (" (it refused the variant)" if op in refused else " (it left the op in float)")
            + "; kept in float beside the integer ops"
        )
        moved.append(Moved(Move("converter", "float", node, (node,)), op, source, why))
    return moved


def too_many(variant: dict[str, Any], moved: list[Moved], ops: int) -> str:
    """The sentence a refused repair adds to the variant's error (`ops`: the model's compute ops)."""
    return (
        f" Repair would keep {len(moved)} of the model's {ops} ops in float "
        f"({', '.join(sorted({m.op for m in moved}))}), more than {MAX_FLOAT_SHARE:.0%}: that is a float model, "
        f"not {variant['mode']}. Set `variants.{variant['name']}.allow_float_ops=true` to keep them all in float "
        "knowingly, or choose a variant whose ops have kernels (fp16, dynamic)."
    )


def summary(moved: list[Moved], rebuilds: int, seconds: float, limit: int) -> dict[str, Any]:
    """`quantization.repair` of the report: what was moved, how many rebuilds it took and how long."""
    return {"rebuilds": rebuilds, "seconds": round(seconds, 3), "budget": limit, "ops": len(moved)}


def aeq_quantize(
    variant: dict[str, Any], recipe: list[dict[str, Any]], source: str, quantize: Callable[[list[dict[str, Any]]], Path]
) -> tuple[Path, list[dict[str, Any]], list[Moved], dict[str, Any]]:
    """Quantize by `recipe`; while LiteRT refuses the model, give the op it names the next precision of the
    scheme's `repair` list (one rebuild each, within the budget). Returns the model, the recipe that made it,
    the ops moved and `summary` (timed from the first refusal); raises the refusal, with what repair tried,
    when it cannot fix it."""
    from stages.convert.quantization import aeq

    chosen, limit = scheme(variant["mode"]), budget(variant)
    moved: list[Moved] = []
    tried: dict[str, int] = {}  # op scope -> index of the last precision tried in chosen.repair
    rebuilds, refused_at = 0, 0.0
    while True:
        path = quantize(recipe)
        refused = aeq.refusal(path)
        if refused is None:
            return (
                path,
                recipe,
                moved,
                summary(moved, rebuilds, time.perf_counter() - refused_at if moved else 0.0, limit),
            )
        refused_at = refused_at or time.perf_counter()
        reason, op, scope = refused
        step = tried.get(scope, -1) + 1
        if not scope or step >= len(chosen.repair) or rebuilds >= limit:
            done = "; ".join(f"{m.op} '{m.move.target[:80]}' -> {m.move.kind}" for m in moved)
            said = f" Repair moved {done} and stopped" if moved else ""
            why = (
                f"its budget of {limit} rebuilds is spent (raise `variants.{variant['name']}.repair_budget`)"
                if rebuilds >= limit
                else f"the op has no other precision left to try (`variants.{variant['name']}.repair_budget={limit}`)"
            ) + "."
            raise StageError(
                aeq.refusal_message(variant["name"], source, refused, f"{said or ' Repair stopped'}: {why}")
            )
        precision = chosen.repair[step]
        tried[scope] = step
        recipe = aeq.override_ops(recipe, [scope], precision)
        node = scope.split(";")[0]
        previous = [m.move.kind for m in moved if m.move.target == node]
        why = f"LiteRT refused it at {previous[-1] if previous else chosen.activations}: {reason}"
        moved = [m for m in moved if m.move.target != node]
        moved.append(Moved(Move("aeq", precision, node, (scope,)), op, str(chosen.activations), why))
        rebuilds += 1
