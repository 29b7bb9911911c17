"""TF1 frozen graphs (.pb/.pbtxt): parse, check the configured tensor names, wrap a part as a handle."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from stages.load.model.handle import ModelHandle, TensorInfo, infos
from stages.result import InputError


def check(model: dict[str, Any], path: Path | None) -> None:
    """Preflight's check: a file, not a directory, and the tensor names a graph cannot tell by itself."""
    if path is not None and path.is_dir():
        raise InputError(f"The model path {path} is a directory; `model=frozen_graph` expects a .pb or .pbtxt file.")
    if not (model.get("inputs") and model.get("outputs")):
        raise InputError("A frozen graph needs its tensor names: set `model.inputs=[...]` and `model.outputs=[...]`.")


def load(path: str, options: dict[str, Any]) -> ModelHandle:
    """The loader as the format table calls it: the configured inputs, outputs and their shapes."""
    return frozen_graph_handle(read_graph_def(path), options["inputs"], options["outputs"], options.get("input_shapes"))


def read_graph_def(path: str) -> Any:
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    data = Path(path).read_bytes()
    try:
        graph_def.ParseFromString(data)
    except Exception:  # noqa: BLE001 - protobuf raises a bare DecodeError
        try:
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf-8"), graph_def)
        except Exception:  # noqa: BLE001
            raise InputError(
                f"{path} is not a TensorFlow GraphDef (.pb or .pbtxt): it cannot be parsed. Check "
                "that the file "
                "is a frozen graph and was copied completely, or pick the right `model=` for its format."
            ) from None
    return graph_def


def _described(info: TensorInfo, tensor: Any) -> TensorInfo:
    shape = () if tensor.shape.rank is None else tuple(tensor.shape.as_list())
    return TensorInfo(info.name, info.key, shape, tensor.dtype.name)


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def check_node_names(graph_def: Any, names: list[str], role: str) -> None:
    """Fail with the closest existing node names when a configured tensor does not exist."""
    nodes = [n.name for n in graph_def.node]
    known = set(nodes)
    for name in names:
        node = name.split(":")[0]
        if node not in known:
            close = difflib.get_close_matches(node, nodes, n=5, cutoff=0.4)
            if role == "input":
                close = close or [n.name for n in graph_def.node if n.op == "Placeholder"][:5]
            raise InputError(
                f"The frozen graph has no {role} tensor '{name}'. Closest node names: {close or nodes[:5]}. "
                f"Fix `model.{role}s`."
            )


def frozen_graph_handle(
    graph_def: Any, inputs: list[str], outputs: list[str], input_shapes: dict[str, list[int]] | None
) -> ModelHandle:
    """Wrap a GraphDef (or a part of one) as a handle from `inputs` to `outputs` tensors."""
    import tensorflow as tf

    check_node_names(graph_def, inputs, "input")
    check_node_names(graph_def, outputs, "output")
    by_name = {n.name: n for n in graph_def.node}
    specs = []
    for name in inputs:
        node = by_name[name.split(":")[0]]
        dtype = tf.dtypes.as_dtype(node.attr["dtype"].type) if "dtype" in node.attr else tf.float32
        shape_cfg = (input_shapes or {}).get(name) or (input_shapes or {}).get(name.split(":")[0])
        declared = None
        if "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
            declared = [None if d.size < 0 else d.size for d in node.attr["shape"].shape.dim]
        if shape_cfg is not None:
            shape = [None if d is None or d < 0 else int(d) for d in shape_cfg]
            if declared is not None and (
                len(shape) != len(declared) or any(a and b and a != b for a, b in zip(shape, declared, strict=True))
            ):
                shown = ["?" if d is None else d for d in declared]
                raise InputError(
                    f"`model.input_shapes` gives input '{name}' the shape {shape_cfg}, but the "
                    "graph's placeholder "
                    f"is {shown}. Give a shape that fits it (unknown '?' dims may be fixed), or drop "
                    "the entry."
                )
        elif declared is not None:
            shape = declared
        else:
            raise InputError(
                f"The frozen graph's input '{name}' has no known shape. Give it with "
                f"`'model.input_shapes={{{name.split(':')[0]}: [1, ...]}}'`."
            )
        specs.append(tf.TensorSpec(shape, dtype))
    in_infos = infos(list(zip(inputs, specs, strict=True)))
    out_infos = [
        TensorInfo(o, i.key, (), "float32") for o, i in zip(outputs, infos([(o, None) for o in outputs]), strict=True)
    ]

    def _import(*args: Any) -> None:
        tf.compat.v1.import_graph_def(
            graph_def, input_map={_tensor_name(n): a for n, a in zip(inputs, args, strict=True)}, name=""
        )

    try:
        wrapped = tf.compat.v1.wrap_function(_import, [tf.TensorSpec(s.shape, s.dtype) for s in specs])
        graph = wrapped.graph
        pruned = wrapped.prune(
            feeds=list(wrapped.inputs), fetches=[graph.get_tensor_by_name(_tensor_name(o)) for o in outputs]
        )
    except ValueError as err:
        raise InputError(
            f"The frozen graph does not accept the configured inputs/shapes: {str(err).splitlines()[0]}. "
            "Check `model.inputs` and `model.input_shapes` against the graph's placeholders."
        ) from None
    sig_specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in in_infos]

    @tf.function(input_signature=sig_specs)
    def serve(*args: Any) -> dict[str, Any]:
        return {o.key: t for o, t in zip(out_infos, pruned(*args), strict=True)}

    fn = serve.get_concrete_function()
    out_infos = [_described(o, fn.structured_outputs[o.key]) for o in out_infos]
    return ModelHandle(fn, in_infos, out_infos, "frozen_graph")
