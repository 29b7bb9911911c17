"""Split stage: cut the graph before ops TFLite cannot run; the head is converted, the tail runs on the host.

`split=auto` converts the model once with TFLite builtins only; when the converter's structured errors name
ops it cannot run, `stages.graph_cut` computes the cut on the GraphDef (every node downstream of them is the
tail). `split=manual` takes the cut tensors from `split.outputs`; `split=none` refuses a graph with
unsupported ops. With nothing to cut, the head is the whole model and there is no tail. The tail runs as the
configured numpy function (`split.postprocess._target_`), else as the cut-off subgraph in TensorFlow (for
verification only: the deployed model then needs a host-side tail).
"""

from __future__ import annotations

import importlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from stages.load import model_path, source_handle
from stages.result import InputError, StageError, StageResult

# Op types that give TFLite builtins away without a conversion (the cheap scan for Keras and SavedModels).
_SUSPECT_OPS = re.compile(r"^(TensorArray\w*V3|Stack\w*V2|.*Dataset\w*|PyFunc\w*|EagerPyFunc)$")
_MAX_ROUNDS = 3


def _declared(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema declares `split.postprocess: {_target_: null}` (so `split.postprocess._target_=...` works
    without `+`); that untouched declaration means no tail."""
    return cfg if cfg and (cfg.get("_target_") or len(cfg) > 1) else None


def _postprocess_target(cfg: dict[str, Any] | None) -> str | None:
    if not cfg:
        return None
    target = cfg.get("_target_")
    if not target:
        raise InputError(
            "`split.postprocess` is set but has no `_target_`. Give a numpy function's dotted path, e.g. "
            "`+split.postprocess._target_=stages.postprocess.nms.filter_detections`, or drop it."
        )
    return str(target)


def load_postprocess(cfg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The tail function and its keyword arguments from `split.postprocess`."""
    target = str(cfg["_target_"])
    module_name, _, fn_name = target.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), fn_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise InputError(
            f"`split.postprocess._target_={target}` cannot be imported ({type(err).__name__}: {err})."
            " Give the dotted path of a function importable from the working directory, e.g. "
            "stages.postprocess.nms.filter_detections."
        ) from None
    return fn, {k: v for k, v in cfg.items() if k != "_target_"}


def _graph_view(load: StageResult, out_dir: Path) -> tuple[Any, dict[str, str], dict[str, str], str | None]:
    """(GraphDef, {model input: graph tensor}, {model output: graph tensor}, file written or None)."""
    from stages.graph_cut import split_tensor, tensor_name
    from stages.tf_model import read_graph_def

    model = load.meta["model"]
    norm = lambda n: tensor_name(*split_tensor(n))  # noqa: E731
    if model["format"] == "frozen_graph":
        graph_def = read_graph_def(model_path(load))
        ins = {i["name"]: norm(i["name"]) for i in model["inputs"]}
        outs = {o["name"]: norm(o["name"]) for o in model["outputs"]}
        return graph_def, ins, outs, None
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    handle = source_handle(load)
    frozen, graph_def = convert_variables_to_constants_v2_as_graph(handle.fn)
    ins = {i.name: norm(t.name) for i, t in zip(handle.inputs, frozen.inputs, strict=True)}
    by_key = sorted(handle.outputs, key=lambda o: o.key)
    outs = {o.name: norm(t.name) for o, t in zip(by_key, frozen.outputs, strict=True)}
    (out_dir / "graph.pb").write_bytes(graph_def.SerializeToString())
    return graph_def, ins, outs, "graph.pb"


