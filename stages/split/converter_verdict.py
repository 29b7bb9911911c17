"""The TFLite converter's own verdict on a model: which ops builtins cannot run, and where they sit.

`split=auto` asks the converter (builtins only, fp32) instead of guessing from op names. The model's frozen
function is flattened to one GraphDef (its call inlined, control flow lowered to loop frames) whose node names
are the names the converter's structured errors use, so each error maps to the node it is about; ops inside
function bodies that stayed functions (While/If branches, nested calls) map to the top-level node that calls
them. When the frozen function only yields an opaque error (a lowered loop it cannot raise back, e.g.
`Missing Switch successor`), the SavedModel or Keras model is converted as saved, which names the real op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Errors that mean "this op is not a TFLite builtin" (as opposed to shapes, types or a broken graph).
_UNSUPPORTED = re.compile(r"neither a custom op nor a flex op|NEEDS_FLEX_OPS|NEEDS_CUSTOM_OPS|not supported", re.I)
_CALL = re.compile(r'name:\s*"([^"]+)"')


@dataclass
class Verdict:
    """{flat graph node: op type} TFLite cannot run, where each op sits, and errors that name no op."""

    nodes: dict[str, str] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # op type -> "node in function < caller in ..."
    other: list[str] = field(default_factory=list)

    @property
    def ops(self) -> list[str]:
        return sorted(set(self.nodes.values()) | set(self.where))


def flat_graph(fn: Any) -> tuple[Any, list[str], list[str]]:
    """(GraphDef, input tensor names, output tensor names) of a frozen concrete function, its call inlined.

    The pipeline's handles wrap the frozen graph in one call (`PartitionedCall`) so the outputs keep their
    names; the body of that call is the graph worth cutting.
    """
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph

    outer = fn.graph.as_graph_def()
    calls = [n for n in outer.node if n.op in ("PartitionedCall", "StatefulPartitionedCall")]
    library = {f.signature.name: f for f in outer.library.function}
    if len(calls) != 1 or calls[0].attr["f"].func.name not in library:
        return outer, [t.name for t in fn.inputs], [t.name for t in fn.outputs]
    call = calls[0]
    body = function_def_to_graph(library[call.attr["f"].func.name])
    by_node = {n.name: n for n in outer.node}
    outputs = []
    for tensor in fn.outputs:  # Identity chains from the wrapper's outputs back to the call's results
        source, index = tensor.name.split(":")[0], 0
        while by_node[source].op == "Identity":
            source, _, idx = by_node[source].input[0].partition(":")
            index = int(idx) if idx else 0
        if source != call.name:
            return outer, [t.name for t in fn.inputs], [t.name for t in fn.outputs]
        outputs.append(body.outputs[index].name)
    # The call's arguments, in order, are the wrapper's placeholders.
    inputs = [body.inputs[i].name for i in range(len(call.input)) if not call.input[i].startswith("^")]
    flat = body.as_graph_def()
    # Functions the body calls (a Keras 3 conv's jit-compiled `_conv_xla`, a while loop's body) live in the outer
    # library: without them the body fails at run time ("Failed to find function ... in function library").
    present = {f.signature.name for f in flat.library.function}
    flat.library.function.extend(
        f for name, f in library.items() if name not in present and name != call.attr["f"].func.name
    )
    return flat, inputs, outputs


def _function_owners(graph_def: Any) -> dict[str, set[str]]:
    """{function name: top-level nodes that call it, directly or through other functions}."""
    library = {f.signature.name: f for f in graph_def.library.function}

    def called(attrs: Any) -> set[str]:
        names = set()
        for value in attrs.values():
            if value.HasField("func"):
                names.add(value.func.name)
            names |= {f.name for f in value.list.func}
        return names & set(library)

    owners: dict[str, set[str]] = {}
    for node in graph_def.node:
        stack, seen = list(called(node.attr)), set()
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            owners.setdefault(name, set()).add(node.name)
            stack.extend(c for n in library[name].node_def for c in called(n.attr))
    return owners


def _chain(location: Any) -> list[tuple[str, str]]:
    """The call-site chain of an error location, innermost first: [(node name, function or '')]."""
    chain = []
    for text in _CALL.findall(str(location)):
        node, _, function = text.partition("@")
        chain.append((node, function))
    return chain


def describe(chain: list[tuple[str, str]]) -> str:
    """Where an op sits: the node and the function holding it, then the node that calls that function."""
    return " < ".join(f"{n} in {f}" if f else n for n, f in chain[:2]) or "an unknown place"


def map_errors(err: Any, graph_def: Any) -> Verdict:
    """Map a ConverterError's structured errors onto `graph_def`'s nodes (by name, then function, then type)."""
    nodes = {n.name: n.op for n in graph_def.node}
    owners = _function_owners(graph_def)
    verdict = Verdict()
    items = getattr(err, "errors", None) or []
    for item in items:
        op = item.operator.name.removeprefix("tf.") if item.operator.name else ""
        message = item.error_message or ""
        if not op or not (_UNSUPPORTED.search(message) or _UNSUPPORTED.search(str(item.error_code))):
            verdict.other.append(message.splitlines()[0] if message else str(item.error_code))
            continue
        chain = _chain(item.location)
        verdict.where.setdefault(op, describe(chain))
        hits = [n for n, _ in chain if n in nodes]
        hits = hits[:1] or sorted({o for _, f in chain for o in owners.get(f, ())})[:1]
        if not hits:
            hits = [n for n, t in nodes.items() if t == op]
        verdict.nodes.update({n: nodes[n] for n in hits})
    if not items:
        text = str(err).strip()
        verdict.other.append(text.splitlines()[0] if text else type(err).__name__)
    return verdict


def verdict(handle: Any, graph_def: Any, model: dict[str, Any] | None, path: str) -> Verdict | None:
    """None when the handle converts with builtins only; else the unsupported nodes of `graph_def`.

    When the frozen function's errors name no node, the converter also reads the file as saved (functional
    control flow kept) where `model`'s format allows it; `model` is None for a cut head (no second opinion).
    """
    from stages.load.model.formats import model_format
    from stages.split.graph_cut import builtins_verdict, try_builtins

    # The frozen function's road: its errors name the nodes of `graph_def` (the flat frozen graph).
    err = try_builtins(handle, via="concrete_function")
    if err is None:
        return None
    found = map_errors(err, graph_def)
    if found.nodes or model is None:
        return found
    as_saved = model_format(model["format"]).saved_converter
    second = builtins_verdict(as_saved(path, model)) if as_saved is not None else None
    if second is not None:
        again = map_errors(second, graph_def)
        if again.nodes or again.where:
            again.other = found.other + again.other
            return again
    return found
