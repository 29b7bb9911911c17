"""Cutting a TF GraphDef into a head TFLite can run and a tail that runs on the host.

Pure GraphDef work (no conversion here except in `find_unsupported`): the tail is every node downstream of an
unsupported node; TensorArray handles, loop frames (Enter/Merge/Switch/NextIteration/Exit) and integer shape
plumbing that only the tail consumes move into the tail with it, and constant-only subgraphs are recomputed by
the tail instead of being cut. The tensors that still cross from head to tail are the cut.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.split.selection import selections_feeding, sort_keys_only_for

# Ops whose outputs are loop-frame or resource plumbing: never a sensible cut tensor.
_PLUMBING = {
    "Enter",
    "RefEnter",
    "Exit",
    "RefExit",
    "Merge",
    "RefMerge",
    "Switch",
    "RefSwitch",
    "NextIteration",
    "RefNextIteration",
    "LoopCond",
    "ControlTrigger",
    "NoOp",
}
_PLUMBING_PREFIXES = ("TensorArray", "TensorList", "Stack", "VarHandle", "ReadVariable")
_FLOAT = ("float", "bfloat", "half")
_SOURCE_OPS = {"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"}


def parse_input(text: str) -> tuple[str, int, bool]:
    """A NodeDef input string -> (node name, output index, is control edge)."""
    if text.startswith("^"):
        return text[1:], -1, True
    name, _, index = text.partition(":")
    return name, int(index) if index else 0, False


def tensor_name(node: str, index: int) -> str:
    """The display name of a tensor: `node` for output 0, `node:1` otherwise."""
    return node if index == 0 else f"{node}:{index}"


def split_tensor(name: str) -> tuple[str, int]:
    node, _, index = name.partition(":")
    return node, int(index) if index else 0


def is_plumbing(op: str) -> bool:
    return op in _PLUMBING or op.startswith(_PLUMBING_PREFIXES)


@dataclass
class CutPlan:
    """Where the graph is cut: `cut_tensors` are the head's extra outputs, in graph order."""

    tail: set[str] = field(default_factory=set)
    cut_tensors: list[str] = field(default_factory=list)
    # Model inputs the tail reads directly (fed from the evaluation inputs, never cut).
    tail_inputs: list[str] = field(default_factory=list)
    # Final outputs computed by the head (passed through the tail unchanged).
    head_final_outputs: list[str] = field(default_factory=list)

    @property
    def head_outputs(self) -> list[str]:
        return [*self.cut_tensors, *[o for o in self.head_final_outputs if o not in self.cut_tensors]]


class _Graph:
    def __init__(self, graph_def: Any) -> None:
        self.order = [n.name for n in graph_def.node]
        self.nodes = {n.name: n for n in graph_def.node}
        self.inputs: dict[str, list[tuple[str, int, bool]]] = {}
        self.consumers: dict[str, set[str]] = {name: set() for name in self.nodes}
        for node in graph_def.node:
            parsed = [parse_input(i) for i in node.input]
            self.inputs[node.name] = parsed
            for src, _, _ in parsed:
                if src in self.consumers:
                    self.consumers[src].add(node.name)

    def downstream(self, start: Iterable[str]) -> set[str]:
        seen, stack = set(), list(start)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self.consumers.get(name, ()))
        return seen

    def upstream(self, start: Iterable[str]) -> set[str]:
        seen, stack = set(), list(start)
        while stack:
            name = stack.pop()
            if name in seen or name not in self.nodes:
                continue
            seen.add(name)
            stack.extend(src for src, _, _ in self.inputs[name])
        return seen

    def input_aliases(self, inputs: list[str]) -> dict[str, str]:
        """{node: model input tensor} for the inputs and the Identity chains that only forward them."""
        aliases = {split_tensor(i)[0]: tensor_name(*split_tensor(i)) for i in inputs}
        for name in self.order:  # graph order: an Identity comes after what it forwards
            node = self.nodes[name]
            data = [(s, i) for s, i, control in self.inputs[name] if not control]
            if node.op == "Identity" and len(data) == 1 and data[0][0] in aliases and data[0][1] == 0:
                aliases[name] = aliases[data[0][0]]
        return aliases

    def constant_only(self) -> set[str]:
        """Nodes with no placeholder among their data ancestors (the tail can recompute them). Control edges
        do not count: an inlined function body hangs its constants off a control node fed by the inputs."""
        seen: set[str] = set()
        stack = [n for n, node in self.nodes.items() if node.op in _SOURCE_OPS]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(
                c
                for c in self.consumers.get(name, ())
                if any(src == name and not control for src, _, control in self.inputs[c])
            )
        return set(self.nodes) - seen