def resolve_tensor(graph_def: Any, name: str, dtypes: dict[str, str]) -> str:
    """A configured cut name -> a graph tensor: an exact node/tensor name, or a layer name (the last float
    tensor in that layer's scope, i.e. its output)."""
    from stages.graph_cut import split_tensor, tensor_name

    nodes = [n.name for n in graph_def.node]
    node, index = split_tensor(name)
    if node in set(nodes):
        return tensor_name(node, index)
    pattern = re.compile(rf"(^|/){re.escape(name)}(_\d+)?/")
    scoped = [
        n
        for n in nodes
        if pattern.search(n)
        and dtypes.get(n, "").startswith("float")
        and not n.endswith(("ReadVariableOp", "resource"))
    ]
    if scoped:
        return scoped[-1]
    import difflib

    close = difflib.get_close_matches(name, nodes, n=5, cutoff=0.3)
    raise InputError(
        f"`split.outputs` names '{name}', which is neither a tensor nor a layer of the model. Closest names: "
        f"{close or nodes[:5]}. Fix `split.outputs`."
    )


def _find_unsupported(handle: Any, graph_def: Any) -> tuple[dict[str, str], list[str]]:
    from stages.graph_cut import try_builtins, unsupported_from_error

    err = try_builtins(handle)
    if err is None:
        return {}, []
    return unsupported_from_error(err, graph_def)


def _quick_scan(load: StageResult) -> list[str]:
    """Suspicious op types in a Keras/SavedModel function graph (and its library), without converting."""
    handle = source_handle(load)
    graph_def = handle.fn.graph.as_graph_def()
    ops = {n.op for n in graph_def.node} | {n.op for f in graph_def.library.function for n in f.node_def}
    return sorted(op for op in ops if _SUSPECT_OPS.match(op))


def _io_shapes(load: StageResult, ins: dict[str, str]) -> dict[str, list[int]]:
    return {ins[i["name"]]: [-1 if d is None else d for d in i["shape"]] for i in load.meta["model"]["inputs"]}


def split(cfg: dict[str, Any], out_dir: str, load: StageResult) -> StageResult:
    from stages.graph_cut import compute_cut, manual_cut, tensor_dtypes

    # `split.postprocess` wins; else the tail the model config ships with (the bundled examples do).
    scfg = {
        **cfg["split"],
        "postprocess": _declared(cfg["split"].get("postprocess")) or load.meta["model"].get("postprocess"),
    }
    mode = str(scfg["mode"])
    target = _postprocess_target(scfg.get("postprocess"))
    if target:
        load_postprocess(scfg["postprocess"])
    fmt = load.meta["model"]["format"]
    meta: dict[str, Any] = {
        "mode": mode,
        "unsupported_ops": [],
        "cut_tensors": [],
        "postprocess": None,
        "head_outputs": None,
    }
    if mode == "manual" and not scfg.get("outputs"):
        raise InputError("`split=manual` needs the cut: `split.outputs=[tensor_or_layer,...]`.")
    if mode != "manual" and fmt != "frozen_graph" and not _quick_scan(load):
        return StageResult(meta=meta)  # a clean Keras/SavedModel graph: nothing to cut, no conversion paid
    out = Path(out_dir)
    graph_def, ins, outs, graph_file = _graph_view(load, out)
    dtypes = tensor_dtypes(graph_def)
    files = {"graph": graph_file} if graph_file else {}
    unsupported: dict[str, str] = {}
    if mode == "manual":
        cut = [resolve_tensor(graph_def, n, dtypes) for n in scfg["outputs"]]
        plan = manual_cut(graph_def, list(ins.values()), list(outs.values()), cut)
    else:
        handle = source_handle(load)
        found, unmapped = _find_unsupported(handle, graph_def)
        if unmapped and not found:
            raise StageError(
                f"The TFLite converter fails on this model for a reason that is not an unsupported op: "
                f"{unmapped[0][:400]}. Fix the model or its input shapes; splitting cannot help here."
            )
        if not found:
            return StageResult(meta=meta, files=files)
        unsupported.update(found)
        if mode == "none":
            ops = sorted(set(found.values()))
            raise InputError(
                f"TFLite builtins cannot run the op(s) {ops} (nodes such as {sorted(found)[:3]}), and "
                "`split=none` forbids cutting the graph. Use `split=auto` to convert the graph up to them "
                "and run the rest on the host (optionally as numpy with `split.postprocess._target_=...`)."
            )
        plan = compute_cut(graph_def, list(ins.values()), list(outs.values()), unsupported, dtypes)
        for _ in range(_MAX_ROUNDS):  # a cut head may reveal ops the first pass never reached
            head = _head_from(graph_def, ins, plan.head_outputs, _io_shapes(load, ins), load)
            more, _ = _find_unsupported(head, graph_def)
            if not more:
                break
            unsupported.update(more)
            plan = compute_cut(graph_def, list(ins.values()), list(outs.values()), unsupported, dtypes)
        else:
            raise StageError(f"The head still holds ops TFLite cannot run after {_MAX_ROUNDS} cuts: {more}.")
    if not plan.tail:
        return StageResult(meta=meta, files=files)
    if not plan.cut_tensors:
        raise InputError(
            "The cut leaves the head with no outputs: every path from the inputs to the outputs runs through "
            f"ops TFLite cannot run ({sorted(set(unsupported.values()))}). Nothing can be converted; use "
            "`split=manual split.outputs=[...]` to cut earlier."
        )
    reverse_out = {v: k for k, v in outs.items()}
    meta.update(
        unsupported_ops=sorted(set(unsupported.values())),
        unsupported_nodes=sorted(unsupported),
        cut_tensors=plan.cut_tensors,
        postprocess=target,
        postprocess_config=dict(scfg["postprocess"]) if target else None,
        head_outputs=plan.head_outputs,
        tail_inputs=[k for k, v in ins.items() if v in plan.tail_inputs],
        head_final_outputs=[reverse_out[o] for o in plan.head_final_outputs],
        tail_nodes=len(plan.tail),
        graph_io={"inputs": ins, "outputs": outs},
        tail="numpy" if target else "tensorflow",
        note=None
        if target
        else (
            "No split.postprocess: the tail ran in TensorFlow for verification only; the deployed .tflite is "
            f"the head and needs a host-side tail from {plan.cut_tensors} to the model's outputs."
        ),
    )
    (out / "cut.json").write_text(json.dumps({k: meta[k] for k in meta if k != "graph_io"}, indent=2))
    return StageResult(files={**files, "cut": "cut.json"}, meta=meta)


