"""One view of every source model format: a frozen TF function with named inputs and named outputs.

Keras files, SavedModels (through their serving signature) and TF1 frozen graphs all become a
`ModelHandle`: a concrete function whose variables are frozen to constants (so a SavedModel can never convert
with uninitialised variables) and which returns a dict keyed by output name, so the TFLite signature carries
the original names and every comparison is by name, never by position. Handles are memoised per process:
the persistent worker loads each model once, not once per variant.
"""

from __future__ import annotations

import difflib
import gc
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from stages.result import InputError


def signature_key(name: str) -> str:
    """A tensor name as a TFLite signature key: `input_1:0` -> `input_1`, `a/b` -> `a_b`."""
    key = re.sub(r":0$", "", name)
    key = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return key if key and not key[0].isdigit() else f"t_{key}"


@dataclass(frozen=True)
class TensorInfo:
    name: str  # the original model's name
    key: str  # the TFLite signature key
    shape: tuple[int | None, ...]
    dtype: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorInfo:
        return cls(data["name"], data["key"], tuple(data["shape"]), data["dtype"])


@dataclass
class ModelHandle:
    """A frozen concrete function `fn(*inputs) -> {output key: tensor}` plus its named I/O."""

    fn: Any
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: dict[str, np.ndarray], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Run the original model on numpy inputs keyed by input name; outputs keyed by output name."""
        import tensorflow as tf

        count = len(next(iter(feeds.values())))
        chunks: dict[str, list[np.ndarray]] = {o.name: [] for o in self.outputs}
        fixed = self.inputs[0].shape[0] if self.inputs[0].shape else None
        step = fixed if fixed else batch_size
        for start in range(0, count, step):
            args = [tf.constant(feeds[i.name][start : start + step]) for i in self.inputs]
            result = self.fn(*args)
            for out in self.outputs:
                chunks[out.name].append(np.asarray(result[out.key]))
        return {name: np.concatenate(parts) for name, parts in chunks.items()}


def _freeze(concrete: Any, inputs: list[TensorInfo]) -> tuple[Any, list[str]]:
    """Inline variables as constants and re-wrap so the outputs stay a dict keyed by name."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keys = sorted(concrete.structured_outputs)  # tf.nest flattens dicts in sorted-key order
    frozen = convert_variables_to_constants_v2(concrete)
    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        return dict(zip(keys, frozen(*args), strict=True))

    return serve.get_concrete_function(), keys


def _infos(pairs: list[tuple[str, Any]]) -> list[TensorInfo]:
    infos, seen = [], set()
    for name, spec in pairs:
        key = signature_key(name)
        while key in seen:
            key += "_"
        seen.add(key)
        shape = tuple(None if d is None else int(d) for d in spec.shape) if spec is not None else ()
        infos.append(TensorInfo(name, key, shape, spec.dtype.name if spec is not None else "float32"))
    return infos


def _load_keras(path: str, safe_mode: bool) -> ModelHandle:
    import keras
    import tensorflow as tf

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=safe_mode)
    except ValueError as err:
        if "safe_mode" in str(err) or "Lambda" in str(err):
            raise InputError(
                f"The Keras model {path} contains arbitrary Python code (a Lambda layer), which is "
                "refused by "
                "default because loading it runs that code. If you trust the file, set "
                "`model.safe_mode=false`."
            ) from None
        raise
    inputs = _infos([(t.name, tf.TensorSpec(t.shape, t.dtype)) for t in model.inputs])
    out_names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])
    outputs_infos = _infos(
        [(n, tf.TensorSpec(t.shape, t.dtype)) for n, t in zip(out_names, model.outputs, strict=True)]
    )
    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        if isinstance(result, dict):
            result = [result[n] for n in out_names]
        elif not isinstance(result, list | tuple):
            result = [result]
        return {o.key: r for o, r in zip(outputs_infos, result, strict=True)}

    fn, _ = _freeze(serve.get_concrete_function(), inputs)
    return ModelHandle(fn, inputs, outputs_infos)


def _load_saved_model(path: str, signature: str) -> ModelHandle:
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    if signature not in loaded.signatures:
        raise InputError(
            f"The SavedModel {path} has no signature '{signature}' (it has {sorted(loaded.signatures)}). "
            "Set `model.signature` to one of those."
        )
    sig = loaded.signatures[signature]
    in_specs = sig.structured_input_signature[1]
    in_names = sorted(in_specs)
    inputs = _infos([(n, in_specs[n]) for n in in_names])
    out_struct = sig.structured_outputs
    outputs = _infos([(n, tf.TensorSpec(out_struct[n].shape, out_struct[n].dtype)) for n in sorted(out_struct)])
    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        result = sig(**dict(zip(in_names, args, strict=True)))
        return {o.key: result[o.name] for o in outputs}

    fn, _ = _freeze(serve.get_concrete_function(), inputs)
    handle = ModelHandle(fn, inputs, outputs)
    handle.keepalive = loaded  # type: ignore[attr-defined]
    return handle


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
    in_infos = _infos(list(zip(inputs, specs, strict=True)))
    out_infos = [
        TensorInfo(o, i.key, (), "float32") for o, i in zip(outputs, _infos([(o, None) for o in outputs]), strict=True)
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
    return ModelHandle(fn, in_infos, out_infos)


@lru_cache(maxsize=4)
def _load_cached(fmt: str, path: str, stamp: tuple[int, int], options: str) -> ModelHandle:
    import json

    opts = json.loads(options)
    if fmt == "keras":
        import keras

        handle = _load_keras(path, opts.get("safe_mode", True))
        # The frozen function holds the weights as constants; dropping Keras's own copies lowers the peak of
        # every later conversion in this process (ResNet50 int8: 4.7 -> 4.1 GB).
        keras.backend.clear_session()
        gc.collect()
        return handle
    if fmt == "saved_model":
        return _load_saved_model(path, opts.get("signature", "serving_default"))
    if fmt == "frozen_graph":
        return frozen_graph_handle(read_graph_def(path), opts["inputs"], opts["outputs"], opts.get("input_shapes"))
    raise InputError(f"Unknown model format '{fmt}': use keras, saved_model or frozen_graph.")


def load_handle(model: dict[str, Any]) -> ModelHandle:
    """Load (once per process) the model described by the `load` stage's `meta['model']`."""
    import json

    path = model["path"]
    stat = Path(path).stat()
    options = {k: model.get(k) for k in ("safe_mode", "signature", "inputs", "outputs", "input_shapes")}
    for role in ("inputs", "outputs"):  # the load stage's meta lists them as TensorInfo dicts: keep the names
        names = options[role]
        if names:
            options[role] = [t["name"] if isinstance(t, dict) else t for t in names]
    return _load_cached(model["format"], path, (stat.st_mtime_ns, stat.st_size), json.dumps(options, sort_keys=True))