def tensor_dtypes(graph_def: Any) -> dict[str, str]:
    """{tensor name: dtype name} for every node output, by importing the graph (no execution)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    return {tensor_name(op.name, i): t.dtype.name for op in graph.get_operations() for i, t in enumerate(op.outputs)}


def compute_cut(
    graph_def: Any,
    inputs: list[str],
    outputs: list[str],
    unsupported: Iterable[str],
    dtypes: dict[str, str] | None = None,
) -> CutPlan:
    """Tail = everything downstream of `unsupported` nodes plus their plumbing and every selection op that feeds
    them (`stages.split.selection`); the rest is head."""
    graph = _Graph(graph_def)
    aliases = graph.input_aliases(inputs)  # an inlined call passes each input through Identity nodes
    input_nodes = set(aliases)
    needed = graph.upstream(split_tensor(o)[0] for o in outputs)
    constant = graph.constant_only()
    dtypes = dtypes if dtypes is not None else tensor_dtypes(graph_def)
    tail = graph.downstream(n for n in unsupported if n in graph.nodes)
    changed = True
    while changed:
        changed = False
        for name in list(tail):
            for src, index, control in graph.inputs[name]:
                if src in tail or src in input_nodes or src not in graph.nodes:
                    continue
                if control:
                    continue
                # Loop plumbing, and integer/bool tensors (indices, masks: a selection, e.g. a detector's top-k
                # before its NMS), never cross the cut: their producer moves into the tail.
                kind = dtypes.get(tensor_name(src, index), "float32")
                selection = not kind.startswith(_FLOAT) and src not in constant
                if is_plumbing(graph.nodes[src].op) or selection:
                    tail |= graph.downstream([src])
                    changed = True
        # Pull back integer/bool shape plumbing and constants that only the tail consumes.
        for name in graph.order:
            if name in tail or name in input_nodes or name not in needed:
                continue
            consumers = graph.consumers[name] & needed
            if not consumers or not consumers <= tail or any(split_tensor(o)[0] == name for o in outputs):
                continue
            kinds = [dtypes.get(tensor_name(name, i), "float32") for i in range(_num_outputs(graph, name))]
            if name in constant or all(not k.startswith(_FLOAT) for k in kinds):
                tail.add(name)
                changed = True
        # Selections (top-k, argsort, gathers by computed indices, masks, NMS) that feed the tail move into it:
        # the head hands over per-anchor tensors, never tensors already in score order.
        live = tail & needed
        moved = (
            selections_feeding(graph, live, constant, dtypes, needed) | sort_keys_only_for(graph, live, constant)
        ) - (input_nodes | tail)
        if moved:
            tail |= graph.downstream(moved)
            changed = True
    tail &= needed
    plan = CutPlan(tail=tail)
    cut: set[tuple[str, int]] = set()
    tail_inputs: set[str] = set()
    for name in tail:
        for src, index, control in graph.inputs[name]:
            if control or src in tail or src not in graph.nodes:
                continue
            if src in input_nodes:
                tail_inputs.add(aliases[src])
            elif src not in constant:
                cut.add((src, index))
    position = {n: i for i, n in enumerate(graph.order)}
    plan.cut_tensors = [tensor_name(n, i) for n, i in sorted(cut, key=lambda t: (position[t[0]], t[1]))]
    plan.tail_inputs = sorted(tail_inputs)
    plan.head_final_outputs = [o for o in outputs if split_tensor(o)[0] not in tail]
    return plan


def _num_outputs(graph: _Graph, name: str) -> int:
    used = [index for consumer in graph.consumers[name] for src, index, _ in graph.inputs[consumer] if src == name]
    return max(used, default=0) + 1


def manual_cut(graph_def: Any, inputs: list[str], outputs: list[str], cut_tensors: list[str]) -> CutPlan:
    """The user named the cut: the head computes `cut_tensors`; the tail is what outputs need beyond it."""
    graph = _Graph(graph_def)
    head = graph.upstream(split_tensor(c)[0] for c in cut_tensors)
    needed = graph.upstream(split_tensor(o)[0] for o in outputs)
    tail = needed - head
    input_nodes = {split_tensor(i)[0] for i in inputs}
    tail_inputs = sorted({tensor_name(s, i) for n in tail for s, i, c in graph.inputs[n] if not c and s in input_nodes})
    return CutPlan(
        tail=tail,
        cut_tensors=[tensor_name(*split_tensor(c)) for c in cut_tensors],
        tail_inputs=tail_inputs,
        head_final_outputs=[o for o in outputs if split_tensor(o)[0] not in tail],
    )


_LOC_NAME = re.compile(r'name:\s*"([^"]+)"')


def unsupported_from_error(err: Any, graph_def: Any) -> tuple[dict[str, str], list[str]]:
    """Map a ConverterError's structured errors to GraphDef nodes: ({node: op type}, unmapped messages).

    Each error names an operator (`tf.TensorArrayScatterV3`) and a location whose call-site names are the
    original node names (`node@function`). When a location does not resolve, every node of that op type is
    taken (the cross-check by op type).
    """
    nodes = {n.name: n.op for n in graph_def.node}
    found: dict[str, str] = {}
    unmapped: list[str] = []
    for item in getattr(err, "errors", []) or []:
        op = item.operator.name.removeprefix("tf.") if item.operator.name else ""
        names = [n.split("@")[0] for n in _LOC_NAME.findall(str(item.location))]
        hits = [n for n in names if n in nodes]
        if not hits and op:
            hits = [n for n, t in nodes.items() if t == op]
        if hits:
            found.update({n: nodes[n] for n in hits})
        else:
            unmapped.append(item.error_message.splitlines()[0] if item.error_message else str(op))
    if not getattr(err, "errors", None):
        unmapped.append(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
    return found, unmapped


def try_builtins(
    handle: Any, workdir: Path | None = None, via: str | None = None, keep: Path | None = None
) -> Exception | None:
    """Convert `handle` with TFLite builtins only (fp32), by default on its first conversion road
    (`stages.load.model.conversion_roads.roads`); the ConverterError, or None when it converts. `keep`: where to
    write the converted model, which is exactly the fp32 variant's first road (convert[fp32] reuses it)."""
    import tempfile

    from stages.load.model.conversion_roads import plain_converter

    with tempfile.TemporaryDirectory(prefix="builtins-", dir=workdir) as tmp:  # an exported SavedModel goes here
        return builtins_verdict(plain_converter(handle, Path(tmp), via), keep)


def builtins_verdict(converter: Any, keep: Path | None = None) -> Exception | None:
    """Run `converter` with TFLite builtins only: the error it raises (the converter's verdict), or None (the
    model written to `keep`, when given)."""
    import tensorflow as tf

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        flatbuffer = converter.convert()
    except Exception as err:  # noqa: BLE001 - ConverterError, or anything the MLIR bridge raises
        return err
    if keep is not None:
        keep.write_bytes(flatbuffer)
    return None