def _graph_def_for(load: StageResult, split: StageResult) -> tuple[Any, str]:

    path = str(split.path("graph")) if "graph" in split.files else model_path(load)
    return _read_cached(path, Path(path).stat().st_mtime_ns), path


@lru_cache(maxsize=4)
def _read_cached(path: str, stamp: int) -> Any:
    from stages.tf_model import read_graph_def

    return read_graph_def(path)


def _head_from(
    graph_def: Any, ins: dict[str, str], outputs: list[str], shapes: dict[str, list[int]], load: StageResult
) -> Any:
    from stages.tf_model import TensorInfo, frozen_graph_handle

    handle = frozen_graph_handle(graph_def, list(ins.values()), outputs, shapes)
    by_graph = {v: k for k, v in ins.items()}
    handle.inputs = [TensorInfo(by_graph.get(i.name, i.name), i.key, i.shape, i.dtype) for i in handle.inputs]
    return handle


_HEADS: dict[str, Any] = {}


def head_handle(load: StageResult, split: StageResult) -> Any:
    """The part of the model that is converted: the whole model, or the head up to the cut tensors."""
    if not split.meta.get("head_outputs"):
        return source_handle(load)
    graph_def, path = _graph_def_for(load, split)
    ins = split.meta["graph_io"]["inputs"]
    key = json.dumps([path, Path(path).stat().st_mtime_ns, split.meta["head_outputs"]])
    if key not in _HEADS:
        _HEADS.clear()
        _HEADS[key] = _head_from(graph_def, ins, split.meta["head_outputs"], _io_shapes(load, ins), load)
    return _HEADS[key]


