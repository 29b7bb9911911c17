"""How much of the model a cut leaves to the host tail: its share of the weights and of the compute ops.

A cut is meant to leave post-processing (decoding, NMS) to the host. When TFLite cannot run an op in the middle
of the network (a bool `StridedSlice` in decoder block 0 of a transformer), `split=auto` would otherwise cut
there and ship a .tflite that is the embedding alone, while TensorFlow runs the rest and the verdict says
`passed`. Weights count only the constant inputs of compute ops (convolutions, matmuls), so a detector's anchor
table or an NMS's constants, which are not the model's learning, do not make post-processing look large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stages.split.op_kinds import COMPUTE_OPS

MAX_WEIGHT_SHARE = 0.10  # the tail may hold at most this share of the weights ...
MAX_COMPUTE_SHARE = 0.25  # ... and of the compute ops, for `split=auto` to cut on its own
# Below this many parameters a tail is a small computation (a box coder, a score calibration) whatever its share
# of a toy model: only larger tails are refused.
MIN_TAIL_WEIGHTS = 1024
_FORWARD = {"Identity", "Cast", "Reshape", "Transpose", "ReadVariableOp", "Snapshot"}


@dataclass
class TailShare:
    weights: int
    total_weights: int
    compute: int
    total_compute: int

    @property
    def weight_share(self) -> float:
        return self.weights / self.total_weights if self.total_weights else 0.0

    @property
    def compute_share(self) -> float:
        return self.compute / self.total_compute if self.total_compute else 0.0

    @property
    def too_large(self) -> bool:
        shares = self.weight_share > MAX_WEIGHT_SHARE or self.compute_share > MAX_COMPUTE_SHARE
        return shares and self.weights >= MIN_TAIL_WEIGHTS

    def text(self) -> str:
        return (
            f"the tail holds {self.weight_share:.0%} of the model's weights ({self.weights:,} of "
            f"{self.total_weights:,} parameters) and {self.compute} of its {self.total_compute} convolution/matmul "
            f"ops ({self.compute_share:.0%})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "weight_share": round(self.weight_share, 4),
            "weights": self.weights,
            "total_weights": self.total_weights,
            "compute_share": round(self.compute_share, 4),
            "compute_ops": self.compute,
            "total_compute_ops": self.total_compute,
        }


def _const_size(node: Any) -> int:
    tensor = node.attr["value"].tensor
    size = 1
    for dim in tensor.tensor_shape.dim:
        size *= max(int(dim.size), 0)
    return size


def tail_share(graph_def: Any, tail: set[str]) -> TailShare:
    """The tail's share of the compute ops and of their constant (weight) inputs in `graph_def`."""
    from stages.split.graph_cut import parse_input

    nodes = {n.name: n for n in graph_def.node}

    def weight(name: str) -> int:
        for _ in range(8):  # through the Identity/Cast chains a frozen variable reads through
            node = nodes.get(name)
            if node is None:
                return 0
            if node.op == "Const":
                return _const_size(node)
            if node.op not in _FORWARD or not node.input:
                return 0
            name = parse_input(node.input[0])[0]
        return 0

    counts = {"weights": 0, "total_weights": 0, "compute": 0, "total_compute": 0}
    for node in graph_def.node:
        if node.op not in COMPUTE_OPS:
            continue
        size = sum(weight(parse_input(i)[0]) for i in node.input if not i.startswith("^"))
        counts["total_compute"] += 1
        counts["total_weights"] += size
        if node.name in tail:
            counts["compute"] += 1
            counts["weights"] += size
    return TailShare(**counts)


def refusal(share: TailShare, ops: list[str], where: dict[str, str], cut: list[str]) -> str:
    """The `split=auto` refusal: which op, where, the share, and what to try instead."""
    places = "; ".join(f"{op} at {where[op]}" for op in ops if op in where) or ", ".join(ops)
    return (
        f"TFLite builtins cannot run {', '.join(ops)} ({places}), and cutting before it would not leave "
        f"post-processing to the host: {share.text()} (split=auto cuts on its own only up to "
        f"{MAX_WEIGHT_SHARE:.0%} of the weights and {MAX_COMPUTE_SHARE:.0%} of those ops). The .tflite would be "
        "a fragment of the model. Try instead: converting with a newer TensorFlow whose converter lowers the op; "
        "a converter flag that keeps it (TF Select ops, which need the Flex delegate at run time); or rewriting "
        "the op in the model with builtin-friendly ops (e.g. cast a bool tensor to int or float before slicing "
        "or reshaping it). To cut there anyway, use `split=manual split.outputs=[...]` (the cut would be "
        f"{cut[:4]}); the share is then stated in the report's notes."
    )
