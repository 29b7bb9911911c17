"""Selection ops: the ops that sort, rank or pick rows by data (top-k, argsort, argmax, gathers by computed
indices, `Where`, boolean masks, NMS, `Unique`). A cut downstream of one hands the tail tensors already in score
order (a detector's boxes gathered by its top-k), whose rows swap whenever the converted head's scores move by a
rounding step: the tail then compares different boxes. `split=auto` therefore moves every selection op that feeds
the tail into the tail, so the head hands over per-anchor tensors and the tail does all sorting and selecting.

A selection is post-processing only when what follows it holds no layer with weights (convolution, matmul): a
DETR-style detector (D-FINE) picks its top-k queries in the encoder and runs the whole decoder on them; that
pick is the model itself, and moving it would hand the tail a third of the model.
"""

from __future__ import annotations

from typing import Any

from stages.split.op_kinds import COMPUTE_OPS

# Ops whose outputs depend on the order or selection of their inputs' values.
SELECTION_OPS = {
    "TopK",
    "TopKV2",
    "ArgMax",
    "ArgMin",
    "Where",
    "Unique",
    "UniqueV2",
    "UniqueWithCounts",
    "UniqueWithCountsV2",
    "NonMaxSuppression",
    "NonMaxSuppressionV2",
    "NonMaxSuppressionV3",
    "NonMaxSuppressionV4",
    "NonMaxSuppressionV5",
    "NonMaxSuppressionWithOverlaps",
    "CombinedNonMaxSuppression",
    "LowerBound",
    "UpperBound",
    "DynamicPartition",
}
# Ops that pick or place by an index input (its position): selection ops when the indices are computed.
INDEXED_OPS = {
    "Gather": 1,
    "GatherV2": 1,
    "GatherNd": 1,
    "ResourceGather": 1,
    "BatchGather": 1,
    "ScatterNd": 0,
    "TensorScatterUpdate": 1,
    "TensorScatterAdd": 1,
}
# Index arithmetic that reads shapes, not values: indices built from these are not computed from data.
_SHAPE_OPS = {"Shape", "ShapeN", "Size", "Rank"}
# Key preparation and layout right before a selection (argsort's Neg, boolean_mask's flattening Reshape): moved
# with it when only the tail reads them, so the cut is the per-anchor tensor itself, samples first.
KEY_OPS = {"Neg", "Identity", "Snapshot", "StopGradient", "Reshape", "Transpose", "ExpandDims", "Squeeze"}


def is_selection(graph: Any, name: str, constant: set[str], dtypes: dict[str, str]) -> bool:
    """Whether node `name` selects by data: a selection op, or an indexed op whose indices are computed from
    values (a float tensor or another selection upstream; not from shapes or constants)."""
    if name in constant:
        return False
    op = graph.nodes[name].op
    if op in SELECTION_OPS:
        return True
    if op not in INDEXED_OPS:
        return False
    data = [(s, i) for s, i, control in graph.inputs[name] if not control]
    position = INDEXED_OPS[op]
    return position < len(data) and _computed(graph, data[position][0], constant, dtypes)


def _computed(graph: Any, start: str, constant: set[str], dtypes: dict[str, str]) -> bool:
    seen, stack = set(), [start]
    while stack:
        name = stack.pop()
        if name in seen or name in constant or name not in graph.nodes:
            continue
        seen.add(name)
        node = graph.nodes[name]
        if node.op in _SHAPE_OPS:
            continue
        if node.op in SELECTION_OPS or dtypes.get(name, "").startswith(("float", "bfloat", "half")):
            return True
        stack.extend(s for s, _, control in graph.inputs[name] if not control)
    return False


def selections_feeding(
    graph: Any, tail: set[str], constant: set[str], dtypes: dict[str, str], needed: set[str]
) -> set[str]:
    """Head nodes that select by data and feed the tail (directly or through other head nodes), unless a layer
    with weights follows them on the way to the outputs (`needed`; see the module docstring)."""
    feeding = graph.upstream(tail) - tail
    found = set()
    for name in feeding:
        if is_selection(graph, name, constant, dtypes):
            after = (graph.downstream([name]) & needed) - tail
            if not any(_has_weights(graph, n, constant) for n in after):
                found.add(name)
    return found


def _has_weights(graph: Any, name: str, constant: set[str]) -> bool:
    """A convolution or matmul with a constant operand: a layer of the model (an NMS's IoU matmul has none)."""
    if graph.nodes[name].op not in COMPUTE_OPS:
        return False
    return any(src in constant for src, _, control in graph.inputs[name] if not control)


def sort_keys_only_for(graph: Any, tail: set[str], constant: set[str]) -> set[str]:
    """Key preparation (`KEY_OPS`) whose every consumer is in the tail: it moves there too, so the cut is the
    key itself (the scores) rather than its negation."""
    return {
        n
        for n in graph.upstream(tail) - tail
        if n not in constant and graph.nodes[n].op in KEY_OPS and graph.consumers[n] and graph.consumers[n] <= tail
    }
