"""Running the tail of a cut model: the configured numpy function, or the cut-off subgraph in TensorFlow.

The tail function gets `{cut tensor: array}` in `split.cut_tensors` order (plus the model inputs it reads, and
the names it was configured with for the tensors it asked for) and returns `{model output name: array}`.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from stages.load.model.access import cached_graph_def, graph_def_for
from stages.result import StageError, StageResult
from stages.split.postprocess_target import cannot_import


def load_postprocess(cfg: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The tail function and its keyword arguments from `split.postprocess`."""
    target = str(cfg["_target_"])
    module_name, _, fn_name = target.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module_name), fn_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise cannot_import(target, err) from None
    return fn, {k: v for k, v in cfg.items() if k != "_target_"}


@lru_cache(maxsize=2)
def _session(path: str, stamp: int) -> Any:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(cached_graph_def(path, stamp), name="")
    return tf.compat.v1.Session(graph=graph)


def _graph_tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def run_tf_tail(
    load: StageResult, split: StageResult, head_outputs: dict[str, np.ndarray], feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run the cut-off subgraph in TensorFlow: feed cut tensors (and inputs it reads), fetch outputs."""
    _, path = graph_def_for(load, split)
    session = _session(path, Path(path).stat().st_mtime_ns)
    io = split.meta["graph_io"]
    names = [n for n in io["outputs"] if n not in split.meta["head_final_outputs"]]
    fetches = [_graph_tensor(io["outputs"][n]) for n in names]
    sources = {_graph_tensor(c): head_outputs[c] for c in split.meta["cut_tensors"]}
    # Every model input is fed, not only those the tail reads: an inlined function body ties its nodes to the
    # inputs by control edges, which a session follows.
    sources |= {_graph_tensor(t): feeds[n] for n, t in io["inputs"].items() if n in feeds}
    count = len(next(iter(feeds.values())))
    fixed = [i["shape"][0] for i in load.meta["model"]["inputs"]]
    step = fixed[0] if fixed and fixed[0] else count
    # A cut tensor need not be batch-major (KerasHub's NMS holds boxes as [4, N] for its fixed batch of 1): the
    # head ran `step` samples per call and stacked the calls, so each call's rows are len / calls.
    calls = -(-count // step)
    rows = {k: max(1, len(v) // calls) if len(v) != count else 0 for k, v in sources.items()}
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for call, start in enumerate(range(0, count, step)):
        values = session.run(
            fetches,
            {
                k: v[start : start + step] if not rows[k] else v[call * rows[k] : (call + 1) * rows[k]]
                for k, v in sources.items()
            },
        )
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


def tail_tensors(split: StageResult, head_outputs: dict[str, Any]) -> dict[str, Any]:
    """The head outputs under the names the postprocess function reads: each cut tensor, and its aliases."""
    tensors = {c: head_outputs[c] for c in split.meta["cut_tensors"]}
    return tensors | {name: head_outputs[c] for name, c in (split.meta.get("postprocess_inputs") or {}).items()}


def run_tail(
    split: StageResult,
    head_outputs: dict[str, Any],
    feeds: dict[str, Any],
    load: StageResult | None = None,
    host: bool = False,
) -> dict[str, Any]:
    """Turn the converted head's outputs into the model's final outputs (identity when nothing was cut, and with
    `split.deploy=in_graph`, whose .tflite returns them itself).

    With a postprocess function, it gets `{cut tensor: array}` in `split.cut_tensors` order (plus any model
    inputs the tail reads) and its config kwargs; without one the cut-off subgraph runs in TensorFlow. `host`: run
    the numpy tail on head outputs even when it is deployed in the graph (the reference's check of the tail).
    """
    if not split.meta.get("head_outputs") or (split.meta.get("deploy") == "in_graph" and not host):
        return head_outputs
    final = {n: head_outputs[n] for n in split.meta.get("head_final_outputs", []) if n in head_outputs}
    if split.meta.get("postprocess"):
        fn, kwargs = load_postprocess(split.meta["postprocess_config"])
        tensors = tail_tensors(split, head_outputs) | {n: feeds[n] for n in split.meta.get("tail_inputs", [])}
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
