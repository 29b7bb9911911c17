"""The op that makes each model output, read from the model's own graph: what `output_kinds` asks before it falls
back on the output's values. Why: values in [0, 1] say little on their own (MTCNN O-Net's ten landmark
coordinates, a Dense layer's output, lie in [0, 1] with several above 0.5 and looked like multi-label scores),
while a `Sigmoid`, a `Softmax` or a linear layer (`MatMul`/`BiasAdd`) at the end of the graph says what the
output is.

The walk starts at the output tensor of the handle's function (the live one: no freezing for this) and steps back
through ops that only move values (Identity, Reshape, Transpose, ...) and into the functions that SavedModels,
frozen graphs and Keras exports call (`PartitionedCall`), up to the first op that computes. It reads GraphDef
protos only, so every source format is walked the same way.
"""

from __future__ import annotations

from typing import Any

# Ops that only move or relabel values: the output is what their (first) input is.
_PASS_THROUGH = {
    "Identity",
    "IdentityN",
    "Reshape",
    "Squeeze",
    "ExpandDims",
    "Transpose",
    "Snapshot",
    "StopGradient",
    "PreventGradient",
    "EnsureShape",
    "CheckNumerics",
    "Cast",
}
_CALLS = {"PartitionedCall", "StatefulPartitionedCall"}
SOFTMAX_OPS = ("Softmax",)
SIGMOID_OPS = ("Sigmoid",)
# A linear layer's last op (Dense: MatMul then BiasAdd or AddV2; a convolution; a batch norm): no squashing
# after it, so the output is a regression or logits, never probabilities, whatever range its values take.
LINEAR_OPS = (
    "MatMul",
    "BatchMatMul",
    "BatchMatMulV2",
    "BatchMatMulV3",
    "BiasAdd",
    "Add",
    "AddV2",
    "Einsum",
    "Conv2D",
    "Conv3D",
    "DepthwiseConv2dNative",
    "Conv2DBackpropInput",
    "FusedBatchNormV3",
)
_MAX_STEPS = 500


def final_ops(function: Any, keys: dict[str, str]) -> dict[str, str]:
    """{output name: type of the op that computes it} for a concrete function returning a dict; `keys` maps
    each output name to its key in that dict. Outputs whose op cannot be found are left out (the values decide)."""
    try:
        graph_def = function.graph.as_graph_def()
        structured = function.structured_outputs
    except Exception:  # noqa: BLE001 - a diagnostic: without it the values decide, as before
        return {}
    library = {f.signature.name: f for f in graph_def.library.function}
    top = {n.name: n for n in graph_def.node}
    found = {}
    for name, key in keys.items():
        tensor = structured.get(key) if isinstance(structured, dict) else None
        if tensor is None or not hasattr(tensor, "name"):
            continue
        node, _, index = tensor.name.partition(":")
        try:
            op = _walk(top, None, node, int(index or 0), library)
        except (IndexError, KeyError, ValueError):  # a graph shaped in a way not foreseen: the values decide
            op = None
        if op is not None:
            found[name] = op
    return found


def _walk(nodes: dict[str, Any], fdef: Any, node_name: str, index: int, library: dict[str, Any]) -> str | None:
    """The computing op behind output `index` of `node_name` in `nodes` (a graph's, or function `fdef`'s body)."""
    stack: list[tuple[dict[str, Any], Any, Any]] = []  # (scope, function, call node) of each caller
    for _ in range(_MAX_STEPS):
        node = nodes.get(node_name)
        if node is None:
            return None
        if node.op in _CALLS:
            callee = library.get(node.attr["f"].func.name)
            if callee is None or index >= len(callee.signature.output_arg):
                return None
            stack.append((nodes, fdef, node))
            nodes, fdef = {n.name: n for n in callee.node_def}, callee
            node_name, index = _function_ref(callee.ret[callee.signature.output_arg[index].name])
            continue
        if node.op not in _PASS_THROUGH:
            return str(node.op)
        source = node.input[index if node.op == "IdentityN" else 0]
        if fdef is not None and ":" not in source:  # a function argument: the call's matching input, one level up
            args = [a.name for a in fdef.signature.input_arg]
            if source not in args or not stack:
                return None
            nodes, fdef, call = stack.pop()
            source = [i for i in call.input if not i.startswith("^")][args.index(source)]
        node_name, index = _function_ref(source) if fdef is not None else _graph_ref(source)
    return None


def _graph_ref(ref: str) -> tuple[str, int]:
    """`node` or `node:k` (a graph's input reference)."""
    name, _, index = ref.lstrip("^").partition(":")
    return name, int(index or 0)


def _function_ref(ref: str) -> tuple[str, int]:
    """`node:out_arg:k` (a function body's reference); output `k` of the node's only output list."""
    parts = ref.lstrip("^").split(":")
    return parts[0], int(parts[2]) if len(parts) > 2 else 0


def structure(op: str | None) -> str | None:
    """`softmax`, `sigmoid` or `linear` for an op that says what its output holds; None when it leaves it open."""
    if op in SOFTMAX_OPS:
        return "softmax"
    if op in SIGMOID_OPS:
        return "sigmoid"
    if op in LINEAR_OPS:
        return "linear"
    return None


def handle_final_ops(handle: Any) -> dict[str, str]:
    """`final_ops` of a model handle: its live function (variables kept), else the one it holds."""
    function = handle.live if handle.live is not None else handle.fn
    return final_ops(function, {o.name: o.key for o in handle.outputs})
