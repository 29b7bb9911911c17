"""The one way to the source model for every stage: the whole model, or the head up to the split's cut.

`load` records where the model lives and `split` where (and whether) it is cut; `reference`, `convert` and the
quantization search ask here instead of asking `split`, which asked `load`, which asked the loaders. Handles are
loaded once per process (see `load_handle`) and frozen when a stage needs the graph; the cut head is kept for
the last cut asked for.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from stages.load.model import TensorInfo, frozen_graph_handle, load_handle, read_graph_def
from stages.result import StageResult


def model_path(load: StageResult) -> str:
    """Where the model lives: inside the load stage's entry when it was built, else the user's path."""
    return str(load.path("model")) if "model" in load.files else load.meta["model"]["path"]


def source_handle(load: StageResult) -> Any:
    """The original model as a frozen handle, loaded once per process (see `stages.load.model.load_handle`)."""
    return load_handle({**load.meta["model"], "path": model_path(load)})


def full_model_outputs(load: StageResult, split: StageResult, feeds: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The original (uncut) model's outputs on `feeds`, and a callable that runs it (for latency)."""
    handle = source_handle(load)
    return handle.run(feeds), handle.run


@lru_cache(maxsize=4)
def cached_graph_def(path: str, stamp: int) -> Any:
    """The GraphDef at `path` (as of modification time `stamp`), parsed once per process."""
    return read_graph_def(path)


def graph_def_for(load: StageResult, split: StageResult) -> tuple[Any, str]:
    """The flat graph the split cut (its `graph` file, or the frozen graph itself) and its path."""
    path = str(split.path("graph")) if "graph" in split.files else model_path(load)
    return cached_graph_def(path, Path(path).stat().st_mtime_ns), path


def io_shapes(load: StageResult, ins: dict[str, str]) -> dict[str, list[int]]:
    """The model inputs' shapes keyed by graph tensor name (-1 for unknown dims)."""
    return {ins[i["name"]]: [-1 if d is None else d for d in i["shape"]] for i in load.meta["model"]["inputs"]}


def head_from(graph_def: Any, ins: dict[str, str], outputs: list[str], shapes: dict[str, list[int]]) -> Any:
    """A handle on the graph from the model inputs up to `outputs`, its inputs named as the model's."""
    handle = frozen_graph_handle(graph_def, list(ins.values()), outputs, shapes)
    by_graph = {v: k for k, v in ins.items()}
    # `replace` keeps each input's batch axis, found from its shape when the handle was made.
    handle.inputs = [replace(i, name=by_graph.get(i.name, i.name)) for i in handle.inputs]
    return handle


_HEADS: dict[str, Any] = {}


def head_handle(load: StageResult, split: StageResult) -> Any:
    """The part of the model that is converted: the whole model, or the head up to the cut tensors."""
    if not split.meta.get("head_outputs"):
        return source_handle(load)
    graph_def, path = graph_def_for(load, split)
    ins = split.meta["graph_io"]["inputs"]
    key = json.dumps([path, Path(path).stat().st_mtime_ns, split.meta["head_outputs"]])
    if key not in _HEADS:
        _HEADS.clear()
        _HEADS[key] = head_from(graph_def, ins, split.meta["head_outputs"], io_shapes(load, ins))
    return _HEADS[key]


def deployed_handle(load: StageResult, split: StageResult) -> Any:
    """What the convert stage converts: the head, or with `split.deploy=in_graph` the head and the post-processing
    as TFLite builtins in one function returning the model's own outputs (`stages.postprocess.in_graph`)."""
    head = head_handle(load, split)
    if split.meta.get("deploy") != "in_graph" or not split.meta.get("head_outputs"):
        return head
    from stages.postprocess.in_graph import with_tail

    return with_tail(head, split.meta, [TensorInfo.from_json(o) for o in load.meta["model"]["outputs"]])