def full_model_outputs(load: StageResult, split: StageResult, feeds: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The original (uncut) model's outputs on `feeds`, and a callable that runs it (for latency)."""
    handle = source_handle(load)
    return handle.run(feeds), handle.run


@lru_cache(maxsize=2)
def _session(path: str, stamp: int) -> Any:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(_read_cached(path, stamp), name="")
    return tf.compat.v1.Session(graph=graph)


def _graph_tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def run_tf_tail(
    load: StageResult, split: StageResult, head_outputs: dict[str, np.ndarray], feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run the cut-off subgraph in TensorFlow: feed cut tensors (and inputs it reads), fetch outputs."""
    _, path = _graph_def_for(load, split)
    session = _session(path, Path(path).stat().st_mtime_ns)
    io = split.meta["graph_io"]
    names = [n for n in io["outputs"] if n not in split.meta["head_final_outputs"]]
    fetches = [_graph_tensor(io["outputs"][n]) for n in names]
    sources = {_graph_tensor(c): head_outputs[c] for c in split.meta["cut_tensors"]}
    sources |= {_graph_tensor(io["inputs"][n]): feeds[n] for n in split.meta["tail_inputs"]}
    count = len(next(iter(sources.values())))
    fixed = [i["shape"][0] for i in load.meta["model"]["inputs"]]
    step = fixed[0] if fixed and fixed[0] else count
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for start in range(0, count, step):
        values = session.run(fetches, {k: v[start : start + step] for k, v in sources.items()})
        for name, value in zip(names, values, strict=True):
            parts[name].append(np.asarray(value))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _check_tail_outputs(split: StageResult, result: Any, final: dict[str, Any], load: StageResult | None) -> None:
    """The numpy tail must return the model's remaining outputs by their original names."""
    name = split.meta["postprocess"]
    if not isinstance(result, dict):
        raise StageError(
            f"The postprocess function {name} returned a {type(result).__name__}; it must return a dict "
            "{output name: array} keyed by the original model's output names."
        )
    if load is None:
        return
    expected = {o["name"] for o in load.meta["model"]["outputs"]} - set(final)
    missing = sorted(expected - set(result))
    if missing:
        raise StageError(
            f"The postprocess function {name} returned outputs {sorted(result)}, but the model's outputs "
            f"{sorted(expected)} are expected from the tail: {missing} are missing. Return one array per model "
            "output, keyed by its name (or fix `split.postprocess`'s arguments, e.g. its `outputs` list)."
        )


def run_tail(
    split: StageResult, head_outputs: dict[str, Any], feeds: dict[str, Any], load: StageResult | None = None
) -> dict[str, Any]:
    """Turn the converted head's outputs into the model's final outputs (identity when nothing was cut).

    With a postprocess function, it gets `{cut tensor: array}` in `split.cut_tensors` order (plus any model
    inputs the tail reads) and its config kwargs; without one the cut-off subgraph runs in TensorFlow.
    """
    if not split.meta.get("head_outputs"):
        return head_outputs
    final = {n: head_outputs[n] for n in split.meta.get("head_final_outputs", []) if n in head_outputs}
    if split.meta.get("postprocess"):
        fn, kwargs = load_postprocess(split.meta["postprocess_config"])
        tensors = {c: head_outputs[c] for c in split.meta["cut_tensors"]}
        tensors |= {n: feeds[n] for n in split.meta.get("tail_inputs", [])}
        try:
            result = fn(tensors, **kwargs)
        except Exception as err:  # noqa: BLE001 - user code; say which function broke
            raise StageError(
                f"The postprocess function {split.meta['postprocess']} failed on the head outputs "
                f"{list(tensors)}: {type(err).__name__}: {err}. Check its arguments in `split.postprocess`."
            ) from None
        _check_tail_outputs(split, result, final, load)
        return final | {k: np.asarray(v) for k, v in result.items()}
    if load is None:
        raise StageError("run_tail needs the load result to run the TensorFlow tail.")
    return final | run_tf_tail(load, split, head_outputs, feeds)
