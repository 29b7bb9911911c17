"""Split stage: cut the graph before ops TFLite cannot run; the head is converted, the tail runs on the host.

`split=auto` takes the converter's own verdict for every format: it converts the model once with builtins
only and, when that fails, maps the structured errors onto the model's flattened graph
(`stages.split.converter_verdict`: ops inside function bodies and loops included, named with where they sit).
`stages.split.graph_cut` computes the cut: every node downstream of them is the tail, and no loop plumbing, index
or mask crosses it. A numpy tail that names the head tensors it reads (a detector tail's raw box and class
predictions) is cut exactly there. `split=manual` takes the cut tensors from `split.outputs`; `split=none`
refuses a graph with unsupported ops. With nothing to cut, the head is the whole model and there is no tail.
The tail runs as the configured numpy function (`split.postprocess._target_`), else as the cut-off subgraph
in TensorFlow (verification only: the deployed model then needs a host-side tail); see `stages.split.tail`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from stages.load.model.access import head_from, io_shapes, model_path, source_handle
from stages.load.model.formats import model_format
from stages.result import InputError, StageError, StageResult
from stages.split.postprocess_target import deploy_mode, in_graph_note, with_model_settings
from stages.split.tail import load_postprocess, run_tail, run_tf_tail

__all__ = ["load_postprocess", "run_tail", "run_tf_tail", "split"]

_MAX_ROUNDS = 3

# The check conversion of a model that needs no cut: builtins-only fp32 on the first road.
BUILTINS_FILE = "builtins.tflite"


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


def _graph_view(load: StageResult, out_dir: Path) -> tuple[Any, dict[str, str], dict[str, str], str | None]:
    """(GraphDef, {model input: graph tensor}, {model output: graph tensor}, file written or None)."""
    from stages.load.model import read_graph_def
    from stages.split.converter_verdict import flat_graph
    from stages.split.graph_cut import split_tensor, tensor_name

    model = load.meta["model"]
    norm = lambda n: tensor_name(*split_tensor(n))  # noqa: E731
    if model_format(model["format"]).graph_file:
        graph_def = read_graph_def(model_path(load))
        ins = {i["name"]: norm(i["name"]) for i in model["inputs"]}
        outs = {o["name"]: norm(o["name"]) for o in model["outputs"]}
        return graph_def, ins, outs, None
    handle = source_handle(load)
    graph_def, in_tensors, out_tensors = flat_graph(handle.fn)
    ins = {i.name: norm(t) for i, t in zip(handle.inputs, in_tensors, strict=True)}
    by_key = sorted(handle.outputs, key=lambda o: o.key)
    outs = {o.name: norm(t) for o, t in zip(by_key, out_tensors, strict=True)}
    (out_dir / "graph.pb").write_bytes(graph_def.SerializeToString())
    return graph_def, ins, outs, "graph.pb"


def resolve_tensor(graph_def: Any, name: str, dtypes: dict[str, str]) -> str:
    """A configured cut name -> a graph tensor: an exact node/tensor name, or a layer name (the last float
    tensor in that layer's scope, i.e. its output)."""
    from stages.split.graph_cut import split_tensor, tensor_name

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


def _find_unsupported(handle: Any, graph_def: Any, load: StageResult, whole: bool = True) -> Any:
    """The converter's verdict on `handle` (the whole model, or a cut head: no second opinion from the file)."""
    from stages.split.converter_verdict import verdict

    return verdict(handle, graph_def, load.meta["model"] if whole else None, model_path(load))


def _no_cut_message(found: Any, why: str) -> str:
    where = "; ".join(f"{op} at {place}" for op, place in sorted(found.where.items())) or sorted(found.nodes)[:3]
    return (
        f"TFLite builtins cannot run the op(s) {found.ops} ({where}), and {why} Use `split=manual "
        "split.outputs=[...]` to cut earlier, or change the model so the part TFLite cannot run comes last."
    )


def _tail_inputs_cut(
    graph_def: Any, ins: dict[str, str], outs: dict[str, str], fn: Any, kwargs: dict[str, Any], dtypes: Any
) -> tuple[Any, dict[str, str]] | None:
    """A numpy tail that names the head tensors it reads (`fn.tensor_args`, e.g. a detector's raw box and class
    predictions) is cut exactly there: (plan, {configured name: graph tensor}); None when it names none."""
    from stages.split.graph_cut import manual_cut

    names = [str(kwargs[a]) for a in getattr(fn, "tensor_args", ()) if kwargs.get(a)]
    if not names:
        return None
    resolved = {n: resolve_tensor(graph_def, n, dtypes) for n in names}
    plan = manual_cut(graph_def, list(ins.values()), list(outs.values()), list(resolved.values()))
    return plan, resolved


def split(cfg: dict[str, Any], out_dir: str, load: StageResult) -> StageResult:
    from stages.split.graph_cut import compute_cut, manual_cut, tensor_dtypes
    from stages.split.tail_share import refusal, tail_share

    # `split.postprocess` wins; else the tail the model config ships with (the bundled examples do).
    scfg = {
        **cfg["split"],
        "postprocess": _declared(cfg["split"].get("postprocess")) or load.meta["model"].get("postprocess"),
    }
    inputs = load.meta["model"].get("inputs") or [{}]
    scfg["postprocess"] = with_model_settings(scfg["postprocess"], inputs[0].get("shape"))  # `from_keras`
    mode = str(scfg["mode"])
    target = _postprocess_target(scfg.get("postprocess"))
    tail_fn, tail_kwargs = load_postprocess(scfg["postprocess"]) if target else (None, {})
    deploy = deploy_mode(scfg.get("deploy"), target, tail_kwargs)
    meta: dict[str, Any] = {
        "mode": mode,
        "deploy": deploy,
        "unsupported_ops": [],
        "cut_tensors": [],
        "postprocess": None,
        "head_outputs": None,
    }
    if mode == "manual" and not scfg.get("outputs"):
        raise InputError("`split=manual` needs the cut: `split.outputs=[tensor_or_layer,...]`.")
    handle = source_handle(load)
    fmt = model_format(load.meta["model"]["format"])
    if mode != "manual" and not fmt.graph_file:
        from stages.split.graph_cut import try_builtins

        # The converter's verdict on the model's first conversion road
        # (`stages.load.model.conversion_roads.roads`: a large model is not frozen for it): builtins run all of
        # it, nothing to cut. A graph file's only road is its frozen function, which `_find_unsupported` converts
        # below.
        # The model it converts is the fp32 variant's first road exactly: kept, so convert[fp32] does not convert
        # the same model again (stages/convert/stage.py).
        check = Path(out_dir) / BUILTINS_FILE
        if (handle.export is not None or handle.frozen) and try_builtins(handle, Path(out_dir), keep=check) is None:
            return StageResult(files={"builtins": BUILTINS_FILE}, meta=meta)
    if not handle.frozen:
        # Freezing failed (a serving function that assigns a variable): the graph keeps variable handles, which
        # the graph cutter cannot carry into a head. The convert stage converts such a model whole, through
        # its SavedModel.
        if mode == "manual":
            raise InputError(
                "`split=manual` needs a graph whose variables can be frozen into constants, and this model's "
                f"could not be ({load.meta.get('load_path')}). Convert it whole (`split=auto`), or export a "
                "serving function without variable assignments."
            )
        meta["converter_note"] = "variables kept (freezing failed): converted whole, not cut"
        return StageResult(meta=meta)
    out = Path(out_dir)
    graph_def, ins, outs, graph_file = _graph_view(load, out)
    dtypes = tensor_dtypes(graph_def)
    files = {"graph": graph_file} if graph_file else {}
    unsupported: dict[str, str] = {}
    aliases: dict[str, str] = {}
    if mode == "manual":
        cut = [resolve_tensor(graph_def, n, dtypes) for n in scfg["outputs"]]
        plan = manual_cut(graph_def, list(ins.values()), list(outs.values()), cut)
    else:
        found = _find_unsupported(handle, graph_def, load)
        if found is None or not (found.nodes or found.where):
            if found is not None and found.other and fmt.graph_file:  # no other conversion road to fall back to
                raise StageError(
                    f"The TFLite converter fails on this model for a reason that is not an unsupported op: "
                    f"{found.other[0][:400]}. Fix the model or its input shapes; splitting cannot help here."
                )
            # Not an op TFLite lacks (shapes, recurrent lowering): the convert stage's own fallbacks handle it.
            meta["converter_note"] = found.other[0][:400] if found is not None and found.other else None
            return StageResult(meta=meta, files=files)
        if not found.nodes:
            raise InputError(_no_cut_message(found, "none of them maps to a node of the model's graph, so"))
        unsupported.update(found.nodes)
        meta["unsupported_where"] = found.where
        if mode == "none":
            raise InputError(
                f"TFLite builtins cannot run the op(s) {found.ops} (nodes such as {sorted(found.nodes)[:3]}), "
                "and `split=none` forbids cutting the graph. Use `split=auto` to convert the graph up to them "
                "and run the rest on the host (optionally as numpy with `split.postprocess._target_=...`)."
            )
        plan = compute_cut(graph_def, list(ins.values()), list(outs.values()), unsupported, dtypes)
        for _ in range(_MAX_ROUNDS):  # a cut head may reveal ops the first pass never reached
            if not plan.cut_tensors:
                break
            head = head_from(graph_def, ins, plan.head_outputs, io_shapes(load, ins))
            more = _find_unsupported(head, graph_def, load, whole=False)
            if more is None or not more.nodes:
                break
            unsupported.update(more.nodes)
            plan = compute_cut(graph_def, list(ins.values()), list(outs.values()), unsupported, dtypes)
        else:
            raise StageError(f"The head still holds ops TFLite cannot run after {_MAX_ROUNDS} cuts: {more.ops}.")
        share = tail_share(graph_def, plan.tail) if plan.tail else None
        if share is not None and share.too_large and plan.cut_tensors:
            ops = sorted({unsupported[n] for n in unsupported if n in plan.tail} or set(unsupported.values()))
            raise InputError(refusal(share, ops, dict(meta.get("unsupported_where") or {}), plan.cut_tensors))
        named = _tail_inputs_cut(graph_def, ins, outs, tail_fn, tail_kwargs, dtypes) if plan.tail else None
        if named and set(named[0].cut_tensors) != set(plan.cut_tensors):
            inside = sorted(n for n in unsupported if n not in named[0].tail)
            if inside:
                raise InputError(
                    f"The numpy tail {target} reads {sorted(named[1])}, but ops TFLite cannot run "
                    f"({sorted({unsupported[n] for n in inside})}, e.g. {inside[0]}) compute them. Name tensors "
                    f"before those ops, or drop the names to cut at {plan.cut_tensors}."
                )
            plan, aliases = named[0], named[1]
    if not plan.tail:
        return StageResult(meta=meta, files=files)
    if deploy == "in_graph" and not target:
        raise InputError(
            f"`split.deploy=in_graph` builds the tail into the .tflite from a bundled numpy tail's settings, and no "
            f"`split.postprocess` is configured (the tail from {plan.cut_tensors} would run in TensorFlow). Give "
            "`stages.postprocess.detector.detect` or `stages.postprocess.nms.filter_detections` with the model's "
            "settings (docs/split.md), or drop `split.deploy=in_graph`."
        )
    if not plan.cut_tensors:
        why = "every path from the inputs to the outputs runs through them: the head would have no outputs."
        raise InputError(_no_cut_message(_verdict_of(unsupported, meta), why))
    reverse_out = {v: k for k, v in outs.items()}
    share = tail_share(graph_def, plan.tail)
    meta["tail_share"] = share.as_dict()
    manual_note = f"split=manual: {share.text()}." if mode == "manual" else None
    meta.update(
        unsupported_ops=sorted(set(unsupported.values())),
        unsupported_nodes=sorted(unsupported),
        cut_tensors=plan.cut_tensors,
        postprocess=target,
        postprocess_config=dict(scfg["postprocess"]) if target else None,
        postprocess_inputs={k: v for k, v in aliases.items() if k != v} or None,
        head_outputs=plan.head_outputs,
        tail_inputs=[k for k, v in ins.items() if v in plan.tail_inputs],
        head_final_outputs=[reverse_out[o] for o in plan.head_final_outputs],
        tail_nodes=len(plan.tail),
        graph_io={"inputs": ins, "outputs": outs},
        tail="numpy" if target else "tensorflow",
        note=" ".join(
            n
            for n in (
                manual_note,
                in_graph_note(target, tail_kwargs) if deploy == "in_graph" else None,
                None
                if target
                else (
                    "No split.postprocess: the tail ran in TensorFlow for verification only; the deployed .tflite "
                    f"is the head and needs a host-side tail from {plan.cut_tensors} to the model's outputs."
                ),
            )
            if n
        )
        or None,
    )
    (out / "cut.json").write_text(json.dumps({k: meta[k] for k in meta if k != "graph_io"}, indent=2))
    return StageResult(files={**files, "cut": "cut.json"}, meta=meta)


def _verdict_of(unsupported: dict[str, str], meta: dict[str, Any]) -> Any:
    from stages.split.converter_verdict import Verdict

    return Verdict(nodes=dict(unsupported), where=dict(meta.get("unsupported_where") or {}))
